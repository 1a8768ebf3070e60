"""``make check-lab``: the workbook as a student sees it, in a real JupyterLab in headless Chromium.

Optional, never part of ``make test``. For each notebook (default: every ``notebooks/NN_*.ipynb``, in
order) it starts nothing new: one JupyterLab server (the workbook's own ``.venv``, a free localhost port,
a token, its own settings and workspace folders) serves *copies* of the notebooks, with
``WORKBOOK_PROFILE=ci`` and ``WORKBOOK_OUTPUT`` set to a temporary folder (seeded from ``.ci_out/`` when
it exists, so a single notebook finds its upstream files), so nothing committed is touched. Chromium
(Debian's ``chromium`` + ``chromedriver``, window 1440 px wide, the file browser open: an output area of
~990 px) opens each notebook, runs JupyterLab's ``Run All`` command and waits for the kernel to be idle
with no cell running (``--timeout`` per notebook). Then:

- every cell that raised is a failure, and so is a widget that did not render;
- every ``.jp-OutputArea-output`` wider than it is shown (``scrollWidth > clientWidth``) is a failure,
  and so is every image shown below 67% or above 150% of its drawn width (``MIN_SCALE``, ``MAX_SCALE``);
- every slider, dropdown and button in the outputs is moved / picked / clicked in turn, and its view
  must change: the output holding it (its HTML with the controls themselves left out, and the pixels
  of its images) must differ after the action (``--action-timeout`` each). Screenshots of that output
  before and after go to ``--out`` (default ``.ci_out/lab/``) for a person to look at;
- every console error of the page is a failure.

Prints one line per failure (``notebook cell N: what``, N the 0-based index in the notebook's cells, as
nbval counts) and exits 1 if there were any. Run by ``.venv-lab/bin/python -m tools.check_lab`` (selenium
lives only there; the pure parts below import without it, for the unit tests).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / ".ci_out" / "lab"
DEFAULT_SEED = ROOT / ".ci_out"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1440, 1000)
# headless Chromium as root on a closed network: without these it refuses connections or phones home
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
# JupyterLab settings for the check: every cell attached to the page (the default windowing detaches
# cells out of view), nothing saved back, no news or update checks (network errors in the console)
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
}
# console lines that say nothing about the workbook (the closed network, the browser itself)
IGNORED_CONSOLE = (re.compile(r"favicon\.ico"),)
OVERFLOW_TOLERANCE_PX = 1  # sub-pixel rounding
# an image shown below 67% of its drawn width has ~5 px tick labels; above 150% it is blurry and (a widget's
# figure) taller than a laptop screen: both are failures, the figure must be drawn at the size it is shown
MIN_SCALE, MAX_SCALE = 0.67, 1.5
CONTROL_KINDS = ("slider", "dropdown", "button")
QUIET_S = (
    10  # a slider's or dropdown's view that has not changed after this long with the kernel idle never will
)


# ---------------------------------------------------------------- pure parts (unit-tested)


@dataclass(frozen=True)
class Failure:
    notebook: str
    cell: int | None
    what: str

    def line(self) -> str:
        where = self.notebook if self.cell is None else f"{self.notebook} cell {self.cell}"
        return f"{where}: {self.what}"


def overflows(scroll_width: float, client_width: float, tolerance: float = OVERFLOW_TOLERANCE_PX) -> bool:
    """An output is wider than its box when its content scrolls sideways by more than ``tolerance``
    px. A hidden output (client width 0) is not judged."""
    return client_width > 0 and scroll_width - client_width > tolerance


def scale_problem(natural: float, shown: float) -> str | None:
    """Why an image ``natural`` px wide shown at ``shown`` px is not legible, or None when it is."""
    ratio = shown / natural
    if MIN_SCALE <= ratio <= MAX_SCALE:
        return None
    return (
        f"image {natural:.0f} px wide shown at {shown:.0f} px ({ratio:.0%}, allowed {MIN_SCALE:.0%}-"
        f"{MAX_SCALE:.0%}): draw it at the size it is shown"
    )


def overflow_failures(notebook: str, outputs: list[dict]) -> list[Failure]:
    """``outputs``: ``{"cell", "index", "scrollWidth", "clientWidth"}`` per output element."""
    return [
        Failure(
            notebook,
            o["cell"],
            f"output {o['index']} is {o['scrollWidth']} px wide in a {o['clientWidth']} px output area",
        )
        for o in outputs
        if overflows(o["scrollWidth"], o["clientWidth"])
    ]


_VOLATILE = (
    re.compile(r'\s(?:id|for|aria-labelledby|aria-describedby|data-lm-[\w-]+)="[^"]*"'),
    re.compile(r"blob:[^\"')\s]+"),  # a re-created object URL says nothing about its pixels
)


def normalise_html(html: str) -> str:
    """The HTML of a view without what changes on every render although nothing is seen to change."""
    for pattern in _VOLATILE:
        html = pattern.sub("", html)
    return html


def view_signature(html: str, images: list[str]) -> str:
    """One digest of what a view shows: its normalised HTML and the content of its images (data URLs)."""
    h = hashlib.sha256(normalise_html(html).encode())
    for img in images:
        h.update(b"\0" + img.encode())
    return h.hexdigest()


def view_changed(before: dict, after: dict) -> bool:
    """``before``/``after``: ``{"html": str, "images": [data URL, ...]}`` snapshots of one view."""
    return view_signature(before["html"], before["images"]) != view_signature(after["html"], after["images"])


def button_after(control: dict, controls: list[dict]) -> dict | None:
    """The first button after ``control`` in the same output, if ``control`` is a slider or dropdown: a
    view that only follows such a control when that button is clicked (06's generator: pick a feature and
    a strength, then "generate") is no failure of the control; the button's own change is checked."""
    if control["kind"] == "button":
        return None
    for c in controls:
        same = (c["cell"], c["output"]) == (control["cell"], control["output"])
        if same and c["kind"] == "button" and c["index"] > control["index"]:
            return c
    return None


def console_failures(notebook: str, entries: list[dict], ignored=IGNORED_CONSOLE) -> list[Failure]:
    """Selenium's browser-log entries (``{"level", "message"}``): every SEVERE one not ignored."""
    out = []
    for e in entries:
        msg = e.get("message", "")
        if e.get("level") == "SEVERE" and not any(p.search(msg) for p in ignored):
            out.append(Failure(notebook, None, f"console error: {msg[:300]}"))
    return out


def write_lab_settings(folder: Path, settings: dict = LAB_SETTINGS) -> None:
    for plugin, values in settings.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dedupe(failures: list[Failure]) -> list[Failure]:
    seen, out = set(), []
    for f in failures:
        if f not in seen:
            seen.add(f)
            out.append(f)
    return out


# ---------------------------------------------------------------- the page (JavaScript run in Chromium)

_JS_HELPERS = r"""
const CONTROL = '.widget-slider, .widget-dropdown, button.jupyter-button';
const STRIP = '.widget-slider, .widget-dropdown, .widget-text, .widget-textarea, .widget-checkbox, '
  + '.widget-toggle-buttons, button, .jp-InputArea';
function panel() { return document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)'); }
function cells() {
  return [...panel().querySelectorAll('.jp-Notebook .jp-Cell')]
    .filter(c => c.parentElement.closest('.jp-Cell') === null);
}
function topOutputs(cell) {
  const area = cell.querySelector('.jp-Cell-outputArea');
  if (!area) return [];
  return [...area.children].map(ch => ch.querySelector(':scope > .jp-OutputArea-output')).filter(Boolean);
}
function kindOf(el) {
  if (el.matches('.widget-slider')) return 'slider';
  if (el.matches('.widget-dropdown')) return 'dropdown';
  return 'button';
}
function labelOf(el) {
  const l = el.querySelector('.widget-label');
  return ((l && l.textContent) || el.textContent || '').trim().slice(0, 40);
}
function snapshot(root) {
  const copy = root.cloneNode(true);
  copy.querySelectorAll(STRIP).forEach(e => e.remove());
  const images = [];
  for (const img of root.querySelectorAll('img')) {
    if (img.closest(STRIP)) continue;
    if (img.src.startsWith('data:')) { images.push(img.src); continue; }
    try {
      const c = document.createElement('canvas');
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      c.getContext('2d').drawImage(img, 0, 0);
      images.push(c.toDataURL());
    } catch (e) { images.push(img.src); }
  }
  return {html: copy.innerHTML, images: images};
}
"""

JS_STATE = (
    _JS_HELPERS
    + r"""
const p = panel();
if (!p) return null;
const cs = cells();
const prompts = cs.map(c => (c.querySelector('.jp-InputPrompt') || {}).textContent || '');
const errors = [];
const model = window.jupyterapp && window.jupyterapp.shell.currentWidget
  && window.jupyterapp.shell.currentWidget.content && window.jupyterapp.shell.currentWidget.content.model;
if (model) {
  for (let i = 0; i < model.cells.length; i++) {
    const c = model.cells.get(i);
    if (c.type !== 'code') continue;
    for (const o of c.outputs.toJSON()) {
      if (o.output_type !== 'error') continue;
      errors.push({cell: i, what: o.ename + ': ' + String(o.evalue).slice(0, 200)});
    }
  }
}
const running = prompts.map((t, i) => [i, t]).filter(x => x[1].includes('*')).map(x => x[0]);
return {cells: cs.length, running: running, errors: errors};
"""
)

JS_OUTPUTS = (
    _JS_HELPERS
    + r"""
const outs = [], controls = [], broken = [], scaled = [];
cells().forEach((cell, ci) => {
  cell.querySelectorAll('.jp-OutputArea-output').forEach((o, j) => {
    outs.push({cell: ci, index: j, scrollWidth: o.scrollWidth, clientWidth: o.clientWidth});
  });
  topOutputs(cell).forEach((o, j) => {
    o.querySelectorAll(CONTROL).forEach((el, k) => {
      controls.push({cell: ci, output: j, index: k, kind: kindOf(el), label: labelOf(el),
                     disabled: !!(el.disabled || el.querySelector('select:disabled'))});
    });
    if (/Error displaying widget|Loading widget/.test(o.textContent)) broken.push({cell: ci, output: j,
      what: o.textContent.match(/(Error displaying widget[^\n]*|Loading widget[^\n]*)/)[0].slice(0, 120)});
    o.querySelectorAll('img').forEach(img => {
      if (img.naturalWidth && img.clientWidth) scaled.push({cell: ci, output: j, natural: img.naturalWidth,
        shown: img.clientWidth, height: img.clientHeight});
    });
  });
});
const area = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output');
const browser = document.querySelector('.jp-FileBrowser');
return {outputs: outs, controls: controls, broken: broken, scaled: scaled,
        area: area ? area.clientWidth : null,
        fileBrowserOpen: !!(browser && browser.offsetWidth > 0)};
"""
)

JS_FIND = (
    _JS_HELPERS
    + r"""
const [ci, j, k] = arguments;
const o = topOutputs(cells()[ci])[j];
if (!o) return null;
return [o, o.querySelectorAll(CONTROL)[k] || null];
"""
)

JS_SNAPSHOT = (
    _JS_HELPERS
    + r"""
const [ci, j] = arguments;
if (ci === null) {
  const all = [];
  cells().forEach(c => topOutputs(c).forEach(o => all.push(snapshot(o))));
  return {html: all.map(s => s.html).join('\n'), images: all.flatMap(s => s.images)};
}
const o = topOutputs(cells()[ci])[j];
return o ? snapshot(o) : {html: '', images: []};
"""
)

JS_LOG_COUNT = r"""
const s = document.querySelector('.jp-LogConsoleStatusItem');
return s ? s.textContent : '';
"""


# ---------------------------------------------------------------- the server and the browser


class Lab:
    """A JupyterLab server on a free localhost port, serving ``root``, with its own settings."""

    def __init__(self, python: Path, root: Path, work: Path, env: dict):
        self.port, self.token = free_port(), base64.b32encode(os.urandom(15)).decode().lower()
        settings, workspaces = work / "settings", work / "workspaces"
        write_lab_settings(settings)
        workspaces.mkdir(parents=True, exist_ok=True)
        self.log = open(work / "lab.log", "w")  # noqa: SIM115 (closed in stop)
        args = [
            str(python),
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={workspaces}",
        ]
        if os.geteuid() == 0:  # a container or CI machine
            args.append("--allow-root")
        self.proc = subprocess.Popen(
            args, cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"JupyterLab exited ({self.proc.returncode}): see {work / 'lab.log'}")
            try:
                self.api("status")
                return
            except OSError:
                time.sleep(0.5)
        raise SystemExit(f"JupyterLab did not answer in 120 s: see {work / 'lab.log'}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(
            self.url(f"api/{path}"), method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def kernel_state(self, name: str) -> str | None:
        for s in self.api("sessions"):
            if s.get("path", "").endswith(name) and s.get("kernel"):
                return s["kernel"].get("execution_state")
        return None

    def shutdown_kernels(self) -> None:
        for s in self.api("sessions"):
            self.api(f"sessions/{s['id']}", method="DELETE")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def browser(chromium: str, chromedriver: str, profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)
    driver.set_window_size(*WINDOW)
    driver.set_script_timeout(60)
    return driver


# ---------------------------------------------------------------- one notebook


class NotebookCheck:
    def __init__(self, driver, lab: Lab, name: str, shots: Path, args):
        self.d, self.lab, self.name, self.shots, self.args = driver, lab, name, shots, args
        self.failures: list[Failure] = []
        self.found: list[str] = []  # what a person should know that is no failure
        self.shots.mkdir(parents=True, exist_ok=True)

    def fail(self, cell, what) -> None:
        self.failures.append(Failure(self.name, cell, what))

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def wait_idle(self, timeout: float) -> dict | None:
        """Kernel idle and no cell running, twice in a row; the page state then (None on timeout)."""
        deadline, calm = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            st = self.js(JS_STATE)
            if st and not st["running"] and self.lab.kernel_state(self.name) == "idle":
                calm += 1
                if calm >= 2:
                    return st
            else:
                calm = 0
            time.sleep(1)
        return None

    def open_and_run(self) -> bool:
        self.d.get(self.lab.url(f"lab/tree/{self.name}?reset&token={self.lab.token}"))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready = self.js(
                "return !!(window.jupyterapp && document.querySelector('.jp-NotebookPanel .jp-Cell'))"
            )
            if ready and self.lab.kernel_state(self.name) == "idle":
                break
            time.sleep(1)
        else:
            self.fail(None, "JupyterLab did not open the notebook with an idle kernel in 120 s")
            return False
        self.js("window.jupyterapp.commands.execute('notebook:run-all-cells'); return true")
        time.sleep(2)
        st = self.wait_idle(self.args.timeout)
        if st is None:
            st = self.js(JS_STATE) or {"running": [], "errors": []}
            self.fail(
                st["running"][0] if st["running"] else None,
                f"Run All did not finish in {self.args.timeout} s",
            )
            self.d.save_screenshot(str(self.shots / "timeout.png"))
            return False
        for e in st["errors"]:
            self.fail(e["cell"], f"raised {e['what']}")
        return True

    def check_outputs(self) -> dict:
        info = self.js(JS_OUTPUTS)
        self.failures += overflow_failures(self.name, info["outputs"])  # the same line twice is one (dedupe)
        for b in info["broken"]:
            self.fail(b["cell"], f"widget did not render: {b['what']}")
        return info

    def snap(self, cell, output) -> dict:
        return self.js(JS_SNAPSHOT, cell, output)

    def shoot(self, cell, output, path: Path) -> str:
        found = self.js(JS_FIND, cell, output, 0)
        try:
            if found:
                self.js("arguments[0].scrollIntoView({block: 'start'})", found[0])
                found[0].screenshot(str(path))
            else:
                self.d.save_screenshot(str(path))
        except Exception as e:  # noqa: BLE001 (a screenshot that fails is worth a line, not the run)
            return f"(screenshot failed: {type(e).__name__})"
        return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)

    def act(self, control, kind: str) -> str | None:
        """Move / pick / click ``control``; what went wrong, or None."""
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import Select

        if kind == "slider":
            handle = control.find_element("css selector", ".noUi-handle")
            now, top = handle.get_attribute("aria-valuenow"), handle.get_attribute("aria-valuemax")
            up = float(now) < float(top)
            for key in (Keys.PAGE_UP if up else Keys.PAGE_DOWN, Keys.ARROW_RIGHT if up else Keys.ARROW_LEFT):
                handle.send_keys(key)
                time.sleep(0.5)
                if handle.get_attribute("aria-valuenow") != now:
                    return None
            return f"slider stayed at {now}"
        if kind == "dropdown":
            select = Select(control.find_element("css selector", "select"))
            n, cur = len(select.options), select.options.index(select.first_selected_option)
            if n < 2:
                return "dropdown has one option"
            select.select_by_index(cur + 1 if cur + 1 < n else cur - 1)
            return None
        if not control.is_enabled():
            return "disabled"
        self.js("arguments[0].scrollIntoView({block: 'center'})", control)
        control.click()
        return None

    def exercise(self, controls: list[dict]) -> None:
        for c in controls:
            ci, j, k, kind = c["cell"], c["output"], c["index"], c["kind"]
            tag = f"{kind} {c['label']!r}" if c["label"] else kind
            found = self.js(JS_FIND, ci, j, k)
            if not found or not found[1]:
                self.fail(ci, f"{tag}: gone from the page before its turn")
                continue
            stem = f"cell{ci:02d}_out{j}_w{k}_{kind}"
            before, whole = self.snap(ci, j), self.snap(None, None)
            shot_before = self.shoot(ci, j, self.shots / f"{stem}_before.png")
            log_before = self.js(JS_LOG_COUNT)
            problem = self.act(found[1], kind)
            if problem == "disabled":
                self.found.append(f"{self.name} cell {ci}: {tag} is disabled, not clicked")
                continue
            if problem:
                self.fail(ci, f"{tag}: {problem}")
                continue
            after, changed, elsewhere = self.settle(ci, j, before, whole, patient=kind == "button")
            shot_after = self.shoot(ci, j, self.shots / f"{stem}_after.png")
            button = button_after(c, controls)
            if not changed and button:
                self.found.append(
                    f"{self.name} cell {ci}: {tag} changes nothing until {button['label']!r} is clicked"
                )
            elif not changed:
                self.fail(ci, f"{tag}: view did not change ({shot_before} -> {shot_after})")
            else:
                self.found.append(
                    f"{self.name} cell {ci}: {tag} changed {'another output' if elsewhere else 'its view'}: "
                    f"{shot_before} -> {shot_after}"
                )
            log_after = self.js(JS_LOG_COUNT)
            if log_after != log_before:
                self.fail(
                    ci,
                    f"{tag}: the log console went from {log_before!r} to {log_after!r} (a callback error?)",
                )

    def settle(self, ci, j, before, whole, patient: bool):
        """Wait for the view to change and then stay the same for ``--settle`` s with the kernel idle.
        Gives up after ``--action-timeout`` s, or (not ``patient``: a slider's or dropdown's handler runs
        while the kernel is busy) once the kernel has been idle for ``QUIET_S`` s with nothing changed. A
        button may start work that outlives its handler (a thread), so it gets the whole timeout."""
        deadline = time.monotonic() + self.args.action_timeout
        last, stable_since, changed, elsewhere = None, None, False, False
        idle_since = None
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.snap(ci, j)
            if not changed:
                if view_changed(before, now):
                    changed = True
                elif view_changed(whole, self.snap(None, None)):
                    changed, elsewhere = True, True
            sig = view_signature(now["html"], now["images"])
            if sig != last:
                last, stable_since = sig, time.monotonic()
            idle = self.lab.kernel_state(self.name) == "idle"
            if changed and idle and time.monotonic() - stable_since >= self.args.settle:
                return now, True, elsewhere
            idle_since = (idle_since or time.monotonic()) if idle else None
            if not patient and not changed and idle_since and time.monotonic() - idle_since >= QUIET_S:
                break
        return self.snap(ci, j), changed, elsewhere

    def run(self) -> None:
        start = time.monotonic()
        if not self.open_and_run():
            return
        ran = time.monotonic() - start
        info = self.check_outputs()
        self.d.save_screenshot(str(self.shots / "window.png"))
        if not info["fileBrowserOpen"]:
            self.found.append(f"{self.name}: the file browser is not open")
        for s in info["scaled"]:
            problem = scale_problem(s["natural"], s["shown"])
            if problem:
                self.fail(s["cell"], f"{problem}, {s['height']} px tall")
        controls = [c for c in info["controls"] if c["kind"] in CONTROL_KINDS]
        self.exercise(controls)
        if controls:
            self.check_outputs()
        self.found.insert(
            0,
            f"{self.name}: Run All {ran:.0f} s, output area {info['area']} px, {len(controls)} widgets "
            f"exercised in {time.monotonic() - start - ran:.0f} s",
        )


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/NN_*.ipynb")
    ap.add_argument("--python", type=Path, default=ROOT / ".venv" / "bin" / "python", help="runs JupyterLab")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="screenshots (emptied first)")
    ap.add_argument("--seed", default=str(DEFAULT_SEED), help="ci outputs to start from ('' for none)")
    ap.add_argument("--timeout", type=float, default=900, help="s for one notebook's Run All")
    ap.add_argument("--action-timeout", type=float, default=60, help="s for one widget's view to change")
    ap.add_argument("--settle", type=float, default=2, help="s a changed view must stay the same")
    ap.add_argument("--chromium", default=CHROMIUM)
    ap.add_argument("--chromedriver", default=CHROMEDRIVER)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (server log, outputs)")
    args = ap.parse_args(argv)

    for exe in (args.chromium, args.chromedriver):
        if not os.access(exe, os.X_OK):
            print(f"{exe} is missing: apt-get install -y chromium chromium-driver", file=sys.stderr)
            return 1
    notebooks = [p.resolve() for p in args.notebooks] or sorted(
        (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")
    )
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    work = Path(tempfile.mkdtemp(prefix="check-lab-"))
    served, output = work / "notebooks", work / "outputs"
    served.mkdir()
    for p in notebooks:
        shutil.copyfile(p, served / p.name)
    if args.seed and Path(args.seed).is_dir():
        shutil.copytree(args.seed, output, ignore=shutil.ignore_patterns("lab"), symlinks=True)
    else:
        output.mkdir()
    env = {
        **os.environ,
        "WORKBOOK_PROFILE": "ci",
        "WORKBOOK_OUTPUT": str(output),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(work / "jupyter_config"),
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
    }
    env.pop("WORKBOOK_HEADLESS", None)  # the widgets live, not their plain-text fallback
    failures: list[Failure] = []
    found: list[str] = []
    start = time.monotonic()
    # absolute, without resolving the venv's symlink: JupyterLab runs in another working directory, and the
    # Makefile passes .venv/bin/python
    lab = Lab(Path(os.path.abspath(args.python)), served, work, env)
    driver = None
    try:
        driver = browser(args.chromium, args.chromedriver, work / "chromium")
        for p in notebooks:
            print(f"== {p.name}", flush=True)
            t0 = time.monotonic()
            check = NotebookCheck(driver, lab, p.name, args.out / p.stem, args)
            try:
                check.run()
            except Exception as e:  # noqa: BLE001 (one notebook's crash is its failure line, the rest still run)
                check.fail(None, f"check crashed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            check.failures += console_failures(p.name, driver.get_log("browser"))
            lab.shutdown_kernels()
            failures += dedupe(check.failures)
            found += check.found
            for line in check.found + [f"FAIL {f.line()}" for f in dedupe(check.failures)]:
                print("  ", line, flush=True)
            print(f"   {time.monotonic() - t0:.0f} s, {len(dedupe(check.failures))} failures", flush=True)
    finally:
        if driver is not None:
            driver.quit()
        lab.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    (args.out / "report.txt").write_text("\n".join(found + ["", *(f.line() for f in failures)]) + "\n")
    print(
        f"check-lab: {len(notebooks)} notebooks in {time.monotonic() - start:.0f} s, "
        f"{len(failures)} failures; screenshots in {args.out}"
    )
    for f in failures:
        print(f.line())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Views of a feature attribution: the top features as an HTML table, attributed against measured
drops as a scatter plot, and a prompt -> top-features widget (HTML in an ``ipywidgets.HTML``, never
an ``Output`` widget: see :mod:`helpers.viz.widgets`)."""

from __future__ import annotations

import html
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np

from helpers.analysis.attribution import (
    Attribution,
    AttributionCheck,
    ablation_effects,
    attribute_features,
    top_next_tokens,
)
from helpers.stats import Interval
from helpers.validate import as_count
from helpers.viz.widgets import FULL_WIDTH, boxed, busy_html, dismiss, saved_state_note

_POS, _NEG = "#2b7bba", "#d6604d"  # pushes the metric up / down


def _bar(value: float, scale: float) -> str:
    width = 0 if scale <= 0 else int(round(60 * min(1.0, abs(value) / scale)))
    colour = _POS if value >= 0 else _NEG
    return (
        f'<span style="display:inline-block;width:{width}px;height:9px;background:{colour};'
        f'margin-right:6px"></span>{value:+.3f}'
    )


def attribution_html(
    result: Attribution,
    labels: dict[int, str] | None = None,
    measured: np.ndarray | None = None,
    n: int = 10,
) -> str:
    """The ``n`` top features of ``result`` (by |attribution|) as an HTML table: feature id, its
    attribution (a bar, blue when it raises the metric), the measured drop when it is ablated
    (``measured``, in the same order as ``result.top(n)``, optional), its summed activation and the
    positions it fires at, and its label from ``labels`` (feature -> text)."""
    top = result.top(as_count(n, "n"))
    if measured is not None:
        measured = np.asarray(measured, dtype=np.float64)
        if measured.shape != (len(top),):
            raise ValueError(
                f"measured has {measured.shape} values but the table has {len(top)} features; pass "
                "ablation_effects(...) for the same top features"
            )
    labels = labels or {}
    scale = float(np.abs(top["attribution"]).max()) if len(top) else 0.0
    if measured is not None and len(measured):
        scale = max(scale, float(np.abs(measured).max()))
    head = ["#", "feature", "attribution a<sub>i</sub>"]
    head += ["measured drop (ablated)"] if measured is not None else []
    head += ["Σ activation", "positions", "label"]
    rows = []
    for k, r in enumerate(top.itertuples()):
        cells = [str(k + 1), str(int(r.feature)), _bar(float(r.attribution), scale)]
        if measured is not None:
            cells.append(_bar(float(measured[k]), scale))
        label = labels.get(int(r.feature), "")
        cells += [f"{r.activation:.2f}", str(int(r.positions)), html.escape(label) or "<i>no label</i>"]
        rows.append("<tr>" + "".join(f'<td style="text-align:left">{c}</td>' for c in cells) + "</tr>")
    summary = (
        f"<p><b>prompt</b> {html.escape(repr(result.prompt))}<br>"
        f"<b>metric</b> {html.escape(result.metric_name)} = {result.metric:.3f} "
        f"(layer {result.layer}); Σ of all feature attributions {result.scores.sum():+.3f}, "
        f"error term {result.error:+.3f}</p>"
    )
    if not len(top):
        return summary + "<p><i>no feature is active at the spliced positions</i></p>"
    table = (
        '<table style="border-collapse:collapse;font-size:12px"><thead><tr>'
        + "".join(f'<th style="text-align:left">{h}</th>' for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    return summary + table


def attribution_scatter(check: AttributionCheck, intervals: dict[str, Interval] | None = None) -> plt.Figure:
    """Attributed (activation × gradient) against measured (ablation) drop of the metric, one dot
    per (prompt, top feature), one grey cross per (prompt, random active feature) when the check
    ablated any; the diagonal is a perfect first-order estimate. ``intervals``: those of the top pairs."""
    p = check.pairs
    top = p[p["kind"] == "top"] if "kind" in p else p
    rnd = p[p["kind"] == "random"] if "kind" in p else p.iloc[:0]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    cmap = plt.get_cmap("tab20")
    for k, (_, g) in enumerate(top.groupby("prompt_id", sort=True)):
        ax.scatter(g["attributed"], g["measured"], s=18, color=cmap(k % 20), alpha=0.8)
    if len(rnd):
        ax.scatter(
            rnd["attributed"],
            rnd["measured"],
            s=16,
            color="grey",
            marker="x",
            alpha=0.7,
            label=f"{len(rnd)} random active features",
        )
    lo = float(min(p["attributed"].min(), p["measured"].min()))
    hi = float(max(p["attributed"].max(), p["measured"].max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="measured = attributed")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("attributed drop  Σ_t f·∂m/∂f  (logits)")
    ax.set_ylabel("measured drop when the feature is ablated  (logits)")
    if intervals:
        stats = f"top: Pearson {intervals['pearson']}, Spearman {intervals['spearman']}"
    else:
        stats = f"top: Pearson {check.pearson:.3f}, Spearman {check.spearman:.3f}"
    n_prompts = p["prompt_id"].nunique()
    ax.set_title(
        f"{len(top)} top features of {n_prompts} prompts (one colour per prompt)\n{stats}", fontsize=9
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def ablation_paths_plot(paths: list[dict]) -> plt.Figure:
    """One panel per feature: the measured drop of the metric as the feature is removed step by step
    (``removed`` fractions, ``measured`` drops) against activation × gradient's straight line
    (``attributed`` × fraction), titled by ``title``. Where the two part is where the estimate fails."""
    if not paths:
        raise ValueError("give at least one path to plot")
    width = min(9.0, 3.0 * len(paths))  # ~990 px at 110 dpi, the width it is shown at
    fig, axes = plt.subplots(1, len(paths), figsize=(width, 3.4), squeeze=False)
    for ax, path in zip(axes[0], paths, strict=True):
        x = np.asarray(path["removed"], dtype=np.float64)
        ax.plot(x, path["measured"], "o-", label="measured (ablation)")
        ax.plot(x, x * path["attributed"], "k--", label="activation × gradient")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("fraction of the feature removed", fontsize=9)
        ax.set_ylabel("drop of the logit", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.set_title(textwrap.fill(path.get("title", ""), 36), fontsize=8)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _error(msg: str) -> str:
    return f'<p style="color:#b2182b">{html.escape(msg)}</p>'


def attribution_widget(
    model,
    tokenizer,
    sae,
    layer: int,
    labels: dict[int, str] | None = None,
    prompt: str = "The capital of France is",
    n: int = 10,
    measure: bool = True,
    n_candidates: int = 5,
    initial: str | None = None,
):
    """A prompt box, a dropdown of the model's ``n_candidates`` most likely next tokens (refreshed
    when the prompt changes) or a box for any one-token target, and a button; the ``n`` top
    features of that token's logit, with their labels (and their measured ablation drop when
    ``measure``), appear in an HTML widget below. Bad input shows as a red line, not a traceback.
    ``initial``: HTML to show before the first click (e.g. the static render of the same prompt, so
    building the widget costs no second attribution); by default the prompt is attributed at once.

    Each attribution first shows a busy line in the output (the first one is slow: several seconds)
    and then the table under a status line with the target, the time it took and a click count, so
    the view visibly changes even when the prompt and token are those of the view it replaces (then
    the table itself is the same, and the status line says so)."""
    import ipywidgets as widgets

    n = as_count(n, "n")
    box = widgets.Text(value=prompt, description="prompt", continuous_update=False)
    box.layout.width = "90%"
    pick = widgets.Dropdown(description="next token", options=[])
    typed = widgets.Text(value="", description="or token", placeholder="e.g. ' Paris' (one token)")
    go = widgets.Button(description="attribute")
    out = widgets.HTML()
    out.layout.max_width = FULL_WIDTH
    note = saved_state_note()
    state = {"clicks": 0, "body": initial}

    def refresh(change=None) -> None:
        try:
            cands = top_next_tokens(model, tokenizer, box.value, n_candidates)
        except ValueError as err:
            pick.options = []
            out.value = _error(str(err))
            return
        pick.options = [(f"{t!r}  p={p:.2f}", i) for i, t, p in cands]
        pick.value = cands[0][0]

    def show(_=None, status: bool = True) -> None:
        target = typed.value if typed.value.strip() else pick.value
        shown = typed.value.strip() or (pick.label or "").split("  p=")[0]
        if status:
            dismiss(note)
            state["clicks"] += 1
            out.value = busy_html(f"attributing the logit of {shown} (the first run takes several seconds)")
        go.disabled = True
        t0 = time.perf_counter()
        try:
            res = attribute_features(model, tokenizer, sae, layer, box.value, target=target)
            measured = ablation_effects(model, sae, res, n=n) if measure else None
            body = attribution_html(res, labels, measured, n)
        except ValueError as err:
            out.value = _error(str(err))
            return
        finally:
            go.disabled = False
        line = ""
        if status:
            same = body == state["body"]
            same = " — the same prompt and token as before, so the same table" if same else ""
            line = (
                f'<p style="color:#555;font-size:12px">attribution {state["clicks"]}: '
                f"{html.escape(shown)} in {time.perf_counter() - t0:.1f} s{same}</p>"
            )
        state["body"] = body
        out.value = line + body

    box.observe(lambda change: (refresh(), show()), names="value")
    go.on_click(show)
    refresh()
    if initial is None:
        show(status=False)
    else:
        out.value = initial
    controls = widgets.HBox([pick, typed, go], layout=widgets.Layout(flex_flow="row wrap"))
    return boxed([box, controls, out], note)

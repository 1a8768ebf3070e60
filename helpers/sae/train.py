"""Training loop for :mod:`helpers.sae` on an in-memory activation matrix (CPU or CUDA)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from helpers.config import FULL, SAEConfig
from helpers.files import load_json, params_key, verify
from helpers.progress import progress_bar
from helpers.sae.model import MARKER, SAE_CLASSES, BaseSAE, load_sae, make_sae, save_sae

# part of a saved run's key: bump it when a change to the training loop changes what it learns, so
# notebooks retrain instead of reusing runs made by the old code (a change to one architecture's step bumps
# that class's ``step_version`` instead, and leaves the other architectures' saved runs valid)
TRAINER_VERSION = 4


@dataclass
class TrainLog:
    step: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    sparsity: list[float] = field(default_factory=list)  # λ-weighted L1 term, or the AuxK term
    l0: list[float] = field(default_factory=list)
    # held-out FVU at a few points (train_sae's eval_acts): the memorisation gap as it opens
    eval_tokens: list[int] = field(default_factory=list)
    eval_fvu: list[float] = field(default_factory=list)
    train_fvu: list[float] = field(default_factory=list)  # on as many training rows, same points
    seconds: float = 0.0  # training only: the held-out checks are not counted

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in asdict(self).items() if isinstance(v, list)}


def input_scale(acts: np.ndarray | torch.Tensor) -> float:
    """The factor c with E||c x|| = sqrt(d_in) (Anthropic's input normalisation). All-zero activations
    (mean norm 0: no c exists, and nothing to learn) are refused in one line."""
    x = torch.as_tensor(acts, dtype=torch.float32)
    norm = float(x.norm(dim=1).mean())
    if not norm > 0:
        raise ValueError(
            f"the {len(x):,} activation rows are all zero (mean norm 0): there is nothing to learn; check "
            f"the store (notebook 02) or the rows passed"
        )
    return math.sqrt(x.shape[1]) / norm


def validate_acts(acts: np.ndarray, d_in: int) -> None:
    if acts.ndim != 2 or acts.shape[1] != d_in:
        raise ValueError(
            f"activations are {tuple(acts.shape)} but the SAE reads d_in = {d_in}; use activations of that "
            f"width"
        )
    if len(acts) == 0:
        raise ValueError("no activations to train on; check the store (notebook 02)")
    if not np.isfinite(acts).all():
        raise ValueError(
            "the activations hold NaN or inf; rebuild the store (notebook 02) or drop those rows"
        )


class DivergedError(ValueError):
    """Training met a NaN or inf loss or weights: the run is refused (and :func:`train_or_load` caches
    nothing). A ``ValueError``, so callers catching bad input catch it too."""


def _diverged(cfg: SAEConfig, step: int, seen: str, mse: float, sparsity: float) -> DivergedError:
    """The one-line refusal of a run that ``seen`` (its loss was NaN or inf, ...) at ``step``, naming the knob
    that most likely did it. With Adam each update moves a weight by about ``lr`` whatever the gradient's
    size, so a finite loss coefficient cannot blow the weights up: it can only overflow the loss itself
    or its gradient (an inf gradient norm makes the clipped step 0 or NaN). Otherwise the weights grew
    without bound: the learning rate."""
    coef = SAE_CLASSES[cfg.architecture].knob(cfg)
    where = f"{cfg.name()} diverged: {seen} at step {step + 1} of {cfg.steps}"
    # Adam has moved each weight by about lr per step at most: under 1 in all, the weights are still of
    # their initial size, so the loss's coefficient overflowed (as it does when only its own term is inf)
    if cfg.lr * (step + 1) <= 1 or (math.isfinite(mse) and not math.isfinite(sparsity)):
        fix = f"{coef} overflows the loss or its gradient; lower it"
    else:
        default = getattr(FULL, cfg.architecture, cfg).lr
        fix = f"the learning rate lr = {cfg.lr:g} is too high; lower it (notebook 03 uses {default:g})"
    return DivergedError(f"{where}: {fix}. Nothing was saved")


@torch.no_grad()
def _fvu_scaled(sae: BaseSAE, xs: torch.Tensor) -> float:
    """FVU of scaled inputs ``xs`` mid-training (the scale is still 1, the inputs already scaled)."""
    return float((xs - sae(xs)).pow(2).sum() / (xs - xs.mean(0)).pow(2).sum())


def _adam(params, lr: float) -> torch.optim.Adam:
    """Adam with PyTorch's fused kernel where it exists (CPU and CUDA in torch >= 2.4): ~10x faster
    than the per-tensor update on CPU, which otherwise costs as much as a third of a TopK step."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), foreach=True)


def _decay(cfg: SAEConfig, steps: int) -> int:
    """The steps over which a run of ``steps`` steps lowers its learning rate to 0 (its last ones)."""
    return max(1, int(cfg.decay_frac * steps))


def branch_point(cfg: SAEConfig, steps: int) -> int:
    """The step where a run of ``steps`` steps starts its learning-rate decay: up to it, the run is step for
    step the same as any longer run of the same config (same seed, batches and constant learning rate)."""
    return steps - _decay(cfg, steps)


class _Run:
    """One training run's state between steps: the SAE, Adam, the data order, each latent's silence and
    the log. :meth:`fork` copies it, so a shorter run can go on from a longer one's constant-rate steps."""

    def __init__(self, cfg: SAEConfig, x_all: torch.Tensor, c: float, device, log_every: int):
        self.cfg, self.x_all, self.c, self.log_every = cfg, x_all, c, log_every
        self.sae = make_sae(cfg).to(device)
        if cfg.b_dec_init == "mean":
            # start the decoder bias at the data's centre (OpenAI use its geometric median): with a
            # few hundred steps Adam cannot move it to the large mean of the outlier dimensions
            with torch.no_grad():
                self.sae.b_dec.copy_((x_all * c).mean(0))
        self.params = list(self.sae.parameters())
        self.opt = _adam(self.params, cfg.lr)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        # training tokens since each latent last fired: a latent silent for dead_tokens counts as dead (AuxK)
        self.since_fired = torch.zeros(cfg.d_sae, dtype=torch.long, device=device)
        self.log = TrainLog()
        self.perm, self.cursor, self.step = torch.randperm(len(x_all), generator=self.gen), 0, 0
        self.B = min(cfg.batch_size, len(x_all))
        self.xs = torch.empty(self.B, cfg.d_in, device=device)  # the batch, written in place every step
        self.seconds = 0.0  # training only: held-out checks and branches are not counted
        self.evals: tuple | None = None  # (check steps, held-out rows, training rows) when logged

    def fork(self) -> _Run:
        """An independent copy of the run as it stands: continuing both gives what two runs would."""
        other = copy.copy(self)
        other.sae = copy.deepcopy(self.sae)
        other.params = list(other.sae.parameters())
        other.opt = _adam(other.params, self.cfg.lr)
        other.opt.load_state_dict(copy.deepcopy(self.opt.state_dict()))
        other.gen = torch.Generator().set_state(self.gen.get_state())
        other.since_fired, other.perm = self.since_fired.clone(), self.perm.clone()
        other.log, other.evals = copy.deepcopy(self.log), None
        other.xs = torch.empty_like(self.xs)
        return other

    def advance(self, until: int, steps: int, bar=None) -> None:
        """Train from the current step up to ``until`` (exclusive), as steps of a run of ``steps`` steps
        (whose learning rate decays over its last ``decay_frac``)."""
        cfg, sae, opt, B, n, log = self.cfg, self.sae, self.opt, self.B, len(self.x_all), self.log
        decay = _decay(cfg, steps)
        checks, x_ev, x_tr = self.evals or (set(), None, None)
        t0, eval_seconds = time.perf_counter(), 0.0
        for step in range(self.step, until):
            if self.cursor + B > n:
                self.perm, self.cursor = torch.randperm(n, generator=self.gen), 0
            idx = self.perm[self.cursor : self.cursor + B].to(self.xs.device)
            torch.index_select(self.x_all, 0, idx, out=self.xs).mul_(self.c)
            self.cursor += B
            for group in opt.param_groups:
                group["lr"] = cfg.lr * min(1.0, (steps - step) / decay)
            stats = sae.train_step(self.xs, self.since_fired >= cfg.dead_tokens, step, steps)
            self.since_fired.add_(B).masked_fill_(stats.fired, 0)
            grad_norm = nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
            opt.step()
            sae.after_step()
            if step in checks:
                t_ev = time.perf_counter()
                log.eval_tokens.append((step + 1) * B)
                log.eval_fvu.append(_fvu_scaled(sae, x_ev))
                log.train_fvu.append(_fvu_scaled(sae, x_tr))
                eval_seconds += time.perf_counter() - t_ev
            if step % self.log_every == 0 or step == steps - 1:
                d = cfg.d_in  # log per-dimension values, comparable across scales
                loss_now, mse_now, sparsity_now = (
                    float(t.detach()) for t in (stats.loss, stats.mse, stats.sparsity)
                )
                if not math.isfinite(loss_now):  # NaN weights stay NaN: checking at the logged steps finds it
                    raise _diverged(cfg, step, f"its loss was {loss_now}", mse_now, sparsity_now)
                # read at the logged steps only (no per-step cost): a gradient norm that overflows at every
                # step (λ = 1e38) zeroes every clipped step, a silent run that learns nothing
                if not math.isfinite(float(grad_norm)):
                    raise _diverged(cfg, step, "its gradient norm overflowed", mse_now, sparsity_now)
                log.step.append(step)
                log.tokens.append((step + 1) * B)
                log.loss.append(loss_now / d)
                log.mse.append(mse_now / d)
                log.sparsity.append(sparsity_now / d)
                log.l0.append(float(stats.l0))
            if bar is not None:
                bar.update(1)
        self.step = max(self.step, until)
        self.seconds += time.perf_counter() - t0 - eval_seconds

    def finish(self, steps: int) -> tuple[BaseSAE, TrainLog]:
        sae, log = self.sae, self.log
        log.seconds = self.seconds
        sae.end_training()
        if not all(bool(torch.isfinite(p).all()) for p in self.params):
            raise _diverged(self.cfg, steps - 1, "its weights hold NaN or inf", math.nan, math.nan)
        sae.scale.fill_(self.c)
        sae.fold_scale()
        return sae.eval(), log


def train_sae(
    cfg: SAEConfig,
    acts: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    log_every: int = 5,
    progress: bool = True,
    desc: str | None = None,
    eval_acts: np.ndarray | None = None,
    eval_points: int = 6,
    branches: dict[int, Callable[[BaseSAE, TrainLog], None]] | None = None,
) -> tuple[BaseSAE, TrainLog]:
    """Train an SAE on ``acts`` [n_tokens, d_in] (float32) and return it (scale folded) + its log.
    With ``eval_acts`` (held-out rows), FVU on them and on as many training rows is logged at
    ``eval_points`` evenly spaced steps (their time is not counted in ``log.seconds``).

    ``branches`` ({steps: callback}) also trains the runs of those shorter budgets, for an architecture
    whose steps do not depend on the run's length (``BaseSAE.length_free``): each is this run's first
    :func:`branch_point` steps, forked, then its own decay, so it costs only the decay and equals, number
    for number, the run trained alone (tested); each is handed to its callback as it ends (without held-out
    checks, and its ``seconds`` count the shared steps). Others are refused in one line."""
    cfg.validate()
    validate_acts(acts, cfg.d_in)
    branches = dict(sorted((branches or {}).items()))
    if branches:
        cls = SAE_CLASSES[cfg.architecture]
        bad = [s for s in branches if not 1 <= s < cfg.steps]
        if not vars(cls).get("length_free", False) or bad:  # declared by the class itself, not inherited
            why = (
                f"budgets {bad} are not shorter than its {cfg.steps} steps"
                if bad
                else ("its steps depend on the run's length (a warm-up or a schedule)")
            )
            raise ValueError(f"{cfg.name()} cannot branch shorter runs: {why}; train them one by one")
    torch.manual_seed(cfg.seed)
    x_all = torch.as_tensor(acts, dtype=torch.float32).to(device)
    c = input_scale(x_all)
    run = _Run(cfg, x_all, c, device, log_every)
    steps = cfg.steps
    if eval_acts is not None:
        m = min(len(eval_acts), 4096)
        n = len(x_all)
        x_ev = torch.as_tensor(eval_acts[:m], dtype=torch.float32).to(device) * c
        x_tr = (
            x_all[torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 1))[:m].to(device)] * c
        )
        checks = set(np.linspace(0, steps - 1, eval_points).round().astype(int).tolist())
        run.evals = (checks, x_ev, x_tr)
    bar = progress_bar(total=steps, desc=desc or cfg.name(), disable=not progress, mininterval=1.0)
    for short, done in branches.items():
        run.advance(branch_point(cfg, short), steps, bar)
        side = run.fork()
        side.cfg = side.sae.cfg = replace(cfg, steps=short)
        side.advance(short, short)
        done(*side.finish(short))
    run.advance(steps, steps, bar)
    bar.close()
    return run.finish(steps)


def train_flops_per_token(cfg: SAEConfig) -> float:
    """Matrix-multiply FLOPs one training token costs, counted as the architecture's training step does
    them (see each class's ``flops_per_token``)."""
    cfg.validate()
    return SAE_CLASSES[cfg.architecture].flops_per_token(cfg)


def _run_dir(cfg: SAEConfig, data_key: str, folder) -> Path:
    fields = {"cfg": cfg.key(), "data": data_key, "trainer": TRAINER_VERSION}
    step = SAE_CLASSES[cfg.architecture].step_version
    if step:  # absent at 0, so the keys of runs saved before versions existed still match
        fields["step"] = step
    key = params_key(fields)
    return Path(folder) / f"{cfg.name()}-{key[:8]}"


def _load_run(run_dir: Path, device) -> tuple[BaseSAE, TrainLog] | None:
    """The run saved in ``run_dir``, or None if there is none (or it no longer loads)."""
    if verify(run_dir / MARKER) is None or not (run_dir / "log.json").is_file():
        return None
    try:
        sae, _ = load_sae(run_dir)
        saved = load_json(run_dir / "log.json")
        log = TrainLog(**{k: v for k, v in saved.items() if k in TrainLog.__dataclass_fields__})
        return sae.to(device), log
    except ValueError:  # re-running the notebook could never mend it: train it again
        return None


def _save_run(sae: BaseSAE, log: TrainLog, cfg: SAEConfig, data_key: str, run_dir: Path) -> None:
    log_json = {**{k: v.tolist() for k, v in log.as_arrays().items()}, "seconds": log.seconds}
    save_sae(
        sae, run_dir, {"workbook": {**asdict(cfg), "data_key": data_key}}, extra_files={"log.json": log_json}
    )


def train_or_load(
    cfg: SAEConfig,
    acts: np.ndarray,
    data_key: str,
    folder,
    *,
    progress: bool = True,
    desc: str | None = None,
    device: str | torch.device = "cpu",
    eval_acts: np.ndarray | None = None,
    branches: tuple[int, ...] = (),
) -> tuple[BaseSAE, TrainLog, bool]:
    """Train, or reuse the SAE saved in ``folder/<name>-<hash>/`` by an earlier run with the same
    config and data (``data_key``). Returns ``(sae, log, reused)``. Weights, config and log are
    committed together by the SAE's marker, so an interrupted run is retrained, never half-reused.
    A run that diverges (NaN or inf) is refused by :func:`train_sae` in one line and nothing is saved; a
    saved run that no longer loads (one cached with NaN weights by older code, say) is trained again.

    ``branches``: shorter step budgets whose runs are saved too, each where ``train_or_load`` of
    ``replace(cfg, steps=s)`` would look for it (so a later call reuses it). Trained with this run, they cost
    only their decay (:func:`train_sae`); where this run is reused, a missing one is trained alone."""
    cfg.validate()
    run_dir = _run_dir(cfg, data_key, folder)
    short = {s: replace(cfg, steps=s) for s in sorted(set(branches))}
    missing = {s: c for s, c in short.items() if verify(_run_dir(c, data_key, folder) / MARKER) is None}
    saved = _load_run(run_dir, device)
    if saved is not None:
        for c in missing.values():
            train_or_load(c, acts, data_key, folder, progress=False, device=device)
        return *saved, True

    def keep(c: SAEConfig):
        return lambda sae, log: _save_run(sae, log, c, data_key, _run_dir(c, data_key, folder))

    sae, log = train_sae(
        cfg,
        acts,
        progress=progress,
        desc=desc,
        device=device,
        eval_acts=eval_acts,
        branches={s: keep(c) for s, c in missing.items()},
    )
    _save_run(sae, log, cfg, data_key, run_dir)
    return sae, log, False

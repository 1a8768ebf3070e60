"""Training loop for :mod:`helpers.sae` on an in-memory activation matrix (CPU or CUDA)."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from helpers.config import FULL, SAEConfig
from helpers.files import load_json, params_key, verify
from helpers.progress import progress_bar
from helpers.sae.model import L1SAE, MARKER, BaseSAE, TopKSAE, load_sae, make_sae, save_sae, sparse_decode

# part of a saved run's key: bump it when a change to the training step changes what it learns, so
# notebooks retrain instead of reusing runs made by the old code
TRAINER_VERSION = 2


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


def _l1_step(sae: L1SAE, xs: torch.Tensor, lam: float):
    f = torch.relu(torch.addmm(sae.b_enc, xs, sae.W_enc))
    xhat = torch.addmm(sae.b_dec, f, sae.W_dec)
    mse = (xhat - xs).pow(2).sum(-1).mean()
    # mean over tokens of sum_i f_i ||W_dec,i|| = (column sums of f) . norms / B: no [B, d_sae] product
    l1 = f.sum(0) @ sae.W_dec.norm(dim=1) / len(xs)
    return mse + lam * l1, mse, lam * l1, f


def _rows_by_latent(cols: torch.Tensor, g: torch.Tensor, n_latents: int) -> torch.Tensor:
    """Gᵀ as a sparse CSR [n_latents, B] matrix, where G [B, n_latents] holds g[b, j] at column cols[b, j]."""
    n_tok, per_tok = cols.shape
    flat = cols.reshape(-1)
    order = torch.argsort(flat, stable=True)
    crow = torch.zeros(n_latents + 1, dtype=torch.long, device=cols.device)
    crow[1:] = torch.bincount(flat, minlength=n_latents).cumsum(0)
    with (
        warnings.catch_warnings()
    ):  # torch flags sparse CSR as "beta"; the product used here is long-standing
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            crow, order // per_tok, g.reshape(-1)[order], (n_latents, n_tok), check_invariants=False
        )


class _TopKEncode(torch.autograd.Function):
    """Pre-activations ``(x - b_dec) W_enc + b_enc``; each token's top k and, over the dead columns only,
    its top ``aux_k`` (for AuxK). Returns (vals, idx, aux_vals, aux_idx), values before the ReLU.

    The backward pass is sparse: only the B x (k + aux_k) selected pre-activations carry gradient, so the
    encoder's weight gradient is a sparse [d_sae, B] x [B, d_in] product (B (k + aux_k) d_in multiply-adds)
    instead of autograd's dense [d_in, B] x [B, d_sae] one over a zero-filled [B, d_sae] gradient (B d_sae
    d_in): at k = 32 of 4,608 latents ~8x less time for that gradient, and the step's only dense product
    left is the forward one."""

    @staticmethod
    def forward(ctx, xs, W_enc_t, b_enc, b_dec, k: int, dead_idx, aux_k: int, out):
        # W_enc_t is W_encᵀ [d_sae, d_in] (contiguous); b_dec is folded into the bias: one fused product,
        # written into ``out`` [B, d_sae], a buffer reused every step (autograd does not keep it)
        pre = torch.addmm(b_enc - W_enc_t @ b_dec, xs, W_enc_t.T, out=out)
        vals, idx = torch.topk(pre, k, dim=-1, sorted=False)
        n_dead = dead_idx.numel()
        if n_dead and aux_k >= n_dead:  # every dead latent takes part: no selection needed
            a_vals, a_idx = pre[:, dead_idx], dead_idx.expand(len(xs), n_dead)
        elif n_dead and aux_k:  # top-k over the dead columns only: few, so cheap
            a_vals, j = torch.topk(pre[:, dead_idx], aux_k, dim=-1, sorted=False)
            a_idx = dead_idx[j]
        else:
            a_vals, a_idx = pre.new_zeros(len(xs), 0), idx.new_zeros(len(xs), 0)
        ctx.save_for_backward(xs, W_enc_t, b_dec, idx, a_idx)
        ctx.mark_non_differentiable(idx, a_idx)
        return vals, idx, a_vals, a_idx

    @staticmethod
    def backward(ctx, g_vals, _g_idx, g_aux, _g_aux_idx):
        xs, W_enc_t, b_dec, idx, a_idx = ctx.saved_tensors
        cols, g = torch.cat([idx, a_idx], 1), torch.cat([g_vals, g_aux], 1)
        g_W_enc_t = _rows_by_latent(cols, g, len(W_enc_t)) @ (xs - b_dec)  # [d_sae, d_in], W_enc_t's layout
        g_b_enc = torch.zeros_like(W_enc_t[:, 0]).index_add_(0, cols.reshape(-1), g.reshape(-1))
        return None, g_W_enc_t, g_b_enc, -(g_b_enc @ W_enc_t), None, None, None, None


def _topk_step(
    sae: TopKSAE,
    W_enc_t: torch.Tensor,
    xs: torch.Tensor,
    dead: torch.Tensor,
    aux_k: int,
    aux_coef: float,
    out: torch.Tensor,
):
    dead_idx = dead.nonzero().squeeze(1) if aux_coef > 0 else dead.new_zeros(0, dtype=torch.long)
    raw, idx, a_raw, a_idx = _TopKEncode.apply(
        xs, W_enc_t, sae.b_enc, sae.b_dec, sae.cfg.k, dead_idx, aux_k, out[: len(xs)]
    )
    vals = torch.relu(raw)
    xhat = sparse_decode(sae.W_dec, vals, idx) + sae.b_dec  # scale is 1 while training
    err = xs - xhat
    mse = err.pow(2).sum(-1).mean()
    aux = torch.zeros((), device=xs.device)
    if a_idx.shape[1]:
        # AuxK: the dead latents' top pre-activations try to reconstruct the residual error
        e_hat = sparse_decode(sae.W_dec, torch.relu(a_raw), a_idx)
        aux = (e_hat - err.detach()).pow(2).sum(-1).mean()
    return mse + aux_coef * aux, mse, aux_coef * aux, (idx, vals)


class DivergedError(ValueError):
    """Training met a NaN or inf loss or weights: the run is refused (and :func:`train_or_load` caches
    nothing). A ``ValueError``, so callers catching bad input catch it too."""


def _diverged(cfg: SAEConfig, step: int, seen: str, mse: float, sparsity: float) -> DivergedError:
    """The one-line refusal of a run that ``seen`` (its loss was NaN or inf, ...) at ``step``, naming the knob
    that most likely did it. With Adam each update moves a weight by about ``lr`` whatever the gradient's
    size, so a finite loss coefficient cannot blow the weights up: it can only overflow the loss itself
    or its gradient (an inf gradient norm makes the clipped step 0 or NaN). Otherwise the weights grew
    without bound: the learning rate."""
    l1 = cfg.architecture == "l1"
    coef = (
        f"the L1 coefficient λ = {cfg.l1_coefficient:g}"
        if l1
        else f"aux_coefficient = {cfg.aux_coefficient:g}"
    )
    where = f"{cfg.name()} diverged: {seen} at step {step + 1} of {cfg.steps}"
    # Adam has moved each weight by about lr per step at most: under 1 in all, the weights are still of
    # their initial size, so the loss's coefficient overflowed (as it does when only its own term is inf)
    if cfg.lr * (step + 1) <= 1 or (math.isfinite(mse) and not math.isfinite(sparsity)):
        fix = f"{coef} overflows the loss or its gradient; lower it"
    else:
        default = FULL.l1.lr if l1 else FULL.topk.lr
        fix = f"the learning rate lr = {cfg.lr:g} is too high; lower it (notebook 03 uses {default:g})"
    return DivergedError(f"{where}: {fix}. Nothing was saved")


@torch.no_grad()
def _fvu_scaled(sae: BaseSAE, W_enc: torch.Tensor, xs: torch.Tensor) -> float:
    """FVU of scaled inputs ``xs`` mid-training (``W_enc`` may be the trained copy, not ``sae.W_enc``)."""
    pre = xs @ W_enc + sae.b_enc
    if sae.apply_b_dec_to_input:
        pre = pre - sae.b_dec @ W_enc
    xhat = sae.activate(pre) @ sae.W_dec + sae.b_dec
    return float((xs - xhat).pow(2).sum() / (xs - xs.mean(0)).pow(2).sum())


def _adam(params, lr: float) -> torch.optim.Adam:
    """Adam with PyTorch's fused kernel where it exists (CPU and CUDA in torch >= 2.4): ~10x faster
    than the per-tensor update on CPU, which otherwise costs as much as a third of a TopK step."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), foreach=True)


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
) -> tuple[BaseSAE, TrainLog]:
    """Train an SAE on ``acts`` [n_tokens, d_in] (float32) and return it (scale folded) + its log.
    With ``eval_acts`` (held-out rows), FVU on them and on as many training rows is logged at
    ``eval_points`` evenly spaced steps (their time is not counted in ``log.seconds``)."""
    cfg.validate()
    validate_acts(acts, cfg.d_in)
    torch.manual_seed(cfg.seed)
    x_all = torch.as_tensor(acts, dtype=torch.float32).to(device)
    c = input_scale(x_all)
    sae = make_sae(cfg).to(device)
    is_topk = isinstance(sae, TopKSAE)
    if cfg.b_dec_init == "mean":
        # start the decoder bias at the data's centre (OpenAI use its geometric median): with a
        # few hundred steps Adam cannot move it to the large mean of the outlier dimensions
        with torch.no_grad():
            sae.b_dec.copy_((x_all * c).mean(0))
    params = list(sae.parameters())
    if is_topk:
        # train a contiguous copy of W_encᵀ [d_sae, d_in] (copied back after the loop): the sparse encoder
        # gradient comes out in that layout, and Adam's fused kernel wants parameter and gradient contiguous
        W_enc_t = nn.Parameter(sae.W_enc.detach().T.contiguous())
        params = [W_enc_t, sae.b_enc, sae.W_dec, sae.b_dec]
    opt = _adam(params, cfg.lr)
    n, B = len(x_all), min(cfg.batch_size, len(x_all))
    pre_buf = torch.empty(B, cfg.d_sae, device=device) if is_topk else None
    steps = cfg.steps
    warm, decay = max(1, int(cfg.warmup_frac * steps)), max(1, int(cfg.decay_frac * steps))
    gen = torch.Generator().manual_seed(cfg.seed)
    since_fired = torch.zeros(cfg.d_sae, dtype=torch.long, device=device)
    log = TrainLog()
    perm, cursor = torch.randperm(n, generator=gen), 0
    checks = (
        set(np.linspace(0, steps - 1, eval_points).round().astype(int).tolist())
        if eval_acts is not None
        else set()
    )
    if checks:
        m = min(len(eval_acts), 4096)
        x_ev = torch.as_tensor(eval_acts[:m], dtype=torch.float32).to(device) * c
        x_tr = (
            x_all[torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 1))[:m].to(device)] * c
        )
    eval_seconds = 0.0
    t0 = time.perf_counter()
    for step in progress_bar(range(steps), desc=desc or cfg.name(), disable=not progress, mininterval=1.0):
        if cursor + B > n:
            perm, cursor = torch.randperm(n, generator=gen), 0
        xs = x_all[perm[cursor : cursor + B].to(device)] * c
        cursor += B
        for group in opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, (steps - step) / decay)
        if is_topk:  # AuxK needs to know which latents have been silent for dead_tokens tokens
            dead = since_fired >= cfg.dead_tokens
            loss, mse, sparsity, (idx, vals) = _topk_step(
                sae, W_enc_t, xs, dead, cfg.aux_k, cfg.aux_coefficient, pre_buf
            )
            fired = torch.zeros(cfg.d_sae, dtype=torch.bool, device=device)
            fired[idx[vals > 0]] = True
            since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + B)
        else:
            lam = cfg.l1_coefficient * min(1.0, (step + 1) / warm)
            loss, mse, sparsity, f = _l1_step(sae, xs, lam)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        if is_topk:
            with torch.no_grad():
                sae.W_dec.div_(sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))
        if step in checks:
            t_ev = time.perf_counter()
            W = W_enc_t.T if is_topk else sae.W_enc
            log.eval_tokens.append((step + 1) * B)
            log.eval_fvu.append(_fvu_scaled(sae, W, x_ev))
            log.train_fvu.append(_fvu_scaled(sae, W, x_tr))
            eval_seconds += time.perf_counter() - t_ev
        if step % log_every == 0 or step == steps - 1:
            d = cfg.d_in  # log per-dimension values, comparable across scales
            loss_now, mse_now, sparsity_now = (float(t.detach()) for t in (loss, mse, sparsity))
            if not math.isfinite(loss_now):  # NaN weights stay NaN: checking at the logged steps finds it
                raise _diverged(cfg, step, f"its loss was {loss_now}", mse_now, sparsity_now)
            # read at the logged steps only (no per-step cost): a gradient norm that overflows at every step
            # (λ = 1e38) zeroes every clipped step, a silent run that learns nothing
            if not math.isfinite(float(grad_norm)):
                raise _diverged(cfg, step, "its gradient norm overflowed", mse_now, sparsity_now)
            log.step.append(step)
            log.tokens.append((step + 1) * B)
            log.loss.append(loss_now / d)
            log.mse.append(mse_now / d)
            active = vals > 0 if is_topk else f > 0
            log.sparsity.append(sparsity_now / d)
            log.l0.append(float(active.sum(-1).float().mean()))
    log.seconds = time.perf_counter() - t0 - eval_seconds
    if is_topk:
        with torch.no_grad():
            sae.W_enc.copy_(W_enc_t.T)
    if not all(bool(torch.isfinite(p).all()) for p in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec)):
        raise _diverged(cfg, steps - 1, "its weights hold NaN or inf", math.nan, math.nan)
    sae.scale.fill_(c)
    sae.fold_scale()
    return sae.eval(), log


def train_flops_per_token(cfg: SAEConfig) -> float:
    """Matrix-multiply FLOPs one training token costs, counted as the loop does them.

    l1: encoder forward, decoder forward, decoder backward (input and weight gradients) and
    encoder weight gradient: five dense [d_in x d_sae] products, 2 FLOPs per multiply-add.
    topk: only the encoder forward is dense (one product); its backward touches the k selected
    pre-activations per token (weight gradient 2 k d_in) and decoding reads only k rows (forward
    and both gradients: 3 x 2 k d_in). AuxK is left out: it runs only while latents are dead and
    then on min(aux_k, dead) of them, so the count is a lower bound while any are dead."""
    dd = 2 * cfg.d_in * cfg.d_sae
    if cfg.architecture == "l1":
        return 5.0 * dd
    return dd + 4 * 2 * cfg.k * cfg.d_in


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
) -> tuple[BaseSAE, TrainLog, bool]:
    """Train, or reuse the SAE saved in ``folder/<name>-<hash>/`` by an earlier run with the same
    config and data (``data_key``). Returns ``(sae, log, reused)``. Weights, config and log are
    committed together by the SAE's marker, so an interrupted run is retrained, never half-reused.
    A run that diverges (NaN or inf) is refused by :func:`train_sae` in one line and nothing is saved; a
    saved run that no longer loads (one cached with NaN weights by older code, say) is trained again."""
    cfg.validate()
    key = params_key({"cfg": asdict(cfg), "data": data_key, "trainer": TRAINER_VERSION})
    run_dir = Path(folder) / f"{cfg.name()}-{key[:8]}"
    if verify(run_dir / MARKER) is not None and (run_dir / "log.json").is_file():
        try:
            sae, _ = load_sae(run_dir)
            saved = load_json(run_dir / "log.json")
            log = TrainLog(**{k: v for k, v in saved.items() if k in TrainLog.__dataclass_fields__})
            return sae.to(device), log, True
        except ValueError:  # re-running the notebook could never mend it: train it again, below
            pass
    sae, log = train_sae(cfg, acts, progress=progress, desc=desc, device=device, eval_acts=eval_acts)
    log_json = {**{k: v.tolist() for k, v in log.as_arrays().items()}, "seconds": log.seconds}
    save_sae(
        sae, run_dir, {"workbook": {**asdict(cfg), "data_key": data_key}}, extra_files={"log.json": log_json}
    )
    return sae, log, False

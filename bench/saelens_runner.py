"""Train SAELens' own SAEs (standard / TopK / BatchTopK) with its own ``SAETrainer`` on an activation matrix.

API: ``saelens_available() -> str | None`` and ``train_saelens(variant, acts, ...) -> SAELensRun``, a frozen
dataclass with ``encode(x) -> latents`` and ``reconstruct(x) -> x_hat`` (both take raw activations [n, d_in]
and
work in raw units), ``seconds`` (wall time of ``SAETrainer.fit`` only), ``steps``, ``tokens``, ``variant`` and
``version``. sae_lens is imported lazily, so this module imports where SAELens is absent.

Set as ours (``helpers.sae.model`` / ``helpers.sae.train``): d_in, d_sae, batch size, step count
(``total_training_samples
= steps x batch``), the very same batches (one seeded permutation per epoch, drawn as our loop draws them),
lr, Adam
betas (0.9, 0.999), gradient clipping at norm 1, no lr warm-up and a linear lr decay to 0 over the last 20%
of steps
(identical per-step lr), input scaling by c = sqrt(d_in) / E||x|| computed on all of ``acts`` (SAELens'
``normalize_activations="expected_average_only_in"``, c preset so the trainer's own norm-estimation pass is
skipped
and the trainer folds c into the weights at the end), b_dec initialised at the (scaled) data mean (SAELens:
zeros),
MSE = sum over d_in, mean over tokens, CPU float32, torch seeded.
* standard: ReLU(x W_enc + b_enc) without subtracting b_dec from the input (``apply_b_dec_to_input=False``),
L1 of
  f_i ||W_dec,i|| (SAELens weights by decoder norm, as ours) times ``l1_coefficient``, linearly warmed up
  over the
  first 5% of steps (SAELens' schedule lags ours by one step), decoder rows initialised at norm 0.1, W_enc =
  W_decᵀ.
* topk / batchtopk: (x - b_dec) W_enc + b_enc, k active latents per token (batchtopk: k x batch per batch, a
  learned threshold at inference), unit-norm decoder rows at init with W_enc = W_decᵀ, AuxK coefficient as
  ours (1/8), a latent
  counts as dead after ``dead_tokens`` training tokens without firing (as ours). BatchTopK's inference
  threshold is
  an EMA (rate ``topk_threshold_lr``, SAELens' 0.01) of each batch's smallest kept activation, starting at 0:
  after a
  few hundred steps it is still too low, so the inference L0 is far above k (ours has no BatchTopK).
Differs (SAELens' own choices, kept): Kaiming-uniform directions instead of Gaussian ones; TopK keeps the
decoder
unnormalised and multiplies pre-activations by ||W_dec,i|| (``rescale_acts_by_decoder_norm``) instead of
renormalising
W_dec after each step; AuxK uses k_aux = d_in / 2 scaled by min(1, n_dead / k_aux) (ours: 256, unscaled);
dense
[batch, d_sae] latents and decode (ours: sparse gather for TopK); Adam's default per-tensor update (ours:
fused);
per-step dead/firing bookkeeping. No wandb, checkpoints or evaluation. After training the SAE goes through
``save_inference_model`` / ``SAE.load_from_disk`` (a temporary folder), so encode / reconstruct use the
inference SAE
a SAELens user gets (BatchTopK becomes a JumpReLU SAE).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from unittest import mock

import numpy as np
import torch

VARIANTS = ("standard", "topk", "batchtopk")


@dataclass(frozen=True)
class SAELensRun:
    encode: Callable[[torch.Tensor], torch.Tensor]  # raw activations [n, d_in] -> latents [n, d_sae]
    reconstruct: Callable[
        [torch.Tensor], torch.Tensor
    ]  # raw activations [n, d_in] -> x_hat [n, d_in], raw units
    seconds: float  # wall time of SAETrainer.fit (the training loop) only
    steps: int
    tokens: int
    variant: str
    version: str


def saelens_available() -> str | None:
    """SAELens' version if importable, else None (never raises)."""
    try:
        import sae_lens

        return str(sae_lens.__version__)
    except Exception:
        return None


def _batches(x: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless batches of raw rows, drawn exactly as ``helpers.sae.train.train_sae`` draws them."""
    gen = torch.Generator().manual_seed(seed)
    perm, cursor = torch.randperm(len(x), generator=gen), 0
    while True:
        if cursor + batch_size > len(x):
            perm, cursor = torch.randperm(len(x), generator=gen), 0
        yield x[perm[cursor : cursor + batch_size]]
        cursor += batch_size


def train_saelens(
    variant: str,
    acts: np.ndarray,
    *,
    d_sae: int,
    batch_size: int,
    steps: int,
    lr: float,
    k: int = 32,
    l1_coefficient: float = 5.0,
    seed: int = 0,
    aux_coefficient: float = 1 / 8,
    dead_tokens: int = 8192,
    b_dec_mean: bool = True,
    topk_threshold_lr: float = 0.01,
) -> SAELensRun:
    """Train SAELens' ``variant`` SAE on ``acts`` [n_tokens, d_in] for exactly ``steps`` steps of
    ``batch_size``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown SAELens variant {variant!r}; use one of {', '.join(VARIANTS)}")
    import sae_lens
    from sae_lens import SAE, SAETrainer
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
    from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training import sae_trainer

    x = torch.as_tensor(np.ascontiguousarray(acts), dtype=torch.float32)
    n, d_in = x.shape
    batch_size = min(batch_size, n)
    scale = math.sqrt(d_in) / float(x.norm(dim=1).mean())
    common = {
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": "float32",
        "device": "cpu",
        "normalize_activations": "expected_average_only_in",
    }
    topk = {
        "aux_loss_coefficient": aux_coefficient,
        "decoder_init_norm": 1.0,
        "rescale_acts_by_decoder_norm": True,
    }
    torch.manual_seed(seed)
    if variant == "standard":
        sae = StandardTrainingSAE(
            StandardTrainingSAEConfig(
                **common,
                apply_b_dec_to_input=False,
                l1_coefficient=l1_coefficient,
                l1_warm_up_steps=int(0.05 * steps),
                decoder_init_norm=0.1,
            )
        )
    elif variant == "topk":
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(**common, k=k, **topk))
    else:
        sae = BatchTopKTrainingSAE(
            BatchTopKTrainingSAEConfig(**common, k=float(k), topk_threshold_lr=topk_threshold_lr, **topk)
        )
    if b_dec_mean:
        with torch.no_grad():
            sae.b_dec.copy_(x.mean(0) * scale)
    cfg = SAETrainerConfig(
        total_training_samples=steps * batch_size,
        train_batch_size_samples=batch_size,
        lr=lr,
        lr_end=lr,
        lr_scheduler_name="constant",
        lr_warm_up_steps=0,
        lr_decay_steps=max(1, int(0.2 * steps)),
        adam_beta1=0.9,
        adam_beta2=0.999,
        device="cpu",
        autocast=False,
        dead_feature_window=max(0, math.ceil(dead_tokens / batch_size) - 1),
        feature_sampling_window=steps + 1,  # never build the (wandb) sparsity histograms
        n_checkpoints=0,
        checkpoint_path=None,
        save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=_batches(x, batch_size, seed))
    trainer.activation_scaler.scaling_factor = scale  # our exact c; fit() then skips its estimation pass
    with mock.patch.object(sae_trainer, "tqdm", partial(sae_trainer.tqdm, disable=True)):
        t0 = time.perf_counter()
        trained = trainer.fit()
        seconds = time.perf_counter() - t0
    if trainer.n_training_steps != steps:
        raise RuntimeError(f"SAETrainer ran {trainer.n_training_steps} steps instead of {steps}")
    with tempfile.TemporaryDirectory() as tmp:
        trained.save_inference_model(tmp)
        inference = SAE.load_from_disk(tmp, device="cpu").eval().requires_grad_(False)

    @torch.no_grad()
    def encode(xs: torch.Tensor) -> torch.Tensor:
        return inference.encode(xs.to(torch.float32))

    @torch.no_grad()
    def reconstruct(xs: torch.Tensor) -> torch.Tensor:
        return inference.decode(inference.encode(xs.to(torch.float32)))

    return SAELensRun(
        encode=encode,
        reconstruct=reconstruct,
        seconds=seconds,
        steps=steps,
        tokens=steps * batch_size,
        variant=variant,
        version=str(sae_lens.__version__),
    )

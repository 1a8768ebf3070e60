"""Profiles, paths and every default: the one home of the workbook's settings.

One environment variable, ``WORKBOOK_PROFILE``, picks the profile: ``full`` (the default: what
students run and what is committed) or ``ci`` (smaller sizes for nbval). Every path is resolved
from the repository root, never from the working directory, so a notebook finds its files
whether it is run from ``notebooks/``, from the root or by nbval.

The ``ci`` profile writes everything it produces under ``.ci_out/`` (git-ignored), so running
the tests never overwrites the committed full-profile results in ``data/`` and ``figures/``.

The profile produces the generation config (notebook 02, ``ensure_store``) and the SAE configs
(notebook 03, the bench, the tests): notebooks' parameter cells read their defaults from it, so no
default is written twice.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from helpers.validate import as_count, as_finite, is_whole

ROOT: Path = Path(__file__).resolve().parents[1]
PROFILE_ENV = "WORKBOOK_PROFILE"
OUTPUT_ENV = "WORKBOOK_OUTPUT"  # where data/ and figures/ go instead of the profile's default
PROFILES = ("full", "ci")


def _whole_fields_as_int(cfg: object, names: tuple[str, ...]) -> None:
    """Store whole numbers given as 8.0 or ``np.int64(8)`` in the frozen dataclass ``cfg`` as plain ints
    (what sizes, torch and a run's key expect), by :func:`helpers.validate.is_whole`'s rule; anything else
    is left as it is, for ``validate`` to refuse in one line through :func:`helpers.validate.as_count`."""
    for name in names:
        v = getattr(cfg, name)
        if is_whole(v) and type(v) is not int:
            object.__setattr__(cfg, name, int(v))


@dataclass(frozen=True)
class GenerationConfig:
    samples_per_prompt: int = 4
    max_new_tokens: int = 64
    min_new_tokens: int = 32  # end-of-text is not allowed before this many tokens
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    seed: int = 0
    chat_template: bool = False
    prompts_per_batch: int = 50

    _WHOLE = ("samples_per_prompt", "max_new_tokens", "min_new_tokens", "top_k", "seed", "prompts_per_batch")

    def __post_init__(self) -> None:
        _whole_fields_as_int(self, self._WHOLE)

    def validate(self) -> None:
        """One ``ValueError`` line for the first bad field (:mod:`helpers.validate`'s guards)."""
        for name in ("samples_per_prompt", "max_new_tokens", "prompts_per_batch", "top_k"):
            as_count(getattr(self, name), name)
        as_count(self.min_new_tokens, "min_new_tokens", 0, self.max_new_tokens)
        as_count(self.seed, "seed", 0)
        as_finite(self.temperature, "temperature", 0)
        as_finite(self.top_p, "top_p", 0, 1, open_lo=True)

    def key(self) -> dict:
        return asdict(self)


ARCHITECTURES = ("l1", "topk", "batchtopk", "jumprelu", "matryoshka")
# architectures that keep k latents per token (TopK) or k x batch_size per batch (BatchTopK, Matryoshka)
K_ARCHITECTURES = ("topk", "batchtopk", "matryoshka")
# fields only some architectures read, added after runs of the others were saved: a run's key (SAEConfig.key)
# leaves them out for the other architectures, so adding them did not change the key of any L1 or TopK run
ARCH_ONLY_FIELDS = {
    "jumprelu_bandwidth": ("jumprelu",),
    "jumprelu_l0_coefficient": ("jumprelu",),
    "jumprelu_init_threshold": ("jumprelu",),
    "matryoshka_prefixes": ("matryoshka",),
}


@dataclass(frozen=True)
class SAEConfig:
    architecture: str = "topk"
    d_in: int = 576
    expansion: int = 8  # d_sae = expansion x d_in
    k: int = 32  # topk: active latents per token
    l1_coefficient: float = 5.0  # l1: λ
    aux_k: int = 256  # topk: latents the AuxK loss may use
    # topk: weight of the AuxK loss. OpenAI use 1/32 over millions of tokens; on our ~25k training tokens
    # (150 steps) 1/8 left 0.3-0.4% of latents dead against 0.9-1.0% with 1/32, at the same held-out FVU 0.275
    aux_coefficient: float = 1 / 8
    # topk: a latent silent for this many training tokens counts as dead and joins AuxK. OpenAI use 10M
    # tokens;
    # with ~25k training tokens, 2,048 (two batches) cut dead latents from 2.3% to 1.0% vs 8,192, same FVU
    dead_tokens: int = 2048
    lr: float = 3e-3
    batch_size: int = 1024
    steps: int = 500  # optimiser steps of batch_size tokens (sized to the corpus, not counted in epochs)
    warmup_frac: float = 0.05  # l1: λ rises linearly over the first 5% of steps
    decay_frac: float = 0.2  # learning rate falls linearly to 0 over the last 20%
    grad_clip: float = 1.0
    b_dec_init: str = "mean"  # "mean" of the training data, or "zeros"
    seed: int = 0
    # jumprelu: width ε of the rectangle kernel of the straight-through gradients and every threshold's start,
    # both in units of σ, the first training batch's pre-activation standard deviation; the L0 penalty's λ_0
    # (on 2,048 toy tokens of 48 features in 16 dimensions, 300 steps: λ_0 0.001 / 0.01 / 0.1 / 1 gave L0
    # 5.4 / 5.0 / 2.2 / 1.1 at FVU 0.18 / 0.19 / 0.35 / 0.50; notebooks search λ_0 for a target L0, as for L1)
    jumprelu_bandwidth: float = 0.1
    jumprelu_l0_coefficient: float = 0.1
    jumprelu_init_threshold: float = 1.0
    # matryoshka: nested prefixes' sizes as fractions of d_sae (increasing, the last 1: the whole dictionary)
    matryoshka_prefixes: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)

    @property
    def d_sae(self) -> int:
        return self.expansion * self.d_in

    # whole-number fields and their lower bounds (aux_k 0: no AuxK loss)
    _WHOLE = (("d_in", 1), ("expansion", 1), ("k", 1), ("aux_k", 0), ("dead_tokens", 1), ("batch_size", 1))
    _WHOLE += (("steps", 1), ("seed", 0))

    def __post_init__(self) -> None:
        _whole_fields_as_int(self, tuple(name for name, _ in self._WHOLE))
        if isinstance(self.matryoshka_prefixes, list):  # as a cfg.json gives it back
            object.__setattr__(self, "matryoshka_prefixes", tuple(self.matryoshka_prefixes))

    def prefix_sizes(self) -> tuple[int, ...]:
        """Matryoshka's nested prefix sizes in latents (``matryoshka_prefixes`` x d_sae, rounded)."""
        return tuple(round(f * self.d_sae) for f in self.matryoshka_prefixes)

    def key(self) -> dict:
        """The fields that identify a run (what :func:`helpers.sae.train.train_or_load` hashes): every field
        but those only other architectures read (``ARCH_ONLY_FIELDS``)."""
        return {
            k: v
            for k, v in asdict(self).items()
            if self.architecture in ARCH_ONLY_FIELDS.get(k, (self.architecture,))
        }

    def validate(self) -> None:
        """One ``ValueError`` line for the first bad field, through :mod:`helpers.validate`'s guards: whole
        numbers (``k = '32'``, ``2.5`` or None), finite numbers (``lr`` inf, ``grad_clip`` NaN, λ ``'5'``)."""
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture {self.architecture!r} is not one of {', '.join(ARCHITECTURES)}")
        for name, lo in self._WHOLE:
            as_count(getattr(self, name), name, lo)
        if self.architecture in K_ARCHITECTURES and not self.k <= self.d_sae:
            raise ValueError(f"k = {self.k} must lie in 1..d_sae = {self.d_sae}; lower k or widen the SAE")
        as_finite(self.l1_coefficient, "the L1 coefficient λ (l1_coefficient)", 0)
        as_finite(self.aux_coefficient, "aux_coefficient", 0)
        as_finite(self.lr, "lr", 0, open_lo=True)
        as_finite(self.grad_clip, "grad_clip", 0, open_lo=True)
        as_finite(self.warmup_frac, "warmup_frac", 0, 1)
        as_finite(self.decay_frac, "decay_frac", 0, 1)
        if self.b_dec_init not in ("mean", "zeros"):
            raise ValueError(f"b_dec_init must be 'mean' or 'zeros', got {self.b_dec_init!r}")
        as_finite(self.jumprelu_bandwidth, "jumprelu_bandwidth", 0, open_lo=True)
        as_finite(self.jumprelu_l0_coefficient, "jumprelu_l0_coefficient", 0)
        as_finite(self.jumprelu_init_threshold, "jumprelu_init_threshold", 0, open_lo=True)
        fracs = self.matryoshka_prefixes
        if not isinstance(fracs, tuple) or not fracs:
            raise ValueError(
                f"matryoshka_prefixes = {fracs!r} must be a non-empty tuple of fractions of d_sae"
            )
        for f in fracs:
            as_finite(f, "each of matryoshka_prefixes", 0, 1, open_lo=True)
        sizes = self.prefix_sizes()
        bad = fracs[-1] != 1 or min(sizes) < 1 or any(a >= b for a, b in zip(sizes, sizes[1:], strict=False))
        # the sizes matter to a matryoshka SAE only (a tiny TopK may have d_sae 4)
        if bad and self.architecture == "matryoshka":
            raise ValueError(
                f"matryoshka_prefixes = {fracs} give prefixes of {sizes} latents: they must grow strictly "
                f"from at least 1 latent and end at 1.0 (the whole d_sae = {self.d_sae})"
            )

    def name(self) -> str:
        if self.architecture in K_ARCHITECTURES:
            knob = f"k{self.k}"
        elif self.architecture == "jumprelu":
            knob = f"l0_{self.jumprelu_l0_coefficient:g}"
        else:
            knob = f"l1_{self.l1_coefficient:g}"
        return f"{self.architecture}-{knob}-x{self.expansion}"


@dataclass(frozen=True)
class Profile:
    """Sizes for one profile. Notebooks take their parameter defaults from here."""

    name: str
    # 01 layer scan
    scan_prompts_per_theme: int
    # 02 data generation
    gen_prompts_per_theme: int
    generation: GenerationConfig
    # 03 SAE training: the main TopK and L1 runs (d_in is set from the store), the sweep's steps,
    # the held-out share of each theme's prompts, texts for the CE evaluation, the bad-run budget
    topk: SAEConfig
    l1: SAEConfig
    # the SAE's training corpus: the committed text of `make corpus` (generated with CORPUS_GENERATION from
    # data/corpus_prompts.csv); a profile captures its first corpus_docs documents (None: all), and holds
    # out corpus_eval_frac of each domain's prompts (split_by_prompt groups by the theme column: 14 domains)
    corpus_docs: int | None = None
    corpus_eval_frac: float = 0.05
    corpus_slice: int = 50  # notebook 02 generates the corpus's first batch (50 prompts) live
    sweep_k: tuple[int, ...] = (16, 64)
    # L1 runs at the λ a search finds for each target L0 (helpers.sae.search; notebook 03, §7), so that L1 and
    # TopK are compared at matched sparsity; each search trains at most l1_search_tries runs
    l1_targets: tuple[int, ...] = (32,)
    l1_search_tries: int = 2
    # §7's runs: sweep_steps steps on compare_share of the training documents (150 x 1,024 tokens on a quarter
    # of the 282k rows: 2.2 passes, so both recipes see every row), each recipe's learning rate chosen from
    # its grid by held-out FVU, then compare_seeds training seeds at the chosen rate
    sweep_steps: int = 150
    compare_share: float = 0.25
    compare_lrs_topk: tuple[float, ...] = (1e-3, 3e-3, 1e-2)
    compare_lrs_l1: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    compare_seeds: tuple[int, ...] = (0, 1, 2)
    eval_frac: float = 0.2
    ce_docs: int = 80  # every held-out analysis text (>= 50, for the bootstrap intervals)
    # the bad runs (helpers.sae.bad_runs) train on the first bad_run_tokens rows: 12 steps (1.5 passes) at
    # x8 and, at equal compute, 96 at width 1x (held-out FVU 0.68, ci 0.70; with 12 steps it stayed at
    # 1.02 with 75% dead). The ci profile has ~6,000 training rows: it trains on all of them, same steps
    bad_run_tokens: int = 8192
    # 03 superposition: Adam steps per toy model (the widget's too) and TopK SAE steps on its hidden vectors
    toy_steps: int = 1000
    toy_sae_steps: int = 200
    # 04 neurons vs features: held-out firings a unit needs to be shown; bootstrap resamples of the units
    units_min_eval_fires: int = 20
    units_boot: int = 1000
    # 04 feature splitting: narrower SAEs (x d_model) trained with the main TopK recipe beside an x8 one,
    # every width for split_share x the main run's steps (full: 1,000 of 2,000); the narrowest width from
    # split_small_seeds training seeds and the widest from split_wide_seeds, so the re-find rates have
    # seeds behind them. The x8 run of seed `seed` at that budget is one of notebook 03's §6 steps-curve
    # runs (branched off its kept run, keyed alike): only the other seeds train in 04. At 2,000 steps the
    # five runs took 325 s on a 2-core EPYC (185 s of it the second x8 seed). At 500 steps they took 77 s,
    # but their features were far from stable: another x1 seed found 11% of x1's features again, against
    # 25% at 1,000 and 37% at 2,000 steps (another x8 seed: 12%, 28% and 46% of x8's)
    split_widths: tuple[int, ...] = (1, 2)
    split_small_seeds: int = 3
    split_wide_seeds: int = 2
    split_share: float = 0.5
    # 06 steering: new tokens per steered text
    steer_new_tokens: int = 20
    # neutral prompts per measured point, each continued once per sampling seed (5 features x 2 methods x
    # 3 strengths x 12 prompts x 3 seeds = 1,080 steered texts, plus 36 unsteered)
    steer_prompts: int = 12
    steer_seeds: int = 3
    # 06 attribution: held-out texts attributed, top and random active features ablated per text, resamples
    attr_prompts: int = 20
    attr_features: int = 10
    attr_random: int = 10
    attr_boot: int = 2000
    # 07 evaluating SAEs. §1 synthetic activations with known features: tokens, training steps, the K
    # architectures' k values (L1 and JumpReLU at synth_coefficients), training seeds at the middle k
    synth_tokens: int = 32768
    synth_steps: int = 500
    synth_k: tuple[int, ...] = (3, 5, 8)
    synth_seeds: tuple[int, ...] = (0, 1, 2)
    # §1 trains its runs side by side, one thread each, with parallel_runs (helpers.sae.parallel: the same
    # numbers either way; off in ci, where starting the workers would cost more than the tiny runs)
    parallel_runs: bool = True
    # §2 the architectures on notebook 03's §7 rows at width arch_expansion x d_model, L0 matched to k,
    # sweep_steps steps, arch_seeds seeds; ΔCE on arch_ce_texts held-out texts (one per prompt); JumpReLU's
    # λ_0 searched with up to arch_l0_tries runs
    arch_expansion: int = 2
    arch_seeds: tuple[int, ...] = (0, 1, 2)
    arch_ce_texts: int = 20
    arch_l0_tries: int = 2
    # §3 controls: the TopK recipe on the analysis set's training rows of the real and of a randomly
    # initialised model, control_steps steps each; §4 sparse probing; §5 intruder questions (features drawn
    # among those firing >= intruder_min_fires times)
    control_steps: int = 150
    intruder_features: int = 100
    intruder_min_fires: int = 20
    seed: int = 0


# what `make corpus` generates (one sample per seed prompt: a new prompt buys more variety than a new sample)
CORPUS_GENERATION = GenerationConfig(samples_per_prompt=1, max_new_tokens=112, min_new_tokens=96, seed=1)

# notebook 03's runs: TopK (OpenAI 2024) at lr 3e-3, L1 (Anthropic April 2024) at lr 1e-3, batches of 1,024
# the kept TopK run trains 2,000 steps (2.05M tokens, 7.3 passes over the 282k rows),
# chosen from notebook 03's steps curve (§6) within the full profile's time budget
_TOPK = SAEConfig(steps=2000)  # otherwise the dataclass defaults are the TopK run's
_L1 = SAEConfig(architecture="l1", lr=1e-3, steps=150)  # L1 runs train for the comparison budget

FULL = Profile(
    name="full",
    scan_prompts_per_theme=20,
    gen_prompts_per_theme=20,
    generation=GenerationConfig(samples_per_prompt=4, max_new_tokens=64, min_new_tokens=32),
    topk=_TOPK,
    l1=_L1,
)
CI = Profile(
    name="ci",
    scan_prompts_per_theme=6,
    gen_prompts_per_theme=4,
    generation=GenerationConfig(samples_per_prompt=1, max_new_tokens=24, min_new_tokens=12),
    corpus_docs=48,
    corpus_slice=2,
    topk=replace(_TOPK, steps=40),
    l1=replace(_L1, steps=20),
    sweep_steps=12,
    compare_share=1.0,
    compare_seeds=(0, 1),
    ce_docs=4,
    steer_new_tokens=8,
    toy_steps=100,
    units_min_eval_fires=2,
    units_boot=200,
    toy_sae_steps=30,
    steer_prompts=4,
    steer_seeds=2,
    attr_prompts=3,
    attr_features=4,
    attr_random=4,
    attr_boot=200,
    synth_tokens=4096,
    synth_steps=60,
    synth_k=(3, 5),
    synth_seeds=(0, 1),
    arch_seeds=(0, 1),
    arch_ce_texts=4,
    arch_l0_tries=1,
    parallel_runs=False,
    control_steps=20,
    intruder_features=8,
    intruder_min_fires=4,
)


def profile_name() -> str:
    """The active profile's name, from ``WORKBOOK_PROFILE`` (default ``full``)."""
    name = os.environ.get(PROFILE_ENV, "full").strip().lower() or "full"
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r} is not a profile; set it to one of {', '.join(PROFILES)}")
    return name


def active_profile() -> Profile:
    """The active :class:`Profile`."""
    return {"full": FULL, "ci": CI}[profile_name()]


@dataclass(frozen=True)
class Paths:
    """Where a profile reads its committed inputs and writes what it produces."""

    root: Path
    prompts: Path  # committed input, shared by every profile: the analysis set's 100 themed prompts
    corpus_prompts: Path  # committed: the training corpus's seed prompts
    corpus: Path  # committed: the training corpus's text (make corpus), shared by every profile
    data: Path  # produced data (activations, generations, SAE)
    figures: Path
    model_cache: Path

    def show(self, path: Path) -> str:
        """``path`` for printing: relative to the repository when inside it (``WORKBOOK_OUTPUT`` may
        put outputs elsewhere: then the last two parts)."""
        path = Path(path)
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(Path(*path.parts[-2:]))

    @property
    def layer_scan(self) -> Path:
        return self.data / "layer_scan.json"

    @property
    def generations(self) -> Path:
        return self.data / "generations.csv"

    @property
    def activations(self) -> Path:
        return self.data / "activations.npz"

    @property
    def corpus_store(self) -> Path:
        return self.data / "corpus_activations.npz"

    @property
    def sae_dir(self) -> Path:
        return self.data / "sae"


def paths(profile: str | None = None) -> Paths:
    """Paths for ``profile`` (default: the active one); creates the output folders."""
    name = profile or profile_name()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; use one of {', '.join(PROFILES)}")
    out = ROOT if name == "full" else ROOT / ".ci_out"
    if os.environ.get(OUTPUT_ENV):  # a private output folder (e.g. one per graded student)
        out = Path(os.environ[OUTPUT_ENV]).expanduser().resolve()
    p = Paths(
        root=ROOT,
        prompts=ROOT / "data" / "prompts.csv",
        corpus_prompts=ROOT / "data" / "corpus_prompts.csv",
        corpus=ROOT / "data" / "corpus.csv.gz",
        data=out / "data",
        figures=out / "figures",
        model_cache=Path(os.environ.get("WORKBOOK_MODEL_CACHE", ROOT / ".cache" / "models")),
    )
    for folder in (p.data, p.figures):  # refused now, not after a notebook has run for minutes
        why = _unwritable(folder)
        if why:
            raise ValueError(
                f"the output folder {folder} {why}: the notebooks write their results there; make it "
                f"writable, or set {OUTPUT_ENV} to a writable folder"
            )
    return p


def _unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot take output (it cannot be created, or is read-only), or None; creates it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot be created ({err.strerror or type(err).__name__})"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "is read-only"
    return None


def outputs_problem(profile: str | None = None) -> str | None:
    """Why the profile's output folders (data/, figures/) cannot be written, in one line, or None: what
    ``make run`` asks before it runs any notebook."""
    try:
        paths(profile)
    except ValueError as err:
        return str(err)
    return None

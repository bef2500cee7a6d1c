"""Transformer / foundation-model rows of the run matrix: in-study Prithvi-arch, ViT, SegFormer, Prithvi-100M.

The real Prithvi-100M row runs only when the user supplies its file.

Every row is fine-tuned by the shared loop (:func:`helpers.runs.deep_run.run`, the same loss, schedule, crops, validation
selection and sliding-window inference as the CNNs) and written to the results table with its ``pretraining`` and
``weights`` columns. The rows, by name:

=====================================  ==================  ===================================================
model                                  pretraining         what it is
=====================================  ==================  ===================================================
``prithvi_arch_small_random``          none                small Prithvi-architecture model, random init, fine-tuned
``prithvi_arch_small_mae``             mae-in-study        same, MAE-pretrained on the pooled unlabelled corpus
``prithvi_arch_small_spectral``        spectral-in-study   same, spectral-pretext-pretrained on the same corpus
``prithvi_arch_small_<p>_probe``       as ``<p>``          the same encoders frozen, linear probe on the tokens
``vit``                                none                plain ViT-seg from scratch (no RS weights exist offline)
``segformer``                          none                SegFormer MiT-b0 from scratch (idem)
``prithvi_100m``                       published           the real ``Prithvi_100M.pt``, fine-tuned (user file)
=====================================  ==================  ===================================================

"prithvi-arch (small, in-study pretraining)" is *not* Prithvi-100M: it is the same architecture with 87x fewer
encoder parameters, pretrained here for minutes on simulated imagery; every row's ``note`` says so, and how long
its pretraining ran and where it stopped.
A ``_pooled`` suffix marks encoders pretrained on the pooled single-date training imagery of several tasks (the older
pooled setting, without a corpus).

Input statistics: ViT and SegFormer are trained from scratch and standardise their input with the dataset's own
training statistics (:func:`helpers.data.datasets.channel_stats`); every Prithvi-architecture row keeps Prithvi's HLS
statistics, the random-init one included, so the three in-study rows differ only in their starting weights.

Pretraining runs once per pretext on the pooled corpus when ``settings.corpus`` is set (:class:`CorpusSpec`: the
default chain), else once per (dataset or pool, pretext), with ``settings.pretrain_seed``, and is shared by every
fine-tuning seed, like a published checkpoint would be; it is cached by :mod:`helpers.runs.pretrain`. Its wall time is
stated in each row's note (``runtime_s`` covers fine-tuning and evaluation only).

Without the Prithvi-100M file the ``prithvi_100m`` row is a ``not_run`` row with the reason; it is never filled with
another model's numbers. The device is picked automatically (CUDA when available).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from helpers import results
from helpers.data import corpus, labels, simulate
from helpers.data.datasets import MissingBands, channel_stats, prepare, varies_by_replicate, with_bands
from helpers.data.io import sha256_file
from helpers.models import cnn
from helpers.models import prithvi as _prithvi
from helpers.models.segformer import SegFormer
from helpers.models.vit import ViTSegmenter
from helpers.runs import convergence, deep_run, pretexts, run_folders, runner, schedule
from helpers.runs import pretrain as PT

PREFIX = "prithvi_arch_small"
PUBLISHED = "prithvi_100m"
#: Where the published file is looked for when ``prithvi_checkpoint`` is not given: ``$FM_WEIGHTS_DIR/<this>``.
PUBLISHED_RELPATH = Path("prithvi_100m") / "Prithvi_100M.pt"


@dataclass(frozen=True)
class Variant:
    """One in-study Prithvi-architecture row: which encoder weights, and full fine-tuning or a linear probe."""

    pretraining: str  # "none" | "mae-in-study" | "spectral-in-study"
    pretext: str | None  # None (random init) | "mae" | "spectral"
    probe: bool


VARIANTS: dict[str, Variant] = {
    f"{PREFIX}_random": Variant("none", None, False),
    f"{PREFIX}_mae": Variant("mae-in-study", "mae", False),
    f"{PREFIX}_spectral": Variant("spectral-in-study", "spectral", False),
    f"{PREFIX}_random_probe": Variant("none", None, True),
    f"{PREFIX}_mae_probe": Variant("mae-in-study", "mae", True),
    f"{PREFIX}_spectral_probe": Variant("spectral-in-study", "spectral", True),
}

#: Every FM row of the default matrix, in table order.
DEFAULT_MODELS: tuple[str, ...] = (*VARIANTS, "vit", "segformer", PUBLISHED)


#: The data draw of each simulated task the pretraining probe scores on: a draw of its own (generator seed
#: ``sim_seed + 100``), so no run's training, validation or test labels ever steer a pretraining.
PROBE_REPLICATE = 100

#: The pretraining-compute curve's table, beside the results table: rows fine-tuned from checkpoints part of the way
#: through a pretraining (``<variant>_pt25``, ...). Kept apart so that no verdict picks one as a candidate.
COMPUTE_TABLE = "pretraining_compute.csv"


@dataclass(frozen=True)
class CorpusSpec:
    """The pooled unlabelled corpus the in-study rows pretrain on, and the tasks its probe scores.

    The FM-like setting: one pretraining per pretext on imagery of every task family, shared by every row of every
    dataset and data draw (like a published checkpoint). The pool is :data:`helpers.data.simulate.CORPUS_FAMILIES`
    (``per_family`` unlabelled images each, :mod:`helpers.data.corpus`) plus the training imagery of the ``real``
    datasets (a real scene contributes its own unlabelled pixels); images are pooled as single dates.

    Attributes:
        data_dir: Folder of the datasets (the corpus is written to ``data_dir/corpus/``).
        per_family: Unlabelled images per simulated family.
        size: Generator size of the corpus and the probe draws.
        seed: Corpus seed, and the base generator seed of the probe draws (``sim_seed``).
        real: Real datasets whose training imagery joins the pool.
        probe: Simulated datasets whose probe draw (:data:`PROBE_REPLICATE`) the probe scores.
        families: Simulated task families of the corpus.
    """

    data_dir: str
    per_family: int = 1024
    size: str = "default"
    seed: int = 0
    real: tuple[str, ...] = ()
    probe: tuple[str, ...] = ()
    families: tuple[str, ...] = simulate.CORPUS_FAMILIES

    def open(self) -> tuple[list, list]:
        """The pool (corpora and real training imagery) and the probe datasets, written first where missing."""
        pool = [
            corpus.prepare_corpus(self.data_dir, f, self.per_family, self.size, self.seed)
            for f in self.families
        ]
        real = [prepare(n, self.data_dir, size=self.size, seed=self.seed) for n in self.real]
        pool += [with_bands(labels.unlabelled(d)) for d in real]
        pool += [with_bands(u) for u in map(corpus.unlabelled_imagery, real) if u is not None]
        probe = [
            with_bands(prepare(n, self.data_dir, size=self.size, seed=self.seed, replicate=PROBE_REPLICATE))
            for n in self.probe
        ]
        return pool, probe


def corpus_spec(
    data_dir: str | os.PathLike,
    main: Sequence[str],
    texture_names: Sequence[str] = (),
    *,
    per_family: int = 1024,
    size: str = "default",
    seed: int = 0,
) -> CorpusSpec:
    """The corpus of a run matrix: real main datasets join the pool, simulated ones and the sweep are probed."""
    real = tuple(n for n in main if not varies_by_replicate(n))
    probe = tuple(n for n in [*main, *texture_names] if varies_by_replicate(n))
    return CorpusSpec(str(data_dir), per_family, size, seed, real, probe)


def _pretrain_defaults() -> pretexts.PretrainConfig:
    """In-study pretraining: the probe-plateau mode, sized from measured probe curves (README: in-study pretraining).

    Measured on 2026-12-04 (``benchmarks/pretraining_curves.py``: the pooled corpus, no stopping rule, batch 16 of
    64 px crops, 0.05 s a step on one core, a probe 2.5 s): the spectral pretext's smoothed probe reached its plateau
    within about 1,750 steps and stayed within a point of it to 4,750; MAE's stayed within noise of the random-init
    encoder's over 6,000 steps while its loss kept falling. A probe every 250 steps, patience 8 (2,000 steps without a
    half-point rise of the smoothed probe) and a cap of 20,000 steps, five to ten times past the measured plateau, so a
    run that reaches it says so (``stopped by cap``). AdamW 1e-3 as before, warmed up over 200 steps, then constant.
    """
    return pretexts.PretrainConfig(probe_every=250, probe_patience=8, probe_min_delta=0.005, max_steps=20_000)


def _finetune_defaults() -> dict:
    return {
        **schedule.PLATEAU,
        "batch_size": 8,
        "lr": 2e-3,
        "weight_decay": 0.05,
        "warmup_steps": 50,
        "crop_size": 64,
    }


@dataclass(frozen=True)
class FMSettings:
    """Everything that sizes the FM rows (defaults fit the study's CPU budget; :func:`quick_settings` for CI).

    Attributes:
        pretrain: In-study pretraining settings (model size, pretext budgets; pretext itself is per variant).
        pretrain_seed: Seed of the (shared) pretraining runs.
        finetune: :func:`helpers.runs.train.fit` settings of every fully fine-tuned row (same for all inits, so the
            in-study rows differ only in their starting weights): the plateau protocol of the CNN rows
            (:data:`helpers.runs.schedule.PLATEAU`, with :func:`helpers.runs.schedule.plateau_for`'s per-dataset settings).
            AdamW at 2e-3: at 5e-4 these small transformers had not left the starting plateau after a short
            budget (sim-crop val mIoU 0.07 vs 0.46 at 2e-3; benchmarks/fm.py and the issue-7 report).
        probe_lr: Learning rate of the linear probes (only a 1×1 classifier and a BatchNorm train).
        neck_dim: Width of the small model's tokens-to-map neck (the official configs use ``embed_dim * T``; a
            narrower neck keeps the full-resolution transposed convolutions affordable on CPU).
        head_channels: FCN head width of the small model (official: 256).
        vit: Extra :class:`~helpers.models.vit.ViTSegmenter` arguments.
        segformer: Extra :class:`~helpers.models.segformer.SegFormer` arguments (default: MiT-b0 encoder with a
            128-wide decoder instead of b0's 256, for the CPU budget).
        published_lr: Fine-tuning learning rate of the real Prithvi-100M (official configs: 1.3e-5 to 1.5e-5
            over ~80 epochs of 3k chips; our budget is far fewer steps, hence higher).
        published_crop_size: Crop/window size of the real Prithvi-100M (``None``: ``finetune['crop_size']``;
            224 is Prithvi's native tile and suits a GPU).
        num_threads: CPU threads for pretraining and fine-tuning (``None``: all cores this process may use).
        published_config: Architecture of the supplied checkpoint (``None``: inferred from its tensor shapes,
            which works for the published Prithvi files).
        max_epochs: Cap fine-tuning at this many passes over the training chips instead of ``finetune``'s
            ``max_steps`` (:func:`helpers.runs.schedule.settings_for`; the paper profile's ~100 epochs).
        corpus: The pooled unlabelled corpus every in-study row pretrains on (:class:`CorpusSpec`; the run matrix
            sets it, :func:`corpus_spec`); ``None``: each dataset's own training imagery, probed on its own
            validation split in the probe-plateau mode.
    """

    pretrain: pretexts.PretrainConfig = field(default_factory=_pretrain_defaults)
    pretrain_seed: int = 0
    finetune: dict = field(default_factory=_finetune_defaults)
    probe_lr: float = 5e-3
    neck_dim: int | None = 32
    head_channels: int = 32
    vit: dict = field(default_factory=dict)
    segformer: dict = field(default_factory=lambda: {"decoder_dim": 128})
    published_lr: float = 1e-4
    published_crop_size: int | None = None
    published_config: _prithvi.PrithviConfig | None = None
    num_threads: int | None = None
    max_epochs: float | None = None
    corpus: CorpusSpec | None = None

    def fit_kwargs(self, ds, **overrides) -> dict:
        """Fine-tuning settings of :func:`helpers.runs.deep_run.run` for ``ds``.

        ``finetune`` with the dataset's plateau settings and epoch cap (:func:`helpers.runs.schedule.settings_for`), then
        ``num_threads`` when set, then ``overrides``.
        """
        kw = schedule.settings_for(ds, self.finetune, self.max_epochs)
        if self.num_threads is not None:
            kw["num_threads"] = self.num_threads
        return {**kw, **overrides}


def quick_settings() -> FMSettings:
    """Quick mode (tests, CI): a tiny model, a few steps; proves the code path, not the science."""
    tiny = _prithvi.PRITHVI_SMALL.replace(
        embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2
    )
    return FMSettings(
        pretrain=pretexts.PretrainConfig(
            model=tiny,
            crop_size=32,
            batch_size=8,
            probe_every=2,
            probe_patience=1,
            max_steps=4,
            warmup_steps=1,
            probe_chips=2,
            probe_pixels=500,
        ),
        finetune={**_finetune_defaults(), "max_steps": 4, "eval_every": 2, "patience": None, "crop_size": 32},
        neck_dim=16,
        head_channels=16,
        vit={"embed_dim": 32, "depth": 2, "num_heads": 2, "head_channels": 16},
        segformer={
            "embed_dims": (16, 32, 48, 64),
            "num_heads": (1, 2, 3, 4),
            "depths": (1, 1, 1, 1),
            "decoder_dim": 32,
        },
    )


#: The paper's model sizes (``model_size: paper`` in the notebooks; :func:`paper_settings`).
PAPER_VIT = {"patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12, "head_channels": 256}
PAPER_SEGFORMER = {  # MiT-b2 (Xie et al. 2021): the paper's SegFormer size class
    "embed_dims": (64, 128, 320, 512),
    "num_heads": (1, 2, 5, 8),
    "depths": (3, 4, 6, 3),
    "sr_ratios": (8, 4, 2, 1),
    "decoder_dim": 768,
}


def paper_settings() -> FMSettings:
    """The paper's sizes, for a GPU: ViT-B/16, SegFormer MiT-b2, the in-study Prithvi-arch at Prithvi-100M's size.

    Fine-tuning keeps the plateau protocol with 224 px crops and windows (Prithvi's native tile; the official
    configs' size) and caps at 100 epochs of the training chips, the paper's order of fine-tuning length. In-study
    pretraining uses Prithvi-100M's architecture (ViT-B encoder, 8-block decoder of 512) on 224 px crops. The real
    Prithvi-100M row is unchanged (the user's file decides its size). The in-study rows keep their table names
    (``prithvi_arch_small_*``) so every figure and table works unchanged; their ``n_params`` column and note state
    the size. Learning rates are the CPU profile's and have not been measured at this size here (no GPU was
    available): a starting point, with the plateau protocol guarding the length of each run.
    """
    return FMSettings(
        pretrain=dataclasses.replace(
            _pretrain_defaults(),
            model=_prithvi.PRITHVI_100M.replace(num_frames=1),
            crop_size=224,
            batch_size=16,
        ),
        finetune={
            **_finetune_defaults(),
            "crop_size": 224,
            "batch_size": 8,
            "bf16": torch.cuda.is_available(),
        },
        neck_dim=None,  # embed_dim x frames, as the official configs
        head_channels=256,
        vit=dict(PAPER_VIT),
        segformer=dict(PAPER_SEGFORMER),
        published_crop_size=224,
        max_epochs=100,
    )


def size_label(config: _prithvi.PrithviConfig) -> str:
    """``"small"`` for the CPU-sized in-study model, ``"Prithvi-100M size"`` at ViT-B width and depth (notes)."""
    big = config.embed_dim >= _prithvi.PRITHVI_100M.embed_dim and config.depth >= _prithvi.PRITHVI_100M.depth
    return "Prithvi-100M size" if big else "small"


def settings_for_size(size: str = "cpu", quick: bool = False) -> FMSettings:
    """The FM settings of notebook 04 for a model size.

    :func:`quick_settings`, the CPU-sized :class:`FMSettings`, or :func:`paper_settings` (``size="paper"``); quick
    mode at paper size keeps the paper's models and runs 2 steps.
    """
    if size not in cnn.SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {cnn.SIZES}")
    if size == "cpu":
        return quick_settings() if quick else FMSettings()
    paper = paper_settings()
    if not quick:
        return paper
    # one validation per run: every validation writes a checkpoint, several GB at this size
    few = {"max_steps": 2, "eval_every": 2, "patience": None, "crop_size": 32, "batch_size": 2}
    return dataclasses.replace(
        paper,
        pretrain=dataclasses.replace(
            paper.pretrain,
            crop_size=32,
            batch_size=2,
            probe_every=1,
            max_steps=1,
            probe_chips=1,
            probe_pixels=100,
        ),
        finetune={**paper.finetune, **few},
        published_crop_size=32,
        max_epochs=None,
    )


def pick_device() -> torch.device:
    """CUDA when available, else CPU (set ``CUBLAS_WORKSPACE_CONFIG`` for deterministic cuBLAS first)."""
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        return torch.device("cuda")
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------- in-study Prithvi
def pretraining_inputs(
    ds, pretext: str, settings: FMSettings, pretrain_on: Sequence | None = None
) -> tuple[list, pretexts.PretrainConfig, list | None]:
    """What a variant's pretraining runs on: ``(imagery, config, probe datasets)``.

    The pooled corpus when ``settings.corpus`` is set (single dates), else ``pretrain_on`` pooled (single dates), else
    ``ds``'s own training imagery. Pretraining sees imagery only: every training chip, never a label budget's subset
    (:func:`helpers.data.labels.unlabelled`). In the probe-plateau mode without a corpus the probe scores the
    pretraining datasets' own validation splits.

    Raises:
        helpers.data.datasets.MissingBands: A dataset lacks one of the six HLS bands the Prithvi architecture takes.
    """
    if settings.corpus is not None and pretrain_on is None:
        data, probe_on = settings.corpus.open()
        # the probe draw is no run's data: its test chips join its validation chips, halving the probe's noise
        cfg = dataclasses.replace(
            settings.pretrain, pretext=pretext, single_date=True, probe_held_out=("val", "test")
        )
        return data, cfg, probe_on
    cfg = dataclasses.replace(settings.pretrain, pretext=pretext, single_date=pretrain_on is not None)
    sources = pretrain_on if pretrain_on is not None else [ds]
    data = [with_bands(labels.unlabelled(d)) for d in sources]
    probe_on = list(data) if cfg.probe_every is not None else None
    # a dataset of your own may bring unlabelled images of its own (its card's 'unlabelled' folder)
    data += [with_bands(u) for u in map(corpus.unlabelled_imagery, sources) if u is not None]
    return data, cfg, probe_on


def pretrain_for(
    ds,
    pretext: str,
    settings: FMSettings,
    *,
    cache_dir: str | os.PathLike = "cache",
    pretrain_on: Sequence | None = None,
    progress: bool = True,
) -> PT.PretrainResult:
    """The (cached) pretraining a variant starts from (:func:`pretraining_inputs` says on what)."""
    inputs = pretraining_inputs(ds, pretext, settings, pretrain_on)
    return _pretrain(inputs, settings, cache_dir=cache_dir, progress=progress)


def _pretrain(inputs: tuple, settings: FMSettings, *, cache_dir, progress: bool, check: bool = False):
    """:func:`helpers.runs.pretrain.pretrain` (or, ``check``, its continuation) on :func:`pretraining_inputs`."""
    data, cfg, probe_on = inputs
    run = PT.continuation if check else PT.pretrain
    return run(
        data,
        cfg,
        probe_on=probe_on,
        seed=settings.pretrain_seed,
        cache_dir=cache_dir,
        device=pick_device(),
        num_threads=settings.num_threads,
        progress=progress,
    )


def ensure_pretraining(
    ds,
    variant: str,
    settings: FMSettings,
    *,
    cache_dir: str | os.PathLike = "cache",
    pretrain_on: Sequence | None = None,
    pretraining_path: str | os.PathLike | None = None,
    progress: bool = True,
) -> str:
    """Run (or find in the cache) the pretraining of an in-study variant; its cache key.

    An engine job of its own (:mod:`helpers.runs.engine`): every fine-tuning seed of the variant reads this cache, so
    the fine-tunes are submitted ``after`` it instead of each waiting for, or repeating, the same pretraining.
    Returns ``""`` without pretraining when a dataset lacks an HLS band: its fine-tunes then write ``not_run`` rows
    naming the bands (:func:`run_prithvi_small`), and the batch goes on. With ``pretraining_path`` the run's row
    and probe curve go to the pretraining table (:func:`helpers.runs.pretrain.record`).
    """
    pretext = _pretext_of(variant)
    try:
        result = pretrain_for(
            ds, pretext, settings, cache_dir=cache_dir, pretrain_on=pretrain_on, progress=progress
        )
    except MissingBands:
        return ""
    if pretraining_path is not None:
        PT.record(result, pretraining_path, PT.continuation_summary(result))  # a re-record keeps its check
    return result.key


def check_pretraining(
    ds,
    variant: str,
    settings: FMSettings,
    *,
    cache_dir: str | os.PathLike = "cache",
    pretrain_on: Sequence | None = None,
    pretraining_path: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """The continuation check of a variant's (finished) probe-plateau pretraining, recorded in its table row.

    An engine job submitted after :func:`ensure_pretraining`, beside the fine-tunes (they do not wait for it):
    :func:`helpers.runs.pretrain.continuation` to twice the steps. Returns its summary (empty when a dataset lacks
    an HLS band or the settings use the epoch mode, which has no probe to check). A check the pretraining table
    already holds for the same pretraining key is not redone (a clone with the committed table and an empty cache
    would otherwise spend two pretrainings and their continuations on evidence it has).
    """
    pretext = _pretext_of(variant)
    try:
        inputs = pretraining_inputs(ds, pretext, settings, pretrain_on)
    except MissingBands:
        return {}
    if inputs[1].probe_every is None:
        return {}
    # a check on record under the same key (e.g. in the committed table) stands
    if pretraining_path is not None:
        key = PT.key_for(inputs[0], inputs[1], settings.pretrain_seed, inputs[2])
        recorded = PT.recorded_check(pretraining_path, key)
        if recorded is not None:
            return recorded
    result = _pretrain(inputs, settings, cache_dir=cache_dir, progress=progress)
    summary = _pretrain(inputs, settings, cache_dir=cache_dir, progress=progress, check=True)
    if pretraining_path is not None:
        PT.record(result, pretraining_path, summary)
    return summary


def _pretext_of(variant: str) -> str:
    pretext = VARIANTS[variant].pretext
    if pretext is None:
        raise ValueError(
            f"{variant!r} has no pretraining; choose one of {[v for v, x in VARIANTS.items() if x.pretext]}"
        )
    return pretext


def _pool_label(pre: PT.PretrainResult) -> str:
    """What a pretraining ran on, from its run folder's ``config.json`` (corpora and training imagery named)."""
    meta = json.loads((pre.out_dir / "config.json").read_text())
    parts = [
        f"{n} x{k}" if n.endswith("-unlabelled") else f"{n} train imagery"
        for n, k in zip(meta["datasets"], meta["n_chips"], strict=True)
    ]
    return " + ".join(parts)


def _not_run(ds, model: str, seed: int, pretraining: str, weights: str, reason: str, results_path, runs_dir):
    """Write the ``not_run`` row of a run that cannot start, and its outcome."""
    rows = runner.not_run(
        ds, model, seed, reason, results_path, family="fm", pretraining=pretraining, weights=weights
    )
    out_dir = runner.identity(ds, model, seed).run_dir(runs_dir)
    return deep_run.RunOutcome(status="not_run", rows=rows, reason=reason, out_dir=out_dir)


def _pretrained_start(
    inputs, pretext: str, settings: FMSettings, fraction: float | None, **pretrain_kw
) -> tuple:
    """The in-study pretraining a fine-tune starts from (run or read from its cache) and what the row says of it.

    Returns:
        ``(pretraining, encoder state, weights column, note suffix)``: the selected encoder, or with ``fraction``
        the checkpoint the pretraining kept at that fraction of its selected step.
    """
    pre = _pretrain(inputs, settings, **pretrain_kw)
    encoder = pre.encoder_state
    weights = f"in-study {pretext} pretraining on {_pool_label(pre)} (key {pre.key})"
    if fraction is not None:
        step, encoder = PT.checkpoint_encoder(pre, fraction)
        weights += f", its checkpoint at step {step} ({fraction:g} of the selected step)"
    best = pre.probe.loc[pre.probe["mean"].idxmax()] if len(pre.probe) else None
    probed = f", best probe {best['mean']:.3f} at step {int(best['step'])}" if best is not None else ""
    shared = (
        "shared by every dataset, draw and seed" if settings.corpus is not None else "shared by all seeds"
    )
    note = (
        f"; pretraining {pre.train_s:.0f} s, {len(pre.history)} steps, stopped by {pre.stopped_by or 'n/a'}"
        f"{probed}, {shared} (cached)"
    )
    return pre, encoder, weights, note


def _prithvi_note(c, v, n_times: int) -> str:
    """The note of a Prithvi-arch row: its size, where it starts from, and that it is not Prithvi-100M."""
    origin = "in-study pretraining" if v.pretext else "random init"
    probe = (
        "; frozen encoder, linear probe (BatchNorm + 1x1 conv on tokens, bilinear upsampling)"
        if v.probe
        else ""
    )
    return (
        f"prithvi-arch ({size_label(c)}, {origin}) - NOT Prithvi-100M: embed {c.embed_dim}, depth {c.depth}, "
        f"patch {c.patch_size}, {n_times} frame(s)" + probe
    )


def _small_key_settings(
    variant: str, settings: FMSettings, inputs, pretraining_fraction: float | None
) -> dict:
    """What a small Prithvi-arch row's key hashes beyond the fit settings: the architecture and its start.

    The start is the pretraining's cache key (its settings, imagery, probe tasks and seed), ``None`` from random
    init; ``pretraining_fraction`` only where set, so the selected encoder's rows keep their identity.
    """
    out = {
        "variant": variant,
        "model": settings.pretrain.model,
        "neck_dim": settings.neck_dim,
        "head_channels": settings.head_channels,
        "pretraining": PT.key_for(inputs[0], inputs[1], settings.pretrain_seed, inputs[2])
        if inputs
        else None,
    }
    if pretraining_fraction is not None:
        out["pretraining_fraction"] = float(pretraining_fraction)
    return out


def run_prithvi_small(
    ds,
    seed: int,
    variant: str,
    *,
    settings: FMSettings | None = None,
    pretrain_on: Sequence | None = None,
    results_path: str | os.PathLike = results.DEFAULT_PATH,
    runs_dir: str | os.PathLike = "runs",
    cache_dir: str | os.PathLike = "cache",
    force: bool = False,
    progress: bool = True,
    maps_dir: str | os.PathLike | None = None,
    chips_dir: str | os.PathLike | None = runner.BESIDE_TABLE,
    convergence_path: str | os.PathLike | None = None,
    pretraining_fraction: float | None = None,
) -> deep_run.RunOutcome:
    """Fine-tune (or linear-probe) the small Prithvi-architecture model from one of its starting points.

    Args:
        ds: Dataset (``helpers.data.datasets`` API).
        seed: Fine-tuning seed (head initialisation, crops, dropout).
        variant: A key of :data:`VARIANTS`.
        settings: Sizes and budgets (default :class:`FMSettings`).
        pretrain_on: Pretrain on these datasets pooled (single dates) instead of ``ds`` alone; the model name
            gets a ``_pooled`` suffix.
        results_path: Results table.
        runs_dir: Fine-tuning checkpoints.
        cache_dir: Pretraining cache.
        force: Retrain even if the row exists.
        progress: tqdm bars.
        maps_dir: Where the run saves its test maps of the first test chips (``None``: none).
        chips_dir: Where the run saves its per-chip counts (:func:`helpers.results.read_chip_counts`; default
            ``chips/`` beside ``results_path``; ``None``: none).
        convergence_path: Convergence table for the convergence check (:func:`helpers.runs.convergence.check`).
        pretraining_fraction: Start from the encoder the pretraining had at this fraction of its selected step
            (:func:`helpers.runs.pretrain.checkpoint_encoder`: 0.25 or 0.5) instead of the selected one: a point of
            the pretraining-compute curve (row ``<variant>_pt25``, ...). ``None``: the selected encoder.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    settings = settings or FMSettings()
    v = VARIANTS[variant]
    if pretraining_fraction is not None and not v.pretext:
        raise ValueError(f"{variant!r} has no pretraining to start part of the way through")
    name = variant + ("_pooled" if pretrain_on is not None and v.pretext else "")
    if pretraining_fraction is not None:
        name += f"_pt{round(100 * pretraining_fraction):02d}"
    try:  # the Prithvi architecture takes the six HLS bands, picked by name
        ds = with_bands(ds)
        if pretrain_on is not None and v.pretext:
            pretrain_on = [with_bands(d) for d in pretrain_on]
    except MissingBands as err:
        return _not_run(ds, name, seed, v.pretraining, "", str(err), results_path, runs_dir)
    out_dir = runner.identity(ds, name, seed).run_dir(runs_dir)
    ft = settings.fit_kwargs(ds)
    if v.probe:
        ft["lr"] = settings.probe_lr
    # what the encoder starts from, opened once: its cache key goes into the run key, then it is pretrained or read
    inputs = pretraining_inputs(ds, v.pretext, settings, pretrain_on) if v.pretext else None
    key_settings = _small_key_settings(variant, settings, inputs, pretraining_fraction)
    key = deep_run.key_for(
        ds, name, seed, family="fm", pretraining=v.pretraining, key_settings=key_settings, **ft
    )
    checkable = convergence_path is not None and (out_dir / run_folders.LAST).exists()
    if not force and runner.finished(ds, name, seed, results_path, key) and not checkable:
        key_kw = dict(family="fm", pretraining=v.pretraining, key_settings=key_settings, **ft)
        run_folders.mark_trajectory(out_dir, key, deep_run.trajectory_key(ds, name, seed, **key_kw))
        return deep_run.RunOutcome(status="skipped", run_key=key, out_dir=out_dir)
    crop = ft["crop_size"]
    cfg = settings.pretrain.model.replace(
        img_size=crop, num_frames=ds.n_times, in_chans=len(_prithvi.HLS_BANDS)
    )
    pre, encoder, weights, pre_note = None, None, "random-init", ""
    if v.pretext:
        pre, encoder, weights, pre_note = _pretrained_start(
            inputs, v.pretext, settings, pretraining_fraction, cache_dir=cache_dir, progress=progress
        )
    device = pick_device()

    def make_model() -> nn.Module:
        model = _prithvi.PrithviSegmenter(
            ds.num_classes,
            ds.n_times,
            cfg,
            neck_dim=settings.neck_dim,
            head_channels=settings.head_channels,
            head="linear" if v.probe else "fcn",
        )
        if pre is not None:
            model.load_encoder_state(encoder, pre.model_config)
        if v.probe:
            model.freeze_encoder()
        return model.to(device)

    note = _prithvi_note(settings.pretrain.model, v, ds.n_times) + pre_note
    return convergence.run_checked(
        ds,
        name,
        make_model,
        seed=seed,
        family="fm",
        pretraining=v.pretraining,
        weights=weights,
        key_settings=key_settings,
        note=note,
        force=force,
        progress=progress,
        results_path=results_path,
        runs_dir=runs_dir,
        maps_dir=maps_dir,
        chips_dir=chips_dir,
        convergence_path=convergence_path,
        **ft,
    )


# ---------------------------------------------------------------------------------------------- ViT, SegFormer
def run_vit(ds, seed: int, *, settings: FMSettings | None = None, **kw) -> deep_run.RunOutcome:
    """Plain ViT-seg from scratch (``kw``: results_path, runs_dir, force, progress)."""
    settings = settings or FMSettings()
    crop = settings.finetune["crop_size"]
    device = pick_device()

    mean, std = channel_stats(ds)  # trained from scratch: the dataset's own statistics

    def make_model() -> nn.Module:
        model = ViTSegmenter(ds.n_channels, ds.num_classes, img_size=crop, mean=mean, std=std, **settings.vit)
        return model.to(device)

    note = "plain ViT-seg from scratch (no pretrained weights for 6/18-band input exist offline)"
    return _run_scratch(ds, seed, "vit", make_model, settings, note, settings.vit, **kw)


def run_segformer(ds, seed: int, *, settings: FMSettings | None = None, **kw) -> deep_run.RunOutcome:
    """SegFormer (MiT-b0 widths) from scratch (``kw``: results_path, runs_dir, force, progress)."""
    settings = settings or FMSettings()
    device = pick_device()

    mean, std = channel_stats(ds)  # trained from scratch: the dataset's own statistics

    def make_model() -> nn.Module:
        return SegFormer(ds.n_channels, ds.num_classes, mean=mean, std=std, **settings.segformer).to(device)

    note = "SegFormer (MiT-b0-like) from scratch (ImageNet weights neither obtainable offline nor 6/18-band)"
    return _run_scratch(ds, seed, "segformer", make_model, settings, note, settings.segformer, **kw)


def _run_scratch(ds, seed, name, make_model, settings, note, arch, **kw) -> deep_run.RunOutcome:
    kw.pop("cache_dir", None)
    return convergence.run_checked(
        ds,
        name,
        make_model,
        seed=seed,
        family="fm",
        pretraining="none",
        weights="random-init",
        key_settings={"arch": arch},
        note=note,
        **kw,
        **settings.fit_kwargs(ds),
    )


# ---------------------------------------------------------------------------------------------- real Prithvi-100M
def find_published_checkpoint(prithvi_checkpoint: str | os.PathLike | None = None) -> Path | None:
    """The user's ``Prithvi_100M.pt``: the explicit path, else ``$FM_WEIGHTS_DIR/prithvi_100m/Prithvi_100M.pt``."""
    if prithvi_checkpoint:
        return Path(prithvi_checkpoint)
    env = os.environ.get("FM_WEIGHTS_DIR")
    if env and (Path(env) / PUBLISHED_RELPATH).is_file():
        return Path(env) / PUBLISHED_RELPATH
    return None


def run_prithvi_published(
    ds,
    seed: int,
    prithvi_checkpoint: str | os.PathLike | None = None,
    *,
    settings: FMSettings | None = None,
    results_path: str | os.PathLike = results.DEFAULT_PATH,
    runs_dir: str | os.PathLike = "runs",
    force: bool = False,
    progress: bool = True,
    maps_dir: str | os.PathLike | None = None,
    chips_dir: str | os.PathLike | None = runner.BESIDE_TABLE,
    convergence_path: str | os.PathLike | None = None,
    **_ignored,
) -> deep_run.RunOutcome:
    """Fine-tune the real Prithvi-100M when its file is supplied; otherwise write a ``not_run`` row saying why.

    A supplied path that does not exist gives a ``not_run`` row naming it; a file that exists but is truncated or
    not a Prithvi checkpoint raises :class:`~helpers.models.prithvi.PrithviCheckpointError` (the user asked for
    that file, so a silent skip would hide their mistake).
    """
    settings = settings or FMSettings()
    try:  # Prithvi-100M takes the six HLS bands, picked by name
        ds = with_bands(ds)
    except MissingBands as err:
        return _not_run(ds, PUBLISHED, seed, "published", "Prithvi_100M.pt", str(err), results_path, runs_dir)
    path = find_published_checkpoint(prithvi_checkpoint)
    out_dir = runner.identity(ds, PUBLISHED, seed).run_dir(runs_dir)
    if path is None or not path.is_file():
        where = f"{path} does not exist" if path is not None else "no file was given"
        reason = (
            f"Prithvi_100M.pt not available ({where}): download it from huggingface.co/ibm-nasa-geospatial/"
            "Prithvi-EO-1.0-100M (formerly Prithvi-100M) and pass prithvi_checkpoint=<path> (or put it at "
            "$FM_WEIGHTS_DIR/prithvi_100m/Prithvi_100M.pt)"
        )
        # without the file there is no key: any finished run of it stays
        if not force and runner.finished(ds, PUBLISHED, seed, results_path, None):
            return deep_run.RunOutcome(status="skipped", out_dir=out_dir)
        return _not_run(ds, PUBLISHED, seed, "published", "Prithvi_100M.pt", reason, results_path, runs_dir)
    ft = settings.fit_kwargs(ds, lr=settings.published_lr)
    ft["crop_size"] = settings.published_crop_size or ft["crop_size"]
    key_settings = {"checkpoint_sha256": sha256_file(path), "config": settings.published_config, "head": 256}
    key = deep_run.key_for(
        ds, PUBLISHED, seed, family="fm", pretraining="published", key_settings=key_settings, **ft
    )
    if not force and runner.finished(ds, PUBLISHED, seed, results_path, key):
        return deep_run.RunOutcome(status="skipped", run_key=key, out_dir=out_dir)
    mae, info = _prithvi.load_prithvi_checkpoint(
        path, config=settings.published_config
    )  # checked before training
    device = pick_device()

    def make_model() -> nn.Module:
        # official fine-tuning head: neck width embed_dim * T, FCN head of 256 channels
        seg = _prithvi.segmenter_from_mae(
            mae, ds.num_classes, ds.n_times, img_size=ft["crop_size"], head_channels=256
        )
        return seg.to(device)

    note = (
        f"real Prithvi-100M ({info['layout']} layout, {info['n_params'] / 1e6:.1f} M values in the file), fine-tuned "
        f"with official neck/FCN head; lr {ft['lr']:g}, crop {ft['crop_size']} (official: 224, ~80 epochs)"
    )
    return convergence.run_checked(
        ds,
        PUBLISHED,
        make_model,
        seed=seed,
        family="fm",
        pretraining="published",
        weights=f"{path.name} sha256:{info['sha256'][:16]}",
        key_settings=key_settings,
        note=note,
        force=force,
        progress=progress,
        results_path=results_path,
        runs_dir=runs_dir,
        maps_dir=maps_dir,
        chips_dir=chips_dir,
        convergence_path=convergence_path,
        **ft,
    )


# ---------------------------------------------------------------------------------------------- all rows
def run_fm_rows(
    ds,
    seed: int,
    *,
    models: Sequence[str] = DEFAULT_MODELS,
    settings: FMSettings | None = None,
    prithvi_checkpoint: str | os.PathLike | None = None,
    results_path: str | os.PathLike = results.DEFAULT_PATH,
    runs_dir: str | os.PathLike = "runs",
    cache_dir: str | os.PathLike = "cache",
    force: bool = False,
    progress: bool = True,
    maps_dir: str | os.PathLike | None = None,
    chips_dir: str | os.PathLike | None = runner.BESIDE_TABLE,
    pooled: Sequence[str] = (),
    pool: Sequence | None = None,
    convergence_path: str | os.PathLike | None = None,
) -> dict[str, deep_run.RunOutcome]:
    """Run the chosen FM rows for one dataset and seed (each skipped if already in the results table).

    Args:
        ds: Dataset (``helpers.data.datasets`` API).
        seed: Fine-tuning seed (pretraining uses ``settings.pretrain_seed``).
        models: Rows of :data:`DEFAULT_MODELS` to run.
        settings: Sizes and budgets (default :class:`FMSettings`).
        prithvi_checkpoint: The user's ``Prithvi_100M.pt`` for the ``prithvi_100m`` row.
        results_path: Results table.
        runs_dir: Fine-tuning checkpoints.
        cache_dir: Pretraining cache.
        force: Retrain even if a row exists.
        progress: tqdm bars.
        maps_dir: Where each run saves its test maps of the first test chips (:mod:`helpers.prediction_maps`).
        chips_dir: Where each run saves its per-chip counts (default ``chips/`` beside ``results_path``).
        pooled: In-study variants with a pretext (e.g. ``prithvi_arch_small_mae``) to run a second time from an
            encoder pretrained on the pooled single-date training imagery of ``pool`` (rows ``<variant>_pooled``;
            the pretraining runs once for the pool and is cached, so every dataset of the pool shares it).
        pool: The datasets pooled for ``pooled`` (``ds`` is usually one of them).
        convergence_path: Also record the convergence check of every fine-tuned row into this convergence table
            (:func:`helpers.runs.convergence.check`; ``None``: no check).
    """
    unknown = set(models) - set(DEFAULT_MODELS)
    if unknown:
        raise ValueError(f"unknown FM models {sorted(unknown)}; choose from {DEFAULT_MODELS}")
    not_pretrained = [v for v in pooled if v not in VARIANTS or VARIANTS[v].pretext is None]
    if not_pretrained:
        raise ValueError(
            f"pooled variants must be in-study variants with a pretext; got {not_pretrained} (choose from "
            f"{[v for v, x in VARIANTS.items() if x.pretext]})"
        )
    if pooled and not pool:
        raise ValueError("pooled variants need the datasets to pool (pool=[...])")
    kw = dict(
        settings=settings,
        results_path=results_path,
        runs_dir=runs_dir,
        force=force,
        progress=progress,
        maps_dir=maps_dir,
        chips_dir=chips_dir,
        convergence_path=convergence_path,
    )
    out = {}
    for name in models:
        if name in VARIANTS:
            out[name] = run_prithvi_small(ds, seed, name, cache_dir=cache_dir, **kw)
        elif name == "vit":
            out[name] = run_vit(ds, seed, **kw)
        elif name == "segformer":
            out[name] = run_segformer(ds, seed, **kw)
        else:
            out[name] = run_prithvi_published(ds, seed, prithvi_checkpoint, **kw)
    for name in pooled:
        out[f"{name}_pooled"] = run_prithvi_small(ds, seed, name, cache_dir=cache_dir, pretrain_on=pool, **kw)
    return out

"""Settings of the foundation-model rows (notebook 04): the run layer's, as :mod:`helpers.runs.cnn_settings` for CNNs.

:class:`FMSettings` sizes every fine-tuned FM row (the in-study pretraining, the fine-tuning protocol, the small
model's neck and head, ViT and SegFormer from scratch, the published Prithvi-100M) at the CPU size, in quick mode
(:func:`quick_settings`) and at the paper's size (:func:`paper_settings`); :class:`CorpusSpec` names the pooled
unlabelled corpus the in-study rows pretrain on. The settings are part of every run's key, so a change here retrains
the rows it touches. :mod:`helpers.runs.fm_finetuned` runs the rows.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from helpers.data import corpus, labels, simulate
from helpers.data.datasets import prepare, varies_by_replicate, with_bands
from helpers.models import cnn
from helpers.models import prithvi as _prithvi
from helpers.runs import pretexts, schedule

#: The data draw of each simulated task the pretraining probe scores on: a draw of its own (generator seed
#: ``sim_seed + 100``), so no run's training, validation or test labels ever steer a pretraining.
PROBE_REPLICATE = 100


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
    """In-study pretraining: the probe-plateau mode, sized from measured probe curves.

    A probe every 250 steps, patience 8 (2,000 steps without a half-point rise of the smoothed probe) and a cap of
    20,000 steps, five to ten times past the measured plateau, so a run that reaches it says so (``stopped by cap``);
    AdamW 1e-3, warmed up over 200 steps, then constant. The curves that sized it: ``benchmarks/README.md``
    ("In-study pretraining").
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
        small_bf16: Fine-tune the small Prithvi-architecture rows (every init alike, not the linear probes) under
            bf16 autocast. Off: on an AVX512-BF16 CPU without AMX it bought 1.19x per bare step but 1.10x per step
            of the training loop (validation stays float32), and the runs' step counts moved by more than that in
            either direction, so seven paired runs took as long as in float32 (``benchmarks/README.md``, "bf16 for
            the Prithvi-arch fine-tunes"); measure on your CPU before switching it on, and rerun every init
            together (it is part of the run key, and claim 3 compares the inits).
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
    small_bf16: bool = False

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

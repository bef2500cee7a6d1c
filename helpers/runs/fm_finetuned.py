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
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from helpers import results
from helpers.data import corpus, labels
from helpers.data.datasets import MissingBands, channel_stats, with_bands
from helpers.data.io import sha256_file
from helpers.models import prithvi as _prithvi
from helpers.models.segformer import SegFormer
from helpers.models.vit import ViTSegmenter
from helpers.runs import convergence, deep_run, fm_settings, pretexts, run_folders, runner
from helpers.runs import pretrain as pretrain

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


#: The pretraining-compute curve's table, beside the results table: rows fine-tuned from checkpoints part of the way
#: through a pretraining (``<variant>_pt25``, ...). Kept apart so that no verdict picks one as a candidate.
COMPUTE_TABLE = "pretraining_compute.csv"


def pick_device() -> torch.device:
    """CUDA when available, else CPU (set ``CUBLAS_WORKSPACE_CONFIG`` for deterministic cuBLAS first)."""
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        return torch.device("cuda")
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------- in-study Prithvi
def pretraining_inputs(
    ds, pretext: str, settings: fm_settings.FMSettings, pretrain_on: Sequence | None = None
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
    settings: fm_settings.FMSettings,
    *,
    cache_dir: str | os.PathLike = "cache",
    pretrain_on: Sequence | None = None,
    progress: bool = True,
) -> pretrain.PretrainResult:
    """The (cached) pretraining a variant starts from (:func:`pretraining_inputs` says on what)."""
    inputs = pretraining_inputs(ds, pretext, settings, pretrain_on)
    return _pretrain(inputs, settings, cache_dir=cache_dir, progress=progress)


def _pretrain(
    inputs: tuple, settings: fm_settings.FMSettings, *, cache_dir, progress: bool, check: bool = False
):
    """:func:`helpers.runs.pretrain.pretrain` (or, ``check``, its continuation) on :func:`pretraining_inputs`."""
    data, cfg, probe_on = inputs
    run = pretrain.continuation if check else pretrain.pretrain
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
    settings: fm_settings.FMSettings,
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
        pretrain.record(
            result, pretraining_path, pretrain.continuation_summary(result)
        )  # a re-record keeps its check
    return result.key


def check_pretraining(
    ds,
    variant: str,
    settings: fm_settings.FMSettings,
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
    already holds for the same pretraining key on this CPU class is not redone (a clone with the committed table and an
    empty cache would otherwise spend two pretrainings and their continuations on evidence it has); another CPU's
    check was of another encoder (:func:`helpers.runs.pretrain.recorded_check`).
    """
    pretext = _pretext_of(variant)
    try:
        inputs = pretraining_inputs(ds, pretext, settings, pretrain_on)
    except MissingBands:
        return {}
    if inputs[1].probe_every is None:
        return {}
    # a check on record under the same key and CPU (e.g. in the committed table) stands
    if pretraining_path is not None:
        key = pretrain.key_for(inputs[0], inputs[1], settings.pretrain_seed, inputs[2])
        recorded = pretrain.recorded_check(pretraining_path, key)
        if recorded is not None:
            return recorded
    result = _pretrain(inputs, settings, cache_dir=cache_dir, progress=progress)
    summary = _pretrain(inputs, settings, cache_dir=cache_dir, progress=progress, check=True)
    if pretraining_path is not None:
        pretrain.record(result, pretraining_path, summary)
    return summary


def _pretext_of(variant: str) -> str:
    pretext = VARIANTS[variant].pretext
    if pretext is None:
        raise ValueError(
            f"{variant!r} has no pretraining; choose one of {[v for v, x in VARIANTS.items() if x.pretext]}"
        )
    return pretext


def _pool_label(pre: pretrain.PretrainResult) -> str:
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
    inputs, pretext: str, settings: fm_settings.FMSettings, fraction: float | None, **pretrain_kw
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
        step, encoder = pretrain.checkpoint_encoder(pre, fraction)
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
        f"prithvi-arch ({fm_settings.size_label(c)}, {origin}) - NOT Prithvi-100M: embed {c.embed_dim}, depth {c.depth}, "
        f"patch {c.patch_size}, {n_times} frame(s)" + probe
    )


def _small_key_settings(
    variant: str, settings: fm_settings.FMSettings, inputs, pretraining_fraction: float | None
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
        "pretraining": pretrain.key_for(inputs[0], inputs[1], settings.pretrain_seed, inputs[2])
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
    settings: fm_settings.FMSettings | None = None,
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
    settings = settings or fm_settings.FMSettings()
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
    elif settings.small_bf16:  # every init alike: the in-study rows differ only in their starting weights
        ft.setdefault("bf16", True)
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
def run_vit(ds, seed: int, *, settings: fm_settings.FMSettings | None = None, **kw) -> deep_run.RunOutcome:
    """Plain ViT-seg from scratch (``kw``: results_path, runs_dir, force, progress)."""
    settings = settings or fm_settings.FMSettings()
    crop = settings.finetune["crop_size"]
    device = pick_device()

    mean, std = channel_stats(ds)  # trained from scratch: the dataset's own statistics

    def make_model() -> nn.Module:
        model = ViTSegmenter(ds.n_channels, ds.num_classes, img_size=crop, mean=mean, std=std, **settings.vit)
        return model.to(device)

    note = "plain ViT-seg from scratch (no pretrained weights for 6/18-band input exist offline)"
    return _run_scratch(ds, seed, "vit", make_model, settings, note, settings.vit, **kw)


def run_segformer(
    ds, seed: int, *, settings: fm_settings.FMSettings | None = None, **kw
) -> deep_run.RunOutcome:
    """SegFormer (MiT-b0 widths) from scratch (``kw``: results_path, runs_dir, force, progress)."""
    settings = settings or fm_settings.FMSettings()
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
    settings: fm_settings.FMSettings | None = None,
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
    settings = settings or fm_settings.FMSettings()
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
    settings: fm_settings.FMSettings | None = None,
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

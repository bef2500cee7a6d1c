"""The published Galileo-nano fine-tuned end to end, and the identical network from random initialisation.

The paper's central comparison for a real foundation model: what the published pretraining buys over the same
architecture, inputs and training from scratch (claim 3). Both rows train through the shared deep loop
(:func:`helpers.runs.deep_run.run`, the plateau protocol, run keys, maps) with their convergence check beside them
(:func:`helpers.runs.convergence.run_checked`); the frozen rows of the same weights are :mod:`helpers.runs.fm_frozen`.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable

from helpers import results as _results
from helpers.data.datasets import MissingBands, with_bands
from helpers.models import galileo as _galileo
from helpers.models import weights as _weights
from helpers.runs import convergence as _convergence
from helpers.runs import deep_run as _deep_run
from helpers.runs import fm_adapters as _fm_adapters
from helpers.runs import fm_frozen as _fm_frozen
from helpers.runs import fm_heads as _fm_heads
from helpers.runs import runner
from helpers.runs import schedule as _schedule

#: The published row.
FINETUNE_ROW = "galileo_nano_finetune"
#: The same network from random initialisation (claim 3's reference for the published weights).
FINETUNE_RANDOM_ROW = "galileo_nano_finetune_random"
FINETUNE_ROWS = (FINETUNE_ROW, FINETUNE_RANDOM_ROW)


def make_galileo_segmenter(
    ds,
    weights_path: str | os.PathLike | None = None,
    *,
    patch_size: int = 4,
    window: int = 64,
    width: int = 64,
    pixel_skip: bool = False,
    ndvi: str = "masked",
    drop_path: float = 0.1,
    pretrained: bool = True,
) -> Callable[[], _fm_heads.GalileoSegmenter]:
    """A builder of the fine-tuning model for ``ds`` (weights resolved now, so a missing file fails early).

    The months are the most common months the training chips' files carry (:func:`helpers.runs.fm_adapters.chip_context`:
    their date tags, else the assumed defaults); the training loop passes only pixels, so one month tuple serves every
    chip of the run (sim-crop's dates differ by tile: this is the mode, not each chip's own). The pixel size is that
    of the first training chip. ``drop_path=0.1`` is the published encoder configuration. ``pretrained=False`` builds
    the identical network from random initialisation (the encoder's own init; no weights file is read), the
    reference the published weights are compared with.

    Raises:
        helpers.models.weights.WeightsError: Weights unavailable or not the pinned file (``pretrained`` only).
    """
    path = _weights.resolve_weights("galileo_nano", weights_path) if pretrained else None
    contexts = [_fm_adapters.chip_context(ds, c) for c in ds.chip_ids("train")]
    ctx = contexts[0]
    months = collections.Counter(c.months for c in contexts).most_common(1)[0][0]
    months_source = collections.Counter(c.month_source for c in contexts).most_common(1)[0][0]

    def build() -> _fm_heads.GalileoSegmenter:
        if path is None:
            encoder = _galileo.GalileoEncoder(**_galileo.NANO_CONFIG, drop_path=drop_path)
        else:
            encoder = _galileo.load_galileo_nano(path, drop_path=drop_path)
        return _fm_heads.GalileoSegmenter(
            encoder,
            ds.num_classes,
            months,
            patch_size=patch_size,
            window=window,
            resolution_m=ctx.resolution_m,
            ndvi=ndvi,
            width=width,
            pixel_skip=pixel_skip,
        )

    build.months = months  # type: ignore[attr-defined]
    build.months_source = months_source  # type: ignore[attr-defined]
    build.resolution_m = ctx.resolution_m  # type: ignore[attr-defined]
    return build


#: The fine-tuning network (:class:`helpers.runs.fm_heads.GalileoSegmenter`): 8 px patches in 32 px encoder windows,
#: a 32-channel decoder that also reads each pixel's bands (``pixel_skip``). Why: about 4-5x faster a step than the
#: earlier network (:data:`FINETUNE_ARCH_V1`), which makes the published weights and their random init affordable on
#: every dataset, at about half a validation point below it; both inits share it. The window stays 32 px (the same
#: ground per window); 8 px is the largest patch Galileo-nano was pretrained with. Measured with
#: ``benchmarks/galileo_finetune.py`` (``benchmarks/README.md``, "Galileo-nano fine-tuning").
FINETUNE_ARCH: dict = {"patch_size": 8, "window": 32, "width": 32, "pixel_skip": True}
#: The network of the fine-tuning rows before 2026-12-03 (kept for the comparison benchmark).
FINETUNE_ARCH_V1: dict = {"patch_size": 4, "window": 32, "width": 64, "pixel_skip": False}

#: Training settings of the Galileo-nano fine-tuning (:func:`helpers.runs.train.fit`): the plateau protocol of every
#: deep row (:data:`helpers.runs.schedule.PLATEAU`), so the published weights and their random init train by the same rule
#: as the CNNs and the in-study transformers. AdamW at 1e-3 with weight decay 1e-4 and a 25-step warm-up for both inits
#: (the rate of the first fine-tuning row; not tuned toward either init). One change to that rule, for both inits:
#: a random-init transformer can sit on a low plateau for several cycles and then leave it, after a number of cycles
#: that depends on its path (seed, CPU): two flat cycles in a row stopped such runs low at knobs 0.5 and 1, and three
#: left two of three runs low at knob 0.5 (``benchmarks/README.md``, "Galileo-nano fine-tuning"). So the run stops
#: only where two flat cycles in a row end *and* the second half of its steps raised its best validation score by
#: less than a point (``doubling``, :func:`helpers.runs.schedule.second_half_gain`): every stop is its own check
#: "twice the steps moved validation by less than a point", and a run that sat low for N steps gets N more to leave
#: it. The step cap is 24,000, past the 8,600-11,150 steps at which the random init's runs that left the low
#: plateau reached their flat-cycle stop (2026-12-06, AMD EPYC); under doubling the random init at knobs 0.5 and 1
#: with every label still climbed at 24,000 steps (2026-12-07: stopped by the cap, rows that are lower bounds;
#: README). The cycles' cap (100) cannot bind before it. All three are caps (:data:`helpers.runs.schedule.CAPS`):
#: runs stopped under the earlier rule continue from where they stopped.
FINETUNE_DEFAULTS: dict = {
    **_schedule.PLATEAU,
    "max_steps": 24000,
    "cycles": 100,
    "cycle_patience": 2,
    "doubling": True,
    "batch_size": 8,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "warmup_steps": 25,
    "crop_size": 64,
}


def fit_settings(ds, max_steps: int | None = None, **fit_kwargs) -> dict:
    """The :func:`helpers.runs.train.fit` settings of a Galileo-nano fine-tune on ``ds``.

    :data:`FINETUNE_DEFAULTS`, whole-chip validation (``eval_tile=0``), ``fit_kwargs``, ``max_steps`` when given, then
    the dataset's plateau settings at its label budget (:func:`helpers.runs.schedule.settings_for`).

    One place, so a check that continues a finished fine-tune (``benchmarks/galileo_finetune.py --escape``) trains on
    with the run's own settings.
    """
    settings = {**FINETUNE_DEFAULTS, "eval_tile": 0, **fit_kwargs}
    if max_steps is not None:
        settings["max_steps"] = int(max_steps)
    return _schedule.settings_for(ds, settings)


def run_galileo_nano_finetune(
    ds,
    seed: int,
    results_path: str | os.PathLike = _results.DEFAULT_PATH,
    *,
    runs_dir: str | os.PathLike = "runs",
    pretrained: bool = True,
    max_steps: int | None = None,
    weights_path: str | os.PathLike | None = None,
    patch_size: int = FINETUNE_ARCH["patch_size"],
    window: int = FINETUNE_ARCH["window"],
    width: int = FINETUNE_ARCH["width"],
    pixel_skip: bool = FINETUNE_ARCH["pixel_skip"],
    force: bool = False,
    progress: bool = True,
    maps_dir: str | os.PathLike | None = None,
    model_name: str | None = None,
    **fit_kwargs,
) -> _deep_run.RunOutcome:
    """Rows ``galileo_nano_finetune`` (published weights) and ``galileo_nano_finetune_random`` (``pretrained=False``).

    Galileo-nano and a light convolutional decoder trained end to end by :func:`helpers.runs.deep_run.run`; the random
    row is the identical network, inputs, protocol and settings from random initialisation, so the pair measures
    what the published pretraining buys (claim 3 for a real foundation model). Returns the deep rows' outcome
    (:class:`helpers.runs.deep_run.RunOutcome`); the published row is ``not_run`` without its weights.

    The network is :data:`FINETUNE_ARCH` (why: there). It trains on 64 px crops like the other fine-tuned rows;
    validation and test predict whole chips in one pass (``eval_tile=0``): the model already cuts a chip into
    non-overlapping encoder windows, so the shared loop's overlapping tiles would only encode the same windows
    again and average them. Training follows :data:`FINETUNE_DEFAULTS` (the plateau protocol, capped at
    ``max_steps`` when given). Other ``fit_kwargs`` (``lr``, ``batch_size``, ``patience``, ...) go to
    :func:`helpers.runs.train.fit`; ``maps_dir`` receives the test maps of the first test chips
    (:mod:`helpers.prediction_maps`); ``model_name`` renames the row (benchmarks of other networks).
    """
    row = model_name or (FINETUNE_ROW if pretrained else FINETUNE_RANDOM_ROW)
    arch = {
        "patch_size": int(patch_size),
        "window": int(window),
        "width": int(width),
        "pixel_skip": bool(pixel_skip),
    }
    try:  # the adapter feeds Galileo the six HLS bands, picked by name
        ds = with_bands(ds)
        build = make_galileo_segmenter(ds, weights_path, pretrained=pretrained, **arch)
    except (MissingBands, _weights.WeightsError) as err:
        rows = _fm_frozen.not_run_rows(ds, row, seed, str(err), results_path, pretrained=pretrained)
        out_dir = runner.identity(ds, row, seed).run_dir(runs_dir)
        return _deep_run.RunOutcome(status="not_run", rows=rows, reason=str(err), out_dir=out_dir)
    init = (
        _fm_frozen.PRETRAINING["galileo_nano"]
        if pretrained
        else "random initialisation of the Galileo-nano encoder (no pretraining; the published row's reference)"
    )
    settings = fit_settings(ds, max_steps, **fit_kwargs)
    note = "; ".join(
        [
            f"end-to-end fine-tuning, patch {patch_size} px, {window} px windows on {settings['crop_size']} px crops, "
            f"conv decoder of {width} channels, whole-chip validation/test",
            f"months {list(build.months)} ({build.months_source}; the mode over training chips), {build.resolution_m:g} m pixels",
            "adapter v" + _fm_adapters.ADAPTER_VERSION + ": " + _fm_adapters.describe(None),
            init,
        ]
    )
    return _convergence.run_checked(
        ds,
        row,
        build,
        seed=seed,
        results_path=results_path,
        runs_dir=runs_dir,
        family="fm",
        **_fm_frozen.init_columns("galileo_nano", pretrained),
        key_settings={**arch, "adapter": _fm_adapters.ADAPTER_VERSION, "pretrained": bool(pretrained)},
        force=force,
        note=note,
        progress=progress,
        maps_dir=maps_dir,
        **settings,
    )


def run_galileo_nano_finetune_random(ds, seed: int, results_path=_results.DEFAULT_PATH, **kwargs):
    """Row ``galileo_nano_finetune_random``: :func:`run_galileo_nano_finetune` from random initialisation."""
    return run_galileo_nano_finetune(ds, seed, results_path, pretrained=False, **kwargs)

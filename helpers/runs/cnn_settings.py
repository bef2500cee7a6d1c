"""Training settings of the CNN rows (notebook 03): the run layer's, so the models know no training.

:mod:`helpers.models.cnn` builds the networks; this module says how they are trained (the keywords of
:func:`helpers.runs.train.fit`) at each model size. The settings are part of every run's key, so a change here
retrains the rows it touches instead of reusing them. How each number was measured (learning curves, the bf16 seed
noise) is written down in ``benchmarks/README.md`` with the commands that measure it again.
"""

from __future__ import annotations

import torch

from helpers.models.cnn import SIZES
from helpers.runs.runtime import native_bf16
from helpers.runs.schedule import PLATEAU

#: The CPU size: the plateau protocol (:data:`helpers.runs.schedule.PLATEAU`) on batches of 8 random 64 px crops at a
#: base rate of 3e-3. Curves on the default data swing by several points between validations at a constant rate, so
#: the rate drops twice at a plateau before a cycle ends. bf16 autocast with ``channels_last`` batches where the CPU
#: computes bfloat16 natively (:func:`helpers.runs.runtime.native_bf16`): the validation scores stayed within the
#: spread of seeds and the runs were 1.4-1.75x faster; elsewhere float32. Either way the setting is stored with the run
#: and written in its rows' note.
TRAIN_DEFAULTS: dict = {
    **PLATEAU,
    "batch_size": 8,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "warmup_steps": 50,
    "crop_size": 64,
    "bf16": native_bf16(),
    "channels_last": native_bf16(),
}

#: Quick mode (CI, fixtures): a few steps prove the code path, not the science.
QUICK_TRAIN: dict = {**TRAIN_DEFAULTS, "max_steps": 6, "eval_every": 3, "patience": None, "crop_size": 32}

#: The paper size (:data:`helpers.models.cnn.PAPER_MODELS`, for a GPU): the plateau protocol on 224 px crops and
#: windows (Prithvi's native tile, the official configs' size) in batches of 16, under bf16 autocast on a GPU (and on
#: CPUs that compute bfloat16 natively); the paper profile caps it at 100 epochs (``max_epochs`` in
#: ``notebooks/params/paper.yaml``). The learning rate is the CPU size's, not measured at this size (no GPU was
#: available): a starting point, with the plateau protocol guarding each run's length.
_BF16 = native_bf16() or torch.cuda.is_available()
PAPER_TRAIN: dict = {
    **TRAIN_DEFAULTS,
    "batch_size": 16,
    "crop_size": 224,
    "bf16": _BF16,
    "channels_last": _BF16,
}


def train_defaults(size: str = "cpu", quick: bool = False) -> dict:
    """The fit settings of notebook 03 for a model size; quick mode keeps the size's models and runs a few steps."""
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {SIZES}")
    if quick:  # at paper size one validation per run: each writes a checkpoint of hundreds of MB
        return (
            dict(QUICK_TRAIN)
            if size == "cpu"
            else {**QUICK_TRAIN, "max_steps": 2, "eval_every": 2, "batch_size": 2}
        )
    return dict(TRAIN_DEFAULTS if size == "cpu" else PAPER_TRAIN)

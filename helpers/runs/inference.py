"""Predicting whole chips with a trained model and scoring a split: what validation and test share in every deep run.

A chip larger than the training crop is cut into overlapping tiles whose softmax probabilities are averaged
(:func:`chip_probabilities`); scores come from one dataset-level confusion matrix over the split's valid pixels
(:func:`evaluate`), so validation during training (:func:`helpers.runs.train.fit`) and the final test scoring
(:func:`helpers.runs.deep_run.run`) use the same code. Per-chip matrices (:func:`evaluate_chips`) feed the bootstrap over
test chips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers import metrics


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


@torch.no_grad()
def chip_probabilities(
    model: nn.Module,
    array: np.ndarray,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
) -> np.ndarray:
    """Class probabilities ``(K, H, W)`` for one chip, by sliding windows where the chip exceeds ``tile``.

    Windows of ``tile x tile`` step by ``tile - overlap`` (the last window is aligned to the chip's edge) and the
    softmax outputs of overlapping windows are averaged, which removes most seams at window borders. A chip smaller
    than ``tile`` is zero-padded to it, so models that need a fixed input size (ViTs) work too.

    Args:
        model: Maps ``[B, C, h, w]`` reflectance to ``[B, K, h, w]`` logits; put in eval mode here.
        array: ``(C, H, W)`` float32 reflectance.
        tile: Window size; ``None`` runs the whole chip in one pass (fully convolutional models only).
        overlap: Pixels shared by neighbouring windows; default ``tile // 4``.
        batch_size: Windows per forward pass.
    """
    model.eval()
    device = next(model.parameters()).device
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 3:
        raise ValueError(f"expected a (C, H, W) chip, got shape {array.shape}")
    _, h, w = array.shape
    if tile is None:
        logits = model(torch.from_numpy(array)[None].to(device))
        return torch.softmax(logits, dim=1)[0].cpu().numpy()
    overlap = tile // 4 if overlap is None else overlap
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile); got overlap={overlap}, tile={tile}")
    ph, pw = max(0, tile - h), max(0, tile - w)
    padded = np.pad(array, ((0, 0), (0, ph), (0, pw))) if ph or pw else array
    hp, wp = padded.shape[1:]
    windows = [
        (t, lft) for t in _starts(hp, tile, tile - overlap) for lft in _starts(wp, tile, tile - overlap)
    ]
    acc: np.ndarray | None = None
    counts = np.zeros((hp, wp), dtype=np.float32)
    for i in range(0, len(windows), batch_size):
        group = windows[i : i + batch_size]
        batch = np.stack([padded[:, t : t + tile, lft : lft + tile] for t, lft in group])
        prob = torch.softmax(model(torch.from_numpy(batch).to(device)), dim=1).cpu().numpy()
        if acc is None:
            acc = np.zeros((prob.shape[1], hp, wp), dtype=np.float32)
        for (t, lft), p in zip(group, prob, strict=True):
            acc[:, t : t + tile, lft : lft + tile] += p
            counts[t : t + tile, lft : lft + tile] += 1
    assert acc is not None
    return (acc / counts)[:, :h, :w]


def predict_chip(
    model: nn.Module,
    array: np.ndarray,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
) -> np.ndarray:
    """Predicted class map ``(H, W)`` int64 of one chip; see :func:`chip_probabilities` for the windowing."""
    prob = chip_probabilities(model, array, tile=tile, overlap=overlap, batch_size=batch_size)
    return prob.argmax(axis=0).astype(np.int64)


def score_chips(
    model: nn.Module,
    chips: Iterable[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    ignore_index: int,
    tile: int | None,
    overlap: int | None,
    batch_size: int,
    on_prediction: Callable[[int, np.ndarray], None] | None = None,
    per_chip: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, float]:
    """Dataset-level confusion matrix and mean negative log-likelihood over the valid pixels of ``chips``.

    ``chips`` yields ``(image, labels)`` pairs (a list, a generator, or :class:`helpers.runs.crops.ChipStore`, which
    keeps a small split in memory for the validations during training).

    ``on_prediction(i, class_map)`` sees the predicted map of the ``i``-th chip (to keep a few for figures without
    predicting them twice); ``per_chip`` receives each chip's own matrix, in order (for a bootstrap over chips).
    """
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    nll, n = 0.0, 0
    for i, (a, y) in enumerate(chips):
        prob = chip_probabilities(model, a, tile=tile, overlap=overlap, batch_size=batch_size)
        y = np.asarray(y, dtype=np.int64)
        pred = prob.argmax(axis=0)
        if on_prediction is not None:
            on_prediction(i, pred)
        chip_cm = metrics.confusion_matrix(y, pred, num_classes, ignore_index=ignore_index)
        cm += chip_cm
        if per_chip is not None:
            per_chip.append(chip_cm)
        valid = y != ignore_index
        if valid.any():
            p_true = np.take_along_axis(prob[:, valid], y[valid][None], axis=0)
            nll += float(-np.log(np.clip(p_true, 1e-12, None)).sum())
            n += int(valid.sum())
    return cm, (nll / n if n else float("nan"))


def evaluate(
    model: nn.Module,
    ds,
    split: str,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> np.ndarray:
    """Confusion matrix (rows truth, columns prediction) over every chip of ``split``, ignore pixels excluded.

    :func:`evaluate_keeping` does the same and also returns the predicted maps of chosen chips.

    Args:
        model: A trained model (switched to eval mode).
        ds: Dataset with ``chip_ids``, ``read_arrays``, ``num_classes`` and ``ignore_index``.
        split: Split name, e.g. ``"test"``.
        tile: Sliding-window size (``None``: whole chips in one pass); use the training crop size.
        overlap: Window overlap, default ``tile // 4``.
        batch_size: Windows per forward pass.
        progress: Show a tqdm bar over chips.
    """
    cm, _ = evaluate_keeping(
        model, ds, split, (), tile=tile, overlap=overlap, batch_size=batch_size, progress=progress
    )
    return cm


def evaluate_keeping(
    model: nn.Module,
    ds,
    split: str,
    keep: Sequence[str],
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`evaluate`, plus ``{chip_id: predicted class map}`` of the chips in ``keep`` (for figures)."""
    chip_cms, kept = evaluate_chips(
        model, ds, split, keep, tile=tile, overlap=overlap, batch_size=batch_size, progress=progress
    )
    return chip_cms.sum(axis=0), kept


def evaluate_chips(
    model: nn.Module,
    ds,
    split: str,
    keep: Sequence[str] = (),
    *,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each chip's confusion matrix ``(K, C, C)`` in ``ds.chip_ids(split)`` order, and the maps of ``keep``.

    Their sum is :func:`evaluate`'s matrix (integer counts: exactly); kept per chip so that a run can store the
    counts a bootstrap over test chips resamples (:func:`helpers.results.chip_counts`).
    """
    ids = ds.chip_ids(split)
    wanted = set(keep)
    kept: dict[str, np.ndarray] = {}

    def on_prediction(i: int, pred: np.ndarray) -> None:
        if ids[i] in wanted:
            kept[ids[i]] = pred

    chips = (
        ds.read_arrays(c) for c in tqdm(ids, desc=f"{ds.name} {split}", disable=not progress, leave=False)
    )
    per_chip: list[np.ndarray] = []
    score_chips(
        model, chips, ds.num_classes, ds.ignore_index, tile, overlap, batch_size, on_prediction, per_chip
    )
    k = ds.num_classes
    return (np.stack(per_chip) if per_chip else np.zeros((0, k, k), np.int64)), kept

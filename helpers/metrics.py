"""Dataset-level segmentation metrics from one confusion matrix.

Every score in the study comes from a single confusion matrix accumulated over all valid pixels of a split
(chip by chip, so no split is ever held in memory at once). Averaging per-chip scores instead would weight
small or nearly empty chips like large ones and is not what the paper's tables report.

Names used everywhere (results table, figures, tables):

* ``iou``, ``f1``, ``precision``, ``recall``: per-class arrays (length ``num_classes``).
* ``miou_macro``: unweighted mean of per-class IoU over classes present in truth or prediction.
* ``f1_macro``: the same mean of per-class F1.
* ``iou_micro``: IoU of the pooled counts, ``sum(TP) / sum(TP + FP + FN)``.
* ``oa``: overall accuracy, ``sum(TP) / n_valid``.

A class absent from both truth and prediction has 0/0 IoU and F1: it is reported as NaN and left out of the
macro means, because scoring it 0 or 1 would reward or punish a model for a class the split does not contain.
"""

from __future__ import annotations

import numpy as np

AGGREGATES = ("miou_macro", "f1_macro", "iou_micro", "oa")
PER_CLASS = ("iou", "f1", "precision", "recall")


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """Count (true, predicted) class pairs over the valid pixels of one chip or batch.

    One ``np.bincount`` over ``true * C + pred`` is all it takes, which is why this is one to two orders of
    magnitude faster than building the matrix with scikit-learn (see ``benchmarks/metrics.py``).

    Args:
        y_true: Integer labels of any shape.
        y_pred: Integer predictions, same shape as ``y_true``.
        num_classes: Number of classes ``C``; valid labels are ``0..C-1``.
        ignore_index: Label value whose pixels are excluded (e.g. -1 or 255); ``None`` keeps all pixels.

    Returns:
        ``(C, C)`` int64 matrix, rows = truth, columns = prediction. Sum matrices of several chips to get
        the dataset-level matrix.

    Raises:
        ValueError: On shape mismatch, or a valid label/prediction outside ``0..C-1``.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}; they must match")
    t = y_true.ravel()
    p = y_pred.ravel()
    valid = None if ignore_index is None else t != ignore_index
    if t.size:
        # min/max over valid pixels only, without copying them out (``where=`` reductions)
        lo = min(
            np.min(t, where=valid, initial=0) if valid is not None else t.min(),
            np.min(p, where=valid, initial=0) if valid is not None else p.min(),
        )
        hi = max(
            np.max(t, where=valid, initial=0) if valid is not None else t.max(),
            np.max(p, where=valid, initial=0) if valid is not None else p.max(),
        )
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"labels/predictions must lie in 0..{num_classes - 1} (ignore_index={ignore_index}); "
                f"found values from {lo} to {hi}"
            )
    idx = t.astype(np.int64) * num_classes
    idx += p
    n_bins = num_classes * num_classes
    if valid is not None:
        np.putmask(idx, ~valid, n_bins)  # ignored pixels land in one spare bin, dropped below
    return np.bincount(idx, minlength=n_bins + 1)[:n_bins].reshape(num_classes, num_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.shape(num), np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=np.asarray(den) > 0)
    return out


def scores(cm: np.ndarray) -> dict:
    """Per-class and aggregate scores from a dataset-level confusion matrix.

    Args:
        cm: ``(C, C)`` confusion matrix (rows truth, columns prediction), e.g. the sum of
            :func:`confusion_matrix` over all chips of a split.

    Returns:
        Dict with per-class float arrays ``iou``, ``f1``, ``precision``, ``recall`` (NaN where undefined),
        the floats ``miou_macro``, ``f1_macro``, ``iou_micro``, ``oa`` (NaN for an empty matrix), and
        ``support`` (true pixels per class) and ``n_valid`` (total pixels counted).
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C); got shape {cm.shape}")
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    fp = predicted - tp
    fn = support - tp
    iou = _safe_div(tp, tp + fp + fn)
    f1 = _safe_div(2 * tp, 2 * tp + fp + fn)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    n_valid = cm.sum()
    present = (support + predicted) > 0

    def _macro(values: np.ndarray) -> float:
        return float(np.mean(values[present])) if present.any() else float("nan")

    return {
        "iou": iou,
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "miou_macro": _macro(iou),
        "f1_macro": _macro(f1),
        "iou_micro": float(tp.sum() / (tp.sum() + fp.sum() + fn.sum())) if n_valid > 0 else float("nan"),
        "oa": float(tp.sum() / n_valid) if n_valid > 0 else float("nan"),
        "support": support.astype(np.int64),
        "n_valid": int(n_valid),
    }

"""Our dataset-level metrics vs scikit-learn's on the same pixels: time ratio and identical values.

Goal (issue 3): at least 10x faster than ``jaccard_score`` + ``f1_score`` on 50 M pixels with 13 classes.
Run: ``python benchmarks/metrics.py [--pixels 50000000]``. Prints ratios, not absolute claims: the machine is shared.
"""

import argparse
import time

import numpy as np
from sklearn.metrics import f1_score, jaccard_score

from helpers import metrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pixels", type=int, default=50_000_000)
    parser.add_argument("--classes", type=int, default=13)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, k = args.pixels, args.classes
    y_true = rng.integers(-1, k, n, dtype=np.int64)  # -1 = ignore
    y_pred = np.where(rng.random(n) < 0.7, np.maximum(y_true, 0), rng.integers(0, k, n))

    t0 = time.perf_counter()
    s = metrics.scores(metrics.confusion_matrix(y_true, y_pred, k, ignore_index=-1))
    ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    keep = y_true != -1
    yt, yp = y_true[keep], y_pred[keep]
    iou = jaccard_score(yt, yp, labels=range(k), average=None, zero_division=0)
    f1 = f1_score(yt, yp, labels=range(k), average=None, zero_division=0)
    theirs = time.perf_counter() - t0

    same = np.allclose(iou, s["iou"]) and np.allclose(f1, s["f1"])
    print(f"pixels={n:,} classes={k}")
    print(f"helpers.metrics          {ours:8.2f} s")
    print(f"sklearn jaccard+f1       {theirs:8.2f} s")
    print(f"speed-up (sklearn/ours)  {theirs / ours:8.1f}x   (goal >= 10x)")
    print(f"identical per-class IoU and F1: {same}")
    if not same:
        raise SystemExit("values differ from scikit-learn")


if __name__ == "__main__":
    main()

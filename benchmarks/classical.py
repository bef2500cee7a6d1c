"""Speed of the classical pipeline: features, fitting, full-chip prediction (issue 5 goals).

Prints, with ratios to the goals:

* feature extraction throughput of the ``aug`` set (goal >= 20 M pixel-features/s), and what an on-disk feature
  cache would cost (write + re-read of one chip's matrix) against recomputing it;
* LightGBM and RandomForest fit time per 100 k training pixels at the default feature count (the ``aug`` set of a
  single-date chip, 51 features) and their ratio;
* prediction time for a full 512 x 512 chip with all features, features included (goal <= 3 s).

Data are synthetic (class-mean spectra in blocks plus noise; labels learnable from spectra), so only the timings
mean anything. Run: ``python benchmarks/classical.py [--n-jobs 1] [--classes 8] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import lightgbm as lgb
import numpy as np
from sklearn.ensemble import RandomForestClassifier

from helpers import classical
from helpers import features as F


def synthetic_chip(rng, size=512, n_classes=8, n_times=1):
    means = np.random.default_rng(0).uniform(0.03, 0.45, (n_classes, 6 * n_times))
    lab = np.kron(rng.integers(0, n_classes, (size // 16, size // 16)), np.ones((16, 16), np.int64))
    a = means[lab].transpose(2, 0, 1) + rng.normal(0, 0.04, (6 * n_times, size, size))
    return a.astype(np.float32), lab


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=100, help="LightGBM boosting rounds for the timing")
    ap.add_argument("--quick", action="store_true", help="20 k pixels instead of 100 k (numbers rescaled)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    k = args.classes

    print("== feature extraction (aug set) ==")
    for size, n_times in ((512, 1), (224, 3)):
        a, _ = synthetic_chip(rng, size, k, n_times)
        t, (X, names) = best_of(lambda a=a: F.feature_matrix(a, "aug"))
        rate = X.size / t
        print(
            f"{size}x{size}, {6 * n_times} channels -> {len(names)} features: {t:.3f} s, "
            f"{rate / 1e6:.1f} M pixel-features/s (goal >= 20 M/s: {rate / 20e6:.2f}x the goal)"
        )
    a, lab = synthetic_chip(rng, 512, k)
    t_feat, (X, names) = best_of(lambda: F.feature_matrix(a, "aug"))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "chip.npy")
        t_write, _ = best_of(lambda: np.save(path, X), 1)
        t_read, _ = best_of(lambda: np.load(path), 3)
    print(
        f"on-disk cache of one 512x512 aug matrix ({X.nbytes / 1e6:.0f} MB): write {t_write:.3f} s, re-read "
        f"{t_read:.3f} s (page cache, best case) vs recompute {t_feat:.3f} s "
        f"-> re-read/recompute {t_read / t_feat:.2f}, write+read/recompute {(t_write + t_read) / t_feat:.2f}"
    )

    n = 20_000 if args.quick else 100_000
    print(f"\n== fit on {n} pixels x {len(names)} features, {k} classes, n_jobs={args.n_jobs} ==")
    chips = [synthetic_chip(rng, 512, k) for _ in range(2)]
    rows = [F.feature_matrix(c, "aug")[0] for c, _ in chips]
    Xall = np.concatenate(rows)
    yall = np.concatenate([lab.ravel() for _, lab in chips])
    pick = rng.choice(len(yall), n, replace=False)
    Xtr, ytr = np.ascontiguousarray(Xall[pick]), yall[pick]
    del Xall, rows
    big = classical.LGBM_GRID[-1]
    params = classical._lgb_params(k, big, 0, args.n_jobs)
    t0 = time.perf_counter()
    booster = lgb.train(params, lgb.Dataset(Xtr, ytr), num_boost_round=args.rounds)
    t_lgb = (time.perf_counter() - t0) * 100_000 / n
    rf_params = {**classical.RF_FIXED, **classical.RF_GRID[0]}
    t0 = time.perf_counter()
    rf = RandomForestClassifier(**rf_params, n_jobs=args.n_jobs, random_state=0).fit(Xtr, ytr)
    t_rf = (time.perf_counter() - t0) * 100_000 / n
    print(f"LightGBM ({args.rounds} rounds, {big}): {t_lgb:.1f} s per 100 k pixels")
    print(f"RandomForest ({rf_params}): {t_rf:.1f} s per 100 k pixels")
    print(f"LightGBM / RF fit time: {t_lgb / t_rf:.2f}")

    print("\n== predict a full 512x512 chip, all features (features included) ==")
    c, _ = synthetic_chip(rng, 512, k)
    for label, predict in (
        ("LightGBM", lambda X: booster.predict(X, num_threads=args.n_jobs).argmax(1)),
        ("RandomForest", rf.predict),
    ):
        t, _ = best_of(lambda predict=predict: predict(F.feature_matrix(c, "aug")[0]), 1)
        print(f"{label}: {t:.2f} s (goal <= 3 s: {t / 3:.2f}x the limit)")
    print(f"model sizes: LightGBM {len(booster.model_to_string()) / 1e6:.1f} MB", end=", ")
    import pickle

    print(f"RF {len(pickle.dumps(rf)) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

"""Speed of the classical pipeline: features, fitting, full-chip prediction (issue 5 goals).

Prints, with ratios to the goals:

* feature extraction throughput of the ``aug`` set (goal >= 20 M pixel-features/s), and what an on-disk feature
  cache would cost (write + re-read of one chip's matrix) against recomputing it;
* LightGBM and RandomForest fit time per 100 k training pixels at the default feature count (the ``aug`` set of a
  single-date chip, 51 features) and their ratio;
* prediction time for one full chip with all features, features included (goal <= 3 s), in the shapes of the
  real datasets (512 x 512 binary; 224 x 224, 3 dates, 13 classes) and a 512 x 512 multi-class reference.

Data are synthetic (class-mean spectra in blocks plus noise; labels learnable from spectra), so only the timings
mean anything. Run: ``python benchmarks/classical.py [--n-jobs 1] [--classes 8] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import time

os.environ.setdefault(
    "OMP_WAIT_POLICY", "PASSIVE"
)  # as helpers.runs.classical does; must precede the imports below

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402

from helpers import features  # noqa: E402
from helpers.runs import classical  # noqa: E402


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
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} cores (timings scale with it on a shared machine)\n")

    print("== feature extraction (aug set) ==")
    for size, n_times in ((512, 1), (224, 3)):
        a, _ = synthetic_chip(rng, size, k, n_times)
        t, (X, names) = best_of(lambda a=a: features.feature_matrix(a, "aug"))
        rate = X.size / t
        print(
            f"{size}x{size}, {6 * n_times} channels -> {len(names)} features: {t:.3f} s, "
            f"{rate / 1e6:.1f} M pixel-features/s (goal >= 20 M/s: {rate / 20e6:.2f}x the goal)"
        )
    a, lab = synthetic_chip(rng, 512, k)
    t_feat, (X, names) = best_of(lambda: features.feature_matrix(a, "aug"))
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
    rows = [features.feature_matrix(c, "aug")[0] for c, _ in chips]
    Xall = np.concatenate(rows)
    yall = np.concatenate([lab.ravel() for _, lab in chips])
    pick = rng.choice(len(yall), n, replace=False)
    Xtr, ytr = np.ascontiguousarray(Xall[pick]), yall[pick]
    del Xall, rows
    big = classical.LGBM_GRID[-1]
    params = classical.lgb_params(k, big, 0, args.n_jobs)  # the study's LightGBM settings
    t0 = time.perf_counter()
    booster = lgb.train(params, lgb.Dataset(Xtr, ytr), num_boost_round=args.rounds)
    t_lgb = (time.perf_counter() - t0) * 100_000 / n
    rf_params = {**classical.RF_FIXED, **classical.RF_GRID[0]}
    t0 = time.perf_counter()
    rf = RandomForestClassifier(**rf_params, n_jobs=args.n_jobs, random_state=0).fit(Xtr, ytr)
    t_rf = (time.perf_counter() - t0) * 100_000 / n
    trees = args.rounds * (1 if k == 2 else k)
    print(f"LightGBM ({args.rounds} rounds = {trees} trees, {big}): {t_lgb:.1f} s per 100 k pixels")
    print(f"RandomForest ({rf_params}): {t_rf:.1f} s per 100 k pixels")
    print(f"LightGBM / RF fit time: {t_lgb / t_rf:.2f}")

    print(
        f"model sizes: LightGBM {len(booster.model_to_string()) / 1e6:.1f} MB, RF {len(pickle.dumps(rf)) / 1e6:.1f} MB"
    )

    print("\n== predict one full chip, all (aug) features, features included; models fit on 20 k pixels ==")
    print("(LightGBM at its worst case of max_rounds; early stopping usually stops sooner)")
    rounds = classical.LGBM_FIXED["max_rounds"]
    scenarios = [
        ("512x512, 1 date, 2 classes (burn scars / Sen1Floods11 shape)", 512, 1, 2),
        ("224x224, 3 dates, 13 classes (multi-temporal crop shape)", 224, 3, 13),
        (f"512x512, 1 date, {k} classes (reference)", 512, 1, k),
    ]
    for label, size, n_times, n_classes in scenarios:
        chip, lab = synthetic_chip(rng, size, n_classes, n_times)
        Xc, _ = features.feature_matrix(chip, "aug")
        pick = rng.choice(len(Xc), min(20_000, len(Xc)), replace=False)
        p = classical.lgb_params(n_classes, classical.LGBM_GRID[0], 0, args.n_jobs)
        b = lgb.train(p, lgb.Dataset(Xc[pick], lab.ravel()[pick]), num_boost_round=rounds)
        r = RandomForestClassifier(**rf_params, n_jobs=args.n_jobs, random_state=0).fit(
            Xc[pick], lab.ravel()[pick]
        )
        model = {
            "LightGBM": classical._Model("lgbm", b, p, rounds),
            "RandomForest": classical._Model("rf", r, {}),
        }
        print(label)
        for name, m in model.items():
            t, _ = best_of(
                lambda m=m, c=chip: m.predict(features.feature_matrix(c, "aug")[0], args.n_jobs), 1
            )
            print(f"  {name}: {t:.2f} s (goal <= 3 s: {t / 3:.2f}x the limit)")


if __name__ == "__main__":
    main()

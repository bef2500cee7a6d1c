"""Speed of the simulated-data generator (issue 4): default-size generation of every task must take <= 60 s.

Generates every default dataset of the study (sim-crop, sim-burn, sim-flood, sim-texture at the five default knobs,
and indian-pines-hls) into a temporary folder, from scratch, and prints per dataset the wall time, chips per second
and megapixels per second (pixels x dates), then the total against the 60-s goal as a ratio (< 1 is within the
goal). `--size quick` times the test-suite size instead; `--keep DIR` writes to DIR and keeps the data.

Run: `python benchmarks/simulate.py [--size default] [--keep DIR]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from helpers.data import indian_pines, simulate

GOAL_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="default", choices=["quick", "default", "paper"])
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    names = [
        "sim-crop",
        "sim-burn",
        "sim-flood",
        *[f"sim-texture-{k:g}" for k in simulate.TEXTURE_DEFAULT_KNOBS],
    ]
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        total = 0.0
        print(f"{'dataset':18s} {'chips':>6s} {'seconds':>8s} {'chips/s':>8s} {'Mpx/s':>7s}")
        for name in names:
            family, _ = simulate.parse_name(name)
            layout = {"sim-crop": "crop", "sim-texture": "texture", "sim-burn": "burn_scars", "sim-flood": "sen1floods11"}[family]  # fmt: skip
            c = simulate.SIZES[layout][args.size]
            n_chips = c["train"] + c["test"] + (c["val"] if layout == "sen1floods11" else 0)
            n_times = 3 if family == "sim-crop" else 1
            t0 = time.perf_counter()
            simulate.generate(name, base / name, size=args.size, overwrite=True)
            dt = time.perf_counter() - t0
            total += dt
            mpx = n_chips * c["chip"] ** 2 * n_times / 1e6
            print(f"{name:18s} {n_chips:6d} {dt:8.2f} {n_chips / dt:8.1f} {mpx / dt:7.2f}")
        t0 = time.perf_counter()
        indian_pines.generate(base / "indian-pines-hls", overwrite=True)
        dt = time.perf_counter() - t0
        total += dt
        print(f"{'indian-pines-hls':18s} {22:6d} {dt:8.2f} {22 / dt:8.1f} {22 * 32 * 32 / 1e6 / dt:7.2f}")
    print(
        f"total {total:.1f} s for size {args.size!r}; goal <= {GOAL_S:.0f} s (default size): ratio {total / GOAL_S:.2f}"
    )


if __name__ == "__main__":
    main()

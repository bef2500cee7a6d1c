"""Measure the real HLS Burn Scars masks and check the procedural burn-shape generator against them.

Run: `python scripts/calibrate_burn_shapes.py [--masks ../shared/data/hls_burn_scars_masks] [--n 80]`.

It prints (1) the quantiles of the shape statistics of the real masks (`helpers.data.sim_burn.burn_shape_stats`:
burned fraction, aspect, compactness, edges per sqrt(area)) and the share of masks whose burn is one 8-connected
patch - these are the numbers carried into `BURN_REAL_STATS` / `BURN_REAL_SINGLE_PATCH` of `helpers/data/simulate.py`
(the masks themselves are never committed) - and (2) the same statistics for shapes drawn with the current
`BURN_SHAPE_PARAMS` at the paper (512) and default (128) chip sizes, so a parameter change can be judged against
the real distribution. The parameters in the code were chosen by hand from a few such runs (matching the medians
of aspect, compactness and edge density).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio

from helpers.data.sim_burn import BURN_Q, BURN_SHAPE_PARAMS, burn_shape, burn_shape_stats
from helpers.data.sim_fields import seeded_rng

STATS = ("fraction", "aspect", "compactness", "edge_per_sqrt_area")


def real_stats(masks_dir: Path) -> dict[str, np.ndarray]:
    """Shape statistics of every real mask in the folder."""
    files = sorted(masks_dir.glob("*.mask.tif"))
    if not files:
        raise FileNotFoundError(f"no *.mask.tif in {masks_dir}")
    rows = []
    for f in files:
        with rasterio.open(f) as src:
            rows.append(burn_shape_stats(src.read(1)))
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def generated_stats(size: int, n: int, seed: int = 0, params: dict | None = None) -> dict[str, np.ndarray]:
    """Shape statistics of `n` procedural shapes at chip size `size`."""
    rows = [burn_shape_stats(burn_shape(size, seeded_rng(seed, "burn-calibration", size, i), params).astype(np.int16)) for i in range(n)]  # fmt: skip
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def _fmt(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{q:.4g}" for q in np.nanquantile(v, BURN_Q)) + ")"


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--masks", type=Path, default=here.parent / "shared" / "data" / "hls_burn_scars_masks"
    )
    parser.add_argument("--n", type=int, default=80, help="procedural shapes per chip size")
    args = parser.parse_args()
    real = real_stats(args.masks)
    print(f"real masks: {len(real['fraction'])}; quantiles at {BURN_Q}")
    for k in STATS:
        print(f'    "{k}": {_fmt(real[k])},')
    print(f"single-patch share: {np.mean(real['patches'] == 1):.3f}")
    print(f"generator parameters: {BURN_SHAPE_PARAMS}")
    for size in (512, 128):
        gen = generated_stats(size, args.n)
        print(f"generated at {size}: single-patch share {np.mean(gen['patches'] == 1):.3f}")
        for k in STATS:
            r25, r50, r75 = np.nanquantile(real[k], [0.25, 0.5, 0.75])
            g25, g50, g75 = np.nanquantile(gen[k], [0.25, 0.5, 0.75])
            print(
                f"  {k:20s} real q25/50/75 {r25:7.3f} {r50:7.3f} {r75:7.3f} | generated {g25:7.3f} {g50:7.3f} {g75:7.3f}"
            )


if __name__ == "__main__":
    main()

"""Seeded generators of tiny datasets in each real on-disk layout (TorchGeo-style fake data).

Run ``python tests/data/make_fixtures.py OUT_DIR`` to write all three; tests call :func:`make_all` into a temporary
folder, so no binary fixture is committed and the bytes are always those of the current generator. Values are
random but shaped like the originals: dtypes, band counts, nodata conventions, label codes, CRS and 30 m transforms.
The labels depend on the spectra (a bright NIR band means class 1 ...) so that a model can learn something.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

SIZE = 32
CRS_UTM = "EPSG:32610"
CRS_WGS84 = "EPSG:4326"


def _write(path: Path, data: np.ndarray, crs: str, transform, nodata=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = data if data.ndim == 3 else data[None]
    profile = dict(
        driver="GTiff",
        height=data.shape[1],
        width=data.shape[2],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs=crs,
        transform=transform,
    )
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _blobs(rng: np.random.Generator, size: int, n_classes: int) -> np.ndarray:
    """Piecewise-constant label map: a coarse random grid upsampled, so classes form patches like fields."""
    coarse = rng.integers(0, n_classes, size=(size // 8, size // 8))
    return np.kron(coarse, np.ones((8, 8), dtype=np.int64))


def _spectra(rng: np.random.Generator, labels: np.ndarray, n_bands: int, n_classes: int) -> np.ndarray:
    """Reflectance whose per-class means differ, with noise: learnable but not trivial."""
    means = rng.uniform(0.03, 0.45, size=(n_classes, n_bands))
    x = means[labels].transpose(2, 0, 1) + rng.normal(0, 0.02, size=(n_bands, *labels.shape))
    return np.clip(x, 0.001, 1.2).astype(np.float32)


def make_crop(root: Path, seed: int = 0, n_train: int = 6, n_test: int = 3) -> Path:
    """Crop layout: 18-band int16 (x1e4) merged chips, uint8 masks 0..13, two split lists."""
    rng = np.random.default_rng(seed)
    ids = {
        "training": [f"chip_{i:03d}_{seed:03d}" for i in range(n_train)],
        "validation": [f"chip_{100 + i:03d}_{seed:03d}" for i in range(n_test)],
    }
    for split, chips in ids.items():
        for k, chip in enumerate(chips):
            lab = _blobs(rng, SIZE, 13)
            x = np.concatenate([_spectra(rng, lab, 6, 13) for _ in range(3)])
            mask = (lab + 1).astype(np.uint8)
            mask[:2, :] = 0  # a no-data strip, as at real chip edges
            tr = from_origin(500000 + 1000 * k, 4200000, 30, 30)
            _write(
                root / f"{split}_chips" / f"{chip}_merged.tif",
                np.round(x * 1e4).astype(np.int16),
                CRS_UTM,
                tr,
            )
            _write(root / f"{split}_chips" / f"{chip}.mask.tif", mask, CRS_UTM, tr)
    (root / "training_data.txt").write_text("\n".join(ids["training"]) + "\n")
    (root / "validation_data.txt").write_text("\n".join(ids["validation"]) + "\n")
    return root


def make_burn_scars(root: Path, seed: int = 0, n_train: int = 6, n_test: int = 3) -> Path:
    """Burn-scar layout: 6-band float32 reflectance, int16 masks 1/0/-1 that declare nodata -1000."""
    rng = np.random.default_rng(seed)
    for split, n in (("training", n_train), ("validation", n_test)):
        for i in range(n):
            stem = f"subsetted_512x512_HLS.S30.T10S{chr(65 + i)}H.{2018 + seed}{100 + i:03d}.v1.4"
            lab = _blobs(rng, SIZE, 2)
            x = _spectra(rng, lab, 6, 2)
            mask = lab.astype(np.int16)
            mask[-1, :4] = -1
            tr = from_origin(600000 + 1000 * i, 4300000, 30, 30)
            _write(root / split / f"{stem}_merged.tif", x, CRS_UTM, tr)
            _write(root / split / f"{stem}.mask.tif", mask, CRS_UTM, tr, nodata=-1000)
    return root


def make_sen1floods11(root: Path, seed: int = 0, counts=(6, 2, 3, 1)) -> Path:
    """Sen1Floods11 HandLabeled layout: 13-band int16 S2 with nodata 0, int16 labels, 2-band S1, four split lists."""
    rng = np.random.default_rng(seed)
    events = ["Ghana", "India", "Spain", "Bolivia"]
    lists = {}
    for split, n, event in zip(("train", "valid", "test", "bolivia"), counts, events, strict=True):
        lists[split] = [f"{event}_{seed}{i:04d}" for i in range(n)]
        for i, chip in enumerate(lists[split]):
            lab = _blobs(rng, SIZE, 2)
            x = _spectra(rng, lab, 13, 2)
            s2 = np.round(x * 1e4).astype(np.int16)
            s2[:, 0, :3] = 0  # no-data corner
            label = lab.astype(np.int16)
            label[5, 5:9] = -1
            tr = from_origin(-0.78 + 0.01 * i, 38.12, 8.983e-05, 8.983e-05)
            _write(root / "S2Hand" / f"{chip}_S2Hand.tif", s2, CRS_WGS84, tr, nodata=0)
            _write(
                root / "S1Hand" / f"{chip}_S1Hand.tif",
                rng.normal(-12, 4, (2, SIZE, SIZE)).astype(np.float32),
                CRS_WGS84,
                tr,
            )
            _write(root / "LabelHand" / f"{chip}_LabelHand.tif", label, CRS_WGS84, tr)
    for split, chips in lists.items():
        text = "".join(f"{c}_S1Hand.tif,{c}_LabelHand.tif\n" for c in chips)
        (root / f"flood_{split}_data.csv").write_text(text)
    return root


def make_all(out: Path, seed: int = 0) -> dict[str, Path]:
    """All three layouts under ``out``; returns dataset name → root."""
    out = Path(out)
    return {
        "crop": make_crop(out / "crop", seed),
        "burn_scars": make_burn_scars(out / "burn_scars", seed),
        "sen1floods11": make_sen1floods11(out / "sen1floods11", seed),
    }


if __name__ == "__main__":
    print(make_all(Path(sys.argv[1] if len(sys.argv) > 1 else "fixtures")))

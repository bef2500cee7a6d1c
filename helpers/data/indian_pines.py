"""The real offline task `indian-pines-hls`: the AVIRIS Indian Pines scene, band-integrated to the six HLS bands.

Why: the study's default data is simulated; one real labelled scene that installs with a PyPI package (tensorly
ships it) keeps the default chain honest about real spectra, real class confusions and real spatial structure.

Source: AVIRIS, 12 June 1992, Indian Pine Test Site 3 (Purdue Agronomy farm, Tippecanoe County, Indiana), 145 x 145
pixels of 20 m, 16 labelled crop/land classes (10,249 pixels), the "corrected" 200-band version (water-absorption
channels removed). Baumgardner, Biehl & Landgrebe (2015), Purdue University Research Repository,
doi:10.4231/R7RX991C; licence CC BY 3.0. Loaded with `tensorly.datasets.load_indian_pines()` (tensorly, BSD-3).

Processing (all documented in `helpers/data/DATA_CARD.md` too):
1. Wavelengths: tensorly's list of the 200 channel centres, sorted (the spectrometers overlap near 690 and 1275 nm).
   Two entries of that list are out of sequence (2260.22 and 2270.15 nm between 2202.30 and 2232.07 nm, where the
   channel spacing is ~9.93 nm); they are replaced by the evenly spaced 2212.22 and 2222.15 nm. The removed
   water-absorption regions show as gaps at 1352.7-1422.3 nm and 1819.1-1953.3 nm, and the list ends at 2499 nm;
   no HLS band falls in a gap.
2. Band integration with the real Sentinel-2A MSI responses (the same matrix as the simulator,
   `helpers.data.spectral.band_integration_matrix`) to B02, B03, B04, B8A, B11, B12.
3. Radiance-like values to reflectance: a two-target **empirical line** per band (Smith & Milton 1999):
   target 1 = the mean of the labelled Woods pixels, matched to the earthlib PROSAIL canopy at LAI 5;
   target 2 = the mean of the 2 % least vegetated pixels of the scene (lowest NDVI of the integrated values),
   matched to the earthlib medium-brightness soil. Gain and offset follow per band. With the dark-soil tercile as
   target 2 the fitted offsets turn negative in the visible (an unphysical path radiance), which is why the medium
   soil is used. Absolute reflectance is therefore approximate (think +-0.05); relative spectra are kept.
4. Spatially disjoint blocks: the scene is padded to 160 x 160 (padding = nodata, label 0) and cut into 25 blocks of
   32 x 32; each block is one chip. Blocks are assigned to train / val / test by a seeded search that keeps the
   labelled-pixel shares near 60 / 15 / 25 % and as many classes as possible present in train and test.
   Random pixel splits leak through neighbouring pixels; `split_leakage_demo` shows how much.
Written in the crop layout with T = 1 (`training_chips/`, `validation_chips/` = test, `val_data.txt`), int16
reflectance x 1e4, 20-m pixels, `"simulated": false`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import rasterio.transform

from helpers.data import io, splits
from helpers.data.sim_fields import to_int16
from helpers.data.spectral import HLS_BANDS, band_integration_matrix, load_spectra, material, vegetation

NAME = "indian-pines-hls"
VERSION = "1.0"
CLASSES = (
    "alfalfa", "corn_notill", "corn_mintill", "corn", "grass_pasture", "grass_trees", "grass_pasture_mowed",
    "hay_windrowed", "oats", "soybean_notill", "soybean_mintill", "soybean_clean", "wheat", "woods",
    "buildings_grass_trees_drives", "stone_steel_towers",
)  # fmt: skip
BLOCK = 32
PIXEL_SIZE_M = 20.0
FRACTIONS = {"train": 0.60, "val": 0.15, "test": 0.25}
LICENCE = "CC BY 3.0 (Baumgardner, Biehl & Landgrebe 2015, Purdue University Research Repository, doi:10.4231/R7RX991C)"
WOODS = 14
_BAD_WAVELENGTHS = {
    170: 2260.22,
    171: 2270.15,
}  # 0-based positions in tensorly's list, replaced by interpolation


def load_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AVIRIS cube (H, W, 200) float, labels (H, W) int (0 = unlabelled, 1..16), wavelengths (200,) nm (fixed)."""
    import tensorly.datasets

    bunch = tensorly.datasets.load_indian_pines()
    cube = np.asarray(bunch.tensor, dtype=np.float64)
    labels = np.asarray(bunch.ticks[0]).astype(np.int64)
    wl = np.asarray(bunch.ticks[1], dtype=np.float64)
    if cube.shape != (145, 145, 200) or wl.size != 200:
        raise ValueError(
            f"unexpected Indian Pines shapes from tensorly: cube {cube.shape}, {wl.size} wavelengths"
        )
    for i, bad in _BAD_WAVELENGTHS.items():
        if abs(wl[i] - bad) > 0.01:
            raise ValueError(f"tensorly wavelength list changed at position {i}: {wl[i]} (expected {bad})")
    lo, hi = wl[169], wl[172]
    wl[170], wl[171] = lo + (hi - lo) / 3, lo + 2 * (hi - lo) / 3
    return cube, labels, wl


def integrate_to_hls(cube: np.ndarray, wavelength_nm: np.ndarray) -> np.ndarray:
    """Band-average every pixel's spectrum under the Sentinel-2A responses of the six HLS bands: (H, W, 6)."""
    order = np.argsort(wavelength_nm)
    s = load_spectra()
    m = band_integration_matrix(wavelength_nm[order], s["srf_wavelength_nm"], s["srf_s2a"])
    return cube[..., order] @ m.T


def empirical_line(values: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band gain and offset of the two-target empirical line (see the module docstring).

    Args:
        values: (H, W, 6) band-integrated radiance-like values.
        labels: (H, W) class labels.

    Returns:
        (gain, offset), each (6,), with reflectance = (values - offset) / gain.
    """
    woods = values[labels == WOODS].mean(axis=0)
    ndvi = (values[..., 3] - values[..., 2]) / (values[..., 3] + values[..., 2])
    soil = values[ndvi <= np.quantile(ndvi, 0.02)].mean(axis=0)
    ref_woods = vegetation(5.0)[0]
    ref_soil = material("soil_medium")[0]
    gain = (woods - soil) / (ref_woods - ref_soil)
    offset = soil - gain * ref_soil
    return gain, offset


def reflectance(cube: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The scene as HLS-band reflectance (H, W, 6), its labels, and the calibration used."""
    if cube is None:
        cube, labels, wl = load_scene()
    else:  # pragma: no cover - alternative cubes are not used in the study
        raise ValueError("pass no cube: the scene is loaded from tensorly")
    values = integrate_to_hls(cube, wl)
    gain, offset = empirical_line(values, labels)
    refl = (values - offset) / gain
    return refl, labels, {"gain": gain.tolist(), "offset": offset.tolist()}


def _cached(root: Path, key: dict, identity: tuple[str, ...]) -> bool:
    """Whether ``root`` already holds what ``key`` describes, every file at its recorded size (then nothing is written).

    Raises:
        FileExistsError: The folder's manifest is of another dataset (its ``identity`` fields differ): never
            overwritten without ``overwrite=True``.
    """
    manifest = root / "manifest.json"
    if not manifest.exists():
        return False
    old = json.loads(manifest.read_text())
    if any(old.get(k) != key[k] for k in identity):
        raise FileExistsError(f"{root} holds {old.get('name')} (seed {old.get('seed')}); pass overwrite=True")
    return all(old.get(k) == v for k, v in key.items()) and all(
        (root / rel).exists() and (root / rel).stat().st_size == info["bytes"]
        for rel, info in old["files"].items()
    )


def assign_blocks(labels: np.ndarray, seed: int = 0, tries: int = 4000) -> dict[tuple[int, int], str]:
    """Assign the 32 x 32 blocks that hold labelled pixels to train/val/test (seeded search, deterministic).

    The search of :func:`helpers.data.splits.assign_blocks` on the scene's labels (0 = unlabelled), towards
    :data:`FRACTIONS`.
    """
    fractions = tuple(FRACTIONS[s] for s in splits.SPLITS)
    return splits.assign_blocks(labels - 1, len(CLASSES), BLOCK, fractions, seed=seed, tries=tries)


def chip_id(by: int, bx: int) -> str:
    """Chip id of a block, in the crop dataset's `chip_<row>_<col>` form."""
    return f"chip_{by:03d}_{bx:03d}"


def generate(root: str | Path, size: str = "default", seed: int = 0, overwrite: bool = False) -> Path:
    """Write `indian-pines-hls` in the crop layout (T = 1), cached by a manifest like `helpers.data.simulate.generate`.

    Args:
        root: output folder.
        size: accepted for symmetry with the simulator; the scene has one size (`quick`, `default` and `paper`
            all write the same 25 blocks).
        seed: seed of the block assignment.
        overwrite: rewrite even when the manifest matches.

    Returns:
        the dataset root.
    """
    if size not in ("quick", "default", "paper"):
        raise ValueError(f"unknown size {size!r}; use quick, default or paper")
    root = Path(root)
    key = {"name": NAME, "seed": seed, "generator_version": VERSION}
    if not overwrite and _cached(root, key, identity=tuple(key)):
        return root
    refl, labels, calib = reflectance()
    nby, nbx = splits.block_grid(labels.shape, BLOCK)
    ph, pw = nby * BLOCK, nbx * BLOCK
    img = np.full((6, ph, pw), -9999, dtype=np.int16)
    img[:, : labels.shape[0], : labels.shape[1]] = to_int16(refl.transpose(2, 0, 1))
    lab = np.zeros((ph, pw), dtype=np.uint8)
    lab[: labels.shape[0], : labels.shape[1]] = labels
    assignment = assign_blocks(labels, seed)
    ids = {"train": [], "val": [], "test": []}
    tags = {"DESCRIPTION": "REAL data: AVIRIS Indian Pines 1992 band-integrated to HLS bands (empirical-line reflectance x 1e4); " + LICENCE}  # fmt: skip
    for (by, bx), split in sorted(assignment.items()):
        cid = chip_id(by, bx)
        ids[split].append(cid)
        folder = "validation_chips" if split == "test" else "training_chips"
        sl = (slice(by * BLOCK, (by + 1) * BLOCK), slice(bx * BLOCK, (bx + 1) * BLOCK))
        # a fake-but-valid UTM 16N placement (the real scene is near 40.4 N, 87.0 W); blocks keep their offsets
        origin = (500000.0 + bx * BLOCK * PIXEL_SIZE_M, 4480000.0 - by * BLOCK * PIXEL_SIZE_M)
        io.write_grid_tif(root / folder / f"{cid}_merged.tif", img[(slice(None), *sl)], "EPSG:32616", origin, list(HLS_BANDS), -9999, tags, PIXEL_SIZE_M, simulated=False)  # fmt: skip
        io.write_grid_tif(root / folder / f"{cid}.mask.tif", lab[sl], "EPSG:32616", origin, ["label"], None, {**tags, "DESCRIPTION": "REAL Indian Pines labels: 0 unlabelled/padding, classes 1..16"}, PIXEL_SIZE_M, simulated=False)  # fmt: skip
    io.write_text(root / "training_data.txt", "\n".join(ids["train"] + ids["val"]) + "\n")
    io.write_text(root / "val_data.txt", "\n".join(ids["val"]) + "\n")
    io.write_text(root / "validation_data.txt", "\n".join(ids["test"]) + "\n")
    counts = {s: int(sum(np.count_nonzero(lab[by * BLOCK : (by + 1) * BLOCK, bx * BLOCK : (bx + 1) * BLOCK]) for (by, bx), sp in assignment.items() if sp == s)) for s in ids}  # fmt: skip
    card = {
        "name": NAME,
        "simulated": False,
        "layout": "crop",
        "task": "landcover",
        "classes": list(CLASSES),
        "n_times": 1,
        "scale": 1e-4,
        "pixel_size_m": PIXEL_SIZE_M,
        "licence": LICENCE,
        "source": "AVIRIS 1992-06-12 Indian Pine Test Site 3, 'corrected' 200 bands, via tensorly.datasets",
        "processing": {
            "bands": list(HLS_BANDS),
            "band_integration": "Sentinel-2A MSI spectral responses (pyrsr), helpers.spectral.band_integration_matrix",  # the card of v1 (bytes kept)
            "reflectance": "two-target empirical line: Woods mean -> PROSAIL LAI 5; 2 % lowest-NDVI pixels -> medium soil",
            "gain": calib["gain"],
            "offset": calib["offset"],
            "blocks": f"{BLOCK} x {BLOCK} px, scene padded to {ph} x {pw} with nodata -9999 / label 0",
            "split_seed": seed,
            "labelled_pixels": counts,
            "version": VERSION,
        },
    }
    io.write_text(root / "dataset.json", json.dumps(card, indent=2, sort_keys=True) + "\n")
    io.write_manifest(root, key)
    return root


#: The scene datasets (issue: the scene protocol): the whole scene is every model's input and the splits are label
#: masks (:mod:`helpers.data.scene`). ``indian-pines-scene`` uses the chip dataset's own 32 px blocks (same seed,
#: same assignment), so the two differ only in what a model sees; ``-random`` is the leaky random-pixel reference;
#: ``-guard`` drops labels within 4 px of another split (a larger guard leaves classes without labels on this
#: 145 px scene: README); ``-trainonly`` hides the other splits' blocks from the training input (the transductive
#: ablation).
SCENE_VARIANTS: dict[str, dict] = {
    "indian-pines-scene": {"split": {"kind": "blocks", "block": BLOCK, "guard": 0}},
    "indian-pines-scene-random": {"split": {"kind": "random"}},
    "indian-pines-scene-guard": {"split": {"kind": "blocks", "block": BLOCK, "guard": 4}},
    "indian-pines-scene-trainonly": {
        "split": {"kind": "blocks", "block": BLOCK, "guard": 0},
        "input": "train-only",
    },
}
SCENE_VERSION = "1.0"


def generate_scene(
    root: str | Path, name: str = "indian-pines-scene", seed: int = 0, overwrite: bool = False
) -> Path:
    """Write one Indian Pines scene dataset (:data:`SCENE_VARIANTS`) in the scene layout, cached by a manifest.

    The same reflectance as `indian-pines-hls` (int16 x 1e4, nodata -9999, a fake-but-valid UTM 16N placement of
    20 m pixels), unpadded, with its label raster (0 = unlabelled, 1..16) and a card naming the split.

    Args:
        root: Output folder.
        name: One of :data:`SCENE_VARIANTS`.
        seed: Seed of the split (the chip dataset's block seed).
        overwrite: Rewrite even when the manifest matches.

    Returns:
        The dataset root.
    """
    from helpers.data.io import write_geotiff

    if name not in SCENE_VARIANTS:
        raise ValueError(f"unknown Indian Pines scene {name!r}; expected one of {sorted(SCENE_VARIANTS)}")
    root = Path(root)
    variant = SCENE_VARIANTS[name]
    key = {"name": name, "seed": seed, "generator_version": SCENE_VERSION, "variant": variant}
    if not overwrite and _cached(root, key, identity=("name", "seed")):
        return root
    refl, labels, calib = reflectance()
    origin = rasterio.transform.from_origin(500000.0, 4480000.0, PIXEL_SIZE_M, PIXEL_SIZE_M)
    real = "REAL data: AVIRIS Indian Pines 1992 band-integrated to HLS bands (empirical-line reflectance x 1e4); "
    write_geotiff(
        root / "scene.tif",
        to_int16(refl.transpose(2, 0, 1)),
        crs="EPSG:32616",
        transform=origin,
        nodata=-9999,
        tags={"DESCRIPTION": real + LICENCE},
        band_descriptions=list(HLS_BANDS),
    )
    write_geotiff(
        root / "labels.tif",
        labels.astype(np.uint8),
        crs="EPSG:32616",
        transform=origin,
        tags={"DESCRIPTION": "REAL Indian Pines labels: 0 unlabelled, classes 1..16"},
    )
    card = {
        "name": name,
        "layout": "scene",
        "task": "landcover",
        "simulated": False,
        "description": f"REAL Indian Pines scene read as a scene (helpers.data.indian_pines.generate_scene, {SCENE_VERSION})",
        "source": "AVIRIS 1992-06-12 Indian Pine Test Site 3, 'corrected' 200 bands, via tensorly.datasets",
        "license": LICENCE,
        "bands": list(HLS_BANDS),
        "classes": list(CLASSES),
        "class_values": list(range(1, len(CLASSES) + 1)),
        "ignore_values": [0],
        "scale": 1e-4,
        "image_nodata": -9999,
        "crs": "EPSG:32616",
        "image": "scene.tif",
        "labels": "labels.tif",
        "split": {**variant["split"], "seed": seed, "fractions": [FRACTIONS[s] for s in splits.SPLITS]},
        "input": variant.get("input", "scene"),
    }
    io.write_text(root / "dataset.json", json.dumps(card, indent=2, sort_keys=True) + "\n")
    io.write_manifest(root, {**key, "calibration": calib})
    return root


def split_leakage_demo(
    seed: int = 0, n_estimators: int = 100, neighbourhood: bool = False
) -> dict[str, dict]:
    """Score the same random forest on a random-pixel split and on the spatially disjoint block split.

    Why: neighbouring pixels of one field are near copies, so a random pixel split puts near-duplicates of test
    pixels into training and inflates scores; the block split (what `generate` writes) does not. Both splits use
    the same number of training pixels (all labelled pixels of the train blocks) and test on the rest / the test
    blocks.

    Args:
        seed: seed of the block assignment, the pixel sampling and the forest.
        n_estimators: trees.
        neighbourhood: add 5 x 5 mean features (shows that context features leak even more on random splits).

    Returns:
        {"random_pixel": scores, "block": scores} with `helpers.metrics.scores` keys (oa, miou_macro, ...) plus
        n_train and n_test.
    """
    from scipy import ndimage as ndi
    from sklearn.ensemble import RandomForestClassifier

    from helpers.metrics import confusion_matrix, scores

    refl, labels, _ = reflectance()
    feats = refl.reshape(-1, 6)
    if neighbourhood:
        mean5 = ndi.uniform_filter(refl, size=(5, 5, 1), mode="reflect").reshape(-1, 6)
        feats = np.concatenate([feats, mean5], axis=1)
    y = labels.ravel()
    assignment = assign_blocks(labels, seed)
    block_split = np.full(labels.shape, "", dtype=object)
    for (by, bx), split in assignment.items():
        block_split[by * BLOCK : (by + 1) * BLOCK, bx * BLOCK : (bx + 1) * BLOCK] = split
    block_split = block_split.ravel()
    labelled = y > 0
    train_b = labelled & (block_split == "train")
    test_b = labelled & (block_split == "test")
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(labelled)
    pick = rng.choice(idx, size=int(train_b.sum()), replace=False)
    train_r = np.zeros_like(labelled)
    train_r[pick] = True
    test_r = labelled & ~train_r
    out = {}
    for name, tr, te in (("random_pixel", train_r, test_r), ("block", train_b, test_b)):
        rf = RandomForestClassifier(n_estimators, n_jobs=min(2, os.cpu_count() or 1), random_state=seed)
        rf.fit(feats[tr], y[tr])
        cm = confusion_matrix(y[te] - 1, rf.predict(feats[te]) - 1, num_classes=len(CLASSES))
        out[name] = {**scores(cm), "n_train": int(tr.sum()), "n_test": int(te.sum())}
    return out


def main(argv: list[str] | None = None) -> None:
    """CLI: `python -m helpers.data.indian_pines --to DIR [--seed 0] [--overwrite]`."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m helpers.data.indian_pines", description="Write indian-pines-hls."
    )
    parser.add_argument("--to", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    print(generate(args.to, seed=args.seed, overwrite=args.overwrite))


if __name__ == "__main__":
    main()

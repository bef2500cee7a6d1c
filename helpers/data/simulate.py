"""Seeded simulator of HLS-like labelled chips (SIMULATED data), written in the original datasets' layouts.

Why: the original datasets (tens of GB behind a model hub) cannot be fetched here, yet a user must be able to run
the whole study in minutes; and a simulator with a *texture knob* turns the paper's explanation (foundation models
pay off only when labels depend on spatial context) into a controlled experiment. Spectra are not invented: every
class is a mixture of real library materials band-integrated with the real Sentinel-2A responses
(`helpers/data/spectra_v1.npz`, built by `scripts/build_spectra.py`), and burn-scar shapes follow statistics
measured on the real HLS Burn Scars masks (`scripts/calibrate_burn_shapes.py`). Everything this module writes is
labelled simulated: a `SIMULATED=yes` tag in every GeoTIFF, `"simulated": true` in `dataset.json`.

Tasks (`generate(name, root, size, seed)`):
- `sim-crop`: 3 dates x 6 bands, field parcels (anisotropic Voronoi cells), the 13 classes of the real
  multi-temporal crop dataset carried by spectral-temporal trajectories (crop phenology as PROSAIL LAI per date
  over soil and residue), spatially correlated within-field variability, sensor-PSF mixing at parcel edges.
- `sim-burn`: one date, one burn scar per chip from a procedural shape generator calibrated on the real masks,
  char/ash mixed with the vegetation by a severity field, confusers (hill shade, dark soil, asphalt, water).
- `sim-flood`: one date, water (turbid flood and clearer channel water from a bio-optical model) over mixed land
  cover on a synthetic floodplain, clouds and cloud shadows; spectrally easy.
- `sim-texture-<knob>`: six classes in three pairs; each class is a per-pixel mixture of two materials whose
  mixing fraction has the same uniform marginal in every class but a class-specific spatial pattern (stripes,
  blobs, lattice, speckle, ...). At knob 0 every class has its own materials; at knob 1 the two classes of a pair
  have identical per-pixel spectral distributions and differ only in spatial pattern. The Bayes-optimal per-pixel
  accuracy of each knob value is computed from the generative model (`texture_bayes_accuracy`).

Layouts (so `helpers.data.datasets` reads simulated and real data through one path): crop layout for sim-crop and
sim-texture, HLS Burn Scars layout for sim-burn, Sen1Floods11 hand-labelled layout for sim-flood. In every layout
the train, validation and test chips share one region, as a random split of real chips does: all chips lie on one
grid, interleaved by a seeded permutation (:func:`grid_positions`), so a model that is given each chip's location
(Presto) sees the same locations in every split (:func:`split_location_shift` measures it). See
`helpers/data/DATA_CARD.md` for the generative process, parameters and licences.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from helpers.data import io, sim_burn, sim_fields, sim_flood, sim_texture
from helpers.data.spectral import HLS_BANDS, material

#: 1.1: train, validation and test chips share one region (a seeded interleaving of one grid of positions, see
#: :func:`grid_positions`); 1.0 laid every test chip ~400 km south of the training chips (and sim-flood's splits one
#: after another), a covariate shift that only a location-aware encoder (Presto) saw. Pixels and labels of 1.0 are
#: unchanged; georeference, sim-burn's UTM zone and the tags differ, so every file's bytes (and every run) change.
GENERATOR_VERSION = "1.1"
#: The generator's name as written into every file's tags and card: the name of generator version 1.0, kept when
#: the module moved to ``helpers/data/simulate.py`` so that the same data keep the same bytes (and every run on
#: them its run_key). Change it only together with GENERATOR_VERSION.
GENERATOR_NAME = "helpers.simulate"
#: Families whose generator moved on from GENERATOR_VERSION: only their data (and the runs on them) are rebuilt.
#: sim-crop 2.0 (:mod:`helpers.data.sim_crop`: dates, phenology, mixing, label noise); 2.1: the shared interleaved
#: layout of 1.1, each HLS-like tile a block of adjacent chips, and the dates also as ISO dates in the tags.
FAMILY_VERSIONS = {"sim-crop": "2.1"}


def family_version(family: str) -> str:
    """The generator version of one task family (``sim-crop``, ``sim-texture``, ...)."""
    return FAMILY_VERSIONS.get(family, GENERATOR_VERSION)


PIXEL_SIZE_M = 30.0

CROP_CLASSES = (
    "natural_vegetation", "forest", "corn", "soybeans", "wetlands", "developed_barren", "open_water",
    "winter_wheat", "alfalfa", "fallow_idle_cropland", "cotton", "sorghum", "other",
)  # fmt: skip
"""Class names of the real multi-temporal crop dataset, mask codes 1..13 in this order (0 = no data)."""

"""Classes of sim-texture, codes 1..6; pairs (1,2), (3,4), (5,6) merge spectrally as the knob goes to 1."""

BURN_CLASSES = ("not_burned", "burn_scar")
FLOOD_CLASSES = ("not_water", "water")

# chip counts per split and chip size (pixels); "val" for crop layouts is a subset of the training chips listed in
# val_data.txt, for sen1floods11 its own split list; burn scars has no validation list (the loader holds out 10 %).
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "crop": {
        "quick": {"train": 6, "val": 1, "test": 2, "chip": 64},
        "default": {"train": 48, "val": 6, "test": 16, "chip": 128},
        "paper": {"train": 3083, "val": 308, "test": 771, "chip": 224},
    },
    "texture": {
        "quick": {"train": 6, "val": 1, "test": 2, "chip": 64},
        "default": {"train": 24, "val": 4, "test": 8, "chip": 128},
        "paper": {"train": 400, "val": 40, "test": 100, "chip": 224},
    },
    "burn_scars": {
        "quick": {"train": 8, "val": 0, "test": 3, "chip": 64},
        "default": {"train": 40, "val": 0, "test": 16, "chip": 128},
        "paper": {"train": 540, "val": 0, "test": 264, "chip": 512},
    },
    "sen1floods11": {
        "quick": {"train": 6, "val": 2, "test": 2, "chip": 64},
        "default": {"train": 32, "val": 8, "test": 12, "chip": 128},
        "paper": {"train": 252, "val": 89, "test": 90, "chip": 512},
    },
}
TEXTURE_DEFAULT_KNOBS = (0.0, 0.25, 0.5, 0.75, 1.0)

# ---------------------------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------------ random fields


# ------------------------------------------------------------------------------------------- nuisance and sensor


# ------------------------------------------------------------------------------------------------- mixtures


# ------------------------------------------------------------------------------------------------------ texture


def reference_class_means(name: str) -> dict[str, np.ndarray]:
    """Expected class-mean reflectance implied by the spectral library, before nuisance (for notebook 01 plots).

    Args:
        name: `sim-crop` (each value (3, 6): one row per date, at the real tracker's median dates, sub-types
            averaged), `sim-texture-<knob>` ((6,) at the mean mixing
            fraction, partners mixed with their anchor by the knob) or `sim-flood` (water: the turbid/clear mean
            at the mean turbidity; not water: the prior-weighted land-cover mean).

    Returns:
        {class name: mean reflectance in the HLS bands}.
    """
    family, knob = parse_name(name)
    if family == "sim-crop":
        from helpers.data import sim_crop

        return sim_crop.reference_means()
    if family == "sim-texture":
        mats, anchor = sim_texture.texture_class_materials()
        f = 0.5 * sum(sim_texture.TEXTURE_F_RANGE)
        own = [f * m[0] + (1 - f) * m[2] for m in mats]
        return {
            c: (1 - knob) * own[k] + knob * own[anchor[k]] for k, c in enumerate(sim_texture.TEXTURE_CLASSES)
        }
    if family == "sim-flood":
        wt, wc = material("water_turbid")[0], material("water_clear")[0]
        land = np.array([sim_fields.mixture(comps)[0] for comps in sim_flood.FLOOD_LANDCOVER])
        return {"not_water": sim_flood.FLOOD_LANDCOVER_PRIORS @ land, "water": 0.75 * wt + 0.25 * wc}
    raise ValueError(f"no reference class means for {name!r} (burn classes are mixtures of the background)")


# --------------------------------------------------------------------------------------------------------- burn


# -------------------------------------------------------------------------------------------------------- flood


# ------------------------------------------------------------------------------------------------------ writing
def parse_name(name: str) -> tuple[str, float | None]:
    """Split a simulated dataset name into its task family and (for sim-texture) the knob.

    Raises:
        ValueError: for unknown names or a knob outside [0, 1].
    """
    if name in ("sim-crop", "sim-burn", "sim-flood"):
        return name, None
    if name.startswith("sim-texture-"):
        try:
            knob = float(name.removeprefix("sim-texture-"))
        except ValueError:
            raise ValueError(
                f"bad texture knob in {name!r}: expected sim-texture-<number in [0, 1]>"
            ) from None
        if not 0.0 <= knob <= 1.0:
            raise ValueError(f"texture knob of {name!r} must lie in [0, 1]")
        return "sim-texture", knob
    raise ValueError(
        f"unknown simulated dataset {name!r}; known: sim-crop, sim-burn, sim-flood, sim-texture-<knob>"
    )


def _chip_ids_crop(n: int, row0: int) -> list[str]:
    return [f"chip_{row0 + i // 100:03d}_{i % 100:03d}" for i in range(n)]


#: Empty pixels between neighbouring chips of a layout, so that no two chips overlap or touch.
CHIP_GAP_PX = 8
#: Upper-left corner (projected metres) of every layout's grid of chips.
LAYOUT_BASE = (300000.0, 4600000.0)


def grid_positions(slots: np.ndarray, block: int = 1) -> np.ndarray:
    """Grid cell ``(row, col)`` of every chip of a layout from its slot in one seeded permutation of all chips.

    Why: real datasets split one region's chips at random, so a model that is given each chip's location sees the
    same locations in training and test. Every layout therefore puts *all* its chips (train, val and test together)
    on one compact grid, and the split of a chip does not enter its position: only its slot in a seeded permutation
    of all chips does. With ``block > 1`` consecutive slots form blocks (HLS-like tiles of sim-crop) of adjacent
    cells, ``ceil(sqrt(block))`` cells a side, laid row by row; a tile's chips then sit together geographically.

    Args:
        slots: ``(n,)`` a permutation of ``0..n-1``: chip ``j``'s slot.
        block: chips per block (1: every chip is its own block).

    Returns:
        ``(n, 2)`` int64 ``(row, col)`` per chip, all distinct; the grid is about ``sqrt(n)`` cells a side.
    """
    slots = np.asarray(slots, dtype=np.int64)
    n = len(slots)
    if n and not np.array_equal(np.sort(slots), np.arange(n)):
        raise ValueError("slots must be a permutation of 0..n-1")
    side = int(np.ceil(np.sqrt(block)))
    n_blocks = -(-n // block) if n else 0
    per_row = max(1, int(np.ceil(np.sqrt(n_blocks))))
    tile, within = slots // block, slots % block
    row = (tile // per_row) * side + within // side
    col = (tile % per_row) * side + within % side
    return np.stack([row, col], axis=1)


def _grid_origin(
    row: int, col: int, size: int, base: tuple[float, float] = LAYOUT_BASE
) -> tuple[float, float]:
    """Upper-left corner of grid cell ``(row, col)`` for chips of ``size`` pixels, :data:`CHIP_GAP_PX` apart."""
    step = (size + CHIP_GAP_PX) * PIXEL_SIZE_M
    return base[0] + col * step, base[1] - row * step


def _layout_cells(
    seed: int, name: str, size: str, n: int, slots: np.ndarray | None = None, block: int = 1
) -> np.ndarray:
    """Grid cells of a layout's ``n`` chips (train first, then val, then test): one seeded interleaving of all."""
    if slots is None:
        slots = sim_fields.seeded_rng(seed, name, size, "positions").permutation(n)
    return grid_positions(slots, block)


def split_location_shift(latlon_by_split: dict[str, np.ndarray]) -> dict[str, float]:
    """Largest distance (km) between the mean chip centres of any two splits, north-south and east-west apart.

    Why: a location-aware encoder (Presto takes every chip's centre latitude/longitude) must not be able to tell the
    splits apart by where they lie; with splits drawn from one region the split means differ by about a grid step
    or less, while generator 1.0's test chips lay ~400 km south of the training chips. Distances use the local
    equirectangular approximation (111.32 km per degree; east-west scaled by the cosine of the mean latitude).

    Args:
        latlon_by_split: split name -> ``(n, 2)`` chip centres ``(lat, lon)`` in degrees; empty splits are ignored.

    Returns:
        ``{"north_km", "east_km"}``: the largest absolute difference of split means along each axis.
    """
    means = [
        np.asarray(v, dtype=float).reshape(-1, 2).mean(axis=0) for v in latlon_by_split.values() if len(v)
    ]
    if len(means) < 2:
        return {"north_km": 0.0, "east_km": 0.0}
    m = np.array(means)
    km = 111.32
    dlat = m[:, 0][:, None] - m[:, 0][None, :]
    dlon = m[:, 1][:, None] - m[:, 1][None, :]
    coslat = np.cos(np.deg2rad(m[:, 0].mean()))
    return {"north_km": float(np.abs(dlat).max() * km), "east_km": float(np.abs(dlon).max() * km * coslat)}


def grid_step_km(chip_px: int) -> float:
    """Distance (km) between neighbouring chips' corners in every layout: chip side plus the gap."""
    return (chip_px + CHIP_GAP_PX) * PIXEL_SIZE_M / 1000.0


def _dataset_json(name: str, layout: str, task: str, classes: tuple, generator: dict) -> dict:
    return {
        "name": name,
        "simulated": True,
        "layout": layout,
        "task": task,
        "classes": list(classes),
        "n_times": int(generator.get("n_times", 1)),
        "scale": {"crop": 1e-4, "burn_scars": 1.0, "sen1floods11": 1e-4}[layout],
        "generator": generator,
        "description": f"SIMULATED data from {GENERATOR_NAME} (see helpers/data/DATA_CARD.md); not real imagery.",
    }


def _write_crop_layout(
    root: Path,
    name: str,
    chip_fn: Callable[
        [np.random.Generator, str, int], tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]
    ],
    counts: dict[str, int],
    seed: int,
    size: str,
    n_times: int,
    crs: str,
    version: str = GENERATOR_VERSION,
    slots: np.ndarray | None = None,
    block: int = 1,
) -> None:
    """Write chips in the crop layout; ``chip_fn(rng, split, i)`` gives image, mask, true mask (or None), tags.

    Training chips (``val_data.txt`` is a seeded subset of them) and test chips share one grid of positions
    (:func:`grid_positions`): chip ``j`` (training chips first, then test) sits at the cell of ``slots[j]``, by
    default a seeded permutation; sim-crop passes its tile permutation and ``block`` so that tiles are blocks.
    """
    train_ids = _chip_ids_crop(counts["train"], 0)
    test_ids = _chip_ids_crop(counts["test"], 500)
    cells = _layout_cells(seed, name, size, len(train_ids) + len(test_ids), slots, block)
    descr = [f"{b} date{t + 1}" for t in range(n_times) for b in HLS_BANDS]
    tags = {"DESCRIPTION": f"SIMULATED {name} chip ({GENERATOR_NAME} v{version}); reflectance x 1e4"}
    for split, ids, folder, first in (
        ("train", train_ids, "training_chips", 0),
        ("test", test_ids, "validation_chips", len(train_ids)),
    ):
        for i, cid in enumerate(_progress(ids, f"{name} {split}")):
            rng = sim_fields.seeded_rng(seed, name, size, split, i)
            img, mask, truth, extra = chip_fn(rng, split, i)
            origin = _grid_origin(*cells[first + i], counts["chip"])
            io.write_grid_tif(root / folder / f"{cid}_merged.tif", sim_fields.to_int16(img), crs, origin, descr, -9999, {**tags, **extra}, PIXEL_SIZE_M)  # fmt: skip
            io.write_grid_tif(root / folder / f"{cid}.mask.tif", mask, crs, origin, ["label"], None, {**tags, **extra, "DESCRIPTION": f"SIMULATED {name} mask: 0 ignore, classes 1..K"}, PIXEL_SIZE_M)  # fmt: skip
            if truth is not None:
                io.write_grid_tif(root / folder / f"{cid}.truth.tif", truth, crs, origin, ["true label"], None, {**tags, **extra, "DESCRIPTION": f"SIMULATED {name} TRUE labels before label noise: 0 ignore, classes 1..K"}, PIXEL_SIZE_M)  # fmt: skip
    io.write_text(root / "training_data.txt", "\n".join(train_ids) + "\n")
    io.write_text(root / "validation_data.txt", "\n".join(test_ids) + "\n")
    if counts["val"]:
        order = sim_fields.seeded_rng(seed, name, size, "val-split").permutation(len(train_ids))[
            : counts["val"]
        ]
        io.write_text(root / "val_data.txt", "\n".join(sorted(train_ids[j] for j in order)) + "\n")


def _write_sim_crop(root: Path, name: str, counts: dict[str, int], seed: int, size: str) -> dict:
    """Write sim-crop (generator 2.0, :mod:`helpers.data.sim_crop`); returns what the card records of it.

    Chips are grouped into HLS-like tiles of :data:`~helpers.data.sim_crop.CHIPS_PER_TILE` (a seeded shuffle, so
    train and test chips share tiles as in a random split); a tile's chips share their three dates and regional
    shift and sit together, a block of adjacent grid cells (the shuffle is also the chips' places on the layout's
    one grid). The summary holds the dates' statistics, the label noise measured per class over all chips and the
    noise-free ceiling on the test split.
    """
    from helpers.data import sim_crop as _sim_crop

    n_train, n_test = counts["train"], counts["test"]
    n_all = n_train + n_test
    slots = sim_fields.seeded_rng(seed, name, size, "tiles").permutation(
        n_all
    )  # also the chips' places: a tile is a block
    tile_of = slots // _sim_crop.CHIPS_PER_TILE
    n_tiles = int(tile_of.max()) + 1
    tile_rng = [sim_fields.seeded_rng(seed, name, size, "tile", t) for t in range(n_tiles)]
    tile_dates = [tuple(_sim_crop.draw_dates(r)[0]) for r in tile_rng]
    tile_shift = [float(_sim_crop.REGION_SHIFT_SD * r.standard_normal()) for r in tile_rng]
    confusion = np.zeros(
        (len(_sim_crop.CLASSES), len(_sim_crop.CLASSES)), np.int64
    )  # (true, label) over all chips
    # (label, true) over the test chips: the true map scored as a prediction
    test_cm = np.zeros_like(confusion)
    tally = {"mixed": 0.0, "n": 0, "edge_err": 0, "edge": 0, "inner_err": 0, "inner": 0}

    def chip(rng, split, i):
        t = int(tile_of[i if split == "train" else n_train + i])
        c = _sim_crop.simulate_chip(counts["chip"], rng, tile_dates[t], tile_shift[t])
        np.add.at(confusion, (c.truth.ravel() - 1, c.mask.ravel() - 1), 1)
        edge, wrong = _sim_crop.class_edges(c.truth), c.mask != c.truth
        tally["mixed"] += c.mixed
        tally["n"] += 1
        tally["edge_err"] += int((wrong & edge).sum())
        tally["edge"] += int(edge.sum())
        tally["inner_err"] += int((wrong & ~edge).sum())
        tally["inner"] += int((~edge).sum())
        if split == "test":
            test_cm[...] += np.bincount(
                (c.mask.ravel() - 1) * len(_sim_crop.CLASSES) + c.truth.ravel() - 1, minlength=confusion.size
            ).reshape(confusion.shape)
        doy = ",".join(str(d) for d in c.dates)
        iso = ",".join(_sim_crop.iso_date(d) for d in c.dates)
        extra = {"ACQUISITION_DOY": doy, "ACQUISITION_DATES": iso, "TILE": f"T{t:03d}"}
        return c.image, c.mask, c.truth, extra

    _write_crop_layout(
        root,
        name,
        chip,
        counts,
        seed,
        size,
        3,
        "EPSG:32615",
        _sim_crop.VERSION,
        slots,
        _sim_crop.CHIPS_PER_TILE,
    )
    used = sorted({int(tile_of[j]) for j in range(n_all)})
    dates = np.array([tile_dates[t] for t in tile_of])  # per chip
    return _sim_crop.card_facts(len(used), dates, confusion, test_cm, tally)


def _progress(items, desc: str):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False, disable=len(items) < 50)


def _burn_stems(n: int, rng: np.random.Generator, chip: int, used: set, zone: int) -> list[str]:
    letters = "CDEFGHJKLMNPQRSTUVWXYZ"
    stems = []
    while len(stems) < n:
        tile = f"{zone}S{letters[rng.integers(len(letters))]}{letters[rng.integers(len(letters))]}"
        date = f"{int(rng.integers(2018, 2022))}{int(rng.integers(150, 330)):03d}"
        stem = f"subsetted_{chip}x{chip}_HLS.S30.T{tile}.{date}.v1.4"
        if stem not in used:
            used.add(stem)
            stems.append(stem)
    return stems


def _write_burn_layout(
    root: Path, name: str, counts: dict[str, int], seed: int, size: str, masks_dir
) -> None:
    """Write chips in the HLS Burn Scars layout: all chips (training, and test in ``validation/``) on one grid.

    The chips share one UTM zone (drawn once per dataset from the real dataset's zones 10-13, written into the
    stems' tile names and the CRS): chips in different zones but at the same projected corner would lie far apart,
    and a zone drawn per chip would give each split its own spread of longitudes in small datasets.
    """
    used: set = set()
    chip = counts["chip"]
    zone = int(sim_fields.seeded_rng(seed, name, size, "zone").integers(10, 14))
    crs = f"EPSG:{32600 + zone}"
    cells = _layout_cells(seed, name, size, counts["train"] + counts["test"])
    for split, folder, first in (("train", "training", 0), ("test", "validation", counts["train"])):
        stems = _burn_stems(
            counts[split], sim_fields.seeded_rng(seed, name, size, split, "stems"), chip, used, zone
        )
        for i, stem in enumerate(_progress(stems, f"{name} {split}")):
            rng = sim_fields.seeded_rng(seed, name, size, split, i)
            img, mask = sim_burn.simulate_burn_chip(chip, rng, masks_dir=masks_dir)
            origin = _grid_origin(*cells[first + i], chip)
            refl = (sim_fields.to_int16(img).astype(np.float32) / 1e4).astype(np.float32)
            tags = {
                "DESCRIPTION": f"SIMULATED {name} scene ({GENERATOR_NAME} v{GENERATOR_VERSION}); reflectance"
            }
            io.write_grid_tif(
                root / folder / f"{stem}_merged.tif",
                refl,
                crs,
                origin,
                list(HLS_BANDS),
                None,
                tags,
                PIXEL_SIZE_M,
            )
            io.write_grid_tif(root / folder / f"{stem}.mask.tif", mask, crs, origin, ["burn_scar"], None, {**tags, "DESCRIPTION": f"SIMULATED {name} mask: 1 burn scar, 0 not burned, -1 missing"}, PIXEL_SIZE_M)  # fmt: skip


def _write_flood_layout(root: Path, name: str, counts: dict[str, int], seed: int, size: str) -> None:
    """Write chips in the Sen1Floods11 hand-labelled layout; train, val and test interleaved on one grid."""
    chip = counts["chip"]
    rng_ids = sim_fields.seeded_rng(seed, name, size, "ids")
    events = ("SimA", "SimB", "SimC", "SimD", "SimE", "SimF")
    total = counts["train"] + counts["val"] + counts["test"]
    numbers = rng_ids.choice(np.arange(100000, 9999999), size=total, replace=False)
    ids = [f"{events[i % len(events)]}_{int(numbers[i])}" for i in range(total)]
    splits = {
        "train": ids[: counts["train"]],
        "val": ids[counts["train"] : counts["train"] + counts["val"]],
        "test": ids[counts["train"] + counts["val"] :],
    }
    tags = {"DESCRIPTION": f"SIMULATED {name} chip ({GENERATOR_NAME} v{GENERATOR_VERSION})"}
    cells = _layout_cells(seed, name, size, total)  # train, val and test interleaved on one grid
    k = 0
    for split, chip_ids in splits.items():
        for i, cid in enumerate(_progress(chip_ids, f"{name} {split}")):
            rng = sim_fields.seeded_rng(seed, name, size, split, i)
            img, label = sim_flood.simulate_flood_chip(chip, rng)
            origin = _grid_origin(*cells[k], chip)
            k += 1
            s2 = sim_flood.hls_to_s2_13(sim_fields.to_int16(img))
            io.write_grid_tif(root / "S2Hand" / f"{cid}_S2Hand.tif", s2, "EPSG:32630", origin, list(sim_flood.S2_BANDS), 0, {**tags, "DESCRIPTION": tags["DESCRIPTION"] + "; 13 S2 bands x 1e4, non-HLS bands interpolated"}, PIXEL_SIZE_M)  # fmt: skip
            io.write_grid_tif(root / "LabelHand" / f"{cid}_LabelHand.tif", label, "EPSG:32630", origin, ["label"], None, {**tags, "DESCRIPTION": tags["DESCRIPTION"] + "; 1 water, 0 not water, -1 no data/cloud"}, PIXEL_SIZE_M)  # fmt: skip
        io.write_text(root / f"{split}_split.txt", "\n".join(chip_ids) + "\n")


def generate(
    name: str,
    root: str | Path,
    size: str = "default",
    seed: int = 0,
    overwrite: bool = False,
    burn_masks_dir: str | Path | None = None,
) -> Path:
    """Write a simulated dataset to `root` in its original layout (cached: skipped when the manifest matches).

    Args:
        name: `sim-crop`, `sim-burn`, `sim-flood` or `sim-texture-<knob>` (knob in [0, 1], e.g. sim-texture-0.5).
        root: output folder (created).
        size: `quick` (seconds, for tests), `default` (the study's default chain) or `paper` (original chip counts
            and sizes).
        seed: generator seed; (name, size, seed) determines every byte written.
        overwrite: regenerate even if a matching manifest exists, and replace a mismatching one.
        burn_masks_dir: sim-burn only: folder of real HLS Burn Scars `*.mask.tif` to use as burn shapes instead of
            the procedural generator (e.g. a user's downloaded dataset); never shipped with the project.

    Returns:
        the dataset root.

    Raises:
        ValueError: for an unknown name or size.
        FileExistsError: if `root` holds a different dataset and `overwrite` is False.
    """
    family, knob = parse_name(name)
    layout = {
        "sim-crop": "crop",
        "sim-texture": "texture",
        "sim-burn": "burn_scars",
        "sim-flood": "sen1floods11",
    }[family]
    if size not in SIZES[layout]:
        raise ValueError(f"unknown size {size!r}; use one of {sorted(SIZES[layout])}")
    counts = SIZES[layout][size]
    root = Path(root)
    masks = Path(burn_masks_dir) if burn_masks_dir is not None else None
    version = family_version(family)
    key = {
        "name": name,
        "size": size,
        "seed": seed,
        "generator_version": version,
        "burn_masks_dir": str(masks) if masks else None,
    }
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        same = all(old.get(k) == v for k, v in key.items())
        if not same and all(old.get(k) == v for k, v in key.items() if k != "generator_version"):
            # our own data from an older generator: rebuilt (the runs on it then rerun by key)
            overwrite = True
        files_ok = same and all(
            (root / rel).exists() and (root / rel).stat().st_size == info["bytes"]
            for rel, info in old["files"].items()
        )
        if files_ok and not overwrite:
            return root
        if not same and not overwrite:
            raise FileExistsError(
                f"{root} holds {old.get('name')} (size {old.get('size')}, seed {old.get('seed')}, generator "
                f"{old.get('generator_version')}); pass overwrite=True or choose another folder"
            )
        for rel in old.get("files", {}):
            (root / rel).unlink(missing_ok=True)
        manifest_path.unlink()
    root.mkdir(parents=True, exist_ok=True)

    generator = {"version": version, "seed": seed, "size": size, **counts}
    if family == "sim-crop":
        summary = _write_sim_crop(root, name, counts, seed, size)
        meta = _dataset_json(name, "crop", "crop", CROP_CLASSES, {**generator, "n_times": 3, "psf_sigma_px": sim_fields.PSF_SIGMA_PX, **summary})  # fmt: skip
    elif family == "sim-texture":
        assert knob is not None
        _write_crop_layout(root, name, lambda r, _s, _i: (*sim_texture.simulate_texture_chip(counts["chip"], knob, r), None, {}), counts, seed, size, 1, "EPSG:32614")  # fmt: skip
        acc, se = sim_texture.texture_bayes_accuracy(knob)
        pairs = [[sim_texture.TEXTURE_PARTNER[c], c] for c in sim_texture.TEXTURE_PARTNER]
        meta = _dataset_json(name, "crop", "texture", sim_texture.TEXTURE_CLASSES, {**generator, "n_times": 1, "knob": knob, "pairs": pairs, "patterns": sim_texture.TEXTURE_PATTERNS, "bayes_pixel_accuracy": round(acc, 4), "bayes_pixel_accuracy_se": round(se, 4)})  # fmt: skip
    elif family == "sim-burn":
        _write_burn_layout(root, name, counts, seed, size, masks)
        meta = _dataset_json(name, "burn_scars", "burn", BURN_CLASSES, {**generator, "burn_shapes": "real masks" if masks else "procedural (calibrated)", "shape_params": sim_burn.BURN_SHAPE_PARAMS})  # fmt: skip
    else:
        _write_flood_layout(root, name, counts, seed, size)
        meta = _dataset_json(name, "sen1floods11", "flood", FLOOD_CLASSES, generator)
    io.write_text(root / "dataset.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")

    io.write_manifest(root, key)
    return root


#: Task families of the unlabelled corpus (:func:`generate_unlabelled`); ``sim-texture`` draws its knob per image.
CORPUS_FAMILIES = ("sim-crop", "sim-burn", "sim-flood", "sim-texture")
CORPUS_VERSION = "1"


def _unlabelled_image(family: str, chip: int, i: int, seed: int, size: str) -> tuple[np.ndarray, dict]:
    """Image ``i`` of a family's unlabelled corpus: ``(6*T, chip, chip)`` reflectance and its tags.

    The labelled chips' generators, on random streams keyed ``"unlabelled"`` (a labelled chip's stream is keyed by
    its dataset name and split, so no corpus image repeats one); sim-crop images come in tiles of their own dates,
    like the labelled ones; sim-texture images draw their knob uniformly from [0, 1].
    """
    rng = sim_fields.seeded_rng(seed, "unlabelled", family, size, i)
    if family == "sim-crop":
        from helpers.data import sim_crop as _sim_crop

        tile = sim_fields.seeded_rng(seed, "unlabelled", family, size, "tile", i // _sim_crop.CHIPS_PER_TILE)
        dates = tuple(_sim_crop.draw_dates(tile)[0])
        shift = float(_sim_crop.REGION_SHIFT_SD * tile.standard_normal())
        c = _sim_crop.simulate_chip(chip, rng, dates, shift)
        return c.image, {"ACQUISITION_DOY": ",".join(str(d) for d in c.dates)}
    if family == "sim-burn":
        return sim_burn.simulate_burn_chip(chip, rng)[0], {}
    if family == "sim-flood":
        return sim_flood.simulate_flood_chip(chip, rng)[0], {}
    if family == "sim-texture":
        knob = float(rng.uniform(0.0, 1.0))
        return sim_texture.simulate_texture_chip(chip, knob, rng)[0], {"KNOB": f"{knob:.4f}"}
    raise ValueError(f"unknown corpus family {family!r}; choose one of {CORPUS_FAMILIES}")


def generate_unlabelled(family: str, root: str | Path, n: int, size: str = "default", seed: int = 0) -> Path:
    """Write ``n`` unlabelled images of a simulated task family: a pretraining corpus (no masks are written).

    A foundation model's premise is abundant unlabelled imagery; the simulator can write any amount of it. The
    images come from the same generators as the family's labelled chips (:func:`_unlabelled_image`), one GeoTIFF
    each (int16 reflectance x 1e4, the six HLS bands date-major), with a ``corpus.json`` card and a manifest of
    sha256 sums. Cached like :func:`generate`: skipped when the manifest matches (family, n, size, seed, version)
    and every file is there.

    Args:
        family: One of :data:`CORPUS_FAMILIES`.
        root: Output folder (created).
        n: Number of images.
        size: Generator size, for the chip side (the family's labelled chips' side at that size).
        seed: Corpus seed.

    Returns:
        The corpus root.
    """
    if family not in CORPUS_FAMILIES:
        raise ValueError(f"unknown corpus family {family!r}; choose one of {CORPUS_FAMILIES}")
    layout = {
        "sim-crop": "crop",
        "sim-burn": "burn_scars",
        "sim-flood": "sen1floods11",
        "sim-texture": "texture",
    }
    if size not in SIZES[layout[family]]:
        raise ValueError(f"unknown size {size!r}; use one of {sorted(SIZES[layout[family]])}")
    if n < 1:
        raise ValueError(f"a corpus needs at least one image, got n={n}")
    chip = SIZES[layout[family]][size]["chip"]
    n_times = 3 if family == "sim-crop" else 1
    root = Path(root)
    key = {"family": family, "n": int(n), "size": size, "seed": int(seed), "corpus_version": CORPUS_VERSION}
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if all(old.get(k) == v for k, v in key.items()) and all(
            (root / rel).exists() and (root / rel).stat().st_size == info["bytes"]
            for rel, info in old["files"].items()
        ):
            return root
        for rel in old.get("files", {}):
            (root / rel).unlink(missing_ok=True)
        manifest_path.unlink()
    descr = [f"{b} date{t + 1}" for t in range(n_times) for b in HLS_BANDS]
    for i in _progress(range(n), f"{family} unlabelled"):
        img, extra = _unlabelled_image(family, chip, i, seed, size)
        tags = {
            "DESCRIPTION": f"SIMULATED unlabelled {family} image ({GENERATOR_NAME}); reflectance x 1e4",
            **extra,
        }
        origin = _grid_origin(i // 64, i % 64, chip)
        io.write_grid_tif(
            root / "images" / f"u{i:05d}.tif",
            sim_fields.to_int16(img),
            "EPSG:32615",
            origin,
            descr,
            -9999,
            tags,
            PIXEL_SIZE_M,
        )
    card = {
        "name": f"{family}-unlabelled",
        "simulated": True,
        "family": family,
        "n_images": int(n),
        "n_times": n_times,
        "chip": chip,
        "scale": 1e-4,
        "description": (
            f"SIMULATED unlabelled imagery of the {family} generators ({GENERATOR_NAME}); no labels; a pretraining "
            "corpus disjoint from every labelled split"
        ),
    }
    io.write_text(root / "corpus.json", json.dumps(card, indent=2, sort_keys=True) + "\n")
    io.write_manifest(root, key)
    return root


def remove(root: str | Path) -> None:
    """Delete a generated dataset folder (only if it carries our manifest)."""
    root = Path(root)
    if not (root / "manifest.json").exists():
        raise FileNotFoundError(f"{root} has no manifest.json: not a generated dataset, refusing to delete")
    shutil.rmtree(root)


def main(argv: list[str] | None = None) -> None:
    """CLI: `python -m helpers.data.simulate NAME --to DIR [--size quick] [--seed 0] [--overwrite]`."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.data.simulate", description="Write a SIMULATED dataset."
    )
    parser.add_argument("name", help="sim-crop | sim-burn | sim-flood | sim-texture-<knob> | all")
    parser.add_argument("--to", required=True, type=Path, help="output folder (for 'all': parent folder)")
    parser.add_argument("--size", default="default", choices=["quick", "default", "paper"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    names = (
        ["sim-crop", "sim-burn", "sim-flood", *[f"sim-texture-{k:g}" for k in TEXTURE_DEFAULT_KNOBS]]
        if args.name == "all"
        else [args.name]
    )
    for n in names:
        out = args.to / n if args.name == "all" else args.to
        generate(n, out, size=args.size, seed=args.seed, overwrite=args.overwrite)
        print(f"{n}: {out}")


if __name__ == "__main__":
    main()

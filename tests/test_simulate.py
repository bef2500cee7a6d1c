"""Tests of the simulated benchmark: spectra file, determinism, layouts, value ranges, texture knob, burn shapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage as ndi
from scipy.stats import ks_2samp

from helpers.data import datasets, sim_burn, sim_crop, sim_fields, sim_flood, sim_texture, simulate
from helpers.data.spectral import HLS_BANDS, SPECTRA_PATH, load_spectra
from helpers.runs import fm_adapters


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sim")
    names = ["sim-crop", "sim-burn", "sim-flood", "sim-texture-0.5"]
    return {n: simulate.generate(n, base / n, size="quick", seed=0) for n in names}


def test_spectra_file_rebuilds_identically():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_spectra", Path(__file__).parents[1] / "scripts" / "build_spectra.py")  # fmt: skip
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rebuilt = mod.build()
    stored = load_spectra(SPECTRA_PATH)
    assert set(rebuilt) == set(stored)
    for key, value in rebuilt.items():
        if value.dtype.kind in "US":
            assert np.array_equal(value, stored[key]), key
        else:
            np.testing.assert_allclose(value, stored[key], rtol=1e-5, atol=1e-7, err_msg=key)
    assert SPECTRA_PATH.stat().st_size < 1_000_000


def test_spectra_are_physically_plausible():
    s = load_spectra()
    names = list(s["material_names"])
    mean = dict(zip(names, s["mean"], strict=True))
    nir, red, swir1 = 3, 2, 4
    # dense canopy: red edge; water: dark in the NIR/SWIR; char darker than ash; every covariance is PSD
    assert s["veg_mean"][-1][nir] > 3 * s["veg_mean"][-1][red]
    for w in ("water_clear", "water_turbid", "water_humic"):
        assert mean[w][nir] < 0.03 and mean[w][swir1] < 0.03
    assert mean["water_turbid"][1] > mean["water_clear"][1]
    assert mean["char"][:4].mean() < mean["ash"][:4].mean()
    assert np.all(np.linalg.eigvalsh(s["cov"]) > -1e-9)
    # the OLI and MSI versions of a band agree to within a few percent of reflectance (bandpass difference)
    assert np.abs(s["mean"] - s["mean_l8"]).max() < 0.03


def test_same_seed_same_bytes_other_seed_differs(tmp_path, quick):
    for name in ("sim-crop", "sim-burn", "sim-flood"):
        again = simulate.generate(name, tmp_path / name, size="quick", seed=0)
        assert _files(again) == _files(quick[name]), name
    other = simulate.generate("sim-crop", tmp_path / "other", size="quick", seed=1)
    a, b = _files(other), _files(quick["sim-crop"])
    assert a.keys() == b.keys()
    assert any(a[k] != b[k] for k in a if k.endswith("_merged.tif"))


def test_manifest_cache_skips_and_guards(quick):
    root = quick["sim-flood"]
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*.tif")}
    simulate.generate("sim-flood", root, size="quick", seed=0)
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    with pytest.raises(FileExistsError, match="overwrite"):
        simulate.generate("sim-flood", root, size="quick", seed=3)
    with pytest.raises(ValueError, match="knob"):
        simulate.parse_name("sim-texture-1.5")
    with pytest.raises(ValueError, match="unknown"):
        simulate.parse_name("sim-crops")


def _tags_ok(path: Path, count: int, dtype: str) -> rasterio.DatasetReader:
    src = rasterio.open(path)
    assert src.tags()["SIMULATED"] == "yes", path
    assert "SIMULATED" in src.tags()["DESCRIPTION"]
    assert src.crs is not None and src.crs.is_projected
    assert src.res == (30.0, 30.0)
    assert (src.count, src.dtypes[0]) == (count, dtype), path
    return src


def test_crop_layout(quick):
    root = quick["sim-crop"]
    card = json.loads((root / "dataset.json").read_text())
    assert card["simulated"] is True and card["layout"] == "crop" and card["n_times"] == 3
    assert card["classes"] == list(simulate.CROP_CLASSES)
    train = (root / "training_data.txt").read_text().split()
    test = (root / "validation_data.txt").read_text().split()
    val = (root / "val_data.txt").read_text().split()
    assert len(train) == 6 and len(test) == 2 and set(val) <= set(train) and not set(train) & set(test)
    assert all(c.startswith("chip_") and len(c.split("_")) == 3 for c in train + test)
    with _tags_ok(root / "training_chips" / f"{train[0]}_merged.tif", 18, "int16") as src:
        assert src.descriptions[:7] == (*[f"{b} date1" for b in HLS_BANDS], "B02 date2")
    with _tags_ok(root / "validation_chips" / f"{test[0]}.mask.tif", 1, "uint8") as src:
        m = src.read(1)
        assert m.min() >= 0 and m.max() <= 13
    ds = datasets.open("sim-crop", root)
    assert ds.simulated and ds.n_times == 3 and ds.num_classes == 13
    a, y = ds.read_arrays(ds.chip_ids("test")[0])
    assert a.shape == (18, 64, 64) and y.shape == (64, 64)


def test_burn_and_flood_layouts(quick):
    root = quick["sim-burn"]
    merged = sorted((root / "training").glob("*_merged.tif"))
    assert len(merged) == 8 and len(list((root / "validation").glob("*.mask.tif"))) == 3
    stem = merged[0].name.removesuffix("_merged.tif")
    assert stem.startswith("subsetted_64x64_HLS.S30.T") and stem.endswith(".v1.4")
    with _tags_ok(merged[0], 6, "float32") as src:
        assert 0 < np.median(src.read()) < 0.6
    with _tags_ok(root / "training" / f"{stem}.mask.tif", 1, "int16") as src:
        assert set(np.unique(src.read(1))) <= {-1, 0, 1}
    assert datasets.open("sim-burn", root).simulated

    root = quick["sim-flood"]
    ids = {s: (root / f"{s}_split.txt").read_text().split() for s in ("train", "val", "test")}
    assert [len(v) for v in ids.values()] == [6, 2, 2]
    with _tags_ok(root / "S2Hand" / f"{ids['test'][0]}_S2Hand.tif", 13, "int16") as src:
        s2 = src.read()
        assert src.descriptions == sim_flood.S2_BANDS and src.nodata == 0
        assert s2.min() >= 1  # 0 is nodata in Sen1Floods11
    with _tags_ok(root / "LabelHand" / f"{ids['test'][0]}_LabelHand.tif", 1, "int16") as src:
        assert set(np.unique(src.read(1))) <= {-1, 0, 1}
    ds = datasets.open("sim-flood", root)
    x, _ = ds.read(ids["test"][0])
    np.testing.assert_array_equal(np.rint(x.values * 1e4).astype(np.int16), s2[[1, 2, 3, 8, 11, 12]])


def test_hls_to_s2_13_fills_bands():
    hls = np.array([300, 500, 400, 3000, 2000, 1000], dtype=np.int16).reshape(6, 1, 1)
    s2 = sim_flood.hls_to_s2_13(hls)[:, 0, 0]
    assert s2[[1, 2, 3, 8, 11, 12]].tolist() == hls.ravel().tolist()
    assert s2[0] == 300 and s2[9] == 3000 and s2[10] == 10
    assert 400 < s2[4] < s2[5] < s2[6] < s2[7] < 3000  # red edge rises between B04 and B8A


def test_hls_like_value_ranges(quick):
    ds = datasets.open("sim-crop", quick["sim-crop"])
    xs, ys = zip(*(ds.read_arrays(c) for c in ds.chip_ids("train")), strict=True)
    x = np.stack(xs).transpose(1, 0, 2, 3).reshape(18, -1)
    y = np.stack(ys).ravel()
    lo, hi = np.percentile(x, [0.5, 99.5])
    assert 0.0 <= lo and hi < 0.8
    peak = x[6:12]
    veg = np.isin(y, [1, 2, 3])  # forest, corn, soybeans (0-based) at peak season
    assert np.median(peak[3, veg]) > 0.3 and np.median(peak[2, veg]) < 0.08
    fl = datasets.open("sim-flood", quick["sim-flood"])
    xs, ys = zip(*(fl.read_arrays(c) for c in fl.chip_ids("train")), strict=True)
    x = np.stack(xs).transpose(1, 0, 2, 3).reshape(6, -1)
    y = np.stack(ys).ravel()
    assert np.median(x[3, y == 1]) < 0.08 < np.median(x[3, y == 0])  # water is dark in the NIR
    assert np.median(x[5, y == 1]) < 0.03


def _neighbourhood_features(img: np.ndarray) -> np.ndarray:
    bright = img.mean(axis=0)
    feats = [img]
    for size in (3, 7):
        m = ndi.uniform_filter(bright, size)
        feats += [m[None], np.sqrt(np.maximum(ndi.uniform_filter(bright**2, size) - m**2, 0))[None]]
    for axis in (0, 1):
        feats.append(ndi.uniform_filter(np.abs(np.diff(bright, axis=axis, append=0)), 5)[None])
    return np.concatenate(feats).reshape(-1, bright.size).T


def _texture_scores(knob: float, seed: int = 0) -> tuple[float, float]:
    from sklearn.ensemble import RandomForestClassifier

    def chips(n, split):
        return [
            sim_texture.simulate_texture_chip(96, knob, sim_fields.seeded_rng(seed, "t", split, i))
            for i in range(n)
        ]

    train, test = chips(8, "train"), chips(4, "test")
    rng = np.random.default_rng(0)
    out = []
    for featurise in (lambda im: im.reshape(6, -1).T, _neighbourhood_features):
        xtr = np.concatenate([featurise(im) for im, _ in train])
        ytr = np.concatenate([m.ravel() for _, m in train])
        pick = rng.choice(len(ytr), 8000, replace=False)
        rf = RandomForestClassifier(30, min_samples_leaf=5, n_jobs=1, random_state=0).fit(
            xtr[pick], ytr[pick]
        )
        xte = np.concatenate([featurise(im) for im, _ in test])
        yte = np.concatenate([m.ravel() for _, m in test])
        out.append(float((rf.predict(xte) == yte).mean()))
    return out[0], out[1]


def test_texture_knob_does_what_it_says():
    b0, _ = sim_texture.texture_bayes_accuracy(0.0, n_per_class=1500)
    b1, se1 = sim_texture.texture_bayes_accuracy(1.0, n_per_class=1500)
    assert b0 > 0.93 and abs(b1 - 0.5) < 3 * se1 + 0.01
    pix0, nb0 = _texture_scores(0.0)
    pix1, nb1 = _texture_scores(1.0)
    # per-pixel: near its Bayes limit at 0, falls to (not above) the limit at 1
    assert pix0 > b0 - 0.1
    assert pix1 < b1 + 0.05 and pix1 < pix0 - 0.3
    # with neighbourhood features the accuracy is kept
    assert nb1 > 0.8 and nb1 > pix1 + 0.25


def test_texture_pairs_have_identical_pixel_distribution_at_knob_one():
    img, m = sim_texture.simulate_texture_chip(128, 1.0, sim_fields.seeded_rng(5, "pairs"))
    mats, anchor = sim_texture.texture_class_materials()
    assert anchor == [0, 0, 2, 2, 4, 4]
    assert all(np.array_equal(mats[i][0], mats[i + 1][0]) is False for i in (0, 2, 4))  # distinct at knob 0
    assert img.shape == (6, 128, 128) and set(np.unique(m)) <= set(range(1, 7))


def test_burn_shape_statistics_match_real_masks(shared_dir):
    from scipy.stats import ks_2samp

    masks = sorted((shared_dir / "data" / "hls_burn_scars_masks").glob("*.mask.tif"))
    assert len(masks) >= 200
    rows = []
    for f in masks:
        with rasterio.open(f) as src:
            rows.append(sim_burn.burn_shape_stats(src.read(1)))
    real = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    # the numbers carried into the code are the real ones
    for key, stored in sim_burn.BURN_REAL_STATS.items():
        np.testing.assert_allclose(np.quantile(real[key], sim_burn.BURN_Q), stored, rtol=2e-3, err_msg=key)
    assert np.mean(real["patches"] == 1) == pytest.approx(sim_burn.BURN_REAL_SINGLE_PATCH, abs=2e-3)
    for size, n in ((128, 40), (512, 12)):
        gen_rows = [sim_burn.burn_shape_stats(sim_burn.burn_shape(size, sim_fields.seeded_rng(7, size, i)).astype(np.int16)) for i in range(n)]  # fmt: skip
        gen = {k: np.array([r[k] for r in gen_rows]) for k in gen_rows[0]}
        for key in ("fraction", "aspect", "compactness", "edge_per_sqrt_area"):
            q10, q90 = np.quantile(real[key], [0.1, 0.9])
            med = np.median(gen[key])
            assert q10 < med < q90, (size, key, med)
            assert ks_2samp(real[key], gen[key]).statistic < 0.4, (size, key)
        assert np.mean(gen["patches"] == 1) >= 0.85


def test_burn_chip_labels_follow_shape():
    img, mask = sim_burn.simulate_burn_chip(96, sim_fields.seeded_rng(3, "b"), cloud_prob=0.0)
    assert img.shape == (6, 96, 96) and set(np.unique(mask)) <= {0, 1}
    burned = mask == 1
    assert burned.any() and (~burned).any()
    # burned pixels are darker in the NIR and relatively brighter in SWIR2 than unburned (NBR drops)
    nbr = (img[3] - img[5]) / (img[3] + img[5])
    assert np.median(nbr[burned]) < np.median(nbr[~burned])


def test_generated_class_means_follow_the_phenology_at_each_chips_dates():
    """Corn and soybeans (no sub-types) seen through the true labels: centred on the curve at each chip's dates."""
    rng = np.random.default_rng(3)
    diffs = []
    for _ in range(40):
        dates = tuple(sim_crop.draw_dates(rng)[0])
        c = sim_crop.simulate_chip(64, rng, dates, 0.0)
        ref = sim_crop.reference_means(dates)
        for name in ("corn", "soybeans"):
            k = simulate.CROP_CLASSES.index(name) + 1
            if (c.truth == k).sum() >= 300:
                diffs.append(c.image[:, c.truth == k].mean(axis=1) - ref[name].ravel())
    diffs = np.array(diffs)
    assert len(diffs) >= 15
    # per chip: planting shifts of weeks, soil brightness and field draws move a class's mean ...
    assert np.abs(diffs).max() < 0.25, np.abs(diffs).max(axis=1).round(3)
    # ... but they are centred on the curve: the average over chips stays close to it
    assert np.abs(diffs.mean(axis=0)).mean() < 0.02, diffs.mean(axis=0).round(3)
    fl = simulate.reference_class_means("sim-flood")
    assert fl["water"][3] < 0.03 < fl["not_water"][3]


def test_sim_crop_dates_follow_the_real_chip_tracker(quick):
    d = sim_crop.draw_dates(np.random.default_rng(1), 20_000)
    assert (np.diff(d, axis=1) >= sim_crop.MIN_GAP_DAYS).all()
    for t, lo, hi in ((0, 60, 211), (1, 71, 268), (2, 91, 273)):
        assert lo <= d[:, t].min() and d[:, t].max() <= hi
    assert np.abs(np.median(d, axis=0) - [85, 172, 256]).max() <= 6  # the tracker's medians
    span = d[:, 2] - d[:, 0]
    assert abs(np.median(span) - 150) <= 10 and abs((span < 90).mean() - 0.23) <= 0.03
    assert 0.6 <= ((d[:, 2] >= 244) & (d[:, 2] <= 273)).mean() <= 0.8  # tracker: 68 % in September
    # generated chips: the dates are in every file's tags, shared by the chips of one tile
    root = quick["sim-crop"]
    seen = {}
    for f in sorted(root.glob("*_chips/*_merged.tif")):
        with rasterio.open(f) as src:
            tags = src.tags()
        seen.setdefault(tags["TILE"], set()).add(tags["ACQUISITION_DOY"])
    assert all(len(v) == 1 for v in seen.values())
    card = json.loads((root / "dataset.json").read_text())["generator"]
    assert card["version"] == sim_crop.VERSION and card["tiles"] == len(seen)


def test_sim_crop_label_noise_per_class_matches_the_card(quick):
    """Label errors measured on generated chips: per class near 1 - producer's accuracy, clustered at edges."""
    rng = np.random.default_rng(7)
    k = len(sim_crop.CLASSES)
    cm = np.zeros((k, k), np.int64)
    edge_err = edge_n = inner_err = inner_n = 0
    mixed = []
    for _ in range(40):
        c = sim_crop.simulate_chip(64, rng, tuple(sim_crop.draw_dates(rng)[0]), 0.0)
        np.add.at(cm, (c.truth.ravel() - 1, c.mask.ravel() - 1), 1)
        edge, wrong = sim_crop.class_edges(c.truth), c.mask != c.truth
        edge_err, edge_n = edge_err + (wrong & edge).sum(), edge_n + edge.sum()
        inner_err, inner_n = inner_err + (wrong & ~edge).sum(), inner_n + (~edge).sum()
        mixed.append(c.mixed)
        assert c.image.shape == (18, 64, 64) and set(np.unique(c.truth)) <= set(range(1, k + 1))
    n = cm.sum(axis=1)
    expected = np.array([1 - sim_crop.LABEL_ACCURACY[c][0] / 100 for c in sim_crop.CLASSES])
    measured = 1 - np.diag(cm) / np.maximum(n, 1)
    overall_expected = (expected * n).sum() / n.sum()
    assert abs((1 - np.trace(cm) / cm.sum()) - overall_expected) < 0.04, (measured.round(3), expected)
    common = n >= 0.08 * n.sum()  # classes with many fields in the sample
    assert common.sum() >= 3 and (np.abs(measured - expected)[common] < 0.08).all(), (
        measured.round(3),
        expected,
    )
    assert edge_err / edge_n > 3 * inner_err / inner_n  # errors cluster at class edges
    assert 0.01 < np.mean(mixed) < 0.2  # the 15 m scene averaged to 30 m: mixed pixels along edges and roads
    # the card of the generated dataset records what its own chips measured
    card = json.loads((quick["sim-crop"] / "dataset.json").read_text())["generator"]
    assert set(card["label_noise_measured"]) <= set(sim_crop.CLASSES)
    assert 0 < card["noise_free_ceiling_test"]["miou_macro"] < 1
    assert card["label_noise_at_class_edges"] > card["label_noise_inside_classes"]


def test_true_labels_are_a_held_out_split_of_the_same_images(quick):
    ds = datasets.open("sim-crop", quick["sim-crop"])
    assert ds.splits == ["train", "val", "test", datasets.TRUE_LABELS_SPLIT]
    noisy_id, true_id = ds.chip_ids("test")[0], ds.chip_ids(datasets.TRUE_LABELS_SPLIT)[0]
    (a, y), (b, t) = ds.read_arrays(noisy_id), ds.read_arrays(true_id)
    np.testing.assert_array_equal(a, b)
    assert 0 < (y != t).mean() < 0.5


#: Content hashes of the quick datasets (seed 0) per family generator version. Every committed result's run_key
#: contains the hash of the data it ran on, so bytes that change without a new version silently rerun the whole study
#: (a moved module once changed the name written into every file's tags). Change these only with the versions.
PINNED_V1_1 = {
    "sim-crop": "7af13d752c69e7c8",
    "sim-burn": "b97ebd3500eb6100",
    "sim-flood": "d8d178e9f6de6241",
    "sim-texture-0.5": "e4463327ace9de59",
}


def test_generated_bytes_are_pinned_for_the_generator_version(quick):
    assert simulate.GENERATOR_VERSION == "1.1" and simulate.family_version("sim-crop") == "2.1"
    assert simulate.family_version("sim-crop") == sim_crop.VERSION
    got = {n: datasets.open(n, root).fingerprint() for n, root in quick.items()}
    assert got == PINNED_V1_1


# ------------------------------------------------------------------------------------------ one shared region
_LAYOUT = {
    "sim-crop": "crop",
    "sim-burn": "burn_scars",
    "sim-flood": "sen1floods11",
    "sim-texture-0.5": "texture",
}
_SPLITS = ("train", "val", "test")


def _latlon(root: Path, name: str) -> dict[str, np.ndarray]:
    """What a location-aware encoder is given: ``chip_context(ds, chip).latlon`` of every chip, per split."""
    ds = datasets.open(name, root)
    return {s: np.array([fm_adapters.chip_context(ds, c).latlon for c in ds.chip_ids(s)]) for s in _SPLITS}


def _shift_in_steps(root: Path, name: str) -> float:
    """Largest north-south or east-west distance between split means, in grid steps of the layout."""
    shift = simulate.split_location_shift(_latlon(root, name))
    return max(shift.values()) / simulate.grid_step_km(simulate.SIZES[_LAYOUT[name]]["quick"]["chip"])


def _legacy_cells(seed, name, size, n, slots=None, block=1):
    """Generator 1.0's placement: 50 chips a row, test chips from row 100 on (sim-flood: all splits in a row)."""
    counts = simulate.SIZES[_LAYOUT.get(name, "texture")][size]
    j = np.arange(n)
    if name != "sim-flood":
        j = np.where(j < counts["train"], j, 5000 + j - counts["train"])
    return np.stack([j // 50, j % 50], axis=1)


#: Largest allowed distance between split means, in grid steps (a quick grid is 3-4 cells a side; 1.0's shift
#: was 100 steps north-south, sim-flood's 6 steps east-west).
MAX_SHIFT_STEPS = 3.0


def test_splits_share_one_region_for_a_location_aware_encoder(quick, tmp_path, monkeypatch):
    """Every layout: the chip centres Presto is given have the same spread in train, val and test.

    The same check on data written with generator 1.0's placement fails, so it can tell the two apart.
    """
    measured = {n: _shift_in_steps(root, n) for n, root in quick.items()}
    assert all(v <= MAX_SHIFT_STEPS for v in measured.values()), measured
    monkeypatch.setattr(simulate, "_layout_cells", _legacy_cells)
    old = {n: _shift_in_steps(simulate.generate(n, tmp_path / n, size="quick", seed=0), n) for n in quick}
    assert all(v > MAX_SHIFT_STEPS for v in old.values()), old


@pytest.mark.parametrize("size", ["default", "paper"])
@pytest.mark.parametrize("name", ["sim-crop", "sim-burn", "sim-flood", "sim-texture-0.5"])
def test_interleaving_gives_every_split_the_same_distribution_of_places(name, size):
    """At the study's sizes the splits' grid rows and columns pass a two-sample KS test; 1.0's placement fails it."""
    counts = simulate.SIZES[_LAYOUT[name]][size]
    if name == "sim-flood":
        n = {s: counts[s] for s in _SPLITS}
    else:  # val is a subset of the training chips (crop) or held out from them by the loader (burn)
        n = {"train": counts["train"], "test": counts["test"]}
    total = sum(n.values())
    bounds = np.cumsum([0, *n.values()])
    for cells_of, passes in ((simulate._layout_cells, True), (_legacy_cells, False)):
        if name == "sim-crop" and cells_of is simulate._layout_cells:
            # the tile permutation of _write_sim_crop places its chips
            slots = sim_fields.seeded_rng(0, name, size, "tiles").permutation(total)
            cells = cells_of(0, name, size, total, slots, sim_crop.CHIPS_PER_TILE)
        else:
            cells = cells_of(0, name, size, total)
        parts = [cells[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        tests = [(a[:, k], b[:, k]) for i, a in enumerate(parts) for b in parts[i + 1 :] for k in (0, 1)]
        p = min(1.0, len(tests) * min(ks_2samp(a, b).pvalue for a, b in tests))  # Bonferroni: pairs and axes
        assert bool(p > 0.01) == passes, (cells_of.__name__, p)


def test_no_two_chips_overlap(quick):
    """Every image file's footprint (per CRS) is disjoint from every other one's, with the gap between them."""
    for name, root in quick.items():
        boxes: dict[str, list] = {}
        for f in sorted(root.rglob("*.tif")):
            if f.name.endswith(("_merged.tif", "_S2Hand.tif")):
                with rasterio.open(f) as src:
                    boxes.setdefault(str(src.crs), []).append(tuple(src.bounds))
        for b in boxes.values():
            x0, y0, x1, y1 = np.array(b).T
            apart = (
                (x1[:, None] < x0[None, :]) | (x1[None, :] < x0[:, None])
                | (y1[:, None] < y0[None, :]) | (y1[None, :] < y0[:, None])
            )  # fmt: skip
            np.fill_diagonal(apart, True)
            assert apart.all(), name
    # at every size the cells are distinct, so footprints (chip side < grid step) never meet
    for size in ("quick", "default", "paper"):
        n = sum(simulate.SIZES["crop"][size][s] for s in ("train", "test"))
        slots = np.random.default_rng(0).permutation(n)
        for block in (1, sim_crop.CHIPS_PER_TILE):
            cells = simulate.grid_positions(slots, block)
            assert len(np.unique(cells, axis=0)) == n


def test_sim_crop_tiles_are_blocks_of_adjacent_chips_mixing_splits(quick):
    slots = np.random.default_rng(3).permutation(200)
    cells = simulate.grid_positions(slots, sim_crop.CHIPS_PER_TILE)
    tile = slots // sim_crop.CHIPS_PER_TILE
    for t in np.unique(tile):
        c = cells[tile == t]
        assert np.ptp(c, axis=0).max() <= 2  # a 3 x 3 block
    with pytest.raises(ValueError, match="permutation"):
        simulate.grid_positions(np.array([0, 0, 1]))


def test_sim_crop_chips_get_their_file_months_not_the_defaults(quick):
    """Presto and Galileo get each chip's acquisition months (written by the generator), never assumed ones."""
    ds = datasets.open("sim-crop", quick["sim-crop"])
    seen = set()
    for split in _SPLITS:
        for c in ds.chip_ids(split):
            ctx = fm_adapters.chip_context(ds, c)
            with rasterio.open(ds.paths(c)[0]) as src:
                tags = src.tags()
            doys = [int(d) for d in tags["ACQUISITION_DOY"].split(",")]
            iso = [sim_crop.iso_date(d) for d in doys]
            assert tags["ACQUISITION_DATES"].split(",") == iso
            assert ctx.months == tuple(int(d[5:7]) - 1 for d in iso), c
            assert ctx.month_source == ctx.months_source == "file tags (ACQUISITION_DATES)"
            seen.add(ctx.months)
    assert seen and seen != {fm_adapters.DEFAULT_MONTHS["crop"]}  # the file months, not the defaults

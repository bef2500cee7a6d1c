"""HLS adapters, per-pixel embeddings of both models, and the on-disk embedding cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.data import datasets
from helpers.models import galileo as _galileo
from helpers.models import presto as _presto
from helpers.runs import embeddings, fm_adapters

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights_dir() -> Path:
    d = Path(os.environ.get("FM_WEIGHTS_DIR", REPO.parent / "shared" / "weights"))
    if not (d / "galileo_nano" / "encoder.pt").is_file() or not (d / "presto" / "default_model.pt").is_file():
        pytest.skip(f"published weights not found under {d} (set FM_WEIGHTS_DIR)")
    return d


@pytest.fixture(scope="module")
def galileo(weights_dir: Path) -> embeddings.GalileoEmbedder:
    torch.set_num_threads(1)
    return embeddings.load_embedder("galileo_nano", weights_dir / "galileo_nano" / "encoder.pt", window=32)


@pytest.fixture(scope="module")
def presto(weights_dir: Path) -> embeddings.PrestoEmbedder:
    return embeddings.load_embedder("presto", weights_dir / "presto" / "default_model.pt")


def _bands(b: int, t: int, h: int, w: int) -> torch.Tensor:
    """Reflectance whose value encodes (date, band): 0.01 * (10 * date + band + 1)."""
    vals = torch.tensor([0.01 * (10 * d + k + 1) for d in range(t) for k in range(6)])
    return vals[None, :, None, None].expand(b, 6 * t, h, w).clone()


# ------------------------------------------------------------------------------------------------ adapters
def test_band_slots_follow_the_s2_names() -> None:
    assert [_galileo.SPACE_TIME_BANDS[i] for i in fm_adapters.GALILEO_SLOTS] == [
        "B2",
        "B3",
        "B4",
        "B8A",
        "B11",
        "B12",
    ]
    assert [_presto.BANDS[i] for i in fm_adapters.PRESTO_SLOTS] == ["B2", "B3", "B4", "B8A", "B11", "B12"]
    assert fm_adapters.HLS_BANDS == tuple(datasets.HLS_BANDS)


def test_galileo_adapter_maps_normalises_and_masks() -> None:
    x = _bands(2, 2, 4, 4)
    s_t_x, sp_x, t_x, st_x, s_t_m, sp_m, t_m, st_m, months = fm_adapters.galileo_inputs(
        x, torch.tensor([[3, 6], [3, 6]]), n_times=2
    )
    assert s_t_x.shape == (2, 4, 4, 2, 13) and s_t_m.shape == (2, 4, 4, 2, 7)
    for d in range(2):
        for k, slot in enumerate(fm_adapters.GALILEO_SLOTS):
            raw = 0.01 * (10 * d + k + 1) * 1e4
            expect = (raw - (fm_adapters.GALILEO_MEAN[k] - 2 * fm_adapters.GALILEO_STD[k])) / (
                4 * fm_adapters.GALILEO_STD[k]
            )
            assert torch.allclose(s_t_x[..., d, slot], torch.tensor(expect, dtype=torch.float32), atol=1e-5)
    groups = list(_galileo.SPACE_TIME_GROUPS)
    visible = [groups.index(g) for g in ("S2_RGB", "S2_NIR_20m", "S2_SWIR")]
    assert (s_t_m[..., visible] == 0).all()
    assert (s_t_m[..., [i for i in range(7) if i not in visible]] == 1).all()
    hidden_bands = [i for i in range(13) if i not in fm_adapters.GALILEO_SLOTS]
    assert (s_t_x[..., hidden_bands] == 0).all()
    assert (sp_m == 1).all() and (t_m == 1).all() and (st_m == 1).all()
    assert sp_x.abs().sum() == 0 and t_x.abs().sum() == 0 and st_x.abs().sum() == 0
    assert months.tolist() == [[3, 6], [3, 6]]


def test_galileo_adapter_ndvi_and_nodata_patches() -> None:
    x = _bands(1, 1, 8, 8)
    x[:, :, :4, :4] = 0  # one whole 4x4 patch of nodata
    x[:, :, 4, 4] = 0  # one nodata pixel inside a valid patch
    inputs = fm_adapters.galileo_inputs(x, torch.tensor([[0]]), n_times=1, patch_size=4, ndvi="b8a")
    s_t_x, s_t_m = inputs[0], inputs[4]
    ndvi = list(_galileo.SPACE_TIME_GROUPS).index("NDVI")
    assert (s_t_m[0, :4, :4, 0] == 1).all()  # every group of the nodata patch hidden
    assert (s_t_m[0, 4:, 4:, 0, ndvi] == 0).all()  # the partly valid patch stays visible
    red, nir = 0.03, 0.04  # B04 and B8A of _bands
    assert torch.allclose(s_t_x[0, 6, 6, 0, 12], torch.tensor((nir - red) / (nir + red)), atol=1e-6)
    with pytest.raises(ValueError, match="ndvi"):
        fm_adapters.galileo_inputs(x, torch.tensor([[0]]), n_times=1, ndvi="b8")
    with pytest.raises(ValueError, match="expected reflectance"):
        fm_adapters.galileo_inputs(x[:, :5], torch.tensor([[0]]), n_times=1)


def test_presto_adapter_maps_normalises_and_masks() -> None:
    pixels = _bands(1, 3, 1, 5)[0].reshape(18, -1).T  # 5 pixels x 18 channels
    pixels[0, 6:12] = 0  # pixel 0: second date nodata
    x, mask, dw = fm_adapters.presto_inputs(pixels, n_times=3)
    assert x.shape == (5, 3, 17) and (dw == 9).all()
    for k, slot in enumerate(fm_adapters.PRESTO_SLOTS):
        assert torch.allclose(
            x[1:, 2, slot], torch.tensor(0.01 * (20 + k + 1)), atol=1e-7
        )  # S2 / 1e4 of x1e4
    assert (mask[1:][..., list(fm_adapters.PRESTO_SLOTS)] == 0).all()
    others = [i for i in range(17) if i not in fm_adapters.PRESTO_SLOTS]
    assert (mask[..., others] == 1).all() and (x[..., others] == 0).all()
    assert (mask[0, 1] == 1).all() and (mask[0, 0, list(fm_adapters.PRESTO_SLOTS)] == 0).all()
    x2, mask2, _ = fm_adapters.presto_inputs(pixels, n_times=3, ndvi="b8a")
    assert (mask2[1:, :, 16] == 0).all()
    assert torch.allclose(x2[1, 0, 16], torch.tensor((0.04 - 0.03) / 0.07), atol=1e-6)


def test_chip_context_from_files(fixture_roots: dict) -> None:
    burn = datasets.open("burn_scars", fixture_roots["burn_scars"])
    chip = burn.chip_ids("train")[0]
    ctx = fm_adapters.chip_context(burn, chip)
    assert ctx.month_source == "file date" and ctx.months == (3,)  # day 100 of 2018 = April
    assert ctx.resolution_m == 30.0 and ctx.latlon_source == "chip centre"
    assert 30 < ctx.latlon[0] < 45 and -130 < ctx.latlon[1] < -115  # UTM zone 10N, California
    flood = datasets.open("sen1floods11", fixture_roots["sen1floods11"])
    ctx = fm_adapters.chip_context(flood, flood.chip_ids("train")[0])
    assert ctx.resolution_m == 10.0 and abs(ctx.latlon[0] - 38.12) < 0.01
    crop = datasets.open("crop", fixture_roots["crop"])
    ctx = fm_adapters.chip_context(crop, crop.chip_ids("train")[0])
    assert ctx.months == fm_adapters.DEFAULT_MONTHS["crop"] and ctx.month_source.startswith("assumed")


def test_months_from_tags_reads_iso_dates_and_days_of_year() -> None:
    assert fm_adapters.months_from_tags({"ACQUISITION_DATES": "2022-03-26, 2022-06-21,2022-09-13"}) == (
        (2, 5, 8),
        "ACQUISITION_DATES",
    )
    assert fm_adapters.months_from_tags({"ACQUISITION_DATE": "2019-12-31T10:20:00"}) == (
        (11,),
        "ACQUISITION_DATE",
    )
    assert fm_adapters.months_from_tags({"ACQUISITION_DOY": "85,172,256"}) == ((2, 5, 8), "ACQUISITION_DOY")
    assert fm_adapters.months_from_tags({"ACQUISITION_DOY": "60", "ACQUISITION_YEAR": "2020"}) == (
        (1,),
        "ACQUISITION_DOY",
    )
    assert fm_adapters.months_from_tags({"ACQUISITION_DOY": "60"}) == (
        (2,),
        "ACQUISITION_DOY",
    )  # non-leap: 1 March
    for bad in ({}, {"ACQUISITION_DATES": "March"}, {"ACQUISITION_DOY": "0,400"}, {"OTHER": "2022-01-01"}):
        assert fm_adapters.months_from_tags(bad) is None, bad


def test_chip_context_takes_the_months_a_file_carries(tmp_path: Path) -> None:
    """A generic multi-date GeoTIFF with date tags gets its own months; one without (or with too few) the defaults."""
    from types import SimpleNamespace

    from rasterio.transform import from_origin

    from helpers.data.io import write_geotiff

    def chip(name: str, tags: dict) -> Path:
        path = tmp_path / f"{name}.tif"
        data = np.full((12, 8, 8), 1000, np.int16)
        write_geotiff(path, data, crs="EPSG:32615", transform=from_origin(500000, 4600000, 30, 30), tags=tags)
        return path

    files = {
        "dated": chip("dated", {"ACQUISITION_DATES": "2021-01-15,2021-11-02"}),
        "doy": chip("doy", {"ACQUISITION_DOY": "32,200"}),
        "short": chip("short", {"ACQUISITION_DATES": "2021-01-15"}),
        "plain": chip("plain", {}),
    }
    ds = SimpleNamespace(n_times=2, task="crop", paths=lambda c: (files[c], files[c]))
    ctx = fm_adapters.chip_context(ds, "dated")
    assert ctx.months == (0, 10) and ctx.months_source == "file tags (ACQUISITION_DATES)"
    assert fm_adapters.chip_context(ds, "doy").months == (1, 6)
    for c in ("short", "plain"):  # no date per date of the chip: the documented assumption, said so
        ctx = fm_adapters.chip_context(ds, c)
        assert ctx.months == (6, 6) and ctx.month_source.startswith("assumed")
    assert (
        "months=[0, 10]" in fm_adapters.chip_context(ds, "dated").key()
    )  # the months reach the embedding cache key


# ------------------------------------------------------------------------------------------------ Galileo grid
def test_window_starts_cover_and_end_flush() -> None:
    assert embeddings.window_starts(224, 64, 64) == [0, 64, 128, 160]
    assert embeddings.window_starts(64, 64, 64) == [0]
    assert embeddings.window_starts(40, 64, 64) == [0]


def test_galileo_grid_of_one_window_is_the_golden_per_patch_pooling(
    galileo: embeddings.GalileoEmbedder, weights_dir: Path
) -> None:
    d = np.load(weights_dir / "galileo_nano" / "golden" / "caseA.npz")
    raw = d["raw_s_t_x"][..., list(fm_adapters.GALILEO_SLOTS)]  # [B, H, W, T, 6] reflectance x 1e4
    b, h, w, t, _ = raw.shape
    x = torch.from_numpy(raw / 1e4).float().permute(0, 3, 4, 1, 2).reshape(b, 6 * t, h, w)
    with torch.no_grad():
        grid = embeddings.galileo_patch_grid(
            galileo.encoder, x, torch.from_numpy(d["in_months"]), n_times=t, window=h
        )
    ref = d["pooled_per_patch"].reshape(b, h // 4, w // 4, 128).transpose(0, 3, 1, 2)
    assert np.abs(grid.numpy() - ref).max() <= 1e-4


def test_galileo_grid_tiles_windows_and_pads_odd_sizes(galileo: embeddings.GalileoEmbedder) -> None:
    x = torch.rand(1, 6, 20, 28, generator=torch.Generator().manual_seed(0)) * 0.3
    months = torch.tensor([[5]])
    with torch.no_grad():
        grid = embeddings.galileo_patch_grid(galileo.encoder, x, months, n_times=1, window=16)
        # windows start at y in (0, 4) and x in (0, 12): patch (0, 0..2) is seen by the first window only,
        # patch (1, 1) by the windows at (0, 0) and (4, 0), whose tokens are averaged
        first = embeddings.galileo_patch_grid(
            galileo.encoder, x[:, :, :16, :16], months, n_times=1, window=16
        )
        below = embeddings.galileo_patch_grid(
            galileo.encoder, x[:, :, 4:20, :16], months, n_times=1, window=16
        )
    assert grid.shape == (1, 128, 5, 7)
    assert torch.allclose(grid[..., :1, :3], first[..., :1, :3], atol=1e-5)
    assert torch.allclose(grid[..., 1, 1], (first[..., 1, 1] + below[..., 0, 1]) / 2, atol=1e-5)
    assert not torch.allclose(first[..., 1, 1], below[..., 0, 1], atol=1e-3)  # context really differs
    px = embeddings.upsample_grid(grid, (20, 28), 4)
    assert px.shape == (1, 128, 20, 28) and torch.isfinite(px).all()


def test_galileo_grid_survives_nodata_windows(galileo: embeddings.GalileoEmbedder) -> None:
    x = torch.rand(2, 6, 32, 32, generator=torch.Generator().manual_seed(1)) * 0.3
    x[0] = 0  # a chip of pure nodata (every token masked)
    x[1, :, :16] = 0  # half nodata
    with torch.no_grad():
        alone = embeddings.galileo_patch_grid(
            galileo.encoder, x[:1], torch.tensor([[5]]), n_times=1, window=16
        )
        both = embeddings.galileo_patch_grid(
            galileo.encoder, x, torch.tensor([[5], [5]]), n_times=1, window=16
        )
    assert (alone == 0).all() and torch.isfinite(both).all()
    assert (both[0] == 0).all() and (both[1, :, :4] == 0).all() and (both[1, :, 4:] != 0).any()


# ------------------------------------------------------------------------------------------------ cache
def test_embed_chip_cache_hit_miss_and_invalidation(
    galileo: embeddings.GalileoEmbedder, fixture_roots: dict, tmp_path: Path
) -> None:
    ds = datasets.open("burn_scars", fixture_roots["burn_scars"])
    chip = ds.chip_ids("test")[0]
    cache = embeddings.EmbeddingCache(tmp_path)
    emb, y, ctx = embeddings.embed_chip(galileo, ds, chip, cache)
    assert emb.shape == (128, 32, 32) and emb.dtype == np.float32 and y.shape == (32, 32)
    assert (cache.hits, cache.misses, cache.writes) == (0, 1, 1)
    again, _, _ = embeddings.embed_chip(galileo, ds, chip, cache)
    assert (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(again, emb)  # float16 round trip identical on hit and miss
    fresh, _, _ = embeddings.embed_chip(galileo, ds, chip, None)
    np.testing.assert_array_equal(fresh, emb)
    files = list((tmp_path / "embeddings").rglob("*"))
    assert not [f for f in files if f.name.endswith(".tmp")]

    # other weights (sha), other settings, an edited image: each is a miss
    other = embeddings.GalileoEmbedder(galileo.encoder, "0" * 64, window=32)
    embeddings.embed_chip(other, ds, chip, cache)
    assert cache.misses == 2
    embeddings.embed_chip(
        embeddings.GalileoEmbedder(galileo.encoder, galileo.weights_sha256, window=32, patch_size=8),
        ds,
        chip,
        cache,
    )
    assert cache.misses == 3
    image = ds.paths(chip)[0]
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    embeddings.embed_chip(galileo, ds, chip, cache)
    assert cache.misses == 4 and cache.hits == 1


def test_cache_rejects_a_foreign_file_at_the_same_name(
    galileo: embeddings.GalileoEmbedder, fixture_roots, tmp_path
) -> None:
    ds = datasets.open("burn_scars", fixture_roots["burn_scars"])
    chip = ds.chip_ids("test")[1]
    cache = embeddings.EmbeddingCache(tmp_path)
    ctx = fm_adapters.chip_context(ds, chip)
    key = embeddings.cache_key(galileo, ds, chip, ctx)
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(b"not an npz")
    assert cache.get(key) is None and cache.misses == 1
    emb, _, _ = embeddings.embed_chip(galileo, ds, chip, cache)
    assert cache.get(key) is not None


def test_presto_pixels_equal_full_chip_and_are_cached(
    presto: embeddings.PrestoEmbedder, fixture_roots: dict, tmp_path: Path
) -> None:
    ds = datasets.open("crop", fixture_roots["crop"])
    chip = ds.chip_ids("test")[0]
    cache = embeddings.EmbeddingCache(tmp_path)
    full, y, ctx = embeddings.embed_chip(presto, ds, chip, cache)
    assert full.shape == (128, 32, 32) and ctx.months == (3, 6, 8)
    idx = np.array([0, 5, 100, 1023])
    part = embeddings.embed_pixels(presto, ds, chip, idx, cache)
    np.testing.assert_allclose(
        part, full.reshape(128, -1)[:, idx].T, atol=2e-3
    )  # float16 of batch-1 vs batch-N
    hits = cache.hits
    again = embeddings.embed_pixels(presto, ds, chip, idx, cache)
    assert cache.hits == hits + 1
    np.testing.assert_array_equal(again, part)
    with pytest.raises(TypeError, match="only Presto"):
        embeddings.embed_pixels(embeddings.GalileoEmbedder(presto.encoder, "x"), ds, chip, idx)  # type: ignore[arg-type]


def test_presto_embedding_matches_the_model_on_a_pixel(presto: embeddings.PrestoEmbedder) -> None:
    a = (np.random.default_rng(0).random((6, 2, 3)) * 0.3).astype(np.float32)
    ctx = fm_adapters.ChipContext((4,), (10.0, 20.0), 30.0, "test", "test")
    emb = presto.encode(a, ctx)
    x, mask, dw = fm_adapters.presto_inputs(torch.from_numpy(a[:, 1, 2][None]), n_times=1)
    with torch.no_grad():
        ref = presto.encoder(x, dw, torch.tensor([[10.0, 20.0]]), mask, 4)[0].numpy()
    np.testing.assert_allclose(emb[:, 1, 2], ref, atol=1e-5)


def test_tiled_windows_give_the_window_by_window_grid_exactly():
    """Windows that tile the image are cut by reshaping: the same grid as encoding each window on its own."""
    torch.manual_seed(0)
    enc = _galileo.GalileoEncoder(**_galileo.NANO_CONFIG).eval()
    x = torch.rand(2, 12, 32, 32) * 0.3 + 0.02
    months = torch.tensor([[3, 7], [4, 8]])
    kw = dict(n_times=2, patch_size=8, window=16, windows_per_batch=1)
    with torch.no_grad():
        grid = embeddings.galileo_patch_grid(enc, x, months, **kw)
        assert grid.shape == (2, enc.embed_dim, 4, 4)
        for bi in range(2):
            for y0 in (0, 16):
                for x0 in (0, 16):
                    win = x[bi : bi + 1, :, y0 : y0 + 16, x0 : x0 + 16]
                    one = embeddings.galileo_patch_grid(enc, win, months[bi : bi + 1], **kw)
                    torch.testing.assert_close(
                        grid[bi : bi + 1, :, y0 // 8 : y0 // 8 + 2, x0 // 8 : x0 // 8 + 2],
                        one,
                        rtol=0,
                        atol=0,
                    )
        # windows that overlap (a 24 px window on 32 px) take the general path: every patch still covered
        over = embeddings.galileo_patch_grid(enc, x, months, n_times=2, patch_size=8, window=24)
        assert over.shape == grid.shape and torch.isfinite(over).all()

"""HLS reflectance -> inputs of the two published foundation models (Galileo-nano, Presto), every choice stated.

The study's images carry six HLS bands (``B02 B03 B04 B8A B11 B12``, surface reflectance, 30 m; Sen1Floods11's
Sentinel-2 at 10 m), one or three dates. Both models were pretrained on Sentinel-2 L1C and many other inputs.
This module maps what we have onto their band slots and hides everything else behind the models' own masks:

==================  ==========================================  ==========================================
                    Galileo-nano                                Presto
==================  ==========================================  ==========================================
band slots          B02->B2, B03->B3, B04->B4, B8A->B8A, B11->B11, B12->B12 (identical S2 band definitions)
visible groups      S2_RGB, S2_NIR_20m, S2_SWIR                 the same three groups
masked (we lack)    S1, S2_Red_Edge (B5-7), S2_NIR_10m (B8),    S1, red edge, B8, ERA5, SRTM, NDVI; Dynamic
                    NDVI; all space (SRTM, DW, WorldCereal),    World = 9 ("not available")
                    time (ERA5, TerraClimate, VIIRS) and
                    static (LandScan, location, DW/WC) groups
normalisation       pretraining "std" scheme of                 pretraining constants: S2 / 10,000 (= the
                    normalization.json: ``(v - (m - 2s)) /      reflectance itself)
                    (4s)`` on reflectance x 10,000
NDVI                masked by default: both models define it from B8, which HLS lacks. ``ndvi="b8a"`` computes
                    it from B8A and B04 instead (a close but not identical NIR band) and shows the NDVI group
months              one month per date, passed to the month encoding of every timestep
location            not given (the static location group is     chip centre (lat, lon) from the chip's CRS;
                    masked, like every static group)            the model has no "unknown location" mode
nodata              a patch whose pixels are all nodata at a    a pixel's date with all six bands nodata is
                    date (all six bands exactly 0, which is     masked; the others still are seen
                    how the loaders fill it) is masked
==================  ==========================================  ==========================================

Caveats, stated once here and in the results notes: HLS is surface reflectance (atmospherically corrected,
Sentinel-2 and Landsat harmonised), while both models saw top-of-atmosphere L1C digital numbers; the band
centres match but the radiometry differs, most in the blue band. Nothing here corrects for that.

Months: ``chip_context`` takes the dates a chip's image file carries, in this order: its ``ACQUISITION_DATES`` (or
``ACQUISITION_DATE``) tag, ISO dates ``YYYY-MM-DD`` separated by commas, one per date of the chip (sim-crop writes
them; any GeoTIFF may); its ``ACQUISITION_DOY`` tag, days of year (with ``ACQUISITION_YEAR`` if given, else read
in a non-leap year); for a single-date chip, an HLS-style ``.YYYYDDD.`` token in the file name (burn scars have
it). Only where the file holds none (or not one per date) does it fall back to :data:`DEFAULT_MONTHS` (stated
assumptions: the real crop data ships three dates of the 2022 growing season without dates, so April, July and
September stand for early, mid and late season; single-date tasks use July). ``ChipContext.month_source`` says which
was used; the months go into the embedding cache key and the results note.

Bump :data:`ADAPTER_VERSION` whenever anything above changes: it is part of the embedding cache key.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from helpers.models import galileo as _g
from helpers.models import presto as _p

#: 2: months from the file's date tags (sim-crop's per-tile dates) before the assumed defaults.
ADAPTER_VERSION = "2"

HLS_BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")
#: HLS band -> Sentinel-2 band name used by both models.
HLS_TO_S2 = {"B02": "B2", "B03": "B3", "B04": "B4", "B8A": "B8A", "B11": "B11", "B12": "B12"}
GALILEO_SLOTS = tuple(_g.SPACE_TIME_BANDS.index(HLS_TO_S2[b]) for b in HLS_BANDS)  # (2, 3, 4, 9, 10, 11)
PRESTO_SLOTS = tuple(_p.BANDS.index(HLS_TO_S2[b]) for b in HLS_BANDS)  # (2, 3, 4, 9, 10, 11)
#: Token groups the six HLS bands fill completely (the others stay masked).
VISIBLE_GROUPS = ("S2_RGB", "S2_NIR_20m", "S2_SWIR")

#: Galileo pretraining statistics (normalization.json, key "13") of the six HLS bands, reflectance x 10,000.
GALILEO_MEAN = (1395.3408730676722, 1338.4026921784578, 1343.09883810357, 2750.2854646886753,
                2234.911100061487, 1474.5311266077113)  # fmt: skip
GALILEO_STD = (917.7041440370853, 913.2988423581528, 1092.678723527555, 1204.472755085893,
               1145.9774063078878, 980.2429840007796)  # fmt: skip
#: ``x_norm = (reflectance * 1e4 - shift) / div`` with shift = mean - 2 std, div = 4 std (the "std" scheme).
GALILEO_SHIFT = tuple(m - 2 * s for m, s in zip(GALILEO_MEAN, GALILEO_STD, strict=True))
GALILEO_DIV = tuple((m + 2 * s) - (m - 2 * s) for m, s in zip(GALILEO_MEAN, GALILEO_STD, strict=True))

#: Month (0 = January) per date where a chip's file carries no date (tags or name); see the module docstring.
DEFAULT_MONTHS = {"crop": (3, 6, 8), "burn": (6,), "flood": (6,), "texture": (6,), "landcover": (6,)}
#: Chip centre used by Presto when a chip has no usable CRS: the centre of the contiguous US (all three
#: original HLS datasets are CONUS; simulated data has no real location).
DEFAULT_LATLON = (39.8, -98.6)
DEFAULT_RESOLUTION_M = 30.0
NDVI_MODES = ("masked", "b8a")

_DATE_RE = re.compile(r"\.(\d{4})(\d{3})\.")


@dataclass(frozen=True)
class ChipContext:
    """What a model needs beyond the pixels, and where each value came from (for notes and cache keys)."""

    months: tuple[int, ...]
    latlon: tuple[float, float]
    resolution_m: float
    month_source: str
    latlon_source: str

    @property
    def months_source(self) -> str:
        """Alias of :attr:`month_source`: where the months came from (file tags, file name or assumed)."""
        return self.month_source

    def key(self) -> str:
        """Stable text for cache keys (rounded so float noise never invalidates a cache)."""
        return (
            f"months={list(self.months)};latlon={self.latlon[0]:.4f},{self.latlon[1]:.4f};"
            f"res={self.resolution_m:.1f}"
        )


def month_from_name(name: str) -> int | None:
    """Month (0-11) of an HLS-style ``.YYYYDDD.`` acquisition date in a file name or chip id, else None."""
    m = _DATE_RE.search(name)
    if not m:
        return None
    year, doy = int(m.group(1)), int(m.group(2))
    if not 1 <= doy <= 366 or not 1980 <= year <= 2100:
        return None
    return (_dt.date(year, 1, 1) + _dt.timedelta(days=doy - 1)).month - 1


#: Tags a GeoTIFF may carry its acquisition dates in (file-level metadata), in the order they are looked for.
DATE_TAGS = ("ACQUISITION_DATES", "ACQUISITION_DATE", "ACQUISITION_DOY")


def months_from_tags(tags: dict[str, str]) -> tuple[tuple[int, ...], str] | None:
    """Month (0-11) of every date listed in a file's tags (see :data:`DATE_TAGS`) and the tag read, or None.

    Why: a chip's dates are data (sim-crop draws them per tile), and a model given assumed months instead sees a
    season that is not in the pixels. ISO dates ``YYYY-MM-DD`` (anything after the first 10 characters, such as a
    time, is ignored) or days of year, comma separated; a malformed tag counts as absent.
    """
    for tag in DATE_TAGS:
        text = tags.get(tag)
        if not text:
            continue
        parts = [v.strip() for v in str(text).split(",") if v.strip()]
        try:
            if tag == "ACQUISITION_DOY":
                year = int(tags.get("ACQUISITION_YEAR", 2022))  # 2022: a non-leap year
                days = [int(v) for v in parts]
                if not all(1 <= d <= 366 for d in days):
                    continue
                dates = [_dt.date(year, 1, 1) + _dt.timedelta(days=d - 1) for d in days]
            else:
                dates = [_dt.date.fromisoformat(v[:10]) for v in parts]
        except ValueError:
            continue
        if dates:
            return tuple(d.month - 1 for d in dates), tag
    return None


def tags_from_file(path: str | Path) -> dict[str, str]:
    """The file-level metadata tags of a raster (empty when it cannot be read)."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            return dict(src.tags())
    except (rasterio.errors.RasterioError, OSError):
        return {}


def geometry_from_file(path: str | Path) -> tuple[tuple[float, float], float] | None:
    """Chip-centre (lat, lon) and pixel size in whole metres from a GeoTIFF's CRS and transform, or None.

    Geographic CRSs (Sen1Floods11 is EPSG:4326) get their north-south degree pixel size converted to metres
    (Sen1Floods11's 8.983e-5 degrees give 10 m); projected ones use their linear unit, and the centre is
    transformed to WGS 84 with rasterio.
    """
    import rasterio
    from rasterio.warp import transform as warp_transform

    try:
        with rasterio.open(path) as src:
            crs, tr, w, h = src.crs, src.transform, src.width, src.height
    except (rasterio.errors.RasterioError, OSError):
        return None
    if crs is None or tr.is_identity:
        return None
    cx, cy = tr * (w / 2, h / 2)
    try:
        if crs.is_geographic:
            # north-south pixel size: a degree of latitude is ~111 km everywhere (east-west shrinks with cos(lat))
            lat, lon = float(cy), float(cx)
            res = abs(tr.e) * 111_320.0
        else:
            xs, ys = warp_transform(crs, "EPSG:4326", [cx], [cy])
            lon, lat = float(xs[0]), float(ys[0])
            res = abs(tr.a) * (crs.linear_units_factor[1] if crs.linear_units_factor else 1.0)
    except Exception:  # noqa: BLE001 - any CRS problem means "no usable geometry", handled by the caller
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0.1 < res < 10_000):
        return None
    return (lat, lon), float(max(1, round(res)))


def chip_context(ds, chip_id: str) -> ChipContext:
    """Months, location and pixel size of one chip (see the module docstring for the sources and fallbacks).

    The months come from the image file's date tags when it lists one date per date of the chip, else from an
    HLS-style date in the file name (single-date chips), else from :data:`DEFAULT_MONTHS`; ``month_source`` says
    which. The location is the chip centre from the file's CRS, else :data:`DEFAULT_LATLON`.
    """
    image = None
    if hasattr(ds, "paths"):
        try:
            image = ds.paths(chip_id)[0]
        except Exception:  # noqa: BLE001 - a dataset without files (tests) still gets defaults
            image = None
    n_times = int(ds.n_times)
    tagged = months_from_tags(tags_from_file(image)) if image is not None else None
    month = month_from_name(Path(image).name) if image is not None else None
    if month is None:
        month = month_from_name(chip_id)
    if tagged is not None and len(tagged[0]) == n_times:
        months, msrc = tagged[0], f"file tags ({tagged[1]})"
    elif month is not None and n_times == 1:
        months, msrc = (month,), "file date"
    else:
        months = DEFAULT_MONTHS.get(ds.task, (6,) * n_times)
        if len(months) != n_times:
            months = (6,) * n_times
        msrc = "assumed (no date in the data)"
    geo = geometry_from_file(image) if image is not None else None
    if geo is None:
        return ChipContext(months, DEFAULT_LATLON, DEFAULT_RESOLUTION_M, msrc, "assumed (no usable CRS)")
    (lat, lon), res = geo
    return ChipContext(months, (lat, lon), res, msrc, "chip centre")


# ---------------------------------------------------------------------------------------------------- Galileo
def _check_x(x: torch.Tensor, n_times: int) -> tuple[int, int, int]:
    if x.ndim != 4 or x.shape[1] != len(HLS_BANDS) * n_times:
        raise ValueError(
            f"expected reflectance [B, {len(HLS_BANDS) * n_times}, H, W] (6 HLS bands x {n_times} dates, "
            f"date-major), got {tuple(x.shape)}"
        )
    return x.shape[0], x.shape[2], x.shape[3]


def nodata_mask(x: torch.Tensor, n_times: int) -> torch.Tensor:
    """``[B, T, H, W]`` True where all six bands of a date are exactly 0 (the loaders' nodata fill)."""
    b, h, w = _check_x(x, n_times)
    return (x.reshape(b, n_times, len(HLS_BANDS), h, w) == 0).all(2)


def galileo_inputs(
    x: torch.Tensor,
    months: torch.Tensor,
    *,
    n_times: int,
    patch_size: int | None = None,
    ndvi: str = "masked",
    shift: torch.Tensor | None = None,
    div: torch.Tensor | None = None,
) -> tuple[torch.Tensor, ...]:
    """The nine Galileo arguments from HLS reflectance.

    Args:
        x: ``[B, 6T, H, W]`` reflectance, dates stacked date-major.
        months: ``[B, T]`` month per date (0 = January).
        n_times: ``T``.
        patch_size: With a patch size, patches that are nodata at every pixel of a date are masked (needs ``H``
            and ``W`` divisible by it); without, no nodata masking.
        ndvi: ``"masked"`` or ``"b8a"`` (see the module docstring).
        shift: ``[6]`` normalisation shift (reflectance x 1e4 units); default :data:`GALILEO_SHIFT`. A model that
            keeps the constants as buffers (the fine-tuning model) passes its own.
        div: ``[6]`` normalisation divisor; default :data:`GALILEO_DIV`.

    Returns:
        ``(s_t_x, sp_x, t_x, st_x, s_t_m, sp_m, t_m, st_m, months)`` for :class:`GalileoEncoder`; hidden
        channels hold 0 (the encoder never reads them).
    """
    if ndvi not in NDVI_MODES:
        raise ValueError(f"ndvi must be one of {NDVI_MODES}, got {ndvi!r}")
    b, h, w = _check_x(x, n_times)
    t = n_times
    refl = x.reshape(b, t, len(HLS_BANDS), h, w).permute(0, 3, 4, 1, 2)  # [B, H, W, T, 6]
    shift = refl.new_tensor(GALILEO_SHIFT) if shift is None else shift.to(refl)
    div = refl.new_tensor(GALILEO_DIV) if div is None else div.to(refl)
    s_t_x = refl.new_zeros(b, h, w, t, len(_g.SPACE_TIME_BANDS))
    s_t_x[..., list(GALILEO_SLOTS)] = (refl * 1e4 - shift) / div
    s_t_m = refl.new_ones(b, h, w, t, len(_g.SPACE_TIME_GROUPS))
    groups = list(_g.SPACE_TIME_GROUPS)
    for g in VISIBLE_GROUPS:
        s_t_m[..., groups.index(g)] = 0
    if ndvi == "b8a":
        red, nir = refl[..., HLS_BANDS.index("B04")], refl[..., HLS_BANDS.index("B8A")]
        s_t_x[..., _g.SPACE_TIME_BANDS.index("NDVI")] = _ndvi(nir, red)
        s_t_m[..., groups.index("NDVI")] = 0
    if patch_size is not None:
        nd = nodata_mask(x, t).to(x.dtype)  # [B, T, H, W]
        if h % patch_size or w % patch_size:
            raise ValueError(f"image {h}x{w} is not divisible by the patch size {patch_size}")
        all_nd = torch.nn.functional.avg_pool2d(nd, patch_size) >= 1.0  # whole patch nodata
        all_nd = all_nd.repeat_interleave(patch_size, 2).repeat_interleave(patch_size, 3)
        s_t_m = torch.where(all_nd.permute(0, 2, 3, 1)[..., None], torch.ones_like(s_t_m), s_t_m)
    s_t_x = s_t_x * (1 - s_t_m).repeat_interleave(
        torch.tensor([len(i) for i in _g.SPACE_TIME_GROUPS.values()], device=x.device), dim=-1
    )
    sp_x = x.new_zeros(b, h, w, len(_g.SPACE_BANDS))
    t_x = x.new_zeros(b, t, len(_g.TIME_BANDS))
    st_x = x.new_zeros(b, len(_g.STATIC_BANDS))
    sp_m = x.new_ones(b, h, w, len(_g.SPACE_GROUPS))
    t_m = x.new_ones(b, t, len(_g.TIME_GROUPS))
    st_m = x.new_ones(b, len(_g.STATIC_GROUPS))
    months = torch.as_tensor(months, device=x.device).long().reshape(b, t)
    return s_t_x, sp_x, t_x, st_x, s_t_m, sp_m, t_m, st_m, months


def _ndvi(nir: torch.Tensor, red: torch.Tensor) -> torch.Tensor:
    den = nir + red
    return torch.where(
        den > 0, (nir - red) / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den)
    )


# ----------------------------------------------------------------------------------------------------- Presto
def presto_inputs(
    pixels: torch.Tensor, *, n_times: int, ndvi: str = "masked"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Presto ``x``, ``mask`` and ``dynamic_world`` for a batch of pixels.

    Args:
        pixels: ``[N, 6T]`` reflectance of N pixels, date-major (a chip's ``(C, H, W)`` array reshaped ``C, -1``
            and transposed).
        n_times: ``T``.
        ndvi: ``"masked"`` or ``"b8a"``.

    Returns:
        ``x [N, T, 17]`` (normalised; hidden channels 0), ``mask [N, T, 17]`` (1 = hidden), ``dynamic_world
        [N, T]`` (all 9 = not available).
    """
    if ndvi not in NDVI_MODES:
        raise ValueError(f"ndvi must be one of {NDVI_MODES}, got {ndvi!r}")
    if pixels.ndim != 2 or pixels.shape[1] != len(HLS_BANDS) * n_times:
        raise ValueError(f"expected pixels [N, {len(HLS_BANDS) * n_times}], got {tuple(pixels.shape)}")
    n, t = pixels.shape[0], n_times
    refl = pixels.reshape(n, t, len(HLS_BANDS))
    x = pixels.new_zeros(n, t, len(_p.BANDS))
    mask = pixels.new_ones(n, t, len(_p.BANDS))
    add = refl.new_tensor([_p.NORM_ADD[i] for i in PRESTO_SLOTS])
    div = refl.new_tensor([_p.NORM_DIV[i] for i in PRESTO_SLOTS])
    x[..., list(PRESTO_SLOTS)] = (refl * 1e4 + add) / div
    mask[..., list(PRESTO_SLOTS)] = 0
    if ndvi == "b8a":
        i_ndvi = _p.BANDS.index("NDVI")
        x[..., i_ndvi] = _ndvi(refl[..., HLS_BANDS.index("B8A")], refl[..., HLS_BANDS.index("B04")])
        mask[..., i_ndvi] = 0
    nodata = (refl == 0).all(-1)  # [N, T]
    mask = torch.where(nodata[..., None], torch.ones_like(mask), mask)
    x = x * (1 - mask)
    dw = torch.full((n, t), _p.DW_MISSING, dtype=torch.long, device=pixels.device)
    return x, mask, dw


def months_tensor(months: tuple[int, ...] | list[int], batch: int) -> torch.Tensor:
    """``[B, T]`` long tensor of the same months for every sample."""
    m = torch.as_tensor(list(months), dtype=torch.long)
    if m.ndim != 1 or int(m.min()) < 0 or int(m.max()) > 11:
        raise ValueError(f"months must be a sequence of 0..11, got {months}")
    return m[None].expand(batch, -1).clone()


def describe(ctx: ChipContext | None = None, ndvi: str = "masked") -> str:
    """One line for the results note: band mapping, masks, months and location sources."""
    parts = [
        "HLS B02,B03,B04,B8A,B11,B12 -> S2 B2,B3,B4,B8A,B11,B12; other groups masked",
        "NDVI masked (defined from B8)" if ndvi == "masked" else "NDVI from B8A (B8 proxy)",
    ]
    if ctx is not None:
        parts.append(f"months {list(ctx.months)} ({ctx.month_source}); location {ctx.latlon_source}")
    return "; ".join(parts)


__all__ = [
    "ADAPTER_VERSION",
    "ChipContext",
    "chip_context",
    "months_from_tags",
    "galileo_inputs",
    "presto_inputs",
    "months_tensor",
    "nodata_mask",
]

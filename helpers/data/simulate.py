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
import zlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from helpers.data import io
from helpers.data.spectral import HLS_BANDS, material, vegetation

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
SENSOR_NOISE = 0.003  # per-band white noise (reflectance), about the noise-equivalent reflectance of S2 SR
GAIN_SD = 0.04  # per-chip (per-date) illumination gain, common to all bands
OFFSET_SD = 0.004  # per-chip (per-date) additive atmospheric residual, per band
PSF_SIGMA_PX = 0.6  # Gaussian sensor PSF (pixels): makes mixed pixels at every boundary

CROP_CLASSES = (
    "natural_vegetation", "forest", "corn", "soybeans", "wetlands", "developed_barren", "open_water",
    "winter_wheat", "alfalfa", "fallow_idle_cropland", "cotton", "sorghum", "other",
)  # fmt: skip
"""Class names of the real multi-temporal crop dataset, mask codes 1..13 in this order (0 = no data)."""

TEXTURE_CLASSES = ("row_crop", "pasture", "rice_paddy", "woodland", "fallow", "built_up")
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
# burn-scar shape statistics measured on the 289 real HLS Burn Scars training masks (512 x 512) by
# scripts/calibrate_burn_shapes.py; quantiles at BURN_Q. The generator samples the burned fraction from the first
# row and the ellipse aspect from the second; the rest are the targets the calibration test checks against.
BURN_Q = (0.0, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 1.0)
BURN_REAL_STATS = {
    "fraction": (0.008382, 0.01917, 0.02123, 0.03017, 0.05868, 0.2026, 0.5941, 0.7496, 0.9626),
    "aspect": (1.019, 1.142, 1.222, 1.412, 1.795, 2.39, 3.403, 4.018, 12.52),
    "compactness": (0.02532, 0.06115, 0.07919, 0.1142, 0.1743, 0.2404, 0.3088, 0.3534, 0.6286),
    "edge_per_sqrt_area": (4.471, 5.963, 6.38, 7.231, 8.491, 10.61, 12.67, 14.69, 22.28),
}
BURN_REAL_SINGLE_PATCH = 0.920  # share of real masks whose burned area is one 8-connected patch
# generator parameters, chosen from calibration runs to match the real medians of aspect, compactness and edges
BURN_SHAPE_PARAMS = {
    "lobe_corr": 0.45,  # lobe-scale perturbation: correlation length / equal-area radius
    "lobe_amp": 0.7,
    "rough_corr": 0.05,  # fine boundary roughness
    "rough_amp": 0.2,
    "centre_sd": 0.02,  # real chips are centred on their burn (centroids at 0.47-0.53 of the chip side)
    "aspect_boost": 1.25,  # ellipse aspect = boost x sampled real aspect (roughness rounds shapes off again)
}


# ------------------------------------------------------------------------------------------------ random fields
def _rng(*keys: int | str) -> np.random.Generator:
    """Independent, reproducible stream for a tuple of keys (strings hashed with crc32, stable across runs)."""
    ints = [k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(ints))


def gaussian_field(
    shape: tuple[int, int], corr_px: float, rng: np.random.Generator, n: int = 1
) -> np.ndarray:
    """Unit-variance stationary Gaussian random fields with a Gaussian correlation kernel of scale `corr_px`.

    FFT synthesis (white noise times a Gaussian transfer function), so the cost does not grow with the
    correlation length; the fields are periodic over the (padded) domain, which no statistic here relies on.

    Args:
        shape: (H, W).
        corr_px: kernel standard deviation in pixels (0 gives white noise).
        rng: random generator.
        n: number of independent fields.

    Returns:
        (n, H, W) float64 fields, each standardised to mean 0 and variance 1.
    """
    h, w = shape
    if corr_px <= 0:
        return rng.standard_normal((n, h, w))
    ph, pw = h + int(2 * corr_px), w + int(2 * corr_px)
    noise = rng.standard_normal((n, ph, pw))
    ky = np.fft.fftfreq(ph)[:, None]
    kx = np.fft.rfftfreq(pw)[None, :]
    transfer = np.exp(-2.0 * (np.pi * corr_px) ** 2 * (kx**2 + ky**2))
    f = np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=(ph, pw))[:, :h, :w]
    f -= f.mean(axis=(1, 2), keepdims=True)
    f /= f.std(axis=(1, 2), keepdims=True) + 1e-12
    return f


def voronoi_parcels(
    shape: tuple[int, int], n: int, rng: np.random.Generator, anisotropy: float = 1.0
) -> np.ndarray:
    """Parcel ids (0..n-1) of an anisotropic Voronoi partition: fields elongated along a random direction.

    Args:
        shape: (H, W).
        n: number of parcels (seeds drawn uniformly, including a margin so edge parcels are cut like in reality).
        rng: random generator.
        anisotropy: ratio of the metric's axes (1 = isotropic).

    Returns:
        (H, W) int64 parcel ids, relabelled 0..k-1 over the parcels that appear.
    """
    from scipy.spatial import cKDTree

    h, w = shape
    seeds = rng.uniform([-0.1 * h, -0.1 * w], [1.1 * h, 1.1 * w], size=(max(n, 1), 2))
    theta = rng.uniform(0, np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    scale = np.diag([1.0, 1.0 / anisotropy])
    a = rot @ scale @ rot.T
    yy, xx = np.mgrid[0:h, 0:w]
    pts = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(float)
    _, idx = cKDTree(seeds @ a.T).query(pts @ a.T)
    _, ids = np.unique(idx, return_inverse=True)
    return ids.reshape(h, w)


def _sample_mvn(mean: np.ndarray, cov: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    chol = np.linalg.cholesky(cov + 1e-10 * np.eye(len(mean)))
    return mean + rng.standard_normal((n, len(mean))) @ chol.T


def _chol(cov: np.ndarray) -> np.ndarray:
    return np.linalg.cholesky(cov + 1e-10 * np.eye(cov.shape[-1]))


def rank_uniform(z: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Replace values by their within-group rank mapped to (0, 1): an exactly uniform marginal per group.

    Why: it lets any spatial pattern (stripes, blobs, speckle) carry the *same* per-pixel distribution, so
    classes can differ in pattern alone. Ties are broken at random.

    Args:
        z: (H, W) pattern values.
        groups: (H, W) non-negative int group ids (parcels).
        rng: random generator (tie breaking).

    Returns:
        (H, W) values in (0, 1).
    """
    zf = z.ravel() + 1e-9 * rng.standard_normal(z.size)
    g = groups.ravel()
    order = np.lexsort((zf, g))
    counts = np.bincount(g)
    starts = np.cumsum(counts) - counts
    ranks = np.empty(z.size)
    ranks[order] = np.arange(z.size) - starts[g[order]]
    return ((ranks + 0.5) / counts[g]).reshape(z.shape)


# ------------------------------------------------------------------------------------------- nuisance and sensor
def cloud_alpha(shape: tuple[int, int], cover: float, rng: np.random.Generator) -> np.ndarray:
    """Cloud opacity in [0, 1] with soft edges covering about `cover` of the chip."""
    if cover <= 0:
        return np.zeros(shape)
    g = gaussian_field(shape, max(shape) / 12, rng)[0] + 0.3 * gaussian_field(shape, 2.0, rng)[0]
    t = np.quantile(g, 1 - cover)
    return np.clip((g - t) / 0.6, 0, 1)


def add_clouds(
    img: np.ndarray, alpha: np.ndarray, rng: np.random.Generator, shadow: bool = True
) -> np.ndarray:
    """Blend a cloud layer (bright, grey in the visible/NIR, darker in the SWIR) and its displaced shadow.

    Args:
        img: (6, H, W) reflectance.
        alpha: (H, W) cloud opacity.
        rng: random generator.
        shadow: darken a displaced copy of the cloud (cloud shadows are a classic water/burn confuser).

    Returns:
        (6, H, W) reflectance with clouds.
    """
    if not alpha.any():
        return img
    if shadow:
        dy, dx = rng.integers(-max(3, alpha.shape[0] // 8), max(4, alpha.shape[0] // 8) + 1, size=2)
        sh = ndi.shift(alpha, (dy, dx), order=1, mode="constant", cval=0.0)
        img = img * (1 - 0.65 * sh)[None]
    cloud = np.array([0.42, 0.41, 0.41, 0.43, 0.33, 0.24])[:, None, None] * rng.uniform(0.75, 1.2)
    return (1 - alpha)[None] * img + alpha[None] * cloud


def sensor(img: np.ndarray, rng: np.random.Generator, psf: bool = True) -> np.ndarray:
    """Per-acquisition nuisance: PSF blur, common gain, per-band offset, white sensor noise.

    Args:
        img: (6, H, W) surface reflectance of one date.
        rng: random generator.
        psf: blur with the Gaussian PSF (False for sim-texture, where blur would leak pattern into the
            per-pixel distribution).

    Returns:
        (6, H, W) observed reflectance.
    """
    if psf:
        img = ndi.gaussian_filter(img, sigma=(0, PSF_SIGMA_PX, PSF_SIGMA_PX), mode="reflect")
    gain = 1.0 + GAIN_SD * rng.standard_normal()
    offset = OFFSET_SD * rng.standard_normal(6)[:, None, None]
    return gain * img + offset + SENSOR_NOISE * rng.standard_normal(img.shape)


def to_int16(reflectance: np.ndarray) -> np.ndarray:
    """Reflectance -> HLS-style int16 (x 1e4), clipped to [1, 16000]: 0 stays free as the nodata value."""
    return np.clip(np.rint(reflectance * 1e4), 1, 16000).astype(np.int16)


def _render(
    labels_or_parcels: np.ndarray,
    means: np.ndarray,
    chols: np.ndarray,
    fields: np.ndarray,
) -> np.ndarray:
    """Per-pixel spectra = mean of its unit + Cholesky factor of its unit times correlated unit fields.

    Args:
        labels_or_parcels: (H, W) unit index into means/chols.
        means: (U, 6).
        chols: (U, 6, 6).
        fields: (6, H, W) unit-variance (spatially correlated) fields.

    Returns:
        (6, H, W).
    """
    u = labels_or_parcels
    return means[u].transpose(2, 0, 1) + np.einsum("hwij,jhw->ihw", chols[u], fields)


# ------------------------------------------------------------------------------------------------- mixtures
def _component(c) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(c, tuple):
        return vegetation(c[1])
    return material(c)


def mixture(components: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a linear mixture of independent materials: sum f_k m_k, sum f_k^2 C_k."""
    mean = np.zeros(6)
    cov = np.zeros((6, 6))
    for comp, frac in components:
        m, c = _component(comp)
        mean += frac * m
        cov += frac**2 * c
    return mean, cov


# ------------------------------------------------------------------------------------------------------ texture
# (material a, material b) per class at knob 0; f = share of a. Partners (odd classes) move to their pair's
# materials as the knob rises. Each class's pattern shapes f in space; f's per-pixel marginal is identical.
TEXTURE_MATERIALS: dict[str, tuple] = {
    "row_crop": (("veg", 3.0), "soil_medium"),
    "pasture": (("veg", 1.0), "npv_litter"),
    "rice_paddy": (("veg", 5.0), "water_humic"),
    "woodland": (("veg", 8.0), "soil_dark"),
    "fallow": ("soil_bright", "npv_wood"),
    "built_up": ("concrete", "asphalt"),
}
TEXTURE_PARTNER = {"pasture": "row_crop", "woodland": "rice_paddy", "built_up": "fallow"}
TEXTURE_PATTERNS = {
    "row_crop": "stripes",
    "pasture": "blobs6",
    "rice_paddy": "lattice",
    "woodland": "speckle",
    "fallow": "smooth",
    "built_up": "blobs2",
}
TEXTURE_F_RANGE = (0.25, 0.75)  # f uniform on this range: keeps the pairs away from each other's pure ends
TEXTURE_PARCEL_VAR = 0.1  # share of the material covariance that varies between parcels
TEXTURE_PIXEL_VAR = 0.03  # share that varies pixel to pixel (white)
TEXTURE_PARCEL_PX = 32.0


def texture_class_materials() -> tuple[list[tuple], list[int]]:
    """Materials (mean_a, cov_a, mean_b, cov_b) of each texture class and the index of its pair's anchor.

    Returns:
        (materials per class in TEXTURE_CLASSES order, anchor index per class: itself for anchors, the anchor of
        its pair for partners).
    """
    mats = [
        (*_component(TEXTURE_MATERIALS[n][0]), *_component(TEXTURE_MATERIALS[n][1])) for n in TEXTURE_CLASSES
    ]
    anchor = [TEXTURE_CLASSES.index(TEXTURE_PARTNER.get(n, n)) for n in TEXTURE_CLASSES]
    return mats, anchor


def _check_knob(knob: float) -> None:
    if not 0.0 <= knob <= 1.0:
        raise ValueError(f"texture knob must lie in [0, 1], got {knob}")


def _pattern(kind: str, shape: tuple[int, int], parcels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    n_p = parcels.max() + 1
    if kind in ("stripes", "lattice"):
        theta = rng.uniform(0, np.pi, n_p)[parcels]
        period = rng.uniform(5.0, 9.0, n_p)[parcels]
        phase = rng.uniform(0, 2 * np.pi, n_p)[parcels]
        u = xx * np.cos(theta) + yy * np.sin(theta)
        z = np.cos(2 * np.pi * u / period + phase)
        if kind == "lattice":
            v = -xx * np.sin(theta) + yy * np.cos(theta)
            z = z + np.cos(2 * np.pi * v / period + phase)
        return z
    corr = {"blobs6": 6.0, "blobs2": 2.0, "speckle": 0.0, "smooth": 25.0}[kind]
    return gaussian_field(shape, corr, rng)[0]


def simulate_texture_chip(size: int, knob: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One sim-texture chip (single date, no PSF so pair classes keep identical per-pixel distributions).

    The knob acts per parcel: each parcel of a partner class takes its own materials with probability 1 - knob
    and its pair anchor's materials with probability knob. So a partner's per-pixel distribution is the mixture
    (1 - knob) P_own + knob P_anchor: identical to the anchor's at knob 1, and the pair's Bayes per-pixel accuracy
    falls linearly from ~1 to 1/2 as the knob rises (as far as the pairs are spectrally separable at knob 0).

    Returns:
        (6, H, W) reflectance and (H, W) uint8 mask with classes 1..6.
    """
    _check_knob(knob)
    mats, anchor = texture_class_materials()
    n_parcels = max(2, int(rng.poisson((size / TEXTURE_PARCEL_PX) ** 2)))
    parcels = voronoi_parcels((size, size), n_parcels, rng, anisotropy=rng.uniform(1.0, 1.8))
    n_p = parcels.max() + 1
    cls = rng.integers(0, len(TEXTURE_CLASSES), n_p)
    mimic = rng.random(n_p) < knob
    source = np.where(mimic, np.asarray(anchor)[cls], cls)  # whose materials each parcel uses
    # spatial pattern of the mixing fraction, class by class, then an exactly uniform marginal per parcel
    z = np.zeros((size, size))
    for k, name in enumerate(TEXTURE_CLASSES):
        sel = cls[parcels] == k
        if sel.any():
            z[sel] = _pattern(TEXTURE_PATTERNS[name], (size, size), parcels, rng)[sel]
    lo, hi = TEXTURE_F_RANGE
    f = lo + (hi - lo) * rank_uniform(z, parcels, rng)
    # parcel-level materials
    a = np.zeros((n_p, 6))
    b = np.zeros((n_p, 6))
    pix_chol = np.zeros((n_p, 6, 6))
    for p in range(n_p):
        ma, ca, mb, cb = mats[source[p]]
        a[p] = _sample_mvn(ma, TEXTURE_PARCEL_VAR * ca, 1, rng)[0]
        b[p] = _sample_mvn(mb, TEXTURE_PARCEL_VAR * cb, 1, rng)[0]
        pix_chol[p] = _chol(TEXTURE_PIXEL_VAR * 0.5 * (ca + cb))
    img = f[None] * a[parcels].transpose(2, 0, 1) + (1 - f)[None] * b[parcels].transpose(2, 0, 1)
    img = img + np.einsum("hwij,jhw->ihw", pix_chol[parcels], rng.standard_normal((6, size, size)))
    img = sensor(img, rng, psf=False)
    return img, (cls[parcels] + 1).astype(np.uint8)


def _texture_logpdf(x: np.ndarray, mat: tuple, nq: int = 16) -> np.ndarray:
    """Exact per-pixel log density of one material pair (quadrature over mixing fraction and gain)."""
    ma, ca, mb, cb = mat
    lo, hi = TEXTURE_F_RANGE
    f_nodes = lo + (hi - lo) * (np.arange(nq) + 0.5) / nq
    gh_x, gh_w = np.polynomial.hermite_e.hermegauss(7)
    g_w = gh_w / gh_w.sum()
    iso = (OFFSET_SD**2 + SENSOR_NOISE**2) * np.eye(6)
    comps = []
    for f in f_nodes:
        m_f = f * ma + (1 - f) * mb
        c_f = TEXTURE_PARCEL_VAR * (f**2 * ca + (1 - f) ** 2 * cb) + TEXTURE_PIXEL_VAR * 0.5 * (ca + cb)
        for g, wg in zip(1 + GAIN_SD * gh_x, g_w, strict=True):
            chol = np.linalg.cholesky(g**2 * c_f + iso)
            d = np.linalg.solve(chol, (x - g * m_f).T)
            comps.append(np.log(wg / nq) - 0.5 * (d**2).sum(axis=0) - np.log(np.diag(chol)).sum())
    comps = np.stack(comps)
    mx = comps.max(axis=0)
    return mx + np.log(np.exp(comps - mx).sum(axis=0))


@lru_cache(maxsize=32)
def texture_bayes_accuracy(knob: float, n_per_class: int = 3000, seed: int = 12345) -> tuple[float, float]:
    """Bayes-optimal per-pixel accuracy of sim-texture at a knob value (Monte Carlo estimate and its s.e.).

    The per-pixel class-conditional density is exact for the generative model: given the mixing fraction f and
    the chip gain g, a pixel of a material pair is Gaussian with mean g (f m_a + (1 - f) m_b) and covariance
    g^2 (v_p (f^2 C_a + (1 - f)^2 C_b) + v_x (C_a + C_b) / 2) + (offset_sd^2 + noise_sd^2) I; f is uniform on
    TEXTURE_F_RANGE (16-point midpoint rule), g normal (7-point Gauss-Hermite); a partner class is the mixture
    (1 - knob) own + knob anchor. Pixels are drawn from the exact generator (continuous f, real gain), classified
    by maximum posterior under equal priors (classes are equally likely by construction) and scored.
    Quantisation to 1e-4 and clipping are ignored (negligible).

    Args:
        knob: texture knob in [0, 1].
        n_per_class: Monte Carlo pixels per class.
        seed: Monte Carlo seed (fixed: the value is a property of the generator, not of a data set).

    Returns:
        (accuracy, standard error).
    """
    _check_knob(knob)
    rng = np.random.default_rng(seed)
    mats, anchor = texture_class_materials()
    lo, hi = TEXTURE_F_RANGE
    xs, ys = [], []
    for k in range(len(mats)):
        src = (
            np.where(rng.random(n_per_class) < knob, anchor[k], k)
            if anchor[k] != k
            else np.full(n_per_class, k)
        )
        x = np.zeros((n_per_class, 6))
        for s_ in np.unique(src):
            sel = src == s_
            n = int(sel.sum())
            ma, ca, mb, cb = mats[s_]
            f = rng.uniform(lo, hi, n)[:, None]
            a = _sample_mvn(ma, TEXTURE_PARCEL_VAR * ca, n, rng)
            b = _sample_mvn(mb, TEXTURE_PARCEL_VAR * cb, n, rng)
            pix = _sample_mvn(np.zeros(6), TEXTURE_PIXEL_VAR * 0.5 * (ca + cb), n, rng)
            g = 1 + GAIN_SD * rng.standard_normal((n, 1))
            x[sel] = g * (f * a + (1 - f) * b + pix) + OFFSET_SD * rng.standard_normal((n, 6))
        xs.append(x + SENSOR_NOISE * rng.standard_normal((n_per_class, 6)))
        ys.append(np.full(n_per_class, k))
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    own = np.stack([_texture_logpdf(x, m) for m in mats], axis=1)
    logp = own.copy()
    for k in range(len(mats)):
        if anchor[k] != k and knob > 0:
            lk = np.log(knob) + own[:, anchor[k]]
            logp[:, k] = lk if knob == 1 else np.logaddexp(np.log1p(-knob) + own[:, k], lk)
    # exact ties (knob 1: a partner's density equals its anchor's) are split at random, as Bayes allows
    jitter = 1e-9 * rng.standard_normal(logp.shape)
    correct = ((logp + jitter).argmax(axis=1) == y).astype(float)
    return float(correct.mean()), float(correct.std(ddof=1) / np.sqrt(len(correct)))


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
        mats, anchor = texture_class_materials()
        f = 0.5 * sum(TEXTURE_F_RANGE)
        own = [f * m[0] + (1 - f) * m[2] for m in mats]
        return {c: (1 - knob) * own[k] + knob * own[anchor[k]] for k, c in enumerate(TEXTURE_CLASSES)}
    if family == "sim-flood":
        wt, wc = material("water_turbid")[0], material("water_clear")[0]
        land = np.array([mixture(comps)[0] for comps in FLOOD_LANDCOVER])
        return {"not_water": FLOOD_LANDCOVER_PRIORS @ land, "water": 0.75 * wt + 0.25 * wc}
    raise ValueError(f"no reference class means for {name!r} (burn classes are mixtures of the background)")


# --------------------------------------------------------------------------------------------------------- burn
def burn_shape_stats(mask: np.ndarray) -> dict[str, float]:
    """Shape statistics of a burn mask (1 burned, 0 not, -1 missing), as measured on the real masks.

    fraction: burned / valid pixels; patches: 8-connected burned components; aspect: sqrt of the eigenvalue ratio
    of the burned pixels' coordinate covariance; compactness: 4 pi A / P^2 of the largest patch with P counted in
    pixel edges; edge_per_sqrt_area: burned/unburned pixel edges over sqrt(burned pixels).

    Args:
        mask: (H, W) int array.

    Returns:
        dict of floats (NaN shape statistics when nothing is burned).
    """
    b = mask == 1
    valid = mask != -1
    n_b = int(b.sum())
    out = {"fraction": n_b / max(1, int(valid.sum()))}
    if n_b == 0:
        return {**out, "patches": 0.0, "aspect": np.nan, "compactness": np.nan, "edge_per_sqrt_area": np.nan}
    lab, n = ndi.label(b, structure=np.ones((3, 3)))
    sizes = np.bincount(lab.ravel())[1:]
    largest = lab == (np.argmax(sizes) + 1)

    def edges(m: np.ndarray) -> int:
        p = np.pad(m, 1).astype(np.int8)
        return int((np.diff(p, axis=0) != 0).sum() + (np.diff(p, axis=1) != 0).sum())

    yy, xx = np.nonzero(b)
    ev = np.linalg.eigvalsh(np.cov(np.stack([yy, xx]))) if n_b > 2 else np.array([1.0, 1.0])
    out["patches"] = float(n)
    out["aspect"] = float(np.sqrt(ev[1] / max(ev[0], 1e-9)))
    out["compactness"] = float(4 * np.pi * sizes.max() / edges(largest) ** 2)
    out["edge_per_sqrt_area"] = float(edges(b) / np.sqrt(n_b))
    return out


def _quantile_sample(q_values: tuple, rng: np.random.Generator, log: bool = True) -> float:
    u = rng.uniform()
    v = np.asarray(q_values, dtype=float)
    return float(np.exp(np.interp(u, BURN_Q, np.log(v))) if log else np.interp(u, BURN_Q, v))


def burn_shape(size: int, rng: np.random.Generator, params: dict | None = None) -> np.ndarray:
    """Procedural burn-scar mask: one rough, elongated, hole-free patch near the chip centre.

    A normalised elliptical distance (aspect from the real distribution, random wind direction) is perturbed by a
    lobe-scale and a fine-scale Gaussian field (scales relative to the burn's equal-area radius, so statistics do
    not depend on chip size) and thresholded at the quantile that burns the sampled real area fraction; the
    component at the centre is kept and its holes filled (the real masks are single, hole-free perimeters).

    Args:
        size: chip side in pixels.
        rng: random generator.
        params: override of BURN_SHAPE_PARAMS (calibration).

    Returns:
        (size, size) bool mask.
    """
    p = {**BURN_SHAPE_PARAMS, **(params or {})}
    frac = _quantile_sample(BURN_REAL_STATS["fraction"], rng)
    aspect = p["aspect_boost"] * _quantile_sample(BURN_REAL_STATS["aspect"], rng)
    radius = np.sqrt(frac * size * size / np.pi)
    theta = rng.uniform(0, np.pi)
    cy, cx = size / 2 + p["centre_sd"] * size * rng.standard_normal(2)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    r = np.sqrt((u / np.sqrt(aspect)) ** 2 + (v * np.sqrt(aspect)) ** 2) / max(radius, 1.0)
    lobes = gaussian_field((size, size), max(p["lobe_corr"] * radius, 0.5), rng)[0]
    rough = gaussian_field((size, size), max(p["rough_corr"] * radius, 0.5), rng)[0]
    field = -r + p["lobe_amp"] * lobes + p["rough_amp"] * rough
    t = np.quantile(field, 1 - frac)
    burned = field > t
    lab, _ = ndi.label(burned, structure=np.ones((3, 3)))
    ci, cj = int(np.clip(cy, 0, size - 1)), int(np.clip(cx, 0, size - 1))
    keep = lab[ci, cj]
    if keep == 0:  # centre fell in a gap: keep the largest component
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        keep = int(np.argmax(sizes))
    return ndi.binary_fill_holes(lab == keep)


def _real_burn_mask(masks_dir: Path, size: int, rng: np.random.Generator) -> np.ndarray:
    import rasterio

    files = sorted(masks_dir.glob("*.mask.tif"))
    if not files:
        raise FileNotFoundError(f"no *.mask.tif burn masks in {masks_dir}")
    with rasterio.open(files[rng.integers(len(files))]) as src:
        m = src.read(1)
    step = max(1, m.shape[0] // size)
    m = m[::step, ::step][:size, :size]
    if m.shape != (size, size):
        raise ValueError(f"real mask smaller than the chip size {size}")
    return m == 1


def simulate_burn_chip(
    size: int, rng: np.random.Generator, cloud_prob: float = 0.3, masks_dir: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One sim-burn chip: vegetated/semi-arid background with confusers, one burn scar, optional clouds.

    Returns:
        (6, H, W) reflectance and (H, W) int16 mask (1 burn, 0 not, -1 cloud/missing).
    """
    shape = (size, size)
    burned = _real_burn_mask(masks_dir, size, rng) if masks_dir is not None else burn_shape(size, rng)
    # background land cover: shrub/forest/grass/soil parcels with within-parcel variability
    lc = [
        mixture([(("veg", 4.0), 0.8), ("npv_litter", 0.2)]),  # conifer forest
        mixture([(("veg", 1.5), 0.5), ("npv_litter", 0.3), ("soil_medium", 0.2)]),  # shrub
        mixture([(("veg", 1.0), 0.4), ("npv_litter", 0.6)]),  # dry grass
        mixture([("soil_medium", 0.7), ("npv_litter", 0.3)]),  # bare/sparse
        mixture([("soil_dark", 0.8), (("veg", 0.5), 0.2)]),  # dark soil (confuser)
    ]
    lc_p = np.array([0.35, 0.25, 0.2, 0.12, 0.08])
    parcels = voronoi_parcels(shape, max(2, int(rng.poisson((size / 40) ** 2))), rng, rng.uniform(1, 2))
    n_p = parcels.max() + 1
    kind = rng.choice(len(lc), size=n_p, p=lc_p)
    means = np.array([lc[k][0] for k in kind])
    chols = _chol(np.array([lc[k][1] for k in kind]))
    parcel_mean = means + 0.6 * np.einsum("pij,pj->pi", chols, rng.standard_normal((n_p, 6)))
    bg = _render(parcels, parcel_mean, 0.4 * chols, gaussian_field(shape, 2.5, rng, 6))
    # confusers: a road (asphalt line), a small water body
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    if rng.random() < 0.5:
        th, off = rng.uniform(0, np.pi), rng.uniform(0.2, 0.8) * size
        road = np.abs((xx - size / 2) * np.sin(th) - (yy - size / 2) * np.cos(th) - (off - size / 2)) < 0.8
        am, ac = material("asphalt")
        bg[:, road] = _sample_mvn(am, 0.2 * ac, int(road.sum()), rng).T
    if rng.random() < 0.25:
        lake = gaussian_field(shape, size / 16, rng)[0] > 2.0
        wm, wc = material("water_clear")
        bg[:, lake] = _sample_mvn(wm, wc, int(lake.sum()), rng).T
    # burn: severity field mixes char/ash into the background; partial regrowth dims it in some chips
    dist = ndi.distance_transform_edt(burned)
    sev = 0.45 + 0.3 * np.tanh(dist / 4.0) + 0.2 * gaussian_field(shape, 3.0, rng)[0]
    sev = np.clip(sev * rng.uniform(0.6, 1.0), 0.05, 1.0) * burned
    q = rng.uniform(0.6, 0.95)
    (cm, cc), (am_, ac_) = material("char"), material("ash")
    burnt = _render(np.zeros(shape, dtype=int), (q * cm + (1 - q) * am_)[None], _chol(0.3 * (q**2 * cc + (1 - q) ** 2 * ac_))[None], gaussian_field(shape, 1.5, rng, 6))  # fmt: skip
    img = (1 - sev)[None] * bg + sev[None] * burnt
    # topographic shading (hill shade of a random DEM): darkens slopes, burned or not
    dem = gaussian_field(shape, size / 10, rng)[0] * rng.uniform(5, 25)
    gy, gx = np.gradient(dem)
    az = rng.uniform(0, 2 * np.pi)
    shade = (np.cos(0.6) + np.sin(0.6) * (gx * np.cos(az) + gy * np.sin(az))) / np.sqrt(1 + gx**2 + gy**2)
    img = img * np.clip(shade / np.cos(0.6), 0.35, 1.15)[None]
    img = sensor(np.clip(img, 0.0, None), rng)
    mask = burned.astype(np.int16)
    if rng.random() < cloud_prob:
        alpha = cloud_alpha(shape, rng.uniform(0.01, 0.15), rng)
        img = add_clouds(img, alpha, rng)
        mask[alpha > 0.2] = -1
    return img, mask


# -------------------------------------------------------------------------------------------------------- flood
# land cover of the floodplain: crop, grass, forest, bare soil, dark soil, built-up
FLOOD_LANDCOVER = (
    [(("veg", 3.0), 1.0)],
    [(("veg", 1.0), 0.5), ("npv_litter", 0.5)],
    [(("veg", 5.0), 0.9), ("npv_wood", 0.1)],
    [("soil_medium", 0.8), ("npv_litter", 0.2)],
    [("soil_dark", 1.0)],
    [("roof", 0.4), ("asphalt", 0.3), ("concrete", 0.1), (("veg", 2.0), 0.2)],
)
FLOOD_LANDCOVER_PRIORS = np.array([0.3, 0.2, 0.15, 0.15, 0.08, 0.12])


def simulate_flood_chip(
    size: int, rng: np.random.Generator, cloud_prob: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    """One sim-flood chip: a floodplain with a river channel, flood water up to a random level, land cover.

    Returns:
        (6, H, W) reflectance and (H, W) int16 label (1 water, 0 not, -1 cloud).
    """
    shape = (size, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    th = rng.uniform(0, np.pi)
    s = (xx - size / 2) * np.cos(th) + (yy - size / 2) * np.sin(th)
    n = -(xx - size / 2) * np.sin(th) + (yy - size / 2) * np.cos(th)
    meander = (
        rng.uniform(0.05, 0.2)
        * size
        * np.sin(2 * np.pi * s / (size * rng.uniform(0.5, 1.5)) + rng.uniform(0, 6.3))
    )
    d = np.abs(n - meander - rng.uniform(-0.3, 0.3) * size) / size
    dem = d + 0.12 * gaussian_field(shape, size / 8, rng)[0] + 0.02 * gaussian_field(shape, 2.0, rng)[0]
    water_frac = float(np.clip(rng.beta(1.3, 5.0), 0.01, 0.8))
    level = np.quantile(dem, water_frac)
    depth = level - dem
    wshare = np.clip(
        0.5 + depth / 0.01, 0, 1
    )  # shallow margin: sub-pixel water share ramps over the shoreline
    channel = d < rng.uniform(0.01, 0.03)
    lc = [mixture(comps) for comps in FLOOD_LANDCOVER]
    lc_p = FLOOD_LANDCOVER_PRIORS
    parcels = voronoi_parcels(shape, max(2, int(rng.poisson((size / 24) ** 2))), rng, rng.uniform(1, 2.2))
    n_p = parcels.max() + 1
    kind = rng.choice(len(lc), size=n_p, p=lc_p)
    chols = _chol(np.array([lc[k][1] for k in kind]))
    pm = np.array([lc[k][0] for k in kind]) + 0.6 * np.einsum(
        "pij,pj->pi", chols, rng.standard_normal((n_p, 6))
    )
    land = _render(parcels, pm, 0.4 * chols, gaussian_field(shape, 2.0, rng, 6))
    wt, wtc = material("water_turbid")
    wc_, wcc = material("water_clear")
    turb = rng.uniform(0.5, 1.0)
    w_mean = turb * wt + (1 - turb) * wc_
    w_cov = turb**2 * wtc + (1 - turb) ** 2 * wcc
    water = _render(np.zeros(shape, dtype=int), w_mean[None], _chol(0.5 * w_cov)[None], gaussian_field(shape, 4.0, rng, 6))  # fmt: skip
    ch = _render(
        np.zeros(shape, dtype=int), wc_[None], _chol(0.3 * wcc)[None], gaussian_field(shape, 4.0, rng, 6)
    )
    water = np.where(channel[None], ch, water)
    img = wshare[None] * water + (1 - wshare)[None] * land
    img = sensor(np.clip(img, 0.0, None), rng)
    label = (wshare >= 0.5).astype(np.int16)
    if rng.random() < cloud_prob:
        alpha = cloud_alpha(shape, rng.uniform(0.02, 0.3), rng)
        img = add_clouds(img, alpha, rng)
        label[alpha > 0.2] = -1
    return img, label


# Sentinel-2 L1C band order of Sen1Floods11 S2Hand files; HLS bands fill B2, B3, B4, B8A, B11, B12 exactly.
S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
S2_CENTRES_NM = {"B4": 665.0, "B5": 705.0, "B6": 740.0, "B7": 783.0, "B8": 842.0, "B8A": 865.0}


def hls_to_s2_13(hls: np.ndarray) -> np.ndarray:
    """Fill the 13 Sentinel-2 bands from the six HLS bands (int16 in, int16 out, never 0 = nodata).

    B2, B3, B4, B8A, B11, B12 are copied. Red-edge B5, B6, B7 and NIR-broad B8 are linearly interpolated in
    wavelength between B4 (665 nm) and B8A (865 nm) - a crude stand-in for the red edge, documented as such.
    Coastal B1 copies B2 (nearest band). Water-vapour B9 copies B8A (no absorption is simulated). Cirrus B10 is
    set to 10 (1e-3 reflectance): over clear sky the 1375-nm band sees almost nothing (7-16 in the real sample).

    Args:
        hls: (6, H, W) int16 reflectance x 1e4.

    Returns:
        (13, H, W) int16.
    """
    b = hls.astype(np.float64)
    out = np.empty((13, *hls.shape[1:]))
    out[0] = b[0]
    out[1:4] = b[0:3]
    for i, name in zip((4, 5, 6, 7), ("B5", "B6", "B7", "B8"), strict=True):
        t = (S2_CENTRES_NM[name] - S2_CENTRES_NM["B4"]) / (S2_CENTRES_NM["B8A"] - S2_CENTRES_NM["B4"])
        out[i] = (1 - t) * b[2] + t * b[3]
    out[8] = b[3]
    out[9] = b[3]
    out[10] = 10
    out[11:13] = b[4:6]
    return np.clip(np.rint(out), 1, 16000).astype(np.int16)


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
        slots = _rng(seed, name, size, "positions").permutation(n)
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
            rng = _rng(seed, name, size, split, i)
            img, mask, truth, extra = chip_fn(rng, split, i)
            origin = _grid_origin(*cells[first + i], counts["chip"])
            io.write_grid_tif(root / folder / f"{cid}_merged.tif", to_int16(img), crs, origin, descr, -9999, {**tags, **extra}, PIXEL_SIZE_M)  # fmt: skip
            io.write_grid_tif(root / folder / f"{cid}.mask.tif", mask, crs, origin, ["label"], None, {**tags, **extra, "DESCRIPTION": f"SIMULATED {name} mask: 0 ignore, classes 1..K"}, PIXEL_SIZE_M)  # fmt: skip
            if truth is not None:
                io.write_grid_tif(root / folder / f"{cid}.truth.tif", truth, crs, origin, ["true label"], None, {**tags, **extra, "DESCRIPTION": f"SIMULATED {name} TRUE labels before label noise: 0 ignore, classes 1..K"}, PIXEL_SIZE_M)  # fmt: skip
    io.write_text(root / "training_data.txt", "\n".join(train_ids) + "\n")
    io.write_text(root / "validation_data.txt", "\n".join(test_ids) + "\n")
    if counts["val"]:
        order = _rng(seed, name, size, "val-split").permutation(len(train_ids))[: counts["val"]]
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
    slots = _rng(seed, name, size, "tiles").permutation(n_all)  # also the chips' places: a tile is a block
    tile_of = slots // _sim_crop.CHIPS_PER_TILE
    n_tiles = int(tile_of.max()) + 1
    tile_rng = [_rng(seed, name, size, "tile", t) for t in range(n_tiles)]
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
        c = _sim_crop.simulate_chip(counts["chip"], rng, tile_dates[t], tile_shift[t], sensor, gaussian_field, voronoi_parcels)  # fmt: skip
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
    zone = int(_rng(seed, name, size, "zone").integers(10, 14))
    crs = f"EPSG:{32600 + zone}"
    cells = _layout_cells(seed, name, size, counts["train"] + counts["test"])
    for split, folder, first in (("train", "training", 0), ("test", "validation", counts["train"])):
        stems = _burn_stems(counts[split], _rng(seed, name, size, split, "stems"), chip, used, zone)
        for i, stem in enumerate(_progress(stems, f"{name} {split}")):
            rng = _rng(seed, name, size, split, i)
            img, mask = simulate_burn_chip(chip, rng, masks_dir=masks_dir)
            origin = _grid_origin(*cells[first + i], chip)
            refl = (to_int16(img).astype(np.float32) / 1e4).astype(np.float32)
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
    rng_ids = _rng(seed, name, size, "ids")
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
            rng = _rng(seed, name, size, split, i)
            img, label = simulate_flood_chip(chip, rng)
            origin = _grid_origin(*cells[k], chip)
            k += 1
            s2 = hls_to_s2_13(to_int16(img))
            io.write_grid_tif(root / "S2Hand" / f"{cid}_S2Hand.tif", s2, "EPSG:32630", origin, list(S2_BANDS), 0, {**tags, "DESCRIPTION": tags["DESCRIPTION"] + "; 13 S2 bands x 1e4, non-HLS bands interpolated"}, PIXEL_SIZE_M)  # fmt: skip
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
        meta = _dataset_json(name, "crop", "crop", CROP_CLASSES, {**generator, "n_times": 3, "psf_sigma_px": PSF_SIGMA_PX, **summary})  # fmt: skip
    elif family == "sim-texture":
        assert knob is not None
        _write_crop_layout(root, name, lambda r, _s, _i: (*simulate_texture_chip(counts["chip"], knob, r), None, {}), counts, seed, size, 1, "EPSG:32614")  # fmt: skip
        acc, se = texture_bayes_accuracy(knob)
        pairs = [[TEXTURE_PARTNER[c], c] for c in TEXTURE_PARTNER]
        meta = _dataset_json(name, "crop", "texture", TEXTURE_CLASSES, {**generator, "n_times": 1, "knob": knob, "pairs": pairs, "patterns": TEXTURE_PATTERNS, "bayes_pixel_accuracy": round(acc, 4), "bayes_pixel_accuracy_se": round(se, 4)})  # fmt: skip
    elif family == "sim-burn":
        _write_burn_layout(root, name, counts, seed, size, masks)
        meta = _dataset_json(name, "burn_scars", "burn", BURN_CLASSES, {**generator, "burn_shapes": "real masks" if masks else "procedural (calibrated)", "shape_params": BURN_SHAPE_PARAMS})  # fmt: skip
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
    rng = _rng(seed, "unlabelled", family, size, i)
    if family == "sim-crop":
        from helpers.data import sim_crop as _sim_crop

        tile = _rng(seed, "unlabelled", family, size, "tile", i // _sim_crop.CHIPS_PER_TILE)
        dates = tuple(_sim_crop.draw_dates(tile)[0])
        shift = float(_sim_crop.REGION_SHIFT_SD * tile.standard_normal())
        c = _sim_crop.simulate_chip(chip, rng, dates, shift, sensor, gaussian_field, voronoi_parcels)
        return c.image, {"ACQUISITION_DOY": ",".join(str(d) for d in c.dates)}
    if family == "sim-burn":
        return simulate_burn_chip(chip, rng)[0], {}
    if family == "sim-flood":
        return simulate_flood_chip(chip, rng)[0], {}
    if family == "sim-texture":
        knob = float(rng.uniform(0.0, 1.0))
        return simulate_texture_chip(chip, knob, rng)[0], {"KNOB": f"{knob:.4f}"}
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
            to_int16(img),
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

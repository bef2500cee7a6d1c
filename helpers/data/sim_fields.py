"""The building blocks every simulated task draws from (SIMULATED data): seeded generators, random fields, the sensor.

:mod:`helpers.data.simulate` writes the datasets; its task generators (:mod:`helpers.data.sim_texture`,
:mod:`helpers.data.sim_burn`, :mod:`helpers.data.sim_flood`) draw their scenes from these pieces: a generator seeded
by its names (:func:`seeded_rng`), Gaussian random fields and anisotropic Voronoi parcels, multivariate-normal
material draws, clouds, the sensor (PSF, illumination gain, atmospheric offset, noise) and linear mixtures of library
materials.
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy import ndimage as ndi

from helpers.data.spectral import material, vegetation

SENSOR_NOISE = 0.003  # per-band white noise (reflectance), about the noise-equivalent reflectance of S2 SR


GAIN_SD = 0.04  # per-chip (per-date) illumination gain, common to all bands


OFFSET_SD = 0.004  # per-chip (per-date) additive atmospheric residual, per band


PSF_SIGMA_PX = 0.6  # Gaussian sensor PSF (pixels): makes mixed pixels at every boundary


def seeded_rng(*keys: int | str) -> np.random.Generator:
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


def sample_mvn(mean: np.ndarray, cov: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws of a multivariate normal (a tiny jitter keeps a singular material covariance factorisable)."""
    chol = np.linalg.cholesky(cov + 1e-10 * np.eye(len(mean)))
    return mean + rng.standard_normal((n, len(mean))) @ chol.T


def chol_factor(cov: np.ndarray) -> np.ndarray:
    """Cholesky factor of ``cov`` (stacks too) with the same tiny jitter as :func:`sample_mvn`."""
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


def render(
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


def component_moments(c) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of one mixture component: a library material by name, or ``(kind, name)`` vegetation."""
    if isinstance(c, tuple):
        return vegetation(c[1])
    return material(c)


def mixture(components: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a linear mixture of independent materials: sum f_k m_k, sum f_k^2 C_k."""
    mean = np.zeros(6)
    cov = np.zeros((6, 6))
    for comp, frac in components:
        m, c = component_moments(comp)
        mean += frac * m
        cov += frac**2 * c
    return mean, cov

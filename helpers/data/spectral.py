"""Spectral building blocks of the simulated benchmark: band integration, a water model, the spectra file.

Why a separate module: the build script (`scripts/build_spectra.py`), the simulator (`helpers.data.simulate`) and the
Indian Pines converter (`helpers.data.indian_pines`) must integrate spectra to the six HLS bands in *exactly* the same
way, and the simulator must run with numpy alone (no spectral library, no response-function package at run time).
Everything here is plain numpy; the real response functions and library spectra are frozen into
`helpers/data/spectra_v1.npz` by the build script.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

HLS_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B8A", "B11", "B12")
"""The six HLS bands used by every task of the study, in file order."""

SPECTRA_VERSION = 1
SPECTRA_PATH = Path(__file__).parent / f"spectra_v{SPECTRA_VERSION}.npz"

# Pure-water absorption a_w (1/m) at 20 degC, 0 PSU: a sparse subsample of the WOPP v3 compilation
# (Roettgers, Doerffer, McKee & Schoenfeld 2016, "Pure water spectral absorption, scattering, and real part of
# refractive index model", ESA WaterRadiance ATBD), which merges Mason et al. 2016 (< 550 nm), Pope & Fry 1997,
# Segelstein 1981 and others. A physical constant table, interpolated log-linearly between the points below.
# Beyond ~900 nm water-leaving reflectance is < 1e-4 whatever the exact value, so the sparse sampling there is
# harmless; in the visible the points are every 20 nm, which is finer than any HLS band.
_AW_TABLE_NM = np.array(
    [400, 420, 440, 460, 480, 500, 520, 540, 560, 580, 600, 620, 640, 660, 680, 700, 710, 720, 730, 740, 750,
     760, 780, 800, 820, 840, 850, 860, 870, 880, 900, 920, 940, 960, 980, 1000, 1050, 1100, 1150, 1200, 1250,
     1300, 1350, 1400, 1450, 1500, 1550, 1600, 1650, 1700, 1750, 1800, 1850, 1900, 1950, 2000, 2050, 2100, 2150,
     2200, 2250, 2300, 2350, 2400, 2450, 2500],
    dtype=float,
)  # fmt: skip
_AW_TABLE = np.array(
    [0.00222, 0.00312, 0.00522, 0.00909, 0.01214, 0.02073, 0.0418, 0.0491, 0.0638, 0.093, 0.23525, 0.2755,
     0.3108, 0.41, 0.465, 0.6126, 0.85605, 1.28344, 2.03522, 2.4773, 2.6125, 2.6114, 2.2706, 1.964, 2.4829,
     3.6808, 4.38418, 4.94008, 5.36475, 5.83038, 6.7924, 11.338, 29.005, 44.13729, 43.851, 37.699, 16.983,
     19.8863, 98.32718, 125.4875, 113.85, 135.80773, 351.46379, 1714.4, 3162.10576, 2087.93333, 1129.76292,
     736.1625, 593.443, 577.98223, 725.3928, 904.71484, 1088.84775, 9729.76001, 12357.70194, 7444.26399,
     4660.69597, 2920.29293, 2173.82647, 1925.7178, 2024.81545, 2521.10128, 3502.55793, 4887.96057, 6980.68,
     9791.7],
    dtype=float,
)  # fmt: skip


def pure_water_absorption(wavelength_nm: np.ndarray) -> np.ndarray:
    """Absorption coefficient of pure water (1/m), log-linear interpolation of the embedded WOPP table.

    Args:
        wavelength_nm: wavelengths in nm, within 400-2500.

    Returns:
        a_w with the shape of `wavelength_nm`.

    Raises:
        ValueError: if a wavelength lies outside the table.
    """
    wl = np.asarray(wavelength_nm, dtype=float)
    if wl.size and (wl.min() < _AW_TABLE_NM[0] or wl.max() > _AW_TABLE_NM[-1]):
        raise ValueError(f"pure-water absorption is tabulated for 400-2500 nm, got {wl.min()}-{wl.max()} nm")
    return np.exp(np.interp(wl, _AW_TABLE_NM, np.log(_AW_TABLE)))


def water_reflectance(
    wavelength_nm: np.ndarray,
    bbp555: np.ndarray,
    ag440: np.ndarray,
    eta: np.ndarray | float = 1.0,
    surface: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Surface reflectance of optically deep water from a two-stream bio-optical model.

    Why this model: water has no spectrum in the land library, and its colour is set by a few inherent optical
    properties. Absorption a = a_w + a_CDOM + a_NAP with a_CDOM = ag440 exp(-0.015 (l - 440)) (Bricaud et al.
    1981) and detritus/mineral absorption a_NAP = 1.5 bbp555 exp(-0.011 (l - 440)) (tied to the particle load;
    Babin et al. 2003 slopes and a backscattering ratio of ~2 %). Backscatter bb = bb_w + bbp555 (555/l)^eta with
    bb_w = 0.5 * 0.00288 (l/500)^-4.32 (Morel 1974). Then u = bb / (a + bb), subsurface
    r_rs = 0.0949 u + 0.0794 u^2 (Gordon et al. 1988), above-surface R_rs = 0.52 r_rs / (1 - 1.7 r_rs)
    (Lee et al. 2002) and reflectance rho = pi R_rs + surface, where `surface` is a spectrally flat residual of
    sky glint / adjacency that atmospheric correction leaves in real HLS water pixels. Phytoplankton absorption is
    left out (inland flood water is dominated by sediment and CDOM).

    Args:
        wavelength_nm: (L,) wavelengths in nm.
        bbp555: (N,) particle backscatter at 555 nm (1/m): 0.001 clear ... 0.1+ very turbid.
        ag440: (N,) CDOM absorption at 440 nm (1/m).
        eta: (N,) or scalar spectral slope of particle backscatter.
        surface: (N,) or scalar flat surface term (reflectance units).

    Returns:
        (N, L) reflectance (0-1 scale).
    """
    wl = np.asarray(wavelength_nm, dtype=float)[None, :]
    bbp555 = np.atleast_1d(np.asarray(bbp555, dtype=float))[:, None]
    ag440 = np.atleast_1d(np.asarray(ag440, dtype=float))[:, None]
    eta = np.atleast_1d(np.asarray(eta, dtype=float))[:, None]
    surface = np.atleast_1d(np.asarray(surface, dtype=float))[:, None]
    a = (
        pure_water_absorption(wl)
        + ag440 * np.exp(-0.015 * (wl - 440.0))
        + 1.5 * bbp555 * np.exp(-0.011 * (wl - 440.0))
    )
    bb = 0.5 * 0.00288 * (wl / 500.0) ** -4.32 + bbp555 * (555.0 / wl) ** eta
    u = bb / (a + bb)
    rrs_sub = 0.0949 * u + 0.0794 * u**2
    rrs = 0.52 * rrs_sub / (1.0 - 1.7 * rrs_sub)
    return np.pi * rrs + surface


def band_integration_matrix(
    wavelength_nm: np.ndarray, srf_wavelength_nm: np.ndarray, srf: np.ndarray
) -> np.ndarray:
    """Linear map from spectra sampled at `wavelength_nm` to band-averaged values under response functions.

    A spectrum is linearly interpolated onto the response functions' 1-nm grid and averaged with the response
    as weight: value_b = sum_l R_b(l) s(l) / sum_l R_b(l). Because both steps are linear the whole operation is a
    (n_bands, n_wavelengths) matrix, so integrating thousands of spectra is one matrix product.

    Args:
        wavelength_nm: (L,) increasing sample wavelengths of the spectra (gaps allowed; they are bridged
            linearly, so keep response functions away from gaps).
        srf_wavelength_nm: (G,) the response functions' grid.
        srf: (B, G) relative spectral responses (any scale, >= 0).

    Returns:
        (B, L) matrix M with band values = spectra @ M.T.

    Raises:
        ValueError: if a response function has weight outside the sampled wavelength range.
    """
    wl = np.asarray(wavelength_nm, dtype=float)
    if np.any(np.diff(wl) <= 0):
        raise ValueError("spectral sample wavelengths must be strictly increasing")
    g = np.asarray(srf_wavelength_nm, dtype=float)
    r = np.asarray(srf, dtype=float)
    support = g[(r > 0).any(axis=0)]
    if support.min() < wl[0] or support.max() > wl[-1]:
        raise ValueError(
            f"response functions span {support.min()}-{support.max()} nm but spectra cover {wl[0]}-{wl[-1]} nm"
        )
    # interpolation weights from the L native samples onto the G grid points: (G, L)
    interp = np.stack([np.interp(g, wl, col) for col in np.eye(wl.size)], axis=1)
    weights = r / r.sum(axis=1, keepdims=True)
    return weights @ interp


@lru_cache(maxsize=2)
def _load(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_spectra(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """The frozen spectral tables (`helpers/data/spectra_v1.npz`), read once and cached.

    Keys (see the build script and `helpers/data/spectra_v1.md`): `bands`, `material_names`, `mean` (M, 6),
    `cov` (M, 6, 6), `n_spectra` (M,), `mean_spectrum` (M, L) on `wavelength_nm`, `veg_lai` (K,), `veg_mean`
    (K, 6), `veg_cov` (K, 6, 6), `srf_wavelength_nm`, `srf_s2a` (6, G), `srf_l8` (6, G), `mean_l8` (M, 6),
    `attribution` and `version`.

    Args:
        path: alternative file (tests); default is the packaged file.

    Returns:
        dict of arrays (do not modify them: they are shared).

    Raises:
        FileNotFoundError: if the file is missing (rebuild it with `python scripts/build_spectra.py`).
    """
    p = Path(path) if path is not None else SPECTRA_PATH
    if not p.exists():
        raise FileNotFoundError(f"{p} is missing; build it with `python scripts/build_spectra.py`")
    return _load(str(p))


def material(name: str, spectra: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean (6,) and covariance (6, 6) of one named material of the spectra file.

    Args:
        name: a value of `material_names`.
        spectra: the loaded tables (default: the packaged file).

    Returns:
        (mean, cov) in reflectance (0-1).

    Raises:
        KeyError: for an unknown material, listing the known ones.
    """
    s = spectra if spectra is not None else load_spectra()
    names = [str(n) for n in s["material_names"]]
    if name not in names:
        raise KeyError(f"unknown material {name!r}; known: {names}")
    i = names.index(name)
    return s["mean"][i], s["cov"][i]


def vegetation(lai: float, spectra: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a PROSAIL canopy at a given leaf-area index (linear in LAI between grid nodes).

    Below the smallest LAI node the canopy is mixed linearly with the medium soil (LAI 0 = bare soil), which is
    how sparse early-season cover looks at 30 m.

    Args:
        lai: leaf-area index (m2/m2), >= 0.
        spectra: the loaded tables (default: the packaged file).

    Returns:
        (mean, cov) in reflectance.
    """
    s = spectra if spectra is not None else load_spectra()
    grid = s["veg_lai"]
    if lai < grid[0]:
        f = lai / grid[0]
        m_s, c_s = material("soil_medium", s)
        return f * s["veg_mean"][0] + (1 - f) * m_s, f**2 * s["veg_cov"][0] + (1 - f) ** 2 * c_s
    lai = min(lai, float(grid[-1]))
    j = int(np.clip(np.searchsorted(grid, lai) - 1, 0, grid.size - 2))
    t = (lai - grid[j]) / (grid[j + 1] - grid[j])
    mean = (1 - t) * s["veg_mean"][j] + t * s["veg_mean"][j + 1]
    cov = (1 - t) * s["veg_cov"][j] + t * s["veg_cov"][j + 1]
    return mean, cov

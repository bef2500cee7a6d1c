"""The sim-texture task (SIMULATED data): six classes in three pairs whose spectra merge as the texture knob goes to 1.

Each class is a per-pixel mixture of two library materials whose mixing fraction has the same uniform marginal in
every class but a class-specific spatial pattern (:data:`TEXTURE_PATTERNS`). At knob 0 every class has its own
materials; at knob 1 the two classes of a pair have identical per-pixel spectral distributions and differ only in
pattern. :func:`texture_bayes_accuracy` computes the Bayes-optimal per-pixel accuracy of each knob from the
generative model. Written to disk by :func:`helpers.data.simulate.generate`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from helpers.data import sim_fields

TEXTURE_CLASSES = ("row_crop", "pasture", "rice_paddy", "woodland", "fallow", "built_up")


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
        (
            *sim_fields.component_moments(TEXTURE_MATERIALS[n][0]),
            *sim_fields.component_moments(TEXTURE_MATERIALS[n][1]),
        )
        for n in TEXTURE_CLASSES
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
    return sim_fields.gaussian_field(shape, corr, rng)[0]


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
    parcels = sim_fields.voronoi_parcels((size, size), n_parcels, rng, anisotropy=rng.uniform(1.0, 1.8))
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
    f = lo + (hi - lo) * sim_fields.rank_uniform(z, parcels, rng)
    # parcel-level materials
    a = np.zeros((n_p, 6))
    b = np.zeros((n_p, 6))
    pix_chol = np.zeros((n_p, 6, 6))
    for p in range(n_p):
        ma, ca, mb, cb = mats[source[p]]
        a[p] = sim_fields.sample_mvn(ma, TEXTURE_PARCEL_VAR * ca, 1, rng)[0]
        b[p] = sim_fields.sample_mvn(mb, TEXTURE_PARCEL_VAR * cb, 1, rng)[0]
        pix_chol[p] = sim_fields.chol_factor(TEXTURE_PIXEL_VAR * 0.5 * (ca + cb))
    img = f[None] * a[parcels].transpose(2, 0, 1) + (1 - f)[None] * b[parcels].transpose(2, 0, 1)
    img = img + np.einsum("hwij,jhw->ihw", pix_chol[parcels], rng.standard_normal((6, size, size)))
    img = sim_fields.sensor(img, rng, psf=False)
    return img, (cls[parcels] + 1).astype(np.uint8)


def _texture_logpdf(x: np.ndarray, mat: tuple, nq: int = 16) -> np.ndarray:
    """Exact per-pixel log density of one material pair (quadrature over mixing fraction and gain)."""
    ma, ca, mb, cb = mat
    lo, hi = TEXTURE_F_RANGE
    f_nodes = lo + (hi - lo) * (np.arange(nq) + 0.5) / nq
    gh_x, gh_w = np.polynomial.hermite_e.hermegauss(7)
    g_w = gh_w / gh_w.sum()
    iso = (sim_fields.OFFSET_SD**2 + sim_fields.SENSOR_NOISE**2) * np.eye(6)
    comps = []
    for f in f_nodes:
        m_f = f * ma + (1 - f) * mb
        c_f = TEXTURE_PARCEL_VAR * (f**2 * ca + (1 - f) ** 2 * cb) + TEXTURE_PIXEL_VAR * 0.5 * (ca + cb)
        for g, wg in zip(1 + sim_fields.GAIN_SD * gh_x, g_w, strict=True):
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
            a = sim_fields.sample_mvn(ma, TEXTURE_PARCEL_VAR * ca, n, rng)
            b = sim_fields.sample_mvn(mb, TEXTURE_PARCEL_VAR * cb, n, rng)
            pix = sim_fields.sample_mvn(np.zeros(6), TEXTURE_PIXEL_VAR * 0.5 * (ca + cb), n, rng)
            g = 1 + sim_fields.GAIN_SD * rng.standard_normal((n, 1))
            x[sel] = g * (f * a + (1 - f) * b + pix) + sim_fields.OFFSET_SD * rng.standard_normal((n, 6))
        xs.append(x + sim_fields.SENSOR_NOISE * rng.standard_normal((n_per_class, 6)))
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

"""The sim-burn task (SIMULATED data): one burn scar per chip, its shape calibrated on the real HLS Burn Scars masks.

The scar's burned fraction and ellipse aspect are drawn from quantiles measured on the 289 real training masks
(:data:`BURN_REAL_STATS`, ``scripts/calibrate_burn_shapes.py``), its boundary perturbed at lobe and fine scales
(:data:`BURN_SHAPE_PARAMS`); char and ash mix with the vegetation by a severity field, beside confusers (hill shade,
dark soil, asphalt, water). Written to disk by :func:`helpers.data.simulate.generate`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from helpers.data import sim_fields
from helpers.data.spectral import material

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
    lobes = sim_fields.gaussian_field((size, size), max(p["lobe_corr"] * radius, 0.5), rng)[0]
    rough = sim_fields.gaussian_field((size, size), max(p["rough_corr"] * radius, 0.5), rng)[0]
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
        sim_fields.mixture([(("veg", 4.0), 0.8), ("npv_litter", 0.2)]),  # conifer forest
        sim_fields.mixture([(("veg", 1.5), 0.5), ("npv_litter", 0.3), ("soil_medium", 0.2)]),  # shrub
        sim_fields.mixture([(("veg", 1.0), 0.4), ("npv_litter", 0.6)]),  # dry grass
        sim_fields.mixture([("soil_medium", 0.7), ("npv_litter", 0.3)]),  # bare/sparse
        sim_fields.mixture([("soil_dark", 0.8), (("veg", 0.5), 0.2)]),  # dark soil (confuser)
    ]
    lc_p = np.array([0.35, 0.25, 0.2, 0.12, 0.08])
    parcels = sim_fields.voronoi_parcels(
        shape, max(2, int(rng.poisson((size / 40) ** 2))), rng, rng.uniform(1, 2)
    )
    n_p = parcels.max() + 1
    kind = rng.choice(len(lc), size=n_p, p=lc_p)
    means = np.array([lc[k][0] for k in kind])
    chols = sim_fields.chol_factor(np.array([lc[k][1] for k in kind]))
    parcel_mean = means + 0.6 * np.einsum("pij,pj->pi", chols, rng.standard_normal((n_p, 6)))
    bg = sim_fields.render(parcels, parcel_mean, 0.4 * chols, sim_fields.gaussian_field(shape, 2.5, rng, 6))
    # confusers: a road (asphalt line), a small water body
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    if rng.random() < 0.5:
        th, off = rng.uniform(0, np.pi), rng.uniform(0.2, 0.8) * size
        road = np.abs((xx - size / 2) * np.sin(th) - (yy - size / 2) * np.cos(th) - (off - size / 2)) < 0.8
        am, ac = material("asphalt")
        bg[:, road] = sim_fields.sample_mvn(am, 0.2 * ac, int(road.sum()), rng).T
    if rng.random() < 0.25:
        lake = sim_fields.gaussian_field(shape, size / 16, rng)[0] > 2.0
        wm, wc = material("water_clear")
        bg[:, lake] = sim_fields.sample_mvn(wm, wc, int(lake.sum()), rng).T
    # burn: severity field mixes char/ash into the background; partial regrowth dims it in some chips
    dist = ndi.distance_transform_edt(burned)
    sev = 0.45 + 0.3 * np.tanh(dist / 4.0) + 0.2 * sim_fields.gaussian_field(shape, 3.0, rng)[0]
    sev = np.clip(sev * rng.uniform(0.6, 1.0), 0.05, 1.0) * burned
    q = rng.uniform(0.6, 0.95)
    (cm, cc), (am_, ac_) = material("char"), material("ash")
    burnt = sim_fields.render(np.zeros(shape, dtype=int), (q * cm + (1 - q) * am_)[None], sim_fields.chol_factor(0.3 * (q**2 * cc + (1 - q) ** 2 * ac_))[None], sim_fields.gaussian_field(shape, 1.5, rng, 6))  # fmt: skip
    img = (1 - sev)[None] * bg + sev[None] * burnt
    # topographic shading (hill shade of a random DEM): darkens slopes, burned or not
    dem = sim_fields.gaussian_field(shape, size / 10, rng)[0] * rng.uniform(5, 25)
    gy, gx = np.gradient(dem)
    az = rng.uniform(0, 2 * np.pi)
    shade = (np.cos(0.6) + np.sin(0.6) * (gx * np.cos(az) + gy * np.sin(az))) / np.sqrt(1 + gx**2 + gy**2)
    img = img * np.clip(shade / np.cos(0.6), 0.35, 1.15)[None]
    img = sim_fields.sensor(np.clip(img, 0.0, None), rng)
    mask = burned.astype(np.int16)
    if rng.random() < cloud_prob:
        alpha = sim_fields.cloud_alpha(shape, rng.uniform(0.01, 0.15), rng)
        img = sim_fields.add_clouds(img, alpha, rng)
        mask[alpha > 0.2] = -1
    return img, mask

"""The sim-flood task (SIMULATED data): flood and channel water over mixed land cover on a synthetic floodplain.

Water comes from a bio-optical model (turbid flood water, clearer channel water), land cover from
:data:`FLOOD_LANDCOVER` with clouds and their shadows; spectrally easy by design. Files carry the 13 Sentinel-2
bands of the real Sen1Floods11 layout, filled from the six HLS bands (:func:`hls_to_s2_13`). Written to disk by
:func:`helpers.data.simulate.generate`.
"""

from __future__ import annotations

import numpy as np

from helpers.data import sim_fields
from helpers.data.spectral import material

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
    dem = (
        d
        + 0.12 * sim_fields.gaussian_field(shape, size / 8, rng)[0]
        + 0.02 * sim_fields.gaussian_field(shape, 2.0, rng)[0]
    )
    water_frac = float(np.clip(rng.beta(1.3, 5.0), 0.01, 0.8))
    level = np.quantile(dem, water_frac)
    depth = level - dem
    wshare = np.clip(
        0.5 + depth / 0.01, 0, 1
    )  # shallow margin: sub-pixel water share ramps over the shoreline
    channel = d < rng.uniform(0.01, 0.03)
    lc = [sim_fields.mixture(comps) for comps in FLOOD_LANDCOVER]
    lc_p = FLOOD_LANDCOVER_PRIORS
    parcels = sim_fields.voronoi_parcels(
        shape, max(2, int(rng.poisson((size / 24) ** 2))), rng, rng.uniform(1, 2.2)
    )
    n_p = parcels.max() + 1
    kind = rng.choice(len(lc), size=n_p, p=lc_p)
    chols = sim_fields.chol_factor(np.array([lc[k][1] for k in kind]))
    pm = np.array([lc[k][0] for k in kind]) + 0.6 * np.einsum(
        "pij,pj->pi", chols, rng.standard_normal((n_p, 6))
    )
    land = sim_fields.render(parcels, pm, 0.4 * chols, sim_fields.gaussian_field(shape, 2.0, rng, 6))
    wt, wtc = material("water_turbid")
    wc_, wcc = material("water_clear")
    turb = rng.uniform(0.5, 1.0)
    w_mean = turb * wt + (1 - turb) * wc_
    w_cov = turb**2 * wtc + (1 - turb) ** 2 * wcc
    water = sim_fields.render(np.zeros(shape, dtype=int), w_mean[None], sim_fields.chol_factor(0.5 * w_cov)[None], sim_fields.gaussian_field(shape, 4.0, rng, 6))  # fmt: skip
    ch = sim_fields.render(
        np.zeros(shape, dtype=int),
        wc_[None],
        sim_fields.chol_factor(0.3 * wcc)[None],
        sim_fields.gaussian_field(shape, 4.0, rng, 6),
    )
    water = np.where(channel[None], ch, water)
    img = wshare[None] * water + (1 - wshare)[None] * land
    img = sim_fields.sensor(np.clip(img, 0.0, None), rng)
    label = (wshare >= 0.5).astype(np.int16)
    if rng.random() < cloud_prob:
        alpha = sim_fields.cloud_alpha(shape, rng.uniform(0.02, 0.3), rng)
        img = sim_fields.add_clouds(img, alpha, rng)
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

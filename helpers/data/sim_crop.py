"""``sim-crop`` generator 2.0 (SIMULATED): the multi-temporal crop task with the nuisances that make the real one hard.

Generator 1.0 gave every chip the same three dates, every field one clean polygon with one trajectory and every label
the truth, and a per-pixel random forest scored 0.95 test mIoU where every published model on the real task sits
between 0.37 and 0.48. This generator keeps the spectra (real library materials and PROSAIL canopies band-integrated
to HLS, :mod:`helpers.data.spectral`) and the layout, and adds, each from a stated source or marked as a choice:

* **Acquisition dates per HLS tile** (:data:`DATE_KNOTS`): the three scenes of a chip are drawn per tile of
  :data:`CHIPS_PER_TILE` adjacent chips (a block of the layout; tiles mix training and test chips) from piecewise-linear quantile functions through the real chip tracker's statistics
  (3,854 chips, 425 tiles: first scene 1 Mar-30 Jul, median day 85; second 12 Mar-25 Sep, median 172; third
  1 Apr-30 Sep, median 256, 68 % in September), joined by a Gaussian copula whose correlation (:data:`DATE_RHO`)
  was chosen on a grid to match the tracker's first-to-third span (median 150 days, 23 % under 90 days). Every
  file carries its dates as days of year (``ACQUISITION_DOY``) and ISO dates of :data:`YEAR`
  (``ACQUISITION_DATES``), which :func:`helpers.runs.fm_adapters.chip_context` turns into the models' months.
* **Phenology per class** (:data:`PHENOLOGY`): each class (and each sub-type of the catch-all classes) is a curve
  of mixtures over the day of year, anchored on US crop calendars (planting, emergence, peak, senescence, harvest;
  alfalfa's cuts), and evaluated at each chip's dates; not fitted to imagery.
* **Regional and management variation**: a planting/green-up shift per tile (SD :data:`REGION_SHIFT_SD` days) and
  per field (SD :data:`FIELD_SHIFT_SD`), patchy late emergence inside crop fields, soil brightness per chip, field
  size per chip. Magnitudes are choices, sized so the 10-90 % spread of effective planting dates is about a month,
  the width of a Corn Belt planting window.
* **Mixed pixels at 30 m**: the scene is drawn at 15 m and averaged to 30 m, so field edges and the 15 m roads
  (:data:`ROADS_PER_CHIP`) give mixed pixels; the sensor PSF of generator 1.0 follows.
* **CDL-like label noise** (:data:`LABEL_ACCURACY`): the mask the models see is the true map with errors at each
  class's published producer's accuracy (2023 CDL national metadata for corn, soybeans, winter wheat, cotton,
  sorghum and all crops; alfalfa from New York 2020; the non-agricultural classes, which the CDL takes from NLCD, at
  NLCD 2019's Level I overall accuracy, 83.1 %, Wickham et al. 2023), half as whole fields carrying a confuser
  class (:data:`CONFUSERS`) and half at class edges carrying the neighbour's class. The true map is written beside
  each mask (``<chip>.truth.tif``) and the loader offers it as the split ``test_true_labels``.
* **Light residual haze** on some dates (:data:`HAZE_PROB`), a choice: thin haze that cloud screening passes.

Everything is deterministic in the random generator it is given.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import norm

from helpers.data.chips import CROP_CLASSES
from helpers.data.sim_fields import gaussian_field, sensor, voronoi_parcels
from helpers.data.spectral import material, vegetation

#: 2.1: chips share one region with the other splits, each tile a block of adjacent chips
#: (:func:`helpers.data.simulate.grid_positions`), and the dates are also written as ISO dates (:func:`iso_date`).
VERSION = "2.1"

CLASSES: tuple[str, ...] = tuple(CROP_CLASSES)  # the real dataset's 13 classes, in mask order
#: Classes that are planted: their fields get the per-field planting shift and patchy emergence.
CROPS = ("corn", "soybeans", "winter_wheat", "alfalfa", "fallow_idle_cropland", "cotton", "sorghum", "other")
#: Parcel-level class frequencies (generator 1.0's choice, kept).
PRIORS = np.array([0.19, 0.16, 0.15, 0.14, 0.05, 0.07, 0.04, 0.05, 0.03, 0.04, 0.02, 0.02, 0.04])

# ------------------------------------------------------------------------------------------------ dates
#: Quantile knots (probability, day of year) of each scene's date over chips, from the real chip tracker.
DATE_KNOTS = {
    1: ((0.0, 60), (0.5, 85), (1.0, 211)),
    2: ((0.0, 71), (0.5, 172), (1.0, 268)),
    3: ((0.0, 91), (0.32, 244), (0.5, 256), (1.0, 273)),
}
#: The tracker's first-to-third span, which the copula correlation was chosen to match.
REAL_SPAN = {"min_days": 10, "median_days": 150, "max_days": 212, "share_under_90_days": 0.23}
#: Gaussian-copula correlation of the three dates: on a grid 0, 0.1, ..., 0.9 the value with the smallest summed
#: relative error in the span's median and share under 90 days (0.5: median 142, 22.5 % under 90).
DATE_RHO = 0.5
MIN_GAP_DAYS = 3
#: Chips per tile sharing one date triplet: 3,854 chips / 425 tiles.
CHIPS_PER_TILE = 9


#: Year of the simulated scenes: the real dataset's growing season (2022, not a leap year), so that a day of year
#: is a calendar date and a month that every foundation model can be given.
YEAR = 2022


def iso_date(doy: int, year: int = YEAR) -> str:
    """``YYYY-MM-DD`` of day ``doy`` (1-based) of ``year``: the machine-readable date written into every file."""
    return (_dt.date(year, 1, 1) + _dt.timedelta(days=int(doy) - 1)).isoformat()


def draw_dates(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    """``(n, 3)`` integer days of year of three scenes, ordered and at least :data:`MIN_GAP_DAYS` apart."""
    r = np.full((3, 3), DATE_RHO)
    np.fill_diagonal(r, 1.0)
    chol = np.linalg.cholesky(r)
    out = np.empty((0, 3))
    while len(out) < n:
        u = norm.cdf(rng.standard_normal((max(n, 8), 3)) @ chol.T)
        d = np.stack([np.interp(u[:, t], *zip(*DATE_KNOTS[t + 1], strict=True)) for t in range(3)], 1).round()
        ok = (np.diff(d, axis=1) >= MIN_GAP_DAYS).all(axis=1)
        out = np.concatenate([out, d[ok]])
    return out[:n].astype(int)


# ------------------------------------------------------------------------------------------------ phenology
# Each curve: (day of year, mixture) anchors, linearly interpolated (a linear spectral mix of the two anchor
# states: fractional cover grows between bare soil and a full canopy). A mixture lists (component, fraction); a
# component is a material name or ("veg", LAI). Anchored on the usual US calendar (corn planted ~1-15 May, peak
# late July, harvest October; soybeans planted mid-May, senescence late September; winter wheat green in spring,
# harvest late June-July; alfalfa cut about monthly; cotton/sorghum planted late May-June); not fitted to imagery.
_BARE_DARK = [("soil_dark", 0.6), ("npv_litter", 0.4)]
PHENOLOGY: dict[str, dict[str, list[tuple[int, list]]]] = {
    "natural_vegetation": {
        "grassland": [(1, [("npv_litter", 0.6), (("veg", 1.0), 0.4)]), (100, [("npv_litter", 0.5), (("veg", 1.0), 0.5)]), (160, [(("veg", 2.0), 0.85), ("npv_litter", 0.15)]), (230, [(("veg", 1.2), 0.55), ("npv_litter", 0.45)]), (300, [("npv_litter", 0.7), (("veg", 1.0), 0.3)]), (365, [("npv_litter", 0.6), (("veg", 1.0), 0.4)])],
        "shrubland": [(1, [("npv_wood", 0.5), (("veg", 1.0), 0.3), ("soil_medium", 0.2)]), (150, [("npv_wood", 0.4), (("veg", 1.5), 0.5), ("soil_medium", 0.1)]), (250, [("npv_wood", 0.4), (("veg", 1.2), 0.45), ("soil_medium", 0.15)]), (365, [("npv_wood", 0.5), (("veg", 1.0), 0.3), ("soil_medium", 0.2)])],
        "sparse": [(1, [("soil_medium", 0.6), ("npv_litter", 0.3), (("veg", 0.5), 0.1)]), (150, [("soil_medium", 0.45), (("veg", 1.0), 0.4), ("npv_litter", 0.15)]), (240, [("soil_medium", 0.5), ("npv_litter", 0.3), (("veg", 0.8), 0.2)]), (365, [("soil_medium", 0.6), ("npv_litter", 0.3), (("veg", 0.5), 0.1)])],
    },
    "forest": {
        "deciduous": [(1, [("npv_wood", 0.6), (("veg", 1.0), 0.4)]), (110, [("npv_wood", 0.5), (("veg", 1.5), 0.5)]), (150, [(("veg", 5.0), 0.9), ("npv_wood", 0.1)]), (250, [(("veg", 5.0), 0.9), ("npv_wood", 0.1)]), (300, [("npv_wood", 0.5), ("npv_litter", 0.3), (("veg", 1.0), 0.2)]), (365, [("npv_wood", 0.6), (("veg", 1.0), 0.4)])],
        "evergreen": [(1, [(("veg", 3.0), 0.8), ("npv_wood", 0.2)]), (180, [(("veg", 4.5), 0.9), ("npv_wood", 0.1)]), (365, [(("veg", 3.0), 0.8), ("npv_wood", 0.2)])],
    },
    "corn": {"": [(1, _BARE_DARK), (130, _BARE_DARK), (160, [("soil_dark", 0.5), ("npv_litter", 0.2), (("veg", 2.0), 0.3)]), (205, [(("veg", 4.0), 1.0)]), (240, [(("veg", 3.0), 0.9), ("npv_litter", 0.1)]), (270, [(("veg", 1.0), 0.4), ("npv_litter", 0.6)]), (290, [("npv_litter", 0.6), ("soil_dark", 0.4)]), (365, _BARE_DARK)]},
    "soybeans": {"": [(1, [("soil_dark", 0.85), ("npv_litter", 0.15)]), (140, [("soil_dark", 0.85), ("npv_litter", 0.15)]), (175, [("soil_dark", 0.6), (("veg", 1.5), 0.4)]), (215, [(("veg", 3.5), 1.0)]), (250, [(("veg", 3.0), 0.9), ("npv_litter", 0.1)]), (270, [("npv_litter", 0.7), ("soil_dark", 0.3)]), (365, [("soil_dark", 0.7), ("npv_litter", 0.3)])]},
    "wetlands": {
        "emergent": [(1, [("water_humic", 0.5), ("npv_litter", 0.3), (("veg", 0.5), 0.2)]), (120, [("water_humic", 0.5), (("veg", 1.5), 0.5)]), (200, [("water_humic", 0.3), (("veg", 3.0), 0.7)]), (270, [("water_humic", 0.4), (("veg", 2.0), 0.6)]), (365, [("water_humic", 0.5), ("npv_litter", 0.3), (("veg", 0.5), 0.2)])],
        "wooded": [(1, [("water_humic", 0.3), ("npv_wood", 0.5), (("veg", 1.0), 0.2)]), (140, [("water_humic", 0.2), (("veg", 4.0), 0.7), ("npv_wood", 0.1)]), (260, [("water_humic", 0.2), (("veg", 3.5), 0.7), ("npv_wood", 0.1)]), (365, [("water_humic", 0.3), ("npv_wood", 0.5), (("veg", 1.0), 0.2)])],
    },
    "developed_barren": {
        "residential": [(1, [("roof", 0.3), ("asphalt", 0.2), ("concrete", 0.1), ("npv_litter", 0.2), (("veg", 1.0), 0.2)]), (160, [("roof", 0.3), ("asphalt", 0.2), ("concrete", 0.1), (("veg", 3.0), 0.4)]), (260, [("roof", 0.3), ("asphalt", 0.2), ("concrete", 0.1), (("veg", 2.5), 0.4)]), (365, [("roof", 0.3), ("asphalt", 0.2), ("concrete", 0.1), ("npv_litter", 0.2), (("veg", 1.0), 0.2)])],
        "commercial": [(1, [("roof", 0.4), ("asphalt", 0.35), ("concrete", 0.25)]), (365, [("roof", 0.4), ("asphalt", 0.35), ("concrete", 0.25)])],
        "barren": [(1, [("soil_bright", 0.6), ("sand", 0.3), ("soil_medium", 0.1)]), (365, [("soil_bright", 0.6), ("sand", 0.3), ("soil_medium", 0.1)])],
        "road": [(1, [("asphalt", 0.6), ("soil_medium", 0.2), ("npv_litter", 0.2)]), (180, [("asphalt", 0.6), (("veg", 2.0), 0.4)]), (365, [("asphalt", 0.6), ("soil_medium", 0.2), ("npv_litter", 0.2)])],
    },
    "open_water": {
        "clear": [(1, [("water_clear", 1.0)]), (365, [("water_clear", 1.0)])],
        "turbid": [(1, [("water_clear", 0.5), ("water_turbid", 0.5)]), (200, [("water_turbid", 0.6), ("water_humic", 0.4)]), (365, [("water_clear", 0.5), ("water_turbid", 0.5)])],
    },
    "winter_wheat": {"": [(1, [(("veg", 1.0), 0.6), ("soil_medium", 0.4)]), (80, [(("veg", 1.0), 0.7), ("soil_medium", 0.3)]), (130, [(("veg", 3.5), 1.0)]), (160, [(("veg", 3.0), 0.9), ("npv_litter", 0.1)]), (185, [("npv_litter", 0.8), ("soil_medium", 0.2)]), (200, [("npv_litter", 0.5), ("soil_medium", 0.5)]), (270, [("soil_medium", 0.8), (("veg", 0.5), 0.2)]), (320, [("soil_medium", 0.5), (("veg", 1.0), 0.5)]), (365, [(("veg", 1.0), 0.6), ("soil_medium", 0.4)])]},
    "alfalfa": {"": [(1, [(("veg", 1.0), 0.5), ("npv_litter", 0.5)]), (100, [(("veg", 1.5), 0.8), ("npv_litter", 0.2)]), (150, [(("veg", 3.0), 1.0)]), (158, [(("veg", 0.8), 0.6), ("npv_litter", 0.4)]), (190, [(("veg", 3.0), 1.0)]), (198, [(("veg", 0.8), 0.6), ("npv_litter", 0.4)]), (230, [(("veg", 3.0), 1.0)]), (238, [(("veg", 0.8), 0.6), ("npv_litter", 0.4)]), (275, [(("veg", 2.5), 1.0)]), (320, [(("veg", 1.5), 0.7), ("npv_litter", 0.3)]), (365, [(("veg", 1.0), 0.5), ("npv_litter", 0.5)])]},
    "fallow_idle_cropland": {"": [(1, [("soil_medium", 0.6), ("npv_litter", 0.4)]), (150, [("soil_medium", 0.45), ("npv_litter", 0.3), (("veg", 0.5), 0.25)]), (220, [("soil_medium", 0.3), ("npv_litter", 0.3), (("veg", 1.0), 0.4)]), (290, [("soil_medium", 0.5), ("npv_litter", 0.5)]), (365, [("soil_medium", 0.6), ("npv_litter", 0.4)])]},
    "cotton": {"": [(1, [("soil_bright", 0.8), ("npv_litter", 0.2)]), (150, [("soil_bright", 0.9), ("npv_litter", 0.1)]), (190, [("soil_bright", 0.6), (("veg", 1.0), 0.4)]), (235, [(("veg", 3.0), 0.9), ("soil_bright", 0.1)]), (265, [(("veg", 2.0), 0.6), ("npv_litter", 0.4)]), (290, [("npv_litter", 0.5), ("soil_bright", 0.5)]), (365, [("soil_bright", 0.8), ("npv_litter", 0.2)])]},
    "sorghum": {"": [(1, [("soil_medium", 0.8), ("npv_litter", 0.2)]), (155, [("soil_medium", 0.9), ("npv_litter", 0.1)]), (190, [("soil_medium", 0.6), (("veg", 1.5), 0.4)]), (225, [(("veg", 3.0), 1.0)]), (260, [(("veg", 2.5), 0.8), ("npv_litter", 0.2)]), (290, [("npv_litter", 0.6), ("soil_medium", 0.4)]), (365, [("soil_medium", 0.8), ("npv_litter", 0.2)])]},
    "other": {
        "vegetables": [(1, [("soil_medium", 0.9), ("npv_litter", 0.1)]), (120, [("soil_medium", 0.9), ("npv_litter", 0.1)]), (180, [(("veg", 3.0), 0.9), ("soil_medium", 0.1)]), (225, [(("veg", 2.0), 0.7), ("soil_medium", 0.3)]), (250, [("soil_medium", 0.6), ("npv_litter", 0.4)]), (365, [("soil_medium", 0.9), ("npv_litter", 0.1)])],
        "hay_grass": [(1, [(("veg", 1.0), 0.5), ("npv_litter", 0.5)]), (140, [(("veg", 3.0), 1.0)]), (175, [(("veg", 1.0), 0.6), ("npv_litter", 0.4)]), (230, [(("veg", 2.5), 0.9), ("npv_litter", 0.1)]), (300, [(("veg", 1.5), 0.6), ("npv_litter", 0.4)]), (365, [(("veg", 1.0), 0.5), ("npv_litter", 0.5)])],
        "orchard": [(1, [("npv_wood", 0.3), ("soil_medium", 0.4), (("veg", 1.0), 0.3)]), (130, [(("veg", 3.0), 0.6), ("soil_medium", 0.4)]), (270, [(("veg", 3.0), 0.6), ("soil_medium", 0.4)]), (365, [("npv_wood", 0.3), ("soil_medium", 0.4), (("veg", 1.0), 0.3)])],
        "small_grains": [(1, [("soil_medium", 0.7), ("npv_litter", 0.3)]), (100, [("soil_medium", 0.7), ("npv_litter", 0.3)]), (150, [(("veg", 3.0), 1.0)]), (200, [("npv_litter", 0.7), ("soil_medium", 0.3)]), (365, [("soil_medium", 0.7), ("npv_litter", 0.3)])],
    },
}  # fmt: skip
#: (class index, sub-type) of every curve, in a fixed order: the rows of :func:`phenology_tables`.
CURVES: tuple[tuple[int, str], ...] = tuple((k, sub) for k, c in enumerate(CLASSES) for sub in PHENOLOGY[c])
ROAD_CURVE = CURVES.index((CLASSES.index("developed_barren"), "road"))
_SOILS = ("soil_dark", "soil_medium", "soil_bright", "sand")


def _state(anchors: list[tuple[int, list]], doy: int) -> list[tuple]:
    days = [a[0] for a in anchors]
    j = int(np.clip(np.searchsorted(days, doy, side="right") - 1, 0, len(days) - 2))
    w = float(np.clip((doy - days[j]) / (days[j + 1] - days[j]), 0.0, 1.0))
    return [(c, (1 - w) * f) for c, f in anchors[j][1]] + [(c, w * f) for c, f in anchors[j + 1][1]]


@lru_cache(maxsize=1)
def phenology_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean and covariance of every curve on every day of year, split into soil and other components.

    Returns:
        ``(mean_other, mean_soil, cov_other, cov_soil)`` of shapes ``(C, 366, 6)`` and ``(C, 366, 6, 6)`` (index
        day of year 1..365; row 0 repeats day 1): a chip's soil brightness ``g`` gives mean ``other + g soil`` and
        covariance ``other + g^2 soil``.
    """
    n = len(CURVES)
    mo, ms = np.zeros((n, 366, 6)), np.zeros((n, 366, 6))
    co, cs = np.zeros((n, 366, 6, 6)), np.zeros((n, 366, 6, 6))
    comp = {}
    for i, (k, sub) in enumerate(CURVES):
        anchors = PHENOLOGY[CLASSES[k]][sub]
        for doy in range(1, 366):
            for c, f in _state(anchors, doy):
                if f == 0:
                    continue
                if c not in comp:
                    comp[c] = vegetation(c[1]) if isinstance(c, tuple) else material(c)
                m, cv = comp[c]
                soil = c in _SOILS
                (ms if soil else mo)[i, doy] += f * m
                (cs if soil else co)[i, doy] += f**2 * cv
    for a in (mo, ms, co, cs):
        a[:, 0] = a[:, 1]
    return mo, ms, co, cs


# ------------------------------------------------------------------------------------------------ label noise
#: Producer's accuracy of each class's label (percent) and its source.
LABEL_ACCURACY: dict[str, tuple[float, str]] = {
    "corn": (90.5, "CDL 2023 national metadata"),
    "soybeans": (90.0, "CDL 2023 national metadata"),
    "winter_wheat": (85.3, "CDL 2023 national metadata"),
    "cotton": (86.4, "CDL 2023 national metadata"),
    "sorghum": (67.7, "CDL 2023 national metadata"),
    "alfalfa": (74.2, "CDL 2020 New York metadata"),
    "fallow_idle_cropland": (81.6, "CDL 2023 national metadata, all crops"),
    "other": (81.6, "CDL 2023 national metadata, all crops"),
    "natural_vegetation": (83.1, "NLCD 2019 Level I overall accuracy (Wickham et al. 2023)"),
    "forest": (83.1, "NLCD 2019 Level I overall accuracy (Wickham et al. 2023)"),
    "wetlands": (83.1, "NLCD 2019 Level I overall accuracy (Wickham et al. 2023)"),
    "developed_barren": (83.1, "NLCD 2019 Level I overall accuracy (Wickham et al. 2023)"),
    "open_water": (83.1, "NLCD 2019 Level I overall accuracy (Wickham et al. 2023)"),
}
#: Classes a whole mislabelled field of each class is given (a choice: the usual agronomic confusions).
CONFUSERS: dict[str, tuple[str, ...]] = {
    "corn": ("soybeans", "sorghum", "other"),
    "soybeans": ("corn", "other"),
    "winter_wheat": ("fallow_idle_cropland", "other", "natural_vegetation"),
    "alfalfa": ("natural_vegetation", "other"),
    "cotton": ("fallow_idle_cropland", "sorghum"),
    "sorghum": ("corn", "soybeans", "fallow_idle_cropland"),
    "fallow_idle_cropland": ("natural_vegetation", "winter_wheat", "other"),
    "other": ("natural_vegetation", "fallow_idle_cropland", "alfalfa"),
    "natural_vegetation": ("fallow_idle_cropland", "alfalfa", "forest", "other"),
    "forest": ("natural_vegetation", "wetlands"),
    "wetlands": ("natural_vegetation", "open_water", "forest"),
    "developed_barren": ("natural_vegetation", "fallow_idle_cropland"),
    "open_water": ("wetlands",),
}
#: Share of each class's label errors that are whole fields; the rest sit at class edges, as far as a chip's edge
#: pixels allow (where they do not, whole fields carry the remainder, so each class keeps its error rate).
FIELD_ERROR_SHARE = 0.5

# ------------------------------------------------------------------------------------------------ magnitudes
REGION_SHIFT_SD = 10.0  # days, per tile: planting / green-up date of a region and year
FIELD_SHIFT_SD = 7.0  # days, per crop field: the farmer's planting date
NATURAL_SHIFT_SD = 3.0  # days, per natural parcel
EMERGENCE_DELAY = 15.0  # days: patches of late emergence inside crop fields ...
EMERGENCE_SHARE = 0.12  # ... covering this share of a field's pixels
SOIL_GAIN_SD = 0.15  # log-normal soil brightness per chip (moisture, soil type)
FIELD_WIDTH_PX = (26.0, 0.4)  # median field width at 30 m (pixels) and its log-normal SD per chip
PARCEL_DEVIATION = 0.6  # field-level spectral deviation (x the class covariance), shared across dates
WITHIN_FIELD = 0.35  # within-field deviation (x the class covariance), spatially correlated
ROADS_PER_CHIP = 1.0  # Poisson mean of straight 15 m roads crossing a chip
HAZE_PROB = 0.25  # share of dates with light residual haze
HAZE_SPECTRUM = np.array([0.03, 0.024, 0.018, 0.008, 0.003, 0.002])  # additive reflectance at full strength


@dataclass
class CropChip:
    """One generated chip: what is written and what the data card summarises."""

    image: np.ndarray  # (18, H, W) reflectance, date-major
    mask: np.ndarray  # (H, W) uint8 labels the models see (CDL-like noise), 1..13
    truth: np.ndarray  # (H, W) uint8 true labels, 1..13
    dates: tuple[int, int, int]  # day of year of each scene
    mixed: float = 0.0  # share of 30 m pixels whose 15 m sub-pixels hold more than one true class


def _road_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.zeros(shape, bool)
    for _ in range(rng.poisson(ROADS_PER_CHIP)):
        theta = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.05)  # section-line roads, roughly N-S or E-W
        c = rng.uniform(0, h if abs(np.cos(theta)) > 0.5 else w)
        dist = (yy - h / 2) * np.cos(theta) - (xx - w / 2) * np.sin(theta) + h / 2 - c
        mask |= np.abs(dist) < 0.5
    return mask


def _majority(labels_hi: np.ndarray, k: int) -> np.ndarray:
    """The most frequent label of every 2 x 2 block (ties: the lowest label)."""
    h, w = labels_hi.shape[0] // 2, labels_hi.shape[1] // 2
    counts = np.zeros((k, h, w), np.int8)
    for dy in (0, 1):
        for dx in (0, 1):
            sub = labels_hi[dy::2, dx::2]
            np.add.at(counts, (sub, *np.indices((h, w))), 1)
    return counts.argmax(axis=0)


def _label_noise(truth: np.ndarray, parcels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """CDL-like labels: whole confused fields and neighbour labels at class edges, at each class's accuracy."""
    noisy = truth.copy()
    err = {CLASSES.index(c): 1 - a / 100 for c, (a, _) in LABEL_ACCURACY.items()}
    # edges: a pixel with a 4-neighbour of another class takes that neighbour's class
    neigh, other = _neighbours(truth)
    edge = other.any(axis=0)
    pick = np.argmax(other * rng.random(other.shape), axis=0)  # a random differing neighbour
    neighbour = np.take_along_axis(neigh, pick[None], axis=0)[0]
    u = rng.random(truth.shape)
    field_p = {}
    for k, e in err.items():
        of_k = truth == k
        n_k, b_k = of_k.sum(), (of_k & edge).sum()
        if n_k == 0:
            continue
        # a chip with few edges puts the rest in fields
        edge_budget = min((1 - FIELD_ERROR_SHARE) * e * n_k, b_k)
        if b_k:
            flip = of_k & edge & (u < edge_budget / b_k)
            noisy[flip] = neighbour[flip]
        field_p[k] = (e * n_k - edge_budget) / n_k
    # whole fields carrying a confuser class (the expected share of the class's pixels: the rest of its errors)
    for p in np.unique(parcels[parcels >= 0]):
        inside = parcels == p
        k = int(np.bincount(truth[inside]).argmax())
        if rng.random() < field_p.get(k, 0.0):
            noisy[inside] = CLASSES.index(str(rng.choice(CONFUSERS[CLASSES[k]])))
    return noisy


def simulate_chip(
    size: int,
    rng: np.random.Generator,
    dates: tuple[int, int, int],
    region_shift: float,
) -> CropChip:
    """One sim-crop chip at the tile's ``dates`` with the tile's ``region_shift`` (days).

    The sensor model, random fields and parcels are the other simulated tasks' (:mod:`helpers.data.sim_fields`), so
    every task shares one noise model and one field generator.
    """
    mo, ms, co, cs = phenology_tables()
    hi = 2 * size  # drawn at 15 m, averaged to 30 m
    width = FIELD_WIDTH_PX[0] * np.exp(FIELD_WIDTH_PX[1] * rng.standard_normal())
    n_parcels = max(2, int(rng.poisson((size / width) ** 2)))
    parcels = voronoi_parcels((hi, hi), n_parcels, rng, anisotropy=rng.uniform(1.0, 2.5))
    n_p = parcels.max() + 1
    cls = rng.choice(len(CLASSES), size=n_p, p=PRIORS / PRIORS.sum())
    curve = np.array(
        [CURVES.index((k, str(rng.choice([s for s in PHENOLOGY[CLASSES[k]] if s != "road"])))) for k in cls]
    )
    crop = np.isin(cls, [CLASSES.index(c) for c in CROPS])
    shift = region_shift + np.where(crop, FIELD_SHIFT_SD, NATURAL_SHIFT_SD) * rng.standard_normal(n_p)
    roads = _road_mask((hi, hi), rng)
    unit = np.where(roads, n_p, parcels)  # roads: one more unit
    unit_curve = np.append(curve, ROAD_CURVE)
    unit_shift = np.append(shift, region_shift)
    unit_crop = np.append(crop, False)
    soil_gain = float(np.exp(SOIL_GAIN_SD * rng.standard_normal()))
    z_unit = rng.standard_normal((n_p + 1, 6))
    late = gaussian_field((hi, hi), 3.0, rng)[0] > norm.ppf(1 - EMERGENCE_SHARE)
    late &= unit_crop[unit]
    shared = gaussian_field((hi, hi), 6.0, rng, 6)
    image = np.zeros((18, size, size))
    for t, doy in enumerate(dates):
        stats = []
        for delay in (0.0, EMERGENCE_DELAY):
            d = np.clip(np.round(doy - unit_shift - delay), 1, 365).astype(int)
            mean = mo[unit_curve, d] + soil_gain * ms[unit_curve, d]
            cov = co[unit_curve, d] + soil_gain**2 * cs[unit_curve, d]
            stats.append((mean, np.linalg.cholesky(cov + 1e-10 * np.eye(6))))
        (m0, l0), (m1, _) = stats
        unit_mean = m0 + PARCEL_DEVIATION * np.einsum("pij,pj->pi", l0, z_unit)
        delayed = m1 + PARCEL_DEVIATION * np.einsum("pij,pj->pi", l0, z_unit)
        within = np.sqrt(0.5) * shared + np.sqrt(0.5) * gaussian_field((hi, hi), 4.0, rng, 6)
        img = np.where(late[None], delayed[unit].transpose(2, 0, 1), unit_mean[unit].transpose(2, 0, 1))
        img = img + WITHIN_FIELD * np.einsum("hwij,jhw->ihw", l0[unit], within)
        img = np.clip(img, 0.0, None).reshape(6, size, 2, size, 2).mean(axis=(2, 4))
        if rng.random() < HAZE_PROB:
            g = gaussian_field((size, size), size / 4, rng)[0]
            h = rng.uniform(0.2, 1.0) * (g - g.min()) / (np.ptp(g) + 1e-12)
            img = img * (1 - 0.05 * h)[None] + HAZE_SPECTRUM[:, None, None] * h[None]
        image[6 * t : 6 * t + 6] = sensor(img, rng)
    truth_hi = np.where(roads, CLASSES.index("developed_barren"), cls[parcels])
    truth = _majority(truth_hi, len(CLASSES))
    blocks = truth_hi.reshape(size, 2, size, 2)
    mixed = float((blocks != blocks[:, :1, :, :1]).any(axis=(1, 3)).mean())
    parcels_lo = np.where(roads[::2, ::2], -1, parcels[::2, ::2])
    noisy = _label_noise(truth, parcels_lo, rng)
    return CropChip(
        image, (noisy + 1).astype(np.uint8), (truth + 1).astype(np.uint8), tuple(int(d) for d in dates), mixed
    )


def reference_means(doys: tuple[int, int, int] = (85, 172, 256)) -> dict[str, np.ndarray]:
    """Each class's mean reflectance ``(3, 6)`` at ``doys`` (default the tracker's median dates), before nuisance."""
    mo, ms, _, _ = phenology_tables()
    out = {}
    for k, c in enumerate(CLASSES):
        rows = [i for i, (kk, sub) in enumerate(CURVES) if kk == k and sub != "road"]
        out[c] = np.mean([mo[i, list(doys)] + ms[i, list(doys)] for i in rows], axis=0)
    return out


def _neighbours(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 4-neighbours' classes of every pixel ``(4, H, W)`` (edge-padded) and where they differ from its own."""
    pad = np.pad(truth, 1, mode="edge")
    neigh = np.stack([pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]])
    return neigh, neigh != truth[None]


def class_edges(truth: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another class (where the edge part of the label noise sits)."""
    return _neighbours(truth)[1].any(axis=0)


def label_agreement(cm: np.ndarray) -> dict[str, float]:
    """OA and macro mIoU from a (noisy label, true label) confusion matrix: the noise-free ceiling.

    A model that predicted the true map perfectly would score this against the noisy test labels.
    """
    from helpers import metrics

    s = metrics.scores(cm)
    return {"oa": round(float(s["oa"]), 4), "miou_macro": round(float(s["miou_macro"]), 4)}


def card_facts(n_tiles: int, d: np.ndarray, confusion: np.ndarray, test_cm: np.ndarray, tally: dict) -> dict:
    """What the dataset card records of a written sim-crop (:func:`helpers.data.simulate.generate`).

    Args:
        n_tiles: Tiles that hold at least one chip.
        d: ``(n_chips, 3)`` days of year of each chip's dates.
        confusion: ``(true, label)`` pixel counts over all chips (the label noise per class).
        test_cm: ``(label, true)`` pixel counts over the test chips (the true map scored as a prediction).
        tally: Sums over chips: ``mixed`` (mixed-pixel shares) and ``n`` chips; label errors and pixels at class
            edges (``edge_err``, ``edge``) and inside classes (``inner_err``, ``inner``).
    """
    span = d[:, 2] - d[:, 0]
    per_class = confusion.sum(axis=1)
    noise = {c: round(1 - confusion[k, k] / per_class[k], 4) for k, c in enumerate(CLASSES) if per_class[k]}
    return {
        "dates": (
            f"per tile: three days of year of {YEAR} in each file's ACQUISITION_DOY tag, the same as ISO dates in "
            "its ACQUISITION_DATES tag (helpers.data.sim_crop)"
        ),
        "layout": "one grid for all splits, a seeded interleaving; each tile a block of adjacent chips",
        "tiles": n_tiles,
        "date_stats": {
            "median_doy": [int(v) for v in np.median(d, axis=0)],
            "span_median_days": float(np.median(span)),
            "span_share_under_90_days": round(float((span < 90).mean()), 3),
            "third_date_share_in_september": round(float(((d[:, 2] >= 244) & (d[:, 2] <= 273)).mean()), 3),
            "real_tracker": {
                "median_doy": [85, 172, 256],
                **REAL_SPAN,
                "third_share_in_september": 0.68,
            },
        },
        "label_accuracy_pct": {c: {"producers": a, "source": src} for c, (a, src) in LABEL_ACCURACY.items()},
        "label_noise_measured": noise,
        "label_noise_overall": round(float(1 - np.trace(confusion) / confusion.sum()), 4),
        "label_noise_at_class_edges": round(tally["edge_err"] / max(tally["edge"], 1), 4),
        "label_noise_inside_classes": round(tally["inner_err"] / max(tally["inner"], 1), 4),
        "mixed_pixel_share": round(tally["mixed"] / max(tally["n"], 1), 4),
        "noise_free_ceiling_test": {
            **label_agreement(test_cm),
            "meaning": "the true map scored against the noisy test labels: no model's expected score is above it",
        },
        "magnitudes": {
            "region_shift_sd_days": REGION_SHIFT_SD,
            "field_shift_sd_days": FIELD_SHIFT_SD,
            "emergence_delay_days": EMERGENCE_DELAY,
            "emergence_share": EMERGENCE_SHARE,
            "soil_gain_sd": SOIL_GAIN_SD,
            "field_width_px": list(FIELD_WIDTH_PX),
            "roads_per_chip": ROADS_PER_CHIP,
            "haze_prob": HAZE_PROB,
            "field_error_share": FIELD_ERROR_SHARE,
            "date_rho": DATE_RHO,
        },
    }

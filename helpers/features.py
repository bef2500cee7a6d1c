"""Per-pixel features for the classical models: plain spectra and spectra plus neighbourhood/texture.

The paper's RF/XGBoost rows classify each pixel from its spectral vector alone; its ``RFaug``/``XGBaug`` rows add
features of the pixel's neighbourhood. The paper does not list those features, so we fix and document our own
(``FEATURE_SET_VERSION`` changes whenever the list or a formula changes):

* ``spectral``: the reflectance of every band of every date (6 per date: B02, B03, B04, B8A, B11, B12).
* ``aug``: ``spectral`` plus, for every band of every date,

  - local mean and local standard deviation over square windows of 3, 7 and 15 pixels (90 m, 210 m, 450 m at
    HLS resolution): the spatial context a pixel sits in and how heterogeneous it is;
  - local gradient magnitude (Sobel-style: a central difference across, a [1, 2, 1]/4 smoothing along each axis):
    edges such as field or burn-scar boundaries;

  and, per date, three normalised-difference indices: NDVI (B8A, B04), NBR (B8A, B12) and NDWI (McFeeters; B03,
  B8A). Trees can in principle learn band ratios from the raw bands, but only as a staircase of axis-aligned splits;
  the indices hand them over directly, as the remote-sensing literature does.

A dataset of your own (:mod:`helpers.data.generic`) may have other bands: every function takes the band names of one
date (``bands``, default the six HLS bands). Each index is then computed from the bands that play its roles
(:data:`helpers.data.bands.ROLES`: NIR is B8A, else the broad B08) and left out where the dataset lacks one; the
feature table says which bands each index used.

All windows use ``reflect`` borders (the edge pixel repeated, scipy's ``mode="reflect"``), so a chip's features do
not depend on anything outside the chip. Nodata pixels arrive filled with 0 (their label is ignore); they enter
their neighbours' window statistics like any other value, which is a known, small edge effect.

Every function works on one chip, a float32 reflectance array ``(C, H, W)`` with dates stacked as channels
(date-major: date 1 B02..B12, date 2 B02..B12, ...), and is vectorised over the whole chip. Speed (see
``benchmarks/classical.py``): the ``aug`` set of a 512 x 512 single-date chip (51 features) takes about 0.2 s on
one core, 60+ million pixel-features per second, while predicting that chip with a fitted forest or boosted model
takes seconds. Features are therefore recomputed rather than cached on disk: a disk cache would save at most a
few per cent of a run but hold 53 MB per 512 x 512 chip (gigabytes per dataset). Runs of one session can share
chips through the in-memory :class:`helpers.runs.pixel_samples.FeatureCache` instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from sklearn.base import BaseEstimator, TransformerMixin

from helpers.data import bands as _bands

#: Bump whenever a feature's definition, order or name changes (keys any stored result or cache).
FEATURE_SET_VERSION = 1

#: The six HLS bands of every date, in channel order.
BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")

#: Square window sides (pixels) of the local mean/std features.
WINDOWS = (3, 7, 15)

#: Normalised-difference indices computed per date: name -> (band a, band b), index = (a - b) / (a + b).
INDICES = {"NDVI": ("B8A", "B04"), "NBR": ("B8A", "B12"), "NDWI": ("B03", "B8A")}
#: The same indices by band role (:data:`helpers.data.bands.ROLES`), for bands other than the HLS six.
INDEX_ROLES = {"NDVI": ("nir", "red"), "NBR": ("nir", "swir22"), "NDWI": ("green", "nir")}

FEATURE_SETS = ("spectral", "aug")

_EPS = 1e-6


def _check_chip(a: np.ndarray, bands: Sequence[str] = BANDS) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3:
        raise ValueError(f"expected one chip as a (C, H, W) array; got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[0] % len(bands):
        raise ValueError(
            f"expected C = {len(bands)} x n_dates channels (bands {', '.join(bands)} per date); got C = {a.shape[0]}"
        )
    return a.astype(np.float32, copy=False)


def n_dates(n_channels: int, bands: Sequence[str] = BANDS) -> int:
    """Number of dates stacked in ``n_channels`` channels (``len(bands)`` bands per date)."""
    if n_channels <= 0 or n_channels % len(bands):
        raise ValueError(f"n_channels must be a positive multiple of {len(bands)}; got {n_channels}")
    return n_channels // len(bands)


def channel_names(n_channels: int, bands: Sequence[str] = BANDS) -> list[str]:
    """Names of the channels: ``B02``.. for one date, ``t1_B02``.. when several dates are stacked."""
    t = n_dates(n_channels, bands)
    if t == 1:
        return list(bands)
    return [f"t{d + 1}_{b}" for d in range(t) for b in bands]


def _date_prefix(n_channels: int, d: int, bands: Sequence[str] = BANDS) -> str:
    return "" if n_dates(n_channels, bands) == 1 else f"t{d + 1}_"


def index_bands(bands: Sequence[str] = BANDS) -> dict[str, tuple[str, str]]:
    """The indices of :data:`INDICES` that ``bands`` allows, each with the two bands it is computed from.

    The six HLS bands give :data:`INDICES` itself; other bands give each index from the bands of its roles
    (:data:`INDEX_ROLES`), and leave out an index whose bands are missing.
    """
    bands = list(bands)
    if bands == list(BANDS):
        return dict(INDICES)
    out = {}
    for name, roles in INDEX_ROLES.items():
        idx = [_bands.role(bands, r) for r in roles]
        if all(i is not None for i in idx):
            out[name] = (bands[idx[0]], bands[idx[1]])
    return out


# --------------------------------------------------------------------------------------------------- families
def spectra(a: np.ndarray, bands: Sequence[str] = BANDS) -> np.ndarray:
    """The per-pixel spectral vector itself: the chip as float32 ``(C, H, W)``."""
    return _check_chip(a, bands)


def local_mean_std(a: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation over a ``size`` x ``size`` window around every pixel.

    Uses two box filters (of x and of x^2) and ``std = sqrt(max(E[x^2] - E[x]^2, 0))``. To keep that difference
    from cancelling catastrophically in float32, each band is first shifted by its chip mean (computed in float64,
    so a constant band becomes exactly 0 and its std exactly 0); the shift is added back to the mean.

    Args:
        a: Chip ``(C, H, W)``.
        size: Odd window side in pixels.

    Returns:
        ``(mean, std)``, both float32 ``(C, H, W)``.
    """
    a = _check_chip(a, [""])
    if size < 1 or size % 2 == 0:
        raise ValueError(f"window size must be a positive odd integer; got {size}")
    shift = a.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)[:, None, None]
    c = a - shift
    m = ndi.uniform_filter(c, size=(1, size, size), mode="reflect", output=np.float32)
    m2 = ndi.uniform_filter(c * c, size=(1, size, size), mode="reflect", output=np.float32)
    var = m2 - m * m
    np.maximum(var, 0, out=var)
    return m + shift, np.sqrt(var)


def gradient_magnitude(a: np.ndarray) -> np.ndarray:
    """Per-band local gradient magnitude (reflectance change per pixel).

    Each axis: a central difference ``(x[i+1] - x[i-1]) / 2`` across, smoothed by ``[1, 2, 1] / 4`` along (the
    Sobel operator divided by 8); magnitude ``hypot(gx, gy)``. A vertical step of height ``h`` gives ``h / 2`` on
    the two columns either side of it and 0 elsewhere.

    Args:
        a: Chip ``(C, H, W)``.

    Returns:
        float32 ``(C, H, W)``.
    """
    a = _check_chip(a, [""])
    diff = np.array([-0.5, 0.0, 0.5], dtype=np.float32)
    smooth = np.array([0.25, 0.5, 0.25], dtype=np.float32)
    gx = ndi.correlate1d(ndi.correlate1d(a, diff, axis=2, mode="reflect"), smooth, axis=1, mode="reflect")
    gy = ndi.correlate1d(ndi.correlate1d(a, diff, axis=1, mode="reflect"), smooth, axis=2, mode="reflect")
    return np.hypot(gx, gy)


def normalised_difference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x - y) / (x + y)``, 0 where ``x + y`` is not positive (nodata), clipped to [-1, 1].

    Clipping matters only for slightly negative reflectances (atmospheric over-correction), where the ratio can
    leave [-1, 1] and blow up as ``x + y`` approaches 0.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    den = x + y
    out = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=np.float32)
    np.divide(x - y, den, out=out, where=den > _EPS)
    return np.clip(out, -1.0, 1.0, out=out)


def spectral_indices(a: np.ndarray, bands: Sequence[str] = BANDS) -> np.ndarray:
    """NDVI, NBR and NDWI of every date, ``(3 * n_dates, H, W)`` float32, date-major in :data:`INDICES` order.

    With other bands than the HLS six, the indices of :func:`index_bands` only (possibly none).
    """
    bands = list(bands)
    a = _check_chip(a, bands)
    t = n_dates(a.shape[0], bands)
    pairs = index_bands(bands)
    nb = len(bands)
    out = np.empty((len(pairs) * t, *a.shape[1:]), dtype=np.float32)
    k = 0
    for d in range(t):
        for b1, b2 in pairs.values():
            out[k] = normalised_difference(a[d * nb + bands.index(b1)], a[d * nb + bands.index(b2)])
            k += 1
    return out


# -------------------------------------------------------------------------------------------------- feature sets
def feature_table(n_channels: int, feature_set: str, bands: Sequence[str] = BANDS) -> pd.DataFrame:
    """The exact feature list of a set, one row per feature in column order (printed in notebook 02).

    Args:
        n_channels: Channels of the chips (``len(bands)`` per date).
        feature_set: ``"spectral"`` or ``"aug"``.
        bands: Band names of one date (default the six HLS bands).

    Returns:
        DataFrame with columns ``name``, ``family``, ``date`` (1-based), ``band`` (band or index), ``window``
        (pixels, 0 where none) and ``definition``.
    """
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; expected one of {FEATURE_SETS}")
    bands = list(bands)
    nb = len(bands)
    chans = channel_names(n_channels, bands)
    t = n_dates(n_channels, bands)
    rows = []

    def add(name, family, date, band, window, definition):
        rows.append(
            {
                "name": name,
                "family": family,
                "date": date,
                "band": band,
                "window": window,
                "definition": definition,
            }
        )

    for i, c in enumerate(chans):
        add(c, "spectra", i // nb + 1, bands[i % nb], 0, "surface reflectance")
    if feature_set == "aug":
        for w in WINDOWS:
            for i, c in enumerate(chans):
                add(f"{c}_mean{w}", "local_mean", i // nb + 1, bands[i % nb], w, f"mean over {w}x{w} window")
            for i, c in enumerate(chans):
                add(f"{c}_std{w}", "local_std", i // nb + 1, bands[i % nb], w, f"std over {w}x{w} window")
        for i, c in enumerate(chans):
            add(f"{c}_grad", "gradient", i // nb + 1, bands[i % nb], 3, "Sobel/8 gradient magnitude")
        for d in range(t):
            for name, (b1, b2) in index_bands(bands).items():
                add(
                    f"{_date_prefix(n_channels, d, bands)}{name}",
                    "index",
                    d + 1,
                    name,
                    0,
                    f"({b1}-{b2})/({b1}+{b2})",
                )
    return pd.DataFrame(rows)


def feature_names(n_channels: int, feature_set: str, bands: Sequence[str] = BANDS) -> list[str]:
    """Names of the features of ``feature_set`` for chips with ``n_channels`` channels, in column order."""
    return feature_table(n_channels, feature_set, bands)["name"].tolist()


def feature_stack(
    a: np.ndarray, feature_set: str, bands: Sequence[str] = BANDS
) -> tuple[np.ndarray, list[str]]:
    """All features of one chip as an image stack ``(F, H, W)`` float32, with their names.

    The stack form lets the sampler pick a few pixels (``stack[:, rows, cols]``) without building the full
    ``(H*W, F)`` matrix.
    """
    a = _check_chip(a, bands)
    names = feature_names(a.shape[0], feature_set, bands)
    if feature_set == "spectral":
        return spectra(a, bands), names
    parts = [spectra(a, bands)]
    for w in WINDOWS:
        m, s = local_mean_std(a, w)
        parts += [m, s]
    parts += [gradient_magnitude(a), spectral_indices(a, bands)]
    stack = np.concatenate(parts, axis=0)
    assert stack.shape[0] == len(names), (stack.shape, len(names))
    return stack, names


def feature_matrix(
    a: np.ndarray, feature_set: str, bands: Sequence[str] = BANDS
) -> tuple[np.ndarray, list[str]]:
    """All features of every pixel of one chip: ``(H*W, F)`` float32 (row-major pixels), and the names.

    Args:
        a: Chip ``(C, H, W)`` float32 reflectance, dates stacked as channels.
        feature_set: ``"spectral"`` (the C reflectances) or ``"aug"`` (see the module docstring).
        bands: Band names of one date (default the six HLS bands).

    Returns:
        ``(X, names)`` with ``X`` C-contiguous, pixel ``(i, j)`` in row ``i * W + j``.
    """
    stack, names = feature_stack(a, feature_set, bands)
    return np.ascontiguousarray(stack.reshape(stack.shape[0], -1).T), names


class PixelFeatures(TransformerMixin, BaseEstimator):
    """scikit-learn transformer from chips to per-pixel feature rows (drops into a ``Pipeline``).

    ``transform`` takes one chip ``(C, H, W)`` or a batch ``(N, C, H, W)`` and returns ``(N*H*W, F)``, pixels of
    chip 0 first; pair it with per-pixel labels ``y.reshape(-1)`` of the same chips. It is stateless: ``fit`` only
    records the channel count so a later chip with a different band layout fails loudly.

    Args:
        feature_set: ``"spectral"`` or ``"aug"``.
        bands: Band names of one date (``None``: the six HLS bands).
    """

    def __init__(self, feature_set: str = "aug", bands: Sequence[str] | None = None):
        self.feature_set = feature_set
        self.bands = bands

    def _bands(self) -> list[str]:
        return list(BANDS if self.bands is None else self.bands)

    @staticmethod
    def _as_batch(X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 3:
            X = X[None]
        if X.ndim != 4:
            raise ValueError(f"expected chips as (C, H, W) or (N, C, H, W); got shape {X.shape}")
        return X

    def fit(self, X, y=None):
        """Record the channel count and feature names of ``X``; returns ``self``."""
        if self.feature_set not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {self.feature_set!r}; expected one of {FEATURE_SETS}")
        X = self._as_batch(X)
        self.n_channels_ = X.shape[1]
        self.feature_names_out_ = np.asarray(
            feature_names(self.n_channels_, self.feature_set, self._bands()), dtype=object
        )
        self.n_features_out_ = len(self.feature_names_out_)
        return self

    def transform(self, X) -> np.ndarray:
        """Feature rows of every pixel of every chip in ``X``."""
        X = self._as_batch(X)
        if not hasattr(self, "n_channels_"):
            raise ValueError("PixelFeatures is not fitted; call fit first")
        if X.shape[1] != self.n_channels_:
            raise ValueError(f"fitted on {self.n_channels_} channels but got chips with {X.shape[1]}")
        return np.concatenate(
            [feature_matrix(chip, self.feature_set, self._bands())[0] for chip in X], axis=0
        )

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Feature names in column order."""
        return self.feature_names_out_

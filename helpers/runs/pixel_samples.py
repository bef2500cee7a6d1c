"""The pixels a classical or frozen-encoder head is fitted on: class-balanced, seeded, the same for every row.

The classical rows (:mod:`helpers.runs.classical`) and the frozen-encoder rows (:mod:`helpers.runs.fm_frozen`) draw
their training pixels the same way, so a comparison between them is one of features, not of samples: up to
``per_class_per_chip`` pixels of each class from every training chip (:class:`Budget`), ranked by a generator seeded
with the run seed, the split and the chip (:func:`stable_hash`), then capped class-balanced at ``max_pixels``
(:func:`balanced_cap`). Feature stacks of whole chips are kept in a small LRU cache (:class:`FeatureCache`), since the
grid search and the held-out scoring read the same chips again.
"""

from __future__ import annotations

import math
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from helpers import features as _features
from helpers.data import labels as _labels
from helpers.data.datasets import bands_of


@dataclass(frozen=True)
class Budget:
    """How many pixels to sample from a split (see the module docstring, step 1).

    Attributes:
        per_class_per_chip: Up to this many random valid pixels of each class present in each chip.
        max_pixels: Cap on the total; above it a class-balanced cut keeps ``min(count, q)`` per class.
    """

    per_class_per_chip: int = 100
    max_pixels: int = 10_000

    def __post_init__(self):
        if self.per_class_per_chip < 1 or self.max_pixels < 1:
            raise ValueError(f"budget values must be >= 1; got {self}")


#: Default budget of training pixels and of the val pixels used for LightGBM early stopping.
DEFAULT_BUDGET = Budget(100, 10_000)


DEFAULT_VAL_BUDGET = Budget(50, 5_000)


class FeatureCache:
    """In-memory LRU of per-chip feature stacks and labels, capped in bytes, shared by runs of one session.

    Keys are ``(dataset name, dataset root, chip id, feature set, FEATURE_SET_VERSION)``, so a changed feature
    definition or another copy of a dataset never reuses stale entries.

    Args:
        max_bytes: Capacity; the least recently used chips are dropped beyond it (0 disables caching).
    """

    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = int(max_bytes)
        self._store: OrderedDict = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(ds, chip_id: str, feature_set: str) -> tuple:
        """The cache key of one chip's features."""
        return (ds.name, str(getattr(ds, "root", "")), chip_id, feature_set, _features.FEATURE_SET_VERSION)

    def get(self, key):
        """Cached ``(stack, labels, names)`` or None (a hit refreshes the entry's recency)."""
        if key in self._store:
            self._store.move_to_end(key)
            self.hits += 1
            return self._store[key]
        self.misses += 1
        return None

    def put(self, key, value: tuple[np.ndarray, np.ndarray, list[str]]) -> None:
        """Store an entry, evicting least recently used ones beyond ``max_bytes``."""
        size = value[0].nbytes + value[1].nbytes
        if size > self.max_bytes:
            return
        if key in self._store:
            old = self._store.pop(key)
            self.nbytes -= old[0].nbytes + old[1].nbytes
        self._store[key] = value
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, old = self._store.popitem(last=False)
            self.nbytes -= old[0].nbytes + old[1].nbytes

    def __len__(self) -> int:
        return len(self._store)


class Timer:
    """Seconds a run spent reading chips and computing features (its ``read_s`` and ``feature_s`` notes)."""

    def __init__(self):
        self.feature_s = 0.0
        self.read_s = 0.0


def chip_features(ds, chip_id: str, feature_set: str, cache: FeatureCache | None, timer: Timer):
    """``(stack (F, H, W), labels (H, W), names)`` of one chip, through the cache when given.

    Features depend on the imagery only, so the cache holds the dataset's own labels and a label budget's view
    (:mod:`helpers.data.labels`) applies its mask after the lookup: every budget shares one entry per chip.
    """
    base = _labels.unlabelled(ds)
    key = FeatureCache.key(base, chip_id, feature_set) if cache is not None else None
    hit = cache.get(key) if cache is not None else None
    if hit is None:
        t0 = time.perf_counter()
        a, y = base.read_arrays(chip_id)
        t1 = time.perf_counter()
        stack, names = _features.feature_stack(a, feature_set, bands_of(base))
        timer.read_s += t1 - t0
        timer.feature_s += time.perf_counter() - t1
        hit = (stack, np.asarray(y, dtype=np.int64), names)
        if cache is not None:
            cache.put(key, hit)
    stack, y, names = hit
    relabel = getattr(ds, "relabel", None)
    return stack, (y if relabel is None else relabel(chip_id, y)), names


@dataclass
class PixelSample:
    """Sampled pixels of one split: feature rows, labels, and where each row came from.

    Attributes:
        X: ``(n, F)`` float32 features.
        y: ``(n,)`` int64 labels.
        chip: ``(n,)`` index into ``chip_ids`` of each row's chip.
        chip_ids: Chips of the split, in split order.
        feature_names: Names of the ``F`` columns.
        n_all_ignore: Chips that had no valid pixel.
        counts_before_cap: Sampled pixels per class before the total cap.
    """

    X: np.ndarray
    y: np.ndarray
    chip: np.ndarray
    chip_ids: list[str]
    feature_names: list[str]
    n_all_ignore: int = 0
    counts_before_cap: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.y)


def rank_within_group(groups: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order rows by (group, random key); return that order and each ordered row's rank inside its group."""
    order = np.lexsort((keys, groups))
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    lengths = np.diff(np.r_[starts, len(g)])
    rank = np.arange(len(g)) - np.repeat(starts, lengths)
    return order, rank


def stable_hash(text: str) -> int:
    """A hash of ``text`` that is the same in every process (python's ``hash`` of a str is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def balanced_cap(y: np.ndarray, max_pixels: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a class-balanced subset of at most ``max_pixels`` rows (water-filling over class counts)."""
    if len(y) <= max_pixels:
        return np.arange(len(y))
    counts = np.bincount(y)
    counts = counts[counts > 0]
    # largest q with sum(min(counts, q)) <= max_pixels
    lo, hi = 0, int(counts.max())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if np.minimum(counts, mid).sum() <= max_pixels:
            lo = mid
        else:
            hi = mid - 1
    order, rank = rank_within_group(y, rng.random(len(y)))
    return np.sort(order[rank < max(lo, 1)])


def sample_pixels(
    ds,
    split: str,
    feature_set: str,
    *,
    seed: int,
    budget: Budget = DEFAULT_BUDGET,
    cache: FeatureCache | None = None,
    progress: bool = False,
    timer: Timer | None = None,
) -> PixelSample:
    """Stratified per-chip sample of valid pixels of one split, with their features.

    Args:
        ds: A dataset (``helpers.data.datasets``); only ``ds.chip_ids(split)`` chips are read.
        split: The split to sample (``"train"`` for fitting, ``"val"`` for early stopping).
        feature_set: ``"spectral"`` or ``"aug"``.
        seed: Seeds the per-chip generators together with each chip id.
        budget: Pixels per class per chip and total cap.
        cache: Optional :class:`FeatureCache`.
        progress: Show a tqdm bar.
        timer: Adds the read and feature seconds to a run's own :class:`Timer` (``None``: a fresh one).

    Returns:
        A :class:`PixelSample` (empty, with zero rows, if the split has no chips or only ignore pixels).
    """
    timer = timer or Timer()
    chip_ids = ds.chip_ids(split)
    names = _features.feature_names(ds.n_channels, feature_set, bands_of(ds))
    n_per = min(budget.per_class_per_chip, max(1, math.ceil(budget.max_pixels / max(len(chip_ids), 1))))
    xs, ys, cs = [], [], []
    n_all_ignore = 0
    for k, chip_id in enumerate(tqdm(chip_ids, desc=f"sample {split}", disable=not progress, leave=False)):
        stack, y, _ = chip_features(ds, chip_id, feature_set, cache, timer)
        flat = y.ravel()
        valid = np.flatnonzero(flat != ds.ignore_index)
        if valid.size == 0:
            n_all_ignore += 1
            continue
        rng = np.random.default_rng([seed, stable_hash(split), stable_hash(chip_id)])
        order, rank = rank_within_group(flat[valid], rng.random(valid.size))
        idx = np.sort(valid[order[rank < n_per]])
        xs.append(stack.reshape(stack.shape[0], -1)[:, idx].T)
        ys.append(flat[idx])
        cs.append(np.full(idx.size, k, dtype=np.int64))
    if not ys:
        return PixelSample(
            np.zeros((0, len(names)), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            chip_ids,
            names,
            n_all_ignore,
            np.zeros(ds.num_classes, np.int64),
        )
    X = np.concatenate(xs).astype(np.float32, copy=False)
    y = np.concatenate(ys)
    chip = np.concatenate(cs)
    before = np.bincount(y, minlength=ds.num_classes)
    keep = balanced_cap(y, budget.max_pixels, np.random.default_rng([seed, stable_hash(split), 1]))
    return PixelSample(
        np.ascontiguousarray(X[keep]), y[keep], chip[keep], chip_ids, names, n_all_ignore, before
    )

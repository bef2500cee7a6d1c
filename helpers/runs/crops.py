"""The training stream of every deep row: random crops of the training chips, their augmentation and their order.

Kept apart from the training loop (:mod:`helpers.runs.train`) because it is the one place that decides which pixels
a model sees in a step: crops of ``crop_size`` drawn in whole shuffled passes over the chips
(:func:`crop_order`), each a random element of the dihedral group (:func:`augment`), padded where a chip is
smaller (:func:`random_crop`), read through :class:`ChipStore` (in memory when the split is small).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def random_crop(
    a: np.ndarray,
    y: np.ndarray,
    size: int,
    rng: np.random.Generator,
    ignore_index: int,
    tries: int = 5,
    anchor: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """A ``size x size`` crop of a chip, padded (reflectance 0, label ignore) where the chip is smaller.

    Up to ``tries`` offsets are drawn until the crop holds at least one valid label. With ``anchor`` (sparse point
    labels, :mod:`helpers.data.labels`) the crop is instead placed around one labelled pixel drawn uniformly, at a
    uniformly random position within the crop: a blind draw would almost never hit one of a few labelled pixels,
    so nearly every batch would carry no gradient and the run would "plateau" on nothing.
    """
    h, w = y.shape
    if anchor:
        labelled = np.flatnonzero(y.ravel() != ignore_index)
        if labelled.size:
            r, c = divmod(int(labelled[int(rng.integers(labelled.size))]), w)
            top = int(rng.integers(max(0, r - size + 1), min(r, h - size) + 1)) if h > size else 0
            left = int(rng.integers(max(0, c - size + 1), min(c, w - size) + 1)) if w > size else 0
            tries = 0
            yc = y[top : top + size, left : left + size]
    for _ in range(tries):
        top = int(rng.integers(0, h - size + 1)) if h > size else 0
        left = int(rng.integers(0, w - size + 1)) if w > size else 0
        yc = y[top : top + size, left : left + size]
        if (yc != ignore_index).any():
            break
    ac = a[:, top : top + size, left : left + size]
    ph, pw = size - yc.shape[0], size - yc.shape[1]
    if ph or pw:
        ac = np.pad(ac, ((0, 0), (0, ph), (0, pw)))
        yc = np.pad(yc, ((0, ph), (0, pw)), constant_values=ignore_index)
    return ac, yc


def augment(a: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random one of the 8 dihedral transforms (rot90 k times, then an optional left-right flip).

    Nadir-looking imagery has no preferred orientation, so all eight are label-preserving.
    """
    k = int(rng.integers(4))
    a, y = np.rot90(a, k, axes=(1, 2)), np.rot90(y, k)
    if rng.integers(2):
        a, y = a[:, :, ::-1], y[:, ::-1]
    return a, y


class ChipStore:
    """Chips of one split read through ``ds.read_arrays``, kept in memory when the split is small enough.

    The simulated and fixture datasets fit easily; the real burn-scar training split (about 3.4 GB as float32)
    does not fit the study's 6 GiB budget next to everything else, so above ``cache_mb`` chips are re-read from
    disk each time.
    """

    def __init__(self, ds, ids: Sequence[str], cache_mb: float = 2048) -> None:
        self.ds = ds
        self.ids = list(ids)
        self.cache_mb = cache_mb
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._caching: bool | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        cid = self.ids[i]
        if cid in self._cache:
            return self._cache[cid]
        a, y = self.ds.read_arrays(cid)
        a = np.asarray(a, dtype=np.float32)
        if a.ndim != 3 or a.shape[1:] != y.shape:
            raise ValueError(
                f"{self.ds.name}: chip {cid!r} gave image {a.shape} and labels {y.shape}; expected (C, H, W) and (H, W)"
            )
        if self._caching is None:
            per_chip = a.nbytes + y.size * 2
            self._caching = per_chip * len(self.ids) / 2**20 <= self.cache_mb
        if self._caching:
            y = y.astype(np.int16) if self.ds.num_classes < 2**15 else y
            self._cache[cid] = (a, y)
        return a, y

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]


def crop_order(n_chips: int, n_crops: int, rng: np.random.Generator) -> np.ndarray:
    """Chip index of each crop of a block: whole shuffled passes over the chips, truncated to ``n_crops``.

    Whole passes keep every chip equally often in the training stream however few steps a block has.
    """
    reps = -(-n_crops // n_chips)
    return np.concatenate([rng.permutation(n_chips) for _ in range(reps)])[:n_crops]

"""Splits of one scene into train / val / test labels: spatial blocks, random pixels, and a guard between splits.

Why: a single scene is read as a scene (:mod:`helpers.data.scene`): every model sees the whole image, and the splits
are label masks over it. Whether a score is held out then depends only on where the labels of each split lie:

* ``blocks``: a grid of B-px blocks, each block (with every label in it) assigned to one split by a seeded search
  that keeps the labelled-pixel shares near the target fractions and as many classes as possible in train and test
  (:func:`assign_blocks`). Neighbouring pixels of one field are near copies; whole blocks keep most of them apart.
* ``random``: labelled pixels assigned one by one (:func:`random_regions`). Kept only as the leaky reference the
  hyperspectral literature used for years: a test pixel's neighbours train the model.
* a guard of ``g`` px (:func:`guard_labels`): labels of one split with a pixel of another split's region within
  ``g`` px are dropped. Distance is Chebyshev (the square window a convolution sees): with ``g`` at least half a
  model's receptive field, no training label's input window reaches a test block's pixels and vice versa.

Every function returns a *region map*: int8 ``(H, W)``, the index of a pixel's split in :data:`SPLITS` or
:data:`NONE`. A block split's regions are whole blocks (unlabelled pixels included: they are what the input-masking
ablation hides); a random split's are its labelled pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage as ndi

SPLITS = ("train", "val", "test")
#: Target shares of labelled pixels in train / val / test.
FRACTIONS = (0.60, 0.15, 0.25)
#: Region value of a pixel in no split.
NONE = -1


def block_grid(shape: tuple[int, int], block: int) -> tuple[int, int]:
    """Blocks down and across a ``shape`` image (the last row and column may be partial)."""
    return -(-shape[0] // block), -(-shape[1] // block)


def check_fractions(fractions: Sequence[float]) -> np.ndarray:
    """The (train, val, test) shares as an array, refused unless three positive shares summing to 1."""
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or (f <= 0).any() or abs(f.sum() - 1) > 1e-6:
        raise ValueError(
            f"fractions must be three positive shares (train, val, test) summing to 1; got {fractions}"
        )
    return f


def assign_blocks(
    labels: np.ndarray,
    num_classes: int,
    block: int,
    fractions: Sequence[float] = FRACTIONS,
    seed: int = 0,
    tries: int = 4000,
    guard: int = 0,
) -> dict[tuple[int, int], str]:
    """Assign the ``block x block`` blocks that hold labelled pixels to train / val / test (seeded, deterministic).

    Each try permutes the blocks and gives each to the split its midpoint's cumulative labelled-pixel share falls
    in; the best try wins. Score (lower is better): classes missing from train (x 100) + classes missing from test
    (x 10) + classes missing from val (x 1) + the L1 distance of the labelled-pixel shares from ``fractions``
    (x 10). With a ``guard``, each try is scored on the labels the guard keeps (:func:`guard_labels`), since a
    guard empties the blocks that border other splits first. A class that no assignment can put in every split is
    left missing and reported by the caller, never hidden.

    Args:
        labels: ``(H, W)`` class index ``0..num_classes-1``; any other value (the ignore index) is unlabelled.
        num_classes: Number of classes.
        block: Block side in pixels.
        fractions: Target labelled-pixel shares of train, val and test.
        seed: Seeds the search.
        tries: Permutations tried.
        guard: The guard (px) the split will be used with.

    Returns:
        ``{(block_row, block_col): split}`` for every block holding a label.
    """
    target = check_fractions(fractions)
    nby, nbx = block_grid(labels.shape, block)
    keys, counts = [], []
    for by in range(nby):
        for bx in range(nbx):
            cell = labels[by * block : (by + 1) * block, bx * block : (bx + 1) * block].ravel()
            c = np.bincount(cell[(cell >= 0) & (cell < num_classes)], minlength=num_classes)
            if c.sum():
                keys.append((by, bx))
                counts.append(c)
    if not keys:
        raise ValueError("no labelled pixel to split")
    counts = np.array(counts)
    total = counts.sum()
    rng = np.random.default_rng(seed)
    bounds = np.cumsum(target)[:2]
    best, best_score = None, np.inf
    for _ in range(tries):
        perm = rng.permutation(len(keys))
        own = counts[perm].sum(axis=1) / total
        midpoint = np.cumsum(own) - own / 2  # a block goes to the split its middle falls in
        split = np.searchsorted(bounds, midpoint)
        if guard:
            regions = block_regions(
                labels.shape, block, {keys[i]: SPLITS[s] for i, s in zip(perm, split, strict=True)}
            )
            kept = guard_labels(regions, (labels >= 0) & (labels < num_classes), guard)
            per = [np.bincount(labels[kept == k], minlength=num_classes) for k in range(3)]
            frac = np.array([p.sum() for p in per]) / max(1, sum(p.sum() for p in per))
        else:
            per = [counts[perm][split == k].sum(axis=0) for k in range(3)]
            frac = np.array([p.sum() for p in per]) / total
        missing = [(p == 0).sum() for p in per]
        score = 100 * missing[0] + 10 * missing[2] + missing[1] + 10 * np.abs(frac - target).sum()
        if score < best_score:
            best_score, best = score, {keys[i]: SPLITS[s] for i, s in zip(perm, split, strict=True)}
    assert best is not None
    return best


def block_regions(
    shape: tuple[int, int], block: int, assignment: Mapping[tuple[int, int], str]
) -> np.ndarray:
    """Region map of a block assignment: every pixel of an assigned block carries its split's index."""
    regions = np.full(shape, NONE, dtype=np.int8)
    for (by, bx), split in assignment.items():
        regions[by * block : (by + 1) * block, bx * block : (bx + 1) * block] = SPLITS.index(split)
    return regions


def block_ids(shape: tuple[int, int], block: int) -> np.ndarray:
    """Each pixel's block, numbered row by row (``(H, W)`` int32): the units a block split's test set is made of."""
    _, cols = block_grid(shape, block)
    by = np.arange(shape[0]) // block
    bx = np.arange(shape[1]) // block
    return (by[:, None] * cols + bx[None, :]).astype(np.int32)


def random_regions(labelled: np.ndarray, fractions: Sequence[float] = FRACTIONS, seed: int = 0) -> np.ndarray:
    """Region map of a random pixel split: the labelled pixels in a seeded order, cut at the target shares."""
    target = check_fractions(fractions)
    idx = np.flatnonzero(labelled)
    order = np.random.default_rng(seed).permutation(idx.size)
    cuts = np.round(np.cumsum(target)[:2] * idx.size).astype(int)
    regions = np.full(labelled.shape, NONE, dtype=np.int8)
    flat = regions.reshape(-1)
    for k, part in enumerate(np.split(idx[order], cuts)):
        flat[part] = k
    return regions


def guard_labels(regions: np.ndarray, labelled: np.ndarray, guard: int) -> np.ndarray:
    """The split of every label kept under a guard of ``guard`` px; :data:`NONE` for pixels without one.

    A labelled pixel in split ``s``'s region is kept when no pixel of another split's region lies within
    ``guard`` px (Chebyshev distance: inside the ``(2 guard + 1)`` square centred on it). ``guard`` 0 keeps every
    label of every region.
    """
    if guard < 0:
        raise ValueError(f"guard must be >= 0 px; got {guard}")
    out = np.full(regions.shape, NONE, dtype=np.int8)
    for k in range(len(SPLITS)):
        own = labelled & (regions == k)
        if guard:
            other = (regions != NONE) & (regions != k)
            own &= ~ndi.maximum_filter(other, size=2 * guard + 1, mode="constant", cval=False)
        out[own] = k
    return out


def label_counts(labels: np.ndarray, label_split: np.ndarray, num_classes: int) -> dict[str, np.ndarray]:
    """Labelled pixels per class in each split (``{split: counts}``)."""
    return {
        s: np.bincount(labels[label_split == k], minlength=num_classes)[:num_classes]
        for k, s in enumerate(SPLITS)
    }

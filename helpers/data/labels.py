"""Label budgets: a dataset seen with fewer training labels, the same way for every family.

The field's case for foundation models is label efficiency, so the study varies how many training labels a run
sees. A budget is applied once, as a view of the dataset (:func:`label_view`), and every family (classical pixel
sampling, CNN and FM training loops, frozen-embedding heads) reads its training labels through that view, so they
all train on the very same labelled pixels. Two kinds, both as the benchmarks that vary the labelled fraction do
it (PANGAEA, GEO-Bench) or as a field campaign would collect them:

=============  ===============================================================================================
budget         what the training split holds
=============  ===============================================================================================
``all``        every label (no view: the dataset itself; the study's full-label rows)
``chips-F``    a fraction ``F`` of the training chips with all their labels; the other chips are left out
``points-K``   every training chip's imagery, but only ``K`` labelled pixels *per class over the whole training
               split* (field-survey points); every other pixel is ``ignore``, and deep models train with the
               masked loss on those pixels only
=============  ===============================================================================================

What stays fixed: validation and test are never subset (validation stays the full split, as GEO-Bench and
Galileo's evaluation do: this assumes a user with few training labels still has a full validation set to select
models on, which flatters every family equally); unlabelled imagery for in-study pretraining comes from
:func:`unlabelled`, the dataset without the view, so pretraining never sees labels and is never subset.

The draw is seeded by the run's seed and **nested**: for one seed, the labels of a smaller budget are a subset of
those of a larger one (``chips``: prefixes of one class-covering chip order; ``points``: the ``K`` smallest of one
random key per pixel, class by class), so a learning curve moves along one draw and the seeds' spread includes
which labels were drawn.

A view's :meth:`LabelView.fingerprint` combines the dataset's content hash with the budget and the seed, so every
run on it has a ``run_key`` of its own; :func:`tag_of` names the budget in the results rows, run folders and map
paths (:func:`helpers.runs.runner.identity`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import zlib
from collections.abc import Sequence

import numpy as np

from helpers.data.chips import BandView, fingerprint

#: The budget of a dataset seen without a view.
ALL = "all"
#: Version of the draw (which labels a budget keeps): part of every view's fingerprint, so a changed draw reruns
#: the budgeted runs instead of reusing rows drawn the old way.
DRAW_VERSION = 1
KINDS = ("all", "chips", "points")


@dataclasses.dataclass(frozen=True)
class LabelBudget:
    """How many training labels a run sees.

    Attributes:
        kind: ``"all"``, ``"chips"`` (a fraction of training chips, all their labels) or ``"points"`` (``value``
            labelled pixels per class over the training split).
        value: The fraction (``0 < F <= 1``) for ``chips``, the pixels per class (``K >= 1``) for ``points``,
            ignored (0) for ``all``.
    """

    kind: str = ALL
    value: float = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown label budget kind {self.kind!r}; expected one of {KINDS}")
        if self.kind == "chips" and not 0 < float(self.value) <= 1:
            raise ValueError(
                f"a chips budget is a fraction of the training chips in (0, 1]; got {self.value}"
            )
        if self.kind == "points" and (float(self.value) < 1 or float(self.value) != int(self.value)):
            raise ValueError(f"a points budget is a whole number of pixels per class >= 1; got {self.value}")
        if self.kind == ALL:
            object.__setattr__(self, "value", 0)
        elif self.kind == "points":
            object.__setattr__(self, "value", int(self.value))
        else:
            object.__setattr__(self, "value", float(self.value))

    @property
    def tag(self) -> str:
        """The budget in one word: ``all``, ``chips-0.25``, ``points-10`` (results rows, folders, parameters)."""
        return ALL if self.kind == ALL else f"{self.kind}-{self.value:g}"

    @classmethod
    def parse(cls, text: str | LabelBudget) -> LabelBudget:
        """A budget from its :attr:`tag` (``"all"``, ``"chips-0.25"``, ``"points-10"``).

        Raises:
            ValueError: Anything else, naming what was expected.
        """
        if isinstance(text, LabelBudget):
            return text
        text = str(text).strip()
        if text == ALL:
            return cls()
        kind, _, value = text.partition("-")
        try:
            return cls(kind, float(value))
        except ValueError as err:
            raise ValueError(
                f"label budget {text!r}: expected 'all', 'chips-<fraction>' or 'points-<pixels per class>' ({err})"
            ) from None


def _key(seed: int, *parts: str) -> list[int]:
    return [int(seed) % 2**32, *(zlib.crc32(p.encode()) for p in parts)]


def _pixel_keys(seed: int, chip_id: str, size: int) -> np.ndarray:
    """One uniform random key per pixel of a chip; fixed by (seed, chip), whatever the budget (nesting)."""
    return np.random.default_rng(_key(seed, "points", chip_id)).random(size)


class LabelView:
    """A dataset whose training split holds only a budget's labels; every other split and all imagery unchanged.

    Built by :func:`label_view`. Everything not overridden is the underlying dataset's (splits, classes, the
    decoded-chip cache of ``read_arrays``).

    Attributes:
        budget: The :class:`LabelBudget`.
        draw_seed: The seed that drew the labels (the run's seed).
        n_labelled_px: Labelled training pixels in the view.
        class_counts: Labelled training pixels per class in the view.
    """

    def __init__(self, ds, budget: LabelBudget, seed: int) -> None:
        if budget.kind == ALL:
            raise ValueError("a view needs a budget below 'all'; use the dataset itself for every label")
        self._ds = ds
        self.budget = budget
        self.draw_seed = int(seed)
        base_ids = ds.chip_ids("train")
        if not base_ids:
            raise ValueError(f"{ds.name}: no training chips to draw a {budget.tag} label budget from")
        labels = {cid: np.asarray(ds.read_arrays(cid)[1]) for cid in base_ids}
        self._thresholds: np.ndarray | None = None
        if budget.kind == "chips":
            order = _chip_order(labels, ds.num_classes, ds.ignore_index, self.draw_seed)
            n = max(1, math.ceil(budget.value * len(base_ids) - 1e-9))
            keep = set(order[:n])
            self._train = [c for c in base_ids if c in keep]
        else:
            self._thresholds = _point_thresholds(
                labels, ds.num_classes, ds.ignore_index, self.draw_seed, int(budget.value)
            )
            self._train = [
                c for c in base_ids if (self._mask(c, labels[c]) != ds.ignore_index).any()
            ]  # a chip without a labelled pixel carries no gradient and no sample
        self._train_set = set(self._train)
        counts = np.zeros(ds.num_classes, np.int64)
        for cid in self._train:
            y = self._mask(cid, labels[cid])
            counts += np.bincount(y[y != ds.ignore_index].ravel(), minlength=ds.num_classes)
        self.class_counts = counts
        self.n_labelled_px = int(counts.sum())
        self.n_base_train_chips = len(base_ids)

    def __getattr__(self, name: str):
        if name.startswith("__") or "_ds" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self._ds, name)

    @property
    def label_budget(self) -> str:
        """The budget's tag (:attr:`LabelBudget.tag`)."""
        return self.budget.tag

    def chip_ids(self, split: str) -> list[str]:
        """The split's chips; ``train`` holds only chips with labels in the budget."""
        return list(self._train) if split == "train" else self._ds.chip_ids(split)

    def _mask(self, chip_id: str, y: np.ndarray) -> np.ndarray:
        if self._thresholds is None:
            return y
        keys = _pixel_keys(self.draw_seed, chip_id, y.size).reshape(y.shape)
        valid = y != self._ds.ignore_index
        keep = np.zeros(y.shape, bool)
        keep[valid] = keys[valid] <= self._thresholds[y[valid]]
        return np.where(keep, y, self._ds.ignore_index)

    def relabel(self, chip_id: str, y: np.ndarray) -> np.ndarray:
        """``y`` as this view sees it: training chips keep only the budget's labels; other chips unchanged."""
        if chip_id in self._train_set:
            return self._mask(chip_id, np.asarray(y))
        return y

    def read_arrays(self, chip_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The underlying chip's arrays, its labels seen through the budget."""
        a, y = self._ds.read_arrays(chip_id)
        return a, self.relabel(chip_id, y)

    def read(self, chip_id: str):
        """The underlying chip as a DataArray, its labels seen through the budget."""
        x, y = self._ds.read(chip_id)
        return x, self.relabel(chip_id, y)

    def fingerprint(self) -> str:
        """The dataset's content hash combined with the budget and the seed that drew it."""
        text = f"{fingerprint(self._ds)}/labels:{self.budget.tag}/seed:{self.draw_seed}/draw:{DRAW_VERSION}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"<LabelView {self.budget.tag} (seed {self.draw_seed}) of {self._ds!r}>"


def _chip_order(labels: dict, num_classes: int, ignore_index: int, seed: int) -> list[str]:
    """Training chips in draw order: a seeded shuffle, reordered so every prefix covers as many classes as it can.

    Walking the shuffle, the next chip is the first remaining one that adds a class the prefix lacks (while one
    does), else the next in the shuffle. Every budget is a prefix of this one order, so budgets are nested.
    """
    ids = list(labels)
    perm = [ids[i] for i in np.random.default_rng(_key(seed, "chips")).permutation(len(ids))]
    present = {
        c: set(np.unique(labels[c][labels[c] != ignore_index]).tolist()) - {ignore_index} for c in perm
    }
    order, covered, rest = [], set(), list(perm)
    while rest:
        pick = next((c for c in rest if present[c] - covered), rest[0])
        rest.remove(pick)
        order.append(pick)
        covered |= present[pick]
    return order


def _point_thresholds(labels: dict, num_classes: int, ignore_index: int, seed: int, k: int) -> np.ndarray:
    """Per class, the key of its ``k``-th smallest pixel over the training split (``inf``: keep all it has).

    A pixel is kept when its key is at most its class's threshold, so ``k`` pixels per class are kept (all of a
    class with fewer), and a larger ``k`` keeps a superset.
    """
    best: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    for cid, y in labels.items():
        flat = y.ravel()
        keys = _pixel_keys(seed, cid, flat.size)
        valid = flat != ignore_index
        for c in np.unique(flat[valid]):
            kc = keys[flat == c]
            best[int(c)].append(np.partition(kc, k - 1)[:k] if kc.size > k else kc)
    out = np.full(num_classes, np.inf)
    for c in range(num_classes):
        if best[c]:
            allk = np.concatenate(best[c])
            if allk.size >= k:  # the k-th smallest key (one chip may hold all k)
                out[c] = np.partition(allk, k - 1)[k - 1]
    return out


def label_view(ds, budget: str | LabelBudget, seed: int):
    """``ds`` with the training labels of ``budget`` drawn with ``seed``: the dataset itself for ``all``.

    Raises:
        ValueError: An unparseable budget, or a dataset without training chips.
    """
    budget = LabelBudget.parse(budget)
    if budget.kind == ALL:
        return ds
    return LabelView(ds, budget, seed)


def tag_of(ds) -> str:
    """The label budget a dataset object stands for (``"all"`` unless it is, or wraps, a :class:`LabelView`)."""
    return str(getattr(ds, "label_budget", ALL))


def unlabelled(ds):
    """The imagery behind any label view: the dataset with every training chip, for pretraining (never subset).

    Band views are kept (a pretraining takes the bands its model needs); only label views are removed.
    """
    if isinstance(ds, LabelView):
        return unlabelled(ds._ds)
    if isinstance(ds, BandView) and isinstance(ds._ds, LabelView):
        return BandView(unlabelled(ds._ds), ds.bands)
    return ds


def labelled_counts(ds) -> np.ndarray:
    """Labelled training pixels per class of ``ds`` (a view's own counts; else one pass over the train labels).

    Computed once per dataset object (as its fingerprint is): files changed on disk while it lives are not seen.
    """
    counts = getattr(ds, "class_counts", None)
    if isinstance(counts, np.ndarray):
        return counts
    cached = getattr(ds, "_labelled_counts", None)
    if isinstance(cached, np.ndarray):
        return cached
    out = np.zeros(ds.num_classes, np.int64)
    for cid in ds.chip_ids("train"):
        y = np.asarray(ds.read_arrays(cid)[1])
        out += np.bincount(y[y != ds.ignore_index].ravel(), minlength=ds.num_classes)
    try:
        ds._labelled_counts = out
    except AttributeError:  # an object that takes no attributes: computed again next time
        pass
    return out


def parse_all(budgets: Sequence[str | LabelBudget]) -> list[LabelBudget]:
    """Parse a parameter list of budgets, keeping its order and dropping repeats."""
    out: list[LabelBudget] = []
    for b in budgets:
        b = LabelBudget.parse(b)
        if b not in out:
            out.append(b)
    return out

"""Opening a dataset by name: the published layouts, the generated datasets' cards, your own folders and scenes.

Between the dataset types (:mod:`helpers.data.chips`, :mod:`helpers.data.generic`, :mod:`helpers.data.scene`) and
the checks that read a whole folder (:mod:`helpers.data.validate`, which opens any layout through here). Use it as
``datasets.open`` (:mod:`helpers.data.datasets` re-exports it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers.data import generic, scene
from helpers.data.chips import (
    BURN_CLASSES,
    CROP_CLASSES,
    FLOOD_CLASSES,
    BurnScarsDataset,
    ChipDataset,
    CropDataset,
    Sen1Floods11Dataset,
)
from helpers.data.io import DataError

_LAYOUTS = {"crop": CropDataset, "burn_scars": BurnScarsDataset, "sen1floods11": Sen1Floods11Dataset}

#: The three original datasets: layout, task, classes, dates and the scale from stored values to reflectance.
REAL = {
    "crop": dict(layout="crop", task="crop", classes=CROP_CLASSES, n_times=3, scale=1e-4),
    "burn_scars": dict(layout="burn_scars", task="burn", classes=BURN_CLASSES, n_times=1, scale=1.0),
    "sen1floods11": dict(layout="sen1floods11", task="flood", classes=FLOOD_CLASSES, n_times=1, scale=1e-4),
}
#: Stored scale of each layout when a dataset card does not give one (the simulator writes like the originals).
_LAYOUT_SCALE = {"crop": 1e-4, "burn_scars": 1.0, "sen1floods11": 1e-4}


def read_card(root: str | os.PathLike) -> dict:
    """The ``dataset.json`` card that the simulator (and Indian Pines builder) writes into a dataset root."""
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise DataError(
            f"{path}: dataset card not found; generate the data first (python -m helpers.data.simulate NAME --to {root})"
        )
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    for key in ("name", "layout", "task", "classes", "simulated"):
        if key not in card:
            raise DataError(f"{path}: dataset card lacks {key!r}")
    if card["layout"] not in _LAYOUTS:
        raise DataError(f"{path}: unknown layout {card['layout']!r}; expected one of {sorted(_LAYOUTS)}")
    return card


def generator_facts(root: str | os.PathLike) -> dict:
    """What the generator recorded in a dataset's card (its ``generator`` entry); ``{}`` without a card or entry.

    The simulator writes its known limits there (the texture sweep's per-pixel Bayes accuracy, the noise-free
    ceilings of a dataset with label noise), so the report reads them instead of recomputing them. Any layout.

    Raises:
        DataError: The card is not valid JSON.
    """
    path = Path(root) / "dataset.json"
    if not path.is_file():
        return {}
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    return dict(card.get("generator") or {}) if isinstance(card, dict) else {}


def open(name: str, root: str | os.PathLike, **kwargs) -> ChipDataset:  # noqa: A001 - mirrors rasterio.open
    """Open a dataset by name.

    Args:
        name: ``"sen1floods11"``, ``"burn_scars"``, ``"crop"`` (the originals, in their published layouts), a
            generated dataset (``"sim-crop"``, ``"sim-burn"``, ``"sim-flood"``, ``"sim-texture-<knob>"``,
            ``"indian-pines-hls"``) whose root holds a ``dataset.json`` card, or any other name whose root holds a
            card of the generic layout (a dataset of your own: :mod:`helpers.data.generic`) or of the scene layout
            (one scene of your own: :mod:`helpers.data.scene`).
        root: The dataset folder.
        **kwargs: ``splits_dir`` (official split lists elsewhere), ``val_fraction``, ``val_seed``, ``scale``, ``cache_mb``.

    Raises:
        DataError: Unknown name, missing root, split lists or card, or a generic card that does not match its files.
    """
    if name in REAL:
        spec = dict(REAL[name])
        cls = _LAYOUTS[spec.pop("layout")]
        spec.update(kwargs)
        return cls(root, name=name, **spec)
    if name.startswith("sim-") or name == "indian-pines-hls":
        card = read_card(root)
        if card["name"] != name:
            raise DataError(f"{Path(root) / 'dataset.json'}: card is for {card['name']!r}, not {name!r}")
        spec = dict(
            task=card["task"],
            classes=card["classes"],
            n_times=int(card.get("n_times", 1)),
            simulated=bool(card["simulated"]),
            scale=float(card.get("scale", _LAYOUT_SCALE[card["layout"]])),
        )
        spec.update(kwargs)
        return _LAYOUTS[card["layout"]](root, name=name, **spec)
    if (Path(root) / "dataset.json").is_file():
        if scene.is_scene(root):
            return scene.SceneDataset(root, name=name, **kwargs)
        return generic.GenericDataset(root, name=name, **kwargs)
    raise DataError(
        f"unknown dataset {name!r} and no dataset card {Path(root) / 'dataset.json'}; expected one of "
        f"{sorted(REAL)}, a generated sim-*/indian-pines-hls name, or a folder of your own with a dataset.json of "
        "the generic layout (README: Your own data)"
    )

"""The dataset checks on the command line: ``python -m helpers.data.generic`` and ``python -m helpers.data.scene``.

``check DIR`` reads every chip of a folder (:func:`helpers.data.validate.validate`), prints every problem (exit status 1
on an error) and says what the folder opened as; ``example DIR`` writes a layout's small example. The commands sit
here, above the layouts and the checks they run, so no layout imports the checks that import it.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from helpers.data import bands as _bands
from helpers.data import generic, layouts, scene
from helpers.data.io import DataError
from helpers.data.validate import Report, validate


def describe(ds: generic.GenericDataset, report: Report | None = None) -> str:
    """A few lines on what a generic folder opened as (``python -m helpers.data.generic check``).

    With the :class:`~helpers.data.validate.Report` of a full check, the reflectance and label figures are the
    whole dataset's (what the models will see); without, the first training chip's.
    """
    sizes = ", ".join(f"{s} {len(ds.chip_ids(s))}" for s in ds.splits)
    x, y = ds.read(ds.chip_ids("train")[0])
    hls = _bands.missing(ds.bands, _bands.HLS_BANDS)
    lines = [
        f"{ds.name}: {ds.task}{' (SIMULATED)' if ds.simulated else ''}, {ds.num_classes} classes {ds.classes}",
        f"  bands {ds.bands} x {ds.n_times} date(s); chips: {sizes}; first chip {x.sizes['y']}x{x.sizes['x']} px",
    ]
    if report is not None and report.reflectance:
        r = report.reflectance
        labelled = ", ".join(f"{s} {n:,}" for s, n in report.labelled.items())
        lines += [
            f"  reflectance of every valid pixel: {r['p1']:.3f}..{r['p99']:.3f} (1-99 %), median {r['p50']:.3f}",
            f"  labelled pixels: {labelled}",
        ]
    else:
        lines += [
            f"  reflectance of the first chip: {float(np.percentile(x.values, 1)):.3f}..{float(np.percentile(x.values, 99)):.3f} (1-99 %)",  # fmt: skip
            f"  labelled pixels of the first chip: {int((y != ds.ignore_index).sum())} of {y.size}",
        ]
    lines.append(
        "  HLS-band models (Prithvi-arch, Prithvi-100M, Galileo-nano, Presto): "
        + ("run" if not hls else f"not_run (missing {', '.join(hls)})")
    )
    return "\n".join(lines)


def generic_main(argv: Sequence[str] | None = None) -> int:
    """``check DIR`` (exit status 1 when the check finds an error) or ``example DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.data.generic", description=generic.__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "check",
        help="read every chip of a dataset folder, report every problem (rc 1 on errors), say what it holds",
    ).add_argument("root")
    ex = sub.add_parser("example", help="write the small example dataset into ROOT")
    ex.add_argument("root")
    ex.add_argument("--name", default=None, help="card name (default: the folder's name)")
    ex.add_argument("--chips", type=int, default=20)
    ex.add_argument("--size", type=int, default=64)
    ex.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "example":
            root = Path(args.root)
            generic.write_example(
                root, name=args.name or root.name, n_chips=args.chips, size=args.size, seed=args.seed
            )
            print(describe(generic.GenericDataset(root)))
        else:
            report = validate(args.root)
            print(report.format())
            if not report.ok:
                return 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the report has said what needs saying
                ds = layouts.open(report.name, args.root)
            print(describe(ds, report))
            if hasattr(ds, "describe"):  # a scene (helpers.data.scene) says how its labels split
                print(ds.describe())
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def scene_main(argv: Sequence[str] | None = None) -> int:
    """``example DIR`` writes :func:`write_example`; ``check DIR`` is ``python -m helpers.data.generic check DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.data.scene", description=scene.__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "check", help="read the scene, report every problem (rc 1 on errors), say how it splits"
    ).add_argument("root")
    ex = sub.add_parser(
        "example", help="write the small SIMULATED example scene (GeoTIFF + GeoPackage) into ROOT"
    )
    ex.add_argument("root")
    ex.add_argument("--size", type=int, default=96)
    ex.add_argument("--block", type=int, default=16)
    ex.add_argument("--guard", type=int, default=0)
    ex.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "check":
        return generic_main(["check", args.root])
    try:
        root = scene.write_example(
            args.root, size=args.size, seed=args.seed, block=args.block, guard=args.guard
        )
        print(scene.SceneDataset(root).describe())
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0

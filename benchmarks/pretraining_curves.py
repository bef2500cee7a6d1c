"""The probe curves that size in-study pretraining (issue 28): how far each pretext's probe rises, and how fast.

Runs the in-study pretraining of the default settings (:func:`helpers.runs.fm_settings.FMSettings`: the probe-plateau
mode) on the pooled corpus of ``--per-family`` images per simulated family, but **without its stopping rule**: every
probe (each ``probe_every`` steps) to ``--steps``, one process per pretext (``--pretexts``, one thread each, side by
side), and prints the probe table of each: step, the mean over the probe tasks and its three-probe smoothing, each
task's probe, the chunk's mean loss and the seconds so far. Compare two corpus sizes by running it twice.

What it printed on 2026-12-04 (one thread per process, two processes on the 2-core machine, 0.05 s a step of 16
64 px crops, a probe 2.5 s) is in the README (in-study pretraining) and in the docstring of
``helpers.runs.fm_settings._pretrain_defaults``: the settings it chose.

Usage::

    python benchmarks/pretraining_curves.py --data-dir data --per-family 1024 --steps 5000 --out /tmp/curves
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MAIN = ["sim-crop", "sim-burn", "sim-flood", "indian-pines-hls"]
SWEEP = ["sim-texture-0", "sim-texture-0.5", "sim-texture-1"]


def one(pretext: str, args: argparse.Namespace) -> None:
    """Pretrain one pretext to ``args.steps`` without stopping and print its probe table."""
    import pandas as pd

    from helpers.runs import fm_finetuned, fm_settings
    from helpers.runs import pretrain as pretrain

    spec = fm_settings.corpus_spec(args.data_dir, MAIN, SWEEP, per_family=args.per_family)
    settings = fm_settings.FMSettings(corpus=spec)
    data, cfg, probe_on = fm_finetuned.pretraining_inputs(None, pretext, settings)
    cfg = dataclasses.replace(cfg, probe_patience=2**31 - 1, max_steps=args.steps)  # the whole curve
    res = pretrain.pretrain(data, cfg, probe_on=probe_on, cache_dir=args.out, num_threads=1, progress=False)
    table = res.probe.rename(columns=lambda c: c.removeprefix("probe "))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(
            f"{pretext}, {args.per_family} images per family ({sum(len(d.chip_ids('train')) for d in data)} images):"
        )
        print(table.round(3).to_string(index=False))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default="data", help="datasets folder (the corpus and probe draws go there)"
    )
    parser.add_argument("--per-family", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--pretexts", nargs="+", default=["mae", "spectral"])
    parser.add_argument("--out", default="/tmp/pretraining_curves", help="cache folder of the runs")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process: one pretext
    args = parser.parse_args(argv)
    if args.one:
        one(args.one, args)
        return
    # the corpus and probe draws are written once, before the pretexts start side by side
    from helpers.runs import fm_settings

    fm_settings.corpus_spec(args.data_dir, MAIN, SWEEP, per_family=args.per_family).open()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])]
    children = [subprocess.Popen([*base, "--one", p], env=env) for p in args.pretexts]
    sys.exit(max(c.wait() for c in children))


if __name__ == "__main__":
    main()

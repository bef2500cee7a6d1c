"""What a deep row's training costs, as ratios: the study's loop against the bare model, and the ways to pay less.

Prints, for each model on a default simulated dataset:

* **raw** optimiser steps per second of the bare model (one fixed batch, forward + backward + AdamW step) at the
  precision the study trains it in (``precision`` column), the ceiling any loop can reach;
* **loop**: steps per second of :func:`helpers.runs.train.fit` (crops, augmentation, batching, checkpoints, validation
  every ``eval_every`` steps) and its ratio to raw (goal >= 0.9), with the validation share of the run;
* **bf16 + channels_last**: the raw rate under bfloat16 autocast with ``channels_last`` batches, as a ratio to raw
  float32 (only worth it on CPUs with native bf16 support; the loop records both settings in the run's identity);
* **2 x 1 thread vs 1 x 2 threads**: wall time of two trainings as two 1-thread processes at once against one after
  the other with 2 threads (what a run-matrix engine gains by running jobs side by side on this 2-core machine).

* ``--seed-noise``: whether bf16 + ``channels_last`` changes the science: the first model trained to its plateau
  with the study's settings for seeds 0-2, in float32 and in bf16 + ``channels_last``, with mean and spread of
  validation and test mIoU and the wall time of each (the default keeps float32 unless the difference stays within
  the seed spread).

Usage::

    python benchmarks/train_loop.py                       # U-Net on sim-burn, the other models briefly
    python benchmarks/train_loop.py --models unet --steps 300
    python benchmarks/train_loop.py --models unet --seed-noise
    python benchmarks/train_loop.py --models unet --seed-noise --threads 1 --precision bf16   # one half, 1 thread
    python benchmarks/train_loop.py --models prithvi_arch_small --threads 1 --no-side-by-side   # the MAE row's step
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.data import datasets  # noqa: E402
from helpers.models import cnn, prithvi  # noqa: E402
from helpers.models.segformer import SegFormer  # noqa: E402
from helpers.models.vit import ViTSegmenter  # noqa: E402
from helpers.runs import cnn_settings, crops, fm_settings, inference, runner, train  # noqa: E402

#: The small Prithvi-architecture segmenter of the in-study FM rows (random init: the step costs the same from any
#: start), on the six HLS bands it reads by name.
PRITHVI_ARCH = "prithvi_arch_small"


def build(name: str, ds):
    """The study's default-width model ``name`` for ``ds``."""
    if name in cnn.MODELS:
        return cnn.build_for(name, ds)
    if name == "vit":
        return ViTSegmenter(ds.n_channels, ds.num_classes, img_size=64)
    if name == "segformer":
        return SegFormer(ds.n_channels, ds.num_classes, decoder_dim=128)
    if name == PRITHVI_ARCH:
        s = fm_settings.FMSettings()
        cfg = s.pretrain.model.replace(img_size=64, num_frames=ds.n_times, in_chans=len(prithvi.HLS_BANDS))
        return prithvi.PrithviSegmenter(
            ds.num_classes, ds.n_times, cfg, neck_dim=s.neck_dim, head_channels=s.head_channels
        )
    raise SystemExit(f"unknown model {name!r}")


def raw_rate(model, ds, steps: int, *, bf16: bool = False, channels_last: bool = False) -> float:
    """Steps per second of forward + backward + AdamW on one fixed batch of 8 random 64 px crops."""
    rng = np.random.default_rng(0)
    chips = crops.ChipStore(ds, ds.chip_ids("train"))
    xs, ys = zip(*(crops.random_crop(*chips[i], 64, rng, ds.ignore_index) for i in range(8)), strict=True)
    x = torch.from_numpy(np.stack(xs))
    t = torch.from_numpy(np.stack(ys).astype(np.int64))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = train.masked_cross_entropy(logits.float(), t, ds.ignore_index)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0)


def study_precision(name: str) -> dict:
    """The precision the study trains ``name`` in: the CNN defaults (bf16 + channels_last on native-bf16 CPUs),
    float32 for ViT and SegFormer, bf16 without ``channels_last`` (its 3-D patch embedding) for the Prithvi-arch
    fine-tunes on the same CPUs (:attr:`helpers.runs.fm_settings.FMSettings.small_bf16`)."""
    if name == PRITHVI_ARCH:
        return {"bf16": fm_settings.FMSettings().small_bf16, "channels_last": False}
    if name in cnn.MODELS:
        return {
            "bf16": cnn_settings.TRAIN_DEFAULTS["bf16"],
            "channels_last": cnn_settings.TRAIN_DEFAULTS["channels_last"],
        }
    return {"bf16": False, "channels_last": False}


def loop_rate(model, ds, steps: int, eval_every: int, precision: dict) -> tuple[float, float]:
    """Steps per second of :func:`helpers.runs.train.fit` and the validation share of its wall time.

    ``torch.use_deterministic_algorithms`` (which :func:`helpers.runs.train.fit` switches on) imports torch's compiler
    stack the first time, about 1.9 s once per process; it is triggered before the clock starts, so the rate is the
    loop's and not the process start-up's (a chain worker pays it once for all its runs).
    """
    torch.use_deterministic_algorithms(torch.are_deterministic_algorithms_enabled())
    with tempfile.TemporaryDirectory() as tmp:
        kw = {
            **cnn_settings.TRAIN_DEFAULTS,
            "max_steps": steps,
            "eval_every": eval_every,
            "patience": None,
            **precision,
        }
        t0 = time.perf_counter()
        res = train.fit(model, ds, seed=0, out_dir=tmp, progress=False, **kw)
        wall = time.perf_counter() - t0
    return steps / (wall - res.eval_s), res.eval_s / wall


def side_by_side(model: str, dataset: str, steps: int) -> tuple[float, float]:
    """Wall seconds: two 1-thread trainings at once, and two 2-thread trainings one after the other."""
    code = (
        "import sys, tempfile; sys.path.insert(0, {root!r});"
        "from helpers.data import datasets; from helpers.runs import cnn_settings, runner, train; from helpers.models import cnn;"
        "ds = datasets.prepare({ds!r}, {data!r}); runner.seed_everything(0);"
        "m = cnn.build_for({model!r}, ds);"
        "kw = {{**cnn_settings.TRAIN_DEFAULTS, 'max_steps': {steps}, 'patience': None, 'num_threads': {threads}}};"
        "train.fit(m, ds, seed=0, out_dir=tempfile.mkdtemp(), progress=False, **kw)"
    )

    def cmd(threads: int) -> list[str]:
        src = code.format(
            root=str(ROOT), ds=dataset, data=str(ROOT / "data"), model=model, steps=steps, threads=threads
        )
        return [sys.executable, "-c", src]

    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd(1)) for _ in range(2)]
    if any(p.wait() for p in procs):
        raise SystemExit("a side-by-side training failed")
    parallel = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(2):
        subprocess.run(cmd(2), check=True)
    serial = time.perf_counter() - t0
    return parallel, serial


def seed_noise(name: str, ds, precisions: tuple[bool, ...] = (False, True)) -> None:
    """Train ``name`` to its plateau for seeds 0-2 in float32 and/or bf16 + channels_last; print the spread.

    ``precisions`` lists the settings to train (``False`` float32, ``True`` bf16 + channels_last), so the two can
    run as two 1-thread processes at once, as the run-matrix engine runs them.
    """
    from helpers import metrics

    rows = []
    for fast in precisions:
        for seed in (0, 1, 2):
            runner.seed_everything(seed)
            model = build(name, ds)
            kw = {**cnn_settings.TRAIN_DEFAULTS, "bf16": fast, "channels_last": fast and name in cnn.MODELS}
            kw["num_threads"] = torch.get_num_threads()
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                res = train.fit(model, ds, seed=seed, out_dir=tmp, progress=False, **kw)
                wall = time.perf_counter() - t0
            test = metrics.scores(inference.evaluate(model, ds, "test", tile=kw["crop_size"]))["miou_macro"]
            rows.append((fast, seed, res.best_score, test, res.steps, wall))
            print(
                f"  {'bf16+cl' if fast else 'float32':8s} seed {seed}: val {res.best_score:.4f} test {test:.4f} "
                f"steps {res.steps:5d} wall {wall:6.1f} s",
                flush=True,
            )
    for fast in precisions:
        r = np.array([x[2:] for x in rows if x[0] == fast])
        print(
            f"{'bf16+cl' if fast else 'float32':8s} val {r[:, 0].mean():.4f} ± {r[:, 0].std(ddof=1):.4f}  "
            f"test {r[:, 1].mean():.4f} ± {r[:, 1].std(ddof=1):.4f}  wall {r[:, 3].sum():.0f} s"
        )


def main(argv: list[str] | None = None) -> None:
    """Print the table (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="sim-burn")
    ap.add_argument("--models", nargs="+", default=["unet", "fcn", "deeplabv3plus", "vit", "segformer"])
    ap.add_argument("--steps", type=int, default=150, help="optimiser steps per measurement")
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--no-side-by-side", action="store_true")
    ap.add_argument("--seed-noise", action="store_true", help="float32 vs bf16 + channels_last over 3 seeds")
    ap.add_argument(
        "--precision",
        choices=["both", "float32", "bf16"],
        default="both",
        help="with --seed-noise: which to train",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = base = datasets.prepare(args.dataset, ROOT / "data")
    if args.seed_noise:
        chosen = {"both": (False, True), "float32": (False,), "bf16": (True,)}[args.precision]
        print(f"{args.dataset}, {args.models[0]}: {torch.get_num_threads()} threads", flush=True)
        seed_noise(args.models[0], ds, chosen)
        return
    print(f"{args.dataset}: {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(
        f"{'model':18s} {'precision':>9s} {'raw/s':>7s} {'loop/s':>7s} {'loop/raw':>8s} {'val share':>9s} "
        f"{'bf16+cl/f32':>11s}"
    )
    for name in args.models:
        precision = study_precision(name)
        ds = datasets.with_bands(base) if name == PRITHVI_ARCH else base
        runner.seed_everything(0)
        raw = raw_rate(build(name, ds), ds, args.steps)
        runner.seed_everything(0)
        fast = raw_rate(build(name, ds), ds, args.steps, bf16=True, channels_last=name in cnn.MODELS)
        runner.seed_everything(0)
        loop, share = loop_rate(build(name, ds), ds, args.steps, args.eval_every, precision)
        raw_same = fast if precision["bf16"] else raw  # the loop against the bare model at the same precision
        label = ("bf16+cl" if precision["channels_last"] else "bf16") if precision["bf16"] else "float32"
        print(
            f"{name:18s} {label:>9s} {raw_same:7.1f} {loop:7.1f} "
            f"{loop / raw_same:8.2f} {share:9.1%} {fast / raw:11.2f}"
        )
    if not args.no_side_by_side:
        par, ser = side_by_side(args.models[0], args.dataset, args.steps * 2)
        print(
            f"two {args.models[0]} trainings of {args.steps * 2} steps: 2 x 1 thread at once {par:.1f} s, "
            f"1 x 2 threads one after the other {ser:.1f} s: ratio {ser / par:.2f}"
        )


if __name__ == "__main__":
    main()

"""The Galileo-nano fine-tuning network, as ratios: its training step now against the earlier network (issue 28).

Prints, for one training step (forward, backward, AdamW) of :class:`helpers.runs.fm_heads.GalileoSegmenter` on a batch
of eight 64 px crops of random reflectance, on one and on three dates:

* the earlier network (:data:`helpers.runs.galileo_finetuned.FINETUNE_ARCH_V1`: 4 px patches, 64-channel decoder),
  the current one (:data:`~helpers.runs.galileo_finetuned.FINETUNE_ARCH`: 8 px patches, 32 channels, pixel skip) and
  each change alone, with the ratio earlier / current (goal >= 5 on three dates, the 1.7 s step the issue measured);
  best of ``--repeats`` interleaved passes, after a warm-up step, ``--threads`` torch threads (1: as on an engine
  worker).

With ``--seed-noise DATASET`` it instead trains both networks from the published weights to their plateau
(:data:`~helpers.runs.galileo_finetuned.FINETUNE_DEFAULTS`) for ``--seeds`` on one prepared dataset, two 1-thread
runs at a time, and prints per seed and as mean and spread: validation and test mIoU, steps, how the run stopped and
its wall time: what the faster network costs in validation and test (2026-12-03 numbers: the comment on
:data:`~helpers.runs.galileo_finetuned.FINETUNE_ARCH`).
Runs land in ``--out`` (resumable: a finished run is not retrained).

With ``--escape DATASET`` it asks whether a run stopped by the plateau rule was on its plateau: it trains each seed
(its own data draw; ``--budget``: its labels drawn as the matrix draws them) from the random init (``--published``: the published weights) under
:data:`~helpers.runs.galileo_finetuned.FINETUNE_DEFAULTS` capped at ``--max-steps``, then continues the finished run to
``--factor`` (2) times its steps with the rate restarted (the check of :mod:`helpers.runs.convergence` for one-cycle
runs) and up to ``--flat-cycles`` flat cycles in a row allowed, and prints per cycle the best validation mIoU and
validation loss, then the continuation's best: a run that was on its plateau moves by less than a point. With a large
``--factor`` the continuation is the run under that many flat cycles, to its own plateau (the same trajectory up to the
first stop: ``cycle_patience`` only caps a run, :data:`helpers.runs.schedule.CAPS`).

Usage::

    python benchmarks/galileo_finetune.py [--threads 1] [--repeats 3]
    python benchmarks/galileo_finetune.py --seed-noise sim-texture-0.5 --seeds 0 1 2 --out /tmp/galileo_noise
    python benchmarks/galileo_finetune.py --escape sim-texture-1 --seeds 0 1 --max-steps 20000 --out /tmp/galileo_escape
    python benchmarks/galileo_finetune.py --escape sim-texture-1 --max-steps 20000 --flat-cycles 3 --factor 8 \
        --out /tmp/galileo_escape   # each seed to its plateau under three flat cycles (add --published)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers import results  # noqa: E402
from helpers.models import galileo, weights  # noqa: E402
from helpers.runs import fm_heads, galileo_finetuned  # noqa: E402

NETWORKS = {
    "earlier": galileo_finetuned.FINETUNE_ARCH_V1,
    "patch 8 only": {
        **galileo_finetuned.FINETUNE_ARCH_V1,
        "patch_size": galileo_finetuned.FINETUNE_ARCH["patch_size"],
    },
    "decoder 32 only": {
        **galileo_finetuned.FINETUNE_ARCH_V1,
        "width": galileo_finetuned.FINETUNE_ARCH["width"],
    },
    "no pixel skip": {**galileo_finetuned.FINETUNE_ARCH, "pixel_skip": False},
    "current": galileo_finetuned.FINETUNE_ARCH,
}


def _model(arch: dict, n_times: int) -> fm_heads.GalileoSegmenter:
    """The fine-tuning network on random weights (the step time does not depend on their values)."""
    torch.manual_seed(0)
    months = [3, 6, 9][:n_times] if n_times <= 3 else list(range(n_times))
    return fm_heads.GalileoSegmenter(galileo.GalileoEncoder(**galileo.NANO_CONFIG), 5, months, **arch)


def step_times(n_times: int, repeats: int) -> dict[str, float]:
    """Best seconds per training step of each network in :data:`NETWORKS`, passes interleaved."""
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.uniform(0.02, 0.4, (8, 6 * n_times, 64, 64)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 5, (8, 64, 64)))
    setups = {}
    for name, arch in NETWORKS.items():
        m = _model(arch, n_times).train()
        setups[name] = (m, torch.optim.AdamW(m.parameters(), 1e-3))
    best = dict.fromkeys(NETWORKS, float("inf"))
    for rep in range(repeats + 1):
        for name, (m, opt) in setups.items():
            t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if rep:  # the first pass warms up
                best[name] = min(best[name], time.perf_counter() - t0)
    return best


def print_step_times(threads: int, repeats: int) -> None:
    """The step-time table with ratios to the earlier network."""
    torch.set_num_threads(threads)
    print(f"one training step, batch of 8 x 64 px crops, {threads} thread(s), torch {torch.__version__}")
    for n_times in (1, 3):
        t = step_times(n_times, repeats)
        for name, s in t.items():
            print(
                f"  {n_times} date(s)  {name:<16} {s:6.3f} s/step   earlier/this = {t['earlier'] / s:4.2f}x"
            )


def _train_one(job: tuple) -> dict:
    """One fine-tuning run in a 1-thread worker process; returns its val/test rows' summary."""
    dataset, data_dir, net, seed, out = job
    os.environ["OMP_NUM_THREADS"] = "1"  # deep_run.run takes its threads from here (as on an engine worker)
    torch.set_num_threads(1)
    from helpers.data import datasets

    ds = datasets.prepare(dataset, data_dir)
    name = f"galileo_nano_finetune[{net}]"
    table = Path(out) / f"{net.replace(' ', '_')}-seed{seed}.csv"
    t0 = time.perf_counter()
    outcome = galileo_finetuned.run_galileo_nano_finetune(
        ds, seed, table, runs_dir=Path(out) / "runs", progress=False, model_name=name, **NETWORKS[net]
    )
    if outcome.status != "ok":
        return {"net": net, "seed": seed, "status": outcome.status, "reason": outcome.reason}
    df = results.read(table)
    agg = df[df["metric"] == "miou_macro"]
    val = float(agg.loc[agg["split"] == "val", "value"].iloc[-1])
    test = float(agg.loc[agg["split"] == "test", "value"].iloc[-1])
    row = agg.iloc[-1]
    return {
        "net": net,
        "seed": seed,
        "status": "ok",
        "val": 100 * val,
        "test": 100 * test,
        "steps": int(row["steps"]),
        "stopped_by": str(row["stopped_by"]),
        "runtime_s": float(row["runtime_s"]),
        "this_call_s": time.perf_counter() - t0,
    }


def seed_noise(dataset: str, seeds: list[int], out: Path, nets: list[str], workers: int) -> None:
    """Both networks from the published weights to their plateau for every seed; per-seed and mean +- sd."""
    weights.resolve_weights("galileo_nano", None)  # fail early without the weights
    data_dir = ROOT / "data"
    jobs = [(dataset, data_dir, net, seed, out) for net in nets for seed in seeds]  # slowest first
    with ProcessPoolExecutor(workers) as pool:
        done = list(pool.map(_train_one, jobs))
    print(
        f"{dataset}: Galileo-nano fine-tuned from the published weights, plateau protocol, 1 thread per run"
    )
    for d in done:
        if d["status"] != "ok":
            print(f"  {d['net']:<16} seed {d['seed']}: {d['status']} ({d['reason']})")
            continue
        print(
            f"  {d['net']:<16} seed {d['seed']}: val {d['val']:5.1f}  test {d['test']:5.1f}  steps {d['steps']:5d} "
            f"({d['stopped_by']})  {d['runtime_s']:6.0f} s"
        )
    for net in nets:
        ok = [d for d in done if d["net"] == net and d["status"] == "ok"]
        if not ok:
            continue
        v, t, s = (np.array([d[k] for d in ok]) for k in ("val", "test", "runtime_s"))
        print(
            f"  {net:<16} val {v.mean():5.1f} +- {v.std(ddof=1) if len(v) > 1 else 0:4.1f}  "
            f"test {t.mean():5.1f} +- {t.std(ddof=1) if len(t) > 1 else 0:4.1f}  "
            f"mean run {s.mean():5.0f} s  (n = {len(ok)} seeds; +- is the sample sd over seeds)"
        )


def _escape_one(job: tuple) -> str:
    """Train one seed to its stop, continue it to ``factor`` times its steps (rate restarted, more flat cycles)."""
    dataset, data_dir, seed, out, pretrained, max_steps, flat_cycles, factor, budget = job
    os.environ["OMP_NUM_THREADS"] = "1"  # as on an engine worker (the run's key holds its threads)
    torch.set_num_threads(1)
    from helpers.data import datasets, labels
    from helpers.runs import run_folders, runner, train

    ds = labels.label_view(
        datasets.prepare(dataset, data_dir, replicate=seed), budget, seed
    )  # as the matrix does
    ds = datasets.with_bands(ds)  # the view the run trains on
    runs = Path(out) / "runs"
    outcome = galileo_finetuned.run_galileo_nano_finetune(
        ds, seed, Path(out) / f"seed{seed}.csv", runs_dir=runs, pretrained=pretrained, max_steps=max_steps,
        progress=False,
    )  # fmt: skip
    if outcome.status not in ("ok", "skipped"):  # skipped: finished in an earlier call
        return f"seed {seed}: {outcome.status} ({outcome.reason})"
    src = Path(outcome.out_dir)  # the run's folder, run now or before
    state = run_folders.load_checkpoint(src / run_folders.LAST)
    log = pd.read_csv(src / run_folders.LOG)
    steps = int(state["step"])
    build = galileo_finetuned.make_galileo_segmenter(
        ds, None, pretrained=pretrained, **galileo_finetuned.FINETUNE_ARCH
    )
    runner.seed_everything(seed)
    fit = {**galileo_finetuned.fit_settings(ds), "cycle_patience": flat_cycles}  # the run's; steps set below
    tr = train.continue_run(
        build(),
        ds,
        src=src,
        out_dir=src.with_name(f"{src.name}-escape{flat_cycles}x{factor:g}"),
        factor=min(factor, max_steps / steps),  # the run's own cap still holds
        restart_lr=True,
        progress=False,
        **fit,
    )
    cycles = log.groupby("cycle").agg(
        end=("step", "max"), val=("val_miou_macro", "max"), loss=("val_loss", "min")
    )
    lines = [f"seed {seed}: stopped at step {steps} ({state['stopped_by']}); per cycle:"]
    lines += [
        f"    cycle {c}: to step {int(r.end):5d}  best val {100 * r.val:5.1f}  val loss {r.loss:.3f}"
        for c, r in cycles.iterrows()
    ]
    best = 100 * log["val_miou_macro"].max()
    lines.append(
        f"  continued to step {tr.steps} ({tr.stopped_by}; rate restarted, up to {flat_cycles} flat cycles): best val "
        f"{100 * tr.best_score:5.1f} at step {tr.best_step} ({100 * tr.best_score - best:+.1f} points)"
    )
    return "\n".join(lines)


def escape(
    dataset: str,
    seeds: list[int],
    out: Path,
    data_dir: Path,
    *,
    pretrained: bool,
    max_steps: int,
    flat_cycles: int,
    factor: float,
    workers: int,
    budget: str = "all",
) -> None:
    """:func:`_escape_one` for every seed, ``workers`` 1-thread processes at a time."""
    jobs = [(dataset, data_dir, s, out, pretrained, max_steps, flat_cycles, factor, budget) for s in seeds]
    init = "published weights" if pretrained else "random init"
    print(
        f"{dataset} ({budget} labels): Galileo-nano fine-tuned from its {init}, plateau protocol capped at "
        f"{max_steps} steps, 1 thread"
    )
    with ProcessPoolExecutor(workers) as pool:
        for report in pool.map(_escape_one, jobs):
            print(report)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed-noise", metavar="DATASET", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--nets", nargs="+", default=["earlier", "current"], choices=list(NETWORKS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("/tmp/galileo_finetune_noise"))
    ap.add_argument("--escape", metavar="DATASET", default=None)
    ap.add_argument(
        "--published", action="store_true", help="--escape: the published weights, not the random init"
    )
    ap.add_argument("--max-steps", type=int, default=galileo_finetuned.FINETUNE_DEFAULTS["max_steps"])
    ap.add_argument(
        "--flat-cycles", type=int, default=6, help="--escape: flat cycles in a row the continuation allows"
    )
    ap.add_argument(
        "--factor", type=float, default=2.0, help="--escape: continue to this many times the steps"
    )
    ap.add_argument(
        "--budget", default="all", help="--escape: the label budget (e.g. points-10), drawn per seed"
    )
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data")
    args = ap.parse_args(argv)
    if args.escape:
        args.out.mkdir(parents=True, exist_ok=True)
        escape(
            args.escape, args.seeds, args.out, args.data_dir, pretrained=args.published,
            max_steps=args.max_steps, flat_cycles=args.flat_cycles, factor=args.factor, workers=args.workers, budget=args.budget,
        )  # fmt: skip
    elif args.seed_noise:
        args.out.mkdir(parents=True, exist_ok=True)
        seed_noise(args.seed_noise, args.seeds, args.out, args.nets, args.workers)
    else:
        print_step_times(args.threads, args.repeats)


if __name__ == "__main__":
    main()

"""Which plateau rule ends a deep run where training more no longer helps: stopping rules against the doubling check.

For each model and rule, trains seed 0 with the study's settings and that stopping rule, then continues the finished
run to twice its steps (:func:`helpers.runs.train.continue_run`, the check of :mod:`helpers.runs.convergence`) and
prints: steps, selected step, validation mIoU before and after doubling, the mean of the continued validations
against the old best (above the progress threshold: the model was still improving; at or below: doubling only
picked the best of more noisy validations), test mIoU before and after (reported, never used to choose), and the
wall time of the run and of its continuation. A rule is good when its runs move < 1 point on doubling at the lowest
cost; this is how the study's stopping settings were chosen (``helpers.runs.schedule.PLATEAU``).

Rules are written ``key=value,key=value`` over :func:`helpers.runs.train.fit`'s stopping settings (``patience``,
``smooth``, ``min_delta``, ``lr_drops``, ...). Runs go to a temporary folder and two at a time, one thread each (as
in the chain's engine).

Usage::

    python benchmarks/plateau_rules.py --dataset sim-crop
    python benchmarks/plateau_rules.py --dataset sim-burn --models unet vit --rules patience=2 patience=2,smooth=3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers import metrics  # noqa: E402
from helpers.data import datasets  # noqa: E402
from helpers.data.datasets import channel_stats  # noqa: E402
from helpers.models import cnn  # noqa: E402
from helpers.models.segformer import SegFormer  # noqa: E402
from helpers.models.vit import ViTSegmenter  # noqa: E402
from helpers.runs import cnn_settings, fm_settings, inference, runner, train  # noqa: E402

MODELS = ("unet", "fcn", "deeplabv3plus", "vit", "segformer")


def parse_rule(text: str) -> dict:
    """``"patience=2,smooth=3"`` -> ``{"patience": 2, "smooth": 3}`` (numbers as int or float)."""
    rule = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        number = float(value)
        rule[key.strip()] = int(number) if number.is_integer() and "." not in value else number
    return rule


def study_setup(name: str, ds) -> tuple:
    """``(make_model, fit settings)`` of the study's row ``name`` on ``ds`` (notebooks 03 and 04)."""
    if name in cnn.MODELS:
        return (lambda: cnn.build_for(name, ds)), dict(cnn_settings.TRAIN_DEFAULTS)
    settings = fm_settings.FMSettings()
    mean, std = channel_stats(ds)
    if name == "vit":
        crop = settings.finetune["crop_size"]

        def make():
            return ViTSegmenter(
                ds.n_channels, ds.num_classes, img_size=crop, mean=mean, std=std, **settings.vit
            )
    elif name == "segformer":

        def make():
            return SegFormer(ds.n_channels, ds.num_classes, mean=mean, std=std, **settings.segformer)
    else:
        raise SystemExit(f"unknown model {name!r}; choose from {MODELS}")
    return make, settings.fit_kwargs(ds)


def one(dataset: str, name: str, rule_text: str, seed: int, out_root: str) -> dict:
    """Train one (model, rule), double it, and score both on validation and test."""
    ds = datasets.prepare(dataset, ROOT / "data")
    make, kw = study_setup(name, ds)
    kw = {**kw, **parse_rule(rule_text), "num_threads": 1, "progress": False}
    out = Path(out_root) / name / rule_text.replace(",", "_").replace("=", "")
    runner.seed_everything(seed)
    model = make()
    t0 = time.perf_counter()
    res = train.fit(model, ds, seed=seed, out_dir=out / "run", **kw)
    fit_s = time.perf_counter() - t0
    test = metrics.scores(inference.evaluate(model, ds, "test", tile=kw["crop_size"]))["miou_macro"]
    model2 = make()
    t0 = time.perf_counter()
    res2 = train.continue_run(model2, ds, src=out / "run", out_dir=out / "x2", **kw)
    cont_s = time.perf_counter() - t0
    test2 = metrics.scores(inference.evaluate(model2, ds, "test", tile=kw["crop_size"]))["miou_macro"]
    later = res2.history.loc[res2.history["step"] > res.steps, "val_miou_macro"]
    return {
        "model": name,
        "rule": rule_text,
        "steps": res.steps,
        "best_step": res.best_step,
        "stopped_by": res.stopped_by,
        "val": 100 * res.best_score,
        "val_x2": 100 * res2.best_score,
        "d_val": 100 * (res2.best_score - res.best_score),
        "x2_mean_vs_best": 100 * (float(later.mean()) - res.best_score),
        "test": 100 * test,
        "test_x2": 100 * test2,
        "fit_s": fit_s,
        "x2_s": cont_s,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="sim-crop")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--rules", nargs="+", default=["patience=2", "patience=2,smooth=3", "patience=4"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each")
    args = p.parse_args(argv)
    datasets.prepare(args.dataset, ROOT / "data")  # generate once, before the workers
    torch.set_num_threads(1)
    jobs = [(m, r) for m in args.models for r in args.rules]
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(one, args.dataset, m, r, args.seed, tmp) for m, r in jobs]
        print(
            f"{args.dataset}, seed {args.seed}; mIoU in %; 'x2 mean' = mean of the continued validations minus the "
            "old best"
        )
        head = (
            "model",
            "rule",
            "steps",
            "best",
            "stop",
            "val",
            "val x2",
            "Δ val",
            "x2 mean",
            "test",
            "test x2",
        )
        print(" | ".join(head) + " | fit s | x2 s")
        for f in futures:
            r = f.result()
            print(
                f"{r['model']} | {r['rule']} | {r['steps']} | {r['best_step']} | {r['stopped_by']} | "
                f"{r['val']:.1f} | {r['val_x2']:.1f} | {r['d_val']:+.1f} | {r['x2_mean_vs_best']:+.1f} | "
                f"{r['test']:.1f} | {r['test_x2']:.1f} | {r['fit_s']:.0f} | {r['x2_s']:.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()

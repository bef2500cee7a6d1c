"""Speed of the CNNs on this CPU: training throughput and inference time per 512 x 512 chip (issue 6).

For each architecture at its default size (``helpers.models.cnn``), prints:

* training throughput with the default training settings (``cnn_settings.TRAIN_DEFAULTS``: batch of random crops,
  forward + masked cross-entropy + backward + AdamW step, as in ``helpers.runs.train``), in crops (chips) per second
  and pixels per second;
* inference time for one 512 x 512 chip, whole chip in one pass and with the sliding windows that validation and
  test use (training-crop-sized windows, a quarter overlap), and the ratio of the two;
* what a default run costs: seconds per epoch per 100 training chips, to set ``epochs`` against the budget
  (STUDY.md section 6: this notebook's share of the default chain is <= 12 minutes on 2 cores).

Data are random reflectance and labels: only the timings mean anything. The machine is shared, so numbers vary
between runs; the best of a few repeats is reported. Run: ``python benchmarks/cnn.py [--threads 2] [--bands 6]``.
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "OMP_WAIT_POLICY", "PASSIVE"
)  # as helpers.runs.train does; must precede the torch import

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from helpers.models import cnn  # noqa: E402
from helpers.runs import cnn_settings, inference, runtime, train  # noqa: E402


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=runtime.machine_threads())
    ap.add_argument("--bands", type=int, default=6, help="input channels (6 per date; 18 for the crop task)")
    ap.add_argument("--classes", type=int, default=13)
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per architecture")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = cnn_settings.TRAIN_DEFAULTS
    bs, crop = cfg["batch_size"], cfg["crop_size"]
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(0, 0.5, (bs, args.bands, crop, crop)).astype(np.float32))
    y = torch.from_numpy(rng.integers(-1, args.classes, (bs, crop, crop)))
    chip = rng.uniform(0, 0.5, (args.bands, 512, 512)).astype(np.float32)
    print(f"threads={args.threads} bands={args.bands} classes={args.classes} batch={bs} crop={crop}\n")
    print(
        f"{'model':14s} {'params':>9s} {'train crops/s':>14s} {'train Mpx/s':>12s} "
        f"{'512 whole s':>12s} {'512 windows s':>14s} {'windows/whole':>14s} {'s/epoch/100 chips':>18s}"
    )
    for name in cnn.MODELS:
        torch.manual_seed(0)
        model = cnn.build_model(name, args.bands, args.classes)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])

        def step(model=model, opt=opt) -> None:
            model.train()
            loss = train.masked_cross_entropy(model(x), y, -1)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()  # warm-up (allocations, kernel selection)
        t_step = best_of(lambda step=step: [step() for _ in range(args.steps)], 2) / args.steps
        crops_s = bs / t_step
        t_whole = best_of(lambda model=model: inference.predict_chip(model, chip), 3)
        t_win = best_of(lambda model=model: inference.predict_chip(model, chip, tile=crop), 2)
        print(
            f"{name:14s} {cnn.count_parameters(model):>9,d} {crops_s:>14.1f} {crops_s * crop * crop / 1e6:>12.2f} "
            f"{t_whole:>12.3f} {t_win:>14.3f} {t_win / t_whole:>14.2f} {100 / crops_s:>18.1f}"
        )
    print(
        "\ns/epoch/100 chips: training only (one crop per chip per epoch); validation adds the windowed inference "
        "time of the val chips."
    )


if __name__ == "__main__":
    main()

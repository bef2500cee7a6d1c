"""What the paper profile costs: every paper-size model built, trained a few steps and run on a 512 px chip.

For each model of ``notebooks/params/paper.yaml`` (FCN / U-Net / DeepLabV3+ on ResNet-34, ViT-B/16, SegFormer
MiT-b2, the Prithvi-architecture segmenter at Prithvi-100M's size for one and three dates, and its MAE
pretraining step), in a fresh process each so that peak memory is the model's own:

* parameters (total, and the encoder's where the model has a pretrained-style encoder);
* seconds per optimiser step (AdamW, 224 px crops) at the profile's batch size; on a CPU the step is timed at a
  smaller batch (``--cpu-batch``) and scaled linearly to the profile's, which is what a CPU does;
* seconds for one sliding-window prediction of a 512 x 512 chip (224 px windows, a quarter overlap);
* peak memory: CUDA max allocated on a GPU, the process's peak RSS on a CPU.

Then the projected hours of the whole ``paper`` matrix on this device: for each real dataset (training chips after
the validation hold-out, official split sizes) and model, 3 seeds plus the doubling check of the first, each at the
100-epoch cap (an upper bound: the plateau protocol usually stops earlier), validation every 50 steps, plus the
two in-study pretraining runs per dataset at their 30-epoch cap. Galileo-nano and Presto rows are left out (frozen
rows take minutes; Galileo fine-tuning is timed by ``benchmarks/fm_pretrained.py``).

It is also the check that every paper-size model builds, trains and predicts on the device at hand. On this 2-core
CPU it takes a few minutes. Usage::

    python benchmarks/paper_scale.py                   # every model, 2 timed steps each
    python benchmarks/paper_scale.py --models unet vit --steps 3
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.models import cnn, prithvi  # noqa: E402
from helpers.models.segformer import SegFormer  # noqa: E402
from helpers.models.vit import ViTSegmenter  # noqa: E402
from helpers.runs import cnn_settings, fm_finetuned, fm_settings, inference, schedule, train  # noqa: E402

CROP = 224
CHIP = 512
#: Real datasets of the paper profile: training chips after the validation hold-out (STUDY.md split sizes:
#: Sen1Floods11 252 / 89 official validation; burn scars 2/3 of 804 for training, 10 % held out; crop 3,083,
#: 10 % held out), validation chips, and dates per chip.
DATASETS = {
    "sen1floods11": {"train": 252, "val": 89, "dates": 1, "chip": 512},
    "burn_scars": {"train": 482, "val": 54, "dates": 1, "chip": 512},
    "crop": {"train": 2775, "val": 308, "dates": 3, "chip": 224},
}
MODELS = (
    "fcn",
    "unet",
    "deeplabv3plus",
    "vit",
    "segformer",
    "prithvi_arch",
    "prithvi_arch_3dates",
    "prithvi_mae",
)
#: Results-table rows per measured model in the paper matrix (prithvi_arch stands for the three in-study rows and
#: the real Prithvi-100M, which has the same architecture).
ROWS = {
    "fcn": ["fcn"],
    "unet": ["unet"],
    "deeplabv3plus": ["deeplabv3plus"],
    "vit": ["vit"],
    "segformer": ["segformer"],
    "prithvi_arch": [
        "prithvi_arch_small_random",
        "prithvi_arch_small_mae",
        "prithvi_arch_small_spectral",
        "prithvi_100m",
    ],
}


def build(name: str, device: torch.device):
    """``(model, batch of the profile, make_input(batch), encoder parameter count or None)`` for ``name``."""
    settings = fm_settings.paper_settings()
    frames = 3 if name.endswith("3dates") else 1
    channels = 6 * frames
    if name in cnn.MODELS:
        model = cnn.build_model(name, channels, 2, "paper")
        enc = sum(p.numel() for p in model.encoder.parameters())
        batch = cnn_settings.PAPER_TRAIN["batch_size"]
    elif name == "vit":
        model = ViTSegmenter(channels, 2, img_size=CROP, **settings.vit)
        enc = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("head", "classifier")))
        batch = settings.finetune["batch_size"]
    elif name == "segformer":
        model = SegFormer(channels, 2, **settings.segformer)
        enc = sum(p.numel() for p in model.encoder.parameters())
        batch = settings.finetune["batch_size"]
    elif name.startswith("prithvi_arch"):
        cfg = settings.pretrain.model.replace(img_size=CROP, num_frames=frames)
        model = prithvi.PrithviSegmenter(
            2, frames, cfg, neck_dim=settings.neck_dim, head_channels=settings.head_channels
        )
        enc = sum(p.numel() for p in model.encoder.parameters())
        batch = settings.finetune["batch_size"]
    elif name == "prithvi_mae":
        model = prithvi.PrithviMAE(settings.pretrain.model.replace(img_size=CROP, num_frames=1))
        enc = sum(p.numel() for p in model.encoder.parameters())
        batch = settings.pretrain.batch_size
    else:
        raise SystemExit(f"unknown model {name!r}; choose from {MODELS}")
    return model.to(device), batch, channels, enc


def measure(name: str, steps: int, cpu_batch: int) -> dict:
    """Time ``steps`` training steps and one 512 px prediction of ``name``; peak memory of this process."""
    device = fm_finetuned.pick_device()
    torch.manual_seed(0)
    model, batch, channels, enc = build(name, device)
    timed_batch = batch if device.type == "cuda" else min(batch, cpu_batch)
    bf16 = device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(timed_batch, channels, CROP, CROP, device=device) * 0.3
    y = torch.randint(0, 2, (timed_batch, CROP, CROP), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            if name == "prithvi_mae":
                cube = x.view(timed_batch, 6, 1, CROP, CROP)
                loss = model(cube, mask_ratio=0.75)[0]
            else:
                loss = train.masked_cross_entropy(model(x).float(), y, -1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    step()  # warm-up (allocations, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - t0) / steps * (batch / timed_batch)
    predict_s = float("nan")
    if name != "prithvi_mae":
        chip = np.random.default_rng(0).random((channels, CHIP, CHIP), dtype=np.float32) * 0.3
        t0 = time.perf_counter()
        pred = inference.predict_chip(model, chip, tile=CROP, batch_size=timed_batch)
        predict_s = time.perf_counter() - t0
        assert pred.shape == (CHIP, CHIP)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "model": name,
        "device": str(device),
        "params": sum(p.numel() for p in model.parameters()),
        "encoder_params": enc,
        "batch": batch,
        "timed_batch": timed_batch,
        "step_s": step_s,
        "predict_512_s": predict_s,
        "peak_mb": peak_mb,
    }


def windows_per_side(side: int) -> int:
    """Sliding windows along one side of a ``side``-pixel chip (224 px windows, a quarter overlap)."""
    return math.ceil((side - CROP) / (CROP - CROP // 4)) + 1 if side > CROP else 1


def project_hours(rows: dict[str, dict]) -> tuple[float, list[str]]:
    """Hours of the paper matrix at the caps on this device (see the module docstring) and one line per dataset."""
    settings = fm_settings.paper_settings()
    lines, total = [], 0.0
    for ds, d in DATASETS.items():
        hours = 0.0
        for measured, names in ROWS.items():
            key = f"{measured}_3dates" if measured == "prithvi_arch" and d["dates"] == 3 else measured
            if key not in rows:
                continue
            r = rows[key]
            cap = schedule.epochs_to_steps(d["train"], 100, r["batch"])
            n_val = cap // schedule.PLATEAU["eval_every"]
            per_window = r["predict_512_s"] / windows_per_side(CHIP) ** 2
            one_run = cap * r["step_s"] + n_val * d["val"] * per_window * windows_per_side(d["chip"]) ** 2
            hours += len(names) * 4 * one_run / 3600  # 3 seeds + the doubling check of the first
        if "prithvi_mae" in rows:
            pre = settings.pretrain
            pre_steps = math.ceil(pre.epochs * pre.crops_per_chip * d["train"] * d["dates"] / pre.batch_size)
            hours += 2 * pre_steps * rows["prithvi_mae"]["step_s"] / 3600  # MAE and spectral pretexts
        lines.append(f"  {ds:13s} {hours:9.1f} h")
        total += hours
    return total, lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--steps", type=int, default=2, help="timed training steps per model (after one warm-up)")
    p.add_argument("--cpu-batch", type=int, default=2, help="batch timed on a CPU (scaled to the profile's)")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one model in this process, print JSON
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.steps, args.cpu_batch)))
        return
    rows: dict[str, dict] = {}
    print(
        f"{'model':20s} {'params':>12s} {'encoder':>12s} {'batch':>5s} {'s/step':>8s} {'512px s':>8s} {'peak MiB':>9s}"
    )
    for name in args.models:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--steps",
            str(args.steps),
            "--cpu-batch",
            str(args.cpu_batch),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode:
            print(f"{name:20s} FAILED\n{out.stderr[-2000:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows[name] = r
        batch = f"{r['batch']}" + ("" if r["timed_batch"] == r["batch"] else "*")
        print(
            f"{name:20s} {r['params']:>12,d} {r['encoder_params']:>12,d} {batch:>5s} {r['step_s']:8.2f} "
            f"{r['predict_512_s']:8.2f} {r['peak_mb']:9.0f}",
            flush=True,
        )
    device = next(iter(rows.values()))["device"] if rows else "?"
    if any(r["timed_batch"] != r["batch"] for r in rows.values()):
        print(f"* timed at batch {args.cpu_batch} and scaled linearly to the profile's batch (CPU)")
    total, lines = project_hours(rows)
    print(f"\nprojected paper matrix on {device} at the 100-epoch caps (upper bound; plateaus stop earlier):")
    print("\n".join(lines))
    print(f"  {'total':13s} {total:9.1f} h")


if __name__ == "__main__":
    main()

"""Speed of the transformer / foundation-model rows on this CPU (issue 7).

Prints, at the default sizes of :mod:`helpers.runs.fm_finetuned` / :mod:`helpers.runs.pretrain`:

* the small Prithvi-architecture encoder's throughput in tokens per second, forward only and forward + backward,
  for 1 and 3 frames (a batch of ``crop_size`` crops, as in fine-tuning);
* the full fine-tuning step (model forward, masked cross-entropy, backward, AdamW) of every FM row's model, in
  crops per second, next to the U-Net of the CNN rows as the reference (ratio printed);
* MAE and spectral-pretext pretraining time per epoch on a dataset (``--dataset``/``--data-dir``; a generated
  dataset is created first if missing), measured on one real epoch of :func:`helpers.runs.pretrain.pretrain`.

Data for the step timings are random reflectance and labels: only the timings mean anything. The machine is shared,
so the best of a few repeats is reported; with other jobs running, 2 threads can be far slower than 1 (OpenMP
threads wait on each other), so both are worth trying. Run:
``python benchmarks/fm.py [--threads 2] [--dataset sim-crop --data-dir data --size default]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import numpy as np
import torch

from helpers.data import datasets
from helpers.models import cnn, prithvi
from helpers.models.segformer import SegFormer
from helpers.models.vit import ViTSegmenter
from helpers.runs import fm_settings, pretexts, runtime, train
from helpers.runs import pretrain as pretrain


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, oneDNN kernel selection)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def encoder_throughput(
    cfg: prithvi.PrithviConfig, frames: int, batch: int, crop: int, repeats: int
) -> tuple[float, float]:
    enc = prithvi.PrithviEncoder(cfg.replace(num_frames=frames, img_size=crop))
    x = torch.randn(batch, 6, frames, crop, crop)
    n_tokens = batch * frames * (crop // cfg.patch_size) ** 2

    def fwd():
        with torch.no_grad():
            enc(x)

    def fwd_bwd():
        enc.zero_grad(set_to_none=True)
        enc(x)[0].square().mean().backward()

    return n_tokens / best_of(fwd, repeats), n_tokens / best_of(fwd_bwd, repeats)


def step_rate(
    model: torch.nn.Module, channels: int, classes: int, batch: int, crop: int, repeats: int
) -> float:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(0, 0.5, (batch, channels, crop, crop)).astype(np.float32))
    y = torch.from_numpy(rng.integers(-1, classes, (batch, crop, crop)))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def step():
        loss = train.masked_cross_entropy(model(x), y, -1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return batch / best_of(step, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=runtime.machine_threads())
    ap.add_argument("--classes", type=int, default=13)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--dataset", default=None, help="dataset for the pretraining epoch timing (e.g. sim-crop)"
    )
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--size", default="default", help="size of a generated dataset (quick/default/paper)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    settings = fm_settings.FMSettings()
    ft, pcfg = settings.finetune, settings.pretrain
    bs, crop = ft["batch_size"], ft["crop_size"]
    print(f"threads {args.threads}; batch {bs}, crop {crop}; small Prithvi-arch {pcfg.model}")

    print("\nencoder throughput (tokens/s)")
    for frames in (1, 3):
        f, fb = encoder_throughput(pcfg.model, frames, bs, crop, args.repeats)
        print(f"  {frames} frame(s): forward {f:10.0f}   forward+backward {fb:10.0f}   ratio {f / fb:.2f}")

    print("\nfine-tuning step (crops/s, forward + loss + backward + AdamW)")
    for frames in (1, 3):
        ch = 6 * frames
        mcfg = pcfg.model.replace(img_size=crop, num_frames=frames)
        models = {
            "unet (CNN reference)": cnn.build_model("unet", ch, args.classes),
            "prithvi_arch_small (fine-tune)": prithvi.PrithviSegmenter(
                args.classes, frames, mcfg, neck_dim=settings.neck_dim, head_channels=settings.head_channels
            ),
            "prithvi_arch_small (probe)": prithvi.PrithviSegmenter(
                args.classes, frames, mcfg, head="linear", freeze_encoder=True
            ),
            "vit": ViTSegmenter(ch, args.classes, img_size=crop, **settings.vit),
            "segformer": SegFormer(ch, args.classes, **settings.segformer),
        }
        ref = None
        for name, model in models.items():
            rate = step_rate(model, ch, args.classes, bs, crop, args.repeats)
            ref = ref or rate
            print(f"  {frames} frame(s) {name:32s} {rate:8.1f} crops/s   {rate / ref:5.2f}x U-Net")

    if args.dataset:
        ds = datasets.prepare(args.dataset, args.data_dir, size=args.size)
        n_train = len(ds.chip_ids("train"))
        print(f"\npretraining on {ds.name} ({n_train} training chips, {ds.n_times} date(s))")
        with tempfile.TemporaryDirectory() as tmp:
            for pretext in pretexts.PRETEXTS:
                cfg = dataclasses.replace(pcfg, pretext=pretext, epochs=1)
                t0 = time.perf_counter()
                res = pretrain.pretrain(ds, cfg, cache_dir=tmp, num_threads=args.threads, progress=False)
                wall = time.perf_counter() - t0
                print(
                    f"  {pretext:9s} {res.train_s:6.1f} s per epoch ({len(res.history)} steps of {cfg.batch_size}); "
                    f"default {pcfg.epochs} epochs: {res.train_s * pcfg.epochs:6.0f} s (+{wall - res.train_s:.1f} s data load)"
                )


if __name__ == "__main__":
    main()

"""Embedding speed of the two published foundation models on this CPU (issue 8).

Prints, for ``--n-chips`` synthetic 224 x 224 single-date HLS chips (random reflectance with the magnitudes of
Galileo's pretraining statistics; only the timings mean anything):

* Galileo-nano (our implementation, ``helpers.runs.embeddings``: 64 px windows, patch 4, per-patch pooling, bilinear to
  pixels) and Presto (our implementation, every pixel): seconds per chip, chips/s and pixel embeddings/s;
* the time to encode all chips with both models (goal: <= 180 s) and a cached rerun through
  :class:`helpers.runs.embeddings.EmbeddingCache` (goal: <= 5 s);
* with ``--official-dir DIR`` (a folder holding the upstream ``single_file_galileo.py`` of nasaharvest/galileo and
  ``single_file_presto.py`` of nasaharvest/presto, which need ``einops``): the same work through the official
  encoders, the ratio official/ours (>= 1.0 means ours is at least as fast) and the largest difference between
  the two embeddings, from interleaved passes (ours, official, ours, ...; best of each). The official code is
  never part of this repository; without it the script says so.

With ``--finetune-windows``, it instead times one training step (forward, backward, AdamW) of the fine-tuning
model (:class:`helpers.runs.fm_heads.GalileoSegmenter`) on a batch of eight 64 px crops, for 1 and 3 dates, with 64 px
and 32 px encoder windows, and prints the ratio: the reason ``galileo_nano_finetune`` uses 32 px windows.

The machine is shared, so each model's chips/s is the best of ``--repeats`` passes after a warm-up chip. Run:
``python benchmarks/fm_pretrained.py [--n-chips 8] [--threads 2] [--official-dir /path/to/official]``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from helpers.models import galileo
from helpers.runs import embeddings, fm_adapters


class SyntheticChips:
    """The few attributes of a dataset that ``embed_chip`` uses; chips are seeded random reflectance."""

    name = "benchmark-synthetic"
    task = "flood"
    n_times = 1
    ignore_index = -1

    def __init__(self, n: int, size: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        mean = np.array(fm_adapters.GALILEO_MEAN)[:, None, None] / 1e4
        std = np.array(fm_adapters.GALILEO_STD)[:, None, None] / 1e4
        self._chips = {
            f"chip{i:03d}": np.clip(
                mean + 0.5 * std * rng.standard_normal((6, size, size)), 1e-4, 1.0
            ).astype(np.float32)
            for i in range(n)
        }

    def chip_ids(self, split: str = "test") -> list[str]:
        return list(self._chips)

    def read_arrays(self, chip_id: str):
        a = self._chips[chip_id]
        return a, np.zeros(a.shape[1:], np.int64)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best_pass(fn_per_chip, chips: list[np.ndarray], repeats: int) -> float:
    """Best time over ``repeats`` passes over all chips (after one warm-up chip)."""
    fn_per_chip(chips[0])
    return min(timed(lambda: [fn_per_chip(a) for a in chips]) for _ in range(repeats))


def load_official(folder: Path):
    """Import the upstream single-file modules from ``folder``; returns (galileo, presto) or a reason string."""
    sys.path.insert(0, str(folder))
    try:
        importlib.import_module("einops")
        return importlib.import_module("single_file_galileo"), importlib.import_module("single_file_presto")
    except Exception as err:  # noqa: BLE001 - report any import problem as the reason
        return f"{type(err).__name__}: {err}"
    finally:
        sys.path.remove(str(folder))


def finetune_windows(threads: int, repeats: int) -> None:
    """Training-step time of the Galileo-nano fine-tuning model for 64 px vs 32 px encoder windows."""
    from helpers.models import weights
    from helpers.runs import fm_heads

    path = weights.resolve_weights("galileo_nano")
    print(f"Galileo-nano fine-tuning step: batch of 8 x 64 px crops, patch 4, {threads} torch threads")
    for n_times in (1, 3):
        x = torch.rand(8, 6 * n_times, 64, 64, generator=torch.Generator().manual_seed(0)) * 0.3
        best = {}
        for window in (64, 32):
            torch.manual_seed(0)
            model = fm_heads.GalileoSegmenter(
                galileo.load_galileo_nano(path, drop_path=0.1), 13, [3, 6, 8][:n_times], window=window
            )
            opt = torch.optim.AdamW(model.parameters())

            def step(model=model, opt=opt, x=x):
                model(x).mean().backward()
                opt.step()
                opt.zero_grad()

            step()  # warm-up
            best[window] = min(timed(step) for _ in range(max(2, repeats)))
        print(
            f"{n_times} date(s): 64 px windows {best[64]:.2f} s/step, 32 px windows {best[32]:.2f} s/step, "
            f"ratio {best[64] / best[32]:.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-chips", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--patch-size", type=int, default=4)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--official-dir", type=Path, default=None)
    ap.add_argument("--finetune-windows", action="store_true", help="time fine-tuning steps per window size")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.finetune_windows:
        finetune_windows(args.threads, args.repeats)
        return

    ds = SyntheticChips(args.n_chips, args.size)
    chips = [ds.read_arrays(c)[0] for c in ds.chip_ids()]
    ctx = fm_adapters.ChipContext((6,), fm_adapters.DEFAULT_LATLON, 30.0, "benchmark", "benchmark")
    gal = embeddings.load_embedder("galileo_nano", patch_size=args.patch_size, window=args.window)
    pre = embeddings.load_embedder("presto")
    px = args.size * args.size
    print(f"{args.n_chips} synthetic {args.size}x{args.size} single-date chips, {args.threads} torch threads")
    print(
        f"Galileo: patch {args.patch_size} px, {args.window} px windows; Presto: every pixel, batch {pre.batch_size}"
    )

    ours = {}
    for name, emb in (("galileo_nano", gal), ("presto", pre)):
        t = best_pass(lambda a, emb=emb: emb.encode(a, ctx), chips, args.repeats)
        ours[name] = t
        print(
            f"ours     {name:13s} {t / len(chips):7.2f} s/chip  {len(chips) / t:6.3f} chips/s  "
            f"{len(chips) * px / t:10.0f} pixel embeddings/s"
        )

    with tempfile.TemporaryDirectory() as tmp:
        cache = embeddings.EmbeddingCache(tmp)
        t_first = timed(
            lambda: [embeddings.embed_chip(e, ds, c, cache) for e in (gal, pre) for c in ds.chip_ids()]
        )
        t_cached = timed(
            lambda: [embeddings.embed_chip(e, ds, c, cache) for e in (gal, pre) for c in ds.chip_ids()]
        )
        print(
            f"both models, {len(chips)} chips through the cache: first {t_first:.1f} s (goal <= 180 s: "
            f"{'met' if t_first <= 180 else 'NOT met'}), cached rerun {t_cached:.2f} s (goal <= 5 s: "
            f"{'met' if t_cached <= 5 else 'NOT met'}); hits {cache.hits}, misses {cache.misses}"
        )

    if args.official_dir is None:
        print(
            "official code: not compared (pass --official-dir with the upstream single-file modules and einops)"
        )
        return
    mods = load_official(args.official_dir)
    if isinstance(mods, str):
        print(f"official code: not importable from {args.official_dir} ({mods}); ratio not measured")
        return
    sg, sp = mods
    off_g = sg.Encoder(**{
        "max_patch_size": 8, "embedding_size": 128, "depth": 4, "mlp_ratio": 4, "num_heads": 8,
        "max_sequence_length": 24, "freeze_projections": False, "drop_path": 0.1,
    })  # fmt: skip
    off_g.load_state_dict(gal.encoder.state_dict(), strict=True)
    off_g.eval()
    off_p = sp.Encoder(
        embedding_size=128, channel_embed_ratio=0.25, month_embed_ratio=0.25, depth=2, mlp_ratio=4, num_heads=8,
        max_sequence_length=24,
    )  # fmt: skip
    off_p.load_state_dict(pre.encoder.state_dict(), strict=True)
    off_p.eval()

    class _OfficialGalileo(torch.nn.Module):
        """The official encoder behind our windowing/adapter, with its own per-patch pooling."""

        def __init__(self):
            super().__init__()
            self.embed_dim = 128

        def forward(self, *inputs, patch_size, input_resolution_m):
            out = off_g(*inputs, patch_size=patch_size, input_resolution_m=input_resolution_m)
            pooled = sg.Encoder.apply_mask_and_average_tokens_per_patch(*out[:8])
            b, h = pooled.shape[0], int(round(pooled.shape[1] ** 0.5))
            # back into our GalileoOutput layout so the shared pooling path can be reused
            return galileo.GalileoOutput(
                pooled.reshape(b, h, h, 1, 1, 128), out[1][:, :, :, :0], out[2][:, :, :0], out[3][:, :0],
                torch.zeros(b, h, h, 1, 1), out[5][:, :, :, :0], out[6][:, :, :0], out[7][:, :0],
            )  # fmt: skip

    def official_galileo(a):
        with torch.no_grad():
            return embeddings.galileo_patch_grid(
                _OfficialGalileo(), torch.from_numpy(a)[None], torch.tensor([[6]]), n_times=1,
                patch_size=args.patch_size, window=args.window, resolution_m=30.0,
            )[0].numpy()  # fmt: skip

    def official_presto(a):
        rows = torch.from_numpy(np.ascontiguousarray(a.reshape(6, -1).T))
        out = []
        with torch.no_grad():
            for s in range(0, rows.shape[0], pre.batch_size):
                x, mask, dw = fm_adapters.presto_inputs(rows[s : s + pre.batch_size], n_times=1)
                n = x.shape[0]
                ll = torch.tensor([fm_adapters.DEFAULT_LATLON], dtype=torch.float32).expand(n, 2)
                out.append(off_p(x, dw, ll, mask=mask, month=6, eval_task=True))
        return torch.cat(out).T.reshape(128, *a.shape[1:]).numpy()

    for name, fn, ours_fn in (
        ("galileo_nano", official_galileo, lambda a: gal.encode(a, ctx)),
        ("presto", official_presto, lambda a: pre.encode(a, ctx)),
    ):
        # interleaved passes (ours, official, ours, ...) so that load from other jobs hits both alike
        fn(chips[0])
        t_ours, t_off = [], []
        for _ in range(max(2, args.repeats)):
            t_ours.append(timed(lambda f=ours_fn: [f(a) for a in chips]))
            t_off.append(timed(lambda f=fn: [f(a) for a in chips]))
        diff = float(np.abs(fn(chips[0]) - ours_fn(chips[0])).max())
        print(
            f"official {name:13s} {min(t_off) / len(chips):7.2f} s/chip  (ours, interleaved: "
            f"{min(t_ours) / len(chips):.2f} s/chip)  ratio official/ours {min(t_off) / min(t_ours):5.2f}  "
            f"max |official - ours| {diff:.2e}"
        )


if __name__ == "__main__":
    main()

"""Per-pixel embeddings of a chip from the two published foundation models, cached on disk.

Both models give one 128-d vector per pixel here, so the same heads (LightGBM, linear/MLP) can sit on either:

* **Galileo-nano** encodes square windows of ``window`` pixels (default 64) with ``patch_size`` pixels per token
  side (default 4, i.e. 16 x 16 tokens per window at 30 m). That is the tile and patch size of Galileo's own
  Sen1Floods11 evaluation; its pretraining saw at most 12 x 12-token grids, so encoding a whole 224 or 512 chip
  at once would be far outside what it learned. Windows step by their own size; the last one in each direction is
  moved back to end at the chip edge, so neighbouring windows may overlap, and overlapping tokens are averaged.
  Windows start at multiples of the patch size, so all tokens sit on one chip-wide patch grid. Each patch's
  vector is Galileo's own per-patch pooling (the mean of its visible tokens over dates and band groups,
  :func:`helpers.models.galileo.pool_per_patch`). The grid is then upsampled to pixels bilinearly
  (``align_corners=False``): a pixel's embedding mixes its own patch and the nearest neighbours, instead of the
  blocky nearest-patch copy. Chips whose sides are not multiples of the patch size are edge-padded and cropped
  back. ``input_resolution_m`` is the chip's pixel size (30 m HLS, 10 m Sen1Floods11), which scales Galileo's
  spatial position encoding (its base is 10 m).
* **Presto** embeds every pixel separately (its pooled output), in batches of pixels, with the chip-centre
  location and the chip's months.

The cache stores what is expensive to compute: Galileo's patch grid (16x smaller than pixels at p=4) and Presto's
per-pixel vectors, as float16 ``.npz`` files written atomically. Values are LayerNorm outputs of order 1, so
float16 keeps about three significant digits; to make cached and fresh runs identical, a fresh embedding is
rounded through float16 too. The key is (model, weights sha256, dataset name, chip id, image file path + size +
mtime, :data:`helpers.runs.fm_adapters.ADAPTER_VERSION`, the embedder's settings, the chip's months/location/pixel
size); it is hashed into the file name and stored inside the file, and a file whose stored key differs is a miss.
So new weights, an edited image, a changed adapter or other settings all re-encode.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from helpers.data.io import user_mode
from helpers.models import galileo as _galileo
from helpers.models import presto as _presto
from helpers.models import weights as _weights
from helpers.runs import fm_adapters as _fm_adapters

EMBED_DIM = 128


# ------------------------------------------------------------------------------------------------- Galileo core
def window_starts(length: int, window: int, step: int) -> list[int]:
    """Window offsets that cover ``0..length`` with windows of ``window``, the last one flush with the end."""
    if window >= length:
        return [0]
    starts = list(range(0, length - window + 1, step))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def galileo_patch_grid(
    encoder: _galileo.GalileoEncoder,
    x: torch.Tensor,
    months: torch.Tensor,
    *,
    n_times: int,
    patch_size: int = 4,
    window: int = 64,
    resolution_m: float = 30.0,
    ndvi: str = "masked",
    windows_per_batch: int = 16,
    shift: torch.Tensor | None = None,
    div: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-patch Galileo embeddings ``[B, D, ceil(H/p), ceil(W/p)]`` of reflectance ``x [B, 6T, H, W]``.

    Differentiable in the encoder's parameters (the fine-tuning model uses it). Patches with no visible token
    (all nodata) get 0.

    Args:
        encoder: A :class:`~helpers.models.galileo.GalileoEncoder`.
        x: Reflectance, dates stacked date-major.
        months: ``[B, T]`` month per date.
        n_times: ``T``.
        patch_size: Pixels per token side (1..8).
        window: Window side in pixels (rounded down to a multiple of ``patch_size``; capped by the chip).
        resolution_m: Pixel size in metres.
        ndvi: ``"masked"`` or ``"b8a"`` (:func:`helpers.runs.fm_adapters.galileo_inputs`).
        windows_per_batch: Windows encoded together (memory vs. speed).
        shift: Optional normalisation shift (see :func:`helpers.runs.fm_adapters.galileo_inputs`).
        div: Optional normalisation divisor.
    """
    b, _, h, w = x.shape
    p = int(patch_size)
    hp, wp = -(-h // p) * p, -(-w // p) * p
    if (hp, wp) != (h, w):
        x = F.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
    side = max(p, min(window // p * p, hp, wp))
    months = torch.as_tensor(months, device=x.device).long().reshape(b, n_times)

    def encode(win: torch.Tensor, mon: torch.Tensor) -> torch.Tensor:
        """Per-patch embeddings ``[n, s/p, s/p, D]`` of windows ``[n, C, s, s]`` (no visible token: 0)."""
        inputs = _fm_adapters.galileo_inputs(
            win, mon, n_times=n_times, patch_size=p, ndvi=ndvi, shift=shift, div=div
        )
        return torch.nan_to_num(
            _galileo.pool_per_patch(encoder(*inputs, patch_size=p, input_resolution_m=resolution_m)), nan=0.0
        )

    if hp % side == 0 and wp % side == 0:  # the windows tile the image: cut and reassemble by reshaping
        return _tiled_patch_grid(encode, x, months, side, p, windows_per_batch)
    ys, xs = window_starts(hp, side, side), window_starts(wp, side, side)
    boxes = [(bi, y0, x0) for bi in range(b) for y0 in ys for x0 in xs]
    total = x.new_zeros(b, encoder.embed_dim, hp // p, wp // p)
    count = x.new_zeros(b, 1, hp // p, wp // p)
    for start in range(0, len(boxes), windows_per_batch):
        chunk = boxes[start : start + windows_per_batch]
        win = torch.stack([x[bi, :, y0 : y0 + side, x0 : x0 + side] for bi, y0, x0 in chunk])
        mon = torch.stack([months[bi] for bi, _, _ in chunk])
        pooled = encode(win, mon).permute(0, 3, 1, 2)  # [n, D, s/p, s/p]
        for k, (bi, y0, x0) in enumerate(chunk):
            sl = (bi, slice(None), slice(y0 // p, (y0 + side) // p), slice(x0 // p, (x0 + side) // p))
            total[sl] = total[sl] + pooled[k]
            count[sl] = count[sl] + 1
    return total / count


def _tiled_patch_grid(encode, x, months, side: int, p: int, windows_per_batch: int) -> torch.Tensor:
    """:func:`galileo_patch_grid` where the windows tile the image exactly (every patch in one window).

    The same windows, in the same order and batches of ``windows_per_batch``, encoded by the same ``encode``, as the
    general path, so the grid is bit for bit the same; only the cutting and the reassembly are reshapes instead of a
    Python loop of slice copies and additions (about a tenth of a fine-tuning step on 64 px crops).
    """
    b, c, h, w = x.shape
    nh, nw, s = h // side, w // side, side // p
    wins = x.reshape(b, c, nh, side, nw, side).permute(0, 2, 4, 1, 3, 5).reshape(b * nh * nw, c, side, side)
    mon = months.repeat_interleave(nh * nw, dim=0)
    step = windows_per_batch
    outs = [encode(wins[i : i + step], mon[i : i + step]) for i in range(0, len(wins), step)]  # [n, s, s, D]
    grid = torch.cat(outs).reshape(b, nh, nw, s, s, -1)
    return grid.permute(0, 5, 1, 3, 2, 4).reshape(b, -1, nh * s, nw * s)


def upsample_grid(grid: torch.Tensor, shape: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Bilinear upsampling of a patch grid ``[B, D, h, w]`` to pixels ``[B, D, H, W]`` (padding cropped)."""
    h, w = shape
    full = F.interpolate(
        grid,
        size=(grid.shape[2] * patch_size, grid.shape[3] * patch_size),
        mode="bilinear",
        align_corners=False,
    )
    return full[:, :, :h, :w]


# --------------------------------------------------------------------------------------------------- embedders
@dataclass
class GalileoEmbedder:
    """Galileo-nano with the settings that define its embeddings (all part of the cache key)."""

    encoder: _galileo.GalileoEncoder
    weights_sha256: str
    patch_size: int = 4
    window: int = 64
    ndvi: str = "masked"
    windows_per_batch: int = 16
    name: str = field(default="galileo_nano", init=False)

    def __post_init__(self):
        if not 1 <= self.patch_size <= 8:
            raise ValueError(f"Galileo patch_size must be 1..8 pixels, got {self.patch_size}")
        if self.window < self.patch_size:
            raise ValueError(f"window ({self.window}) must be at least the patch size ({self.patch_size})")

    def settings(self) -> dict:
        """Settings that change the embeddings (cache key, results note)."""
        return {"patch_size": self.patch_size, "window": self.window, "ndvi": self.ndvi}

    def describe(self) -> str:
        """One line for the results note."""
        return f"patch {self.patch_size} px, {self.window} px windows, per-patch mean pooling, bilinear to pixels"

    @torch.inference_mode()
    def encode(self, a: np.ndarray, ctx: _fm_adapters.ChipContext) -> np.ndarray:
        """Stored form: the float32 patch grid ``[D, ceil(H/p), ceil(W/p)]`` of one chip ``(6T, H, W)``."""
        x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]
        grid = galileo_patch_grid(
            self.encoder.eval(),
            x,
            _fm_adapters.months_tensor(ctx.months, 1),
            n_times=len(ctx.months),
            patch_size=self.patch_size,
            window=self.window,
            resolution_m=ctx.resolution_m,
            ndvi=self.ndvi,
            windows_per_batch=self.windows_per_batch,
        )
        return grid[0].numpy()

    def to_pixels(self, stored: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """``[D, H, W]`` float32 per-pixel embeddings from the stored grid."""
        grid = torch.from_numpy(np.ascontiguousarray(stored, dtype=np.float32))[None]
        return upsample_grid(grid, shape, self.patch_size)[0].numpy()


@dataclass
class PrestoEmbedder:
    """Presto with its settings (part of the cache key)."""

    encoder: _presto.PrestoEncoder
    weights_sha256: str
    ndvi: str = "masked"
    batch_size: int = 8192
    name: str = field(default="presto", init=False)

    def settings(self) -> dict:
        """Settings that change the embeddings (cache key, results note)."""
        return {"ndvi": self.ndvi}

    def describe(self) -> str:
        """One line for the results note."""
        return "per-pixel pooled output (location token + visible tokens)"

    def encode(self, a: np.ndarray, ctx: _fm_adapters.ChipContext) -> np.ndarray:
        """Stored form: float32 ``[D, H, W]`` pooled Presto embedding of every pixel of one chip ``(6T, H, W)``."""
        c, h, w = a.shape
        out = self.encode_pixels(a.reshape(c, -1).T, ctx)
        return np.ascontiguousarray(out.T.reshape(out.shape[1], h, w))

    @torch.inference_mode()
    def encode_pixels(self, pixels: np.ndarray, ctx: _fm_adapters.ChipContext) -> np.ndarray:
        """``[N, D]`` float32 embeddings of ``N`` pixels given as ``[N, 6T]`` reflectance rows.

        Presto sees one pixel at a time, so embedding only the pixels a head trains on is exact and saves most of
        the cost on training chips.
        """
        t = len(ctx.months)
        rows = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
        enc = self.encoder.eval()
        out = torch.empty(rows.shape[0], enc.embed_dim)
        latlon = torch.tensor([ctx.latlon], dtype=torch.float32)
        months = torch.tensor([list(ctx.months)], dtype=torch.long)
        for s in range(0, rows.shape[0], self.batch_size):
            x, mask, dw = _fm_adapters.presto_inputs(rows[s : s + self.batch_size], n_times=t, ndvi=self.ndvi)
            n = x.shape[0]
            out[s : s + n] = enc(x, dw, latlon.expand(n, 2), mask, months.expand(n, t))
        return out.numpy()

    def to_pixels(self, stored: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """``[D, H, W]`` float32 (Presto's stored form already is per pixel)."""
        return np.asarray(stored, dtype=np.float32)


Embedder = GalileoEmbedder | PrestoEmbedder
MODEL_WEIGHTS = {"galileo_nano": "galileo_nano", "presto": "presto"}


def load_embedder(name: str, weights_path: str | os.PathLike | None = None, **settings) -> Embedder:
    """Resolve the weights (:func:`helpers.models.weights.resolve_weights`), load the encoder, wrap it.

    Raises:
        helpers.models.weights.WeightsError: Weights unavailable or not the pinned file (callers write ``not_run``).
        ValueError: Unknown model name or a file that is not the model's checkpoint.
    """
    if name not in MODEL_WEIGHTS:
        raise ValueError(f"unknown embedding model {name!r}; expected one of {sorted(MODEL_WEIGHTS)}")
    spec = _weights.SPECS[MODEL_WEIGHTS[name]]
    path = _weights.resolve_weights(spec, weights_path)
    if name == "galileo_nano":
        return GalileoEmbedder(_galileo.load_galileo_nano(path), spec.sha256, **settings)
    return PrestoEmbedder(_presto.load_presto(path), spec.sha256, **settings)


# ------------------------------------------------------------------------------------------------------- cache
def _fingerprint(ds, chip_id: str, a: np.ndarray | None) -> str:
    """Identity of a chip's image: its file (path, size, mtime) where the dataset has files, else its content."""
    if hasattr(ds, "paths"):
        try:
            image = Path(ds.paths(chip_id)[0]).resolve()
            st = image.stat()
            return f"file={image};size={st.st_size};mtime_ns={st.st_mtime_ns}"
        except (OSError, NotImplementedError):
            pass
    if a is None:
        a, _ = ds.read_arrays(chip_id)
    return "sha256=" + hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


class EmbeddingCache:
    """Embeddings on disk under ``<root>/embeddings/<model>/<dataset>/``, one ``.npz`` per chip and key.

    Attributes:
        hits, misses, writes: Counters (a stale file, e.g. of other weights, counts as a miss).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root) / "embeddings"
        self.hits = self.misses = self.writes = 0

    def path(self, key: dict) -> Path:
        """File of a key: readable chip id plus a hash of the whole key."""
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        chip = re.sub(r"[^A-Za-z0-9._-]+", "_", str(key["chip_id"]))[:80]
        return (
            self.root
            / str(key["model"])
            / re.sub(r"[^A-Za-z0-9._-]+", "_", str(key["dataset"]))
            / (f"{chip}-{digest}.npz")
        )

    def get(self, key: dict) -> np.ndarray | None:
        """The stored array (float16) if a file with exactly this key exists, else None."""
        path = self.path(key)
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    if json.loads(str(z["key"])) == key:
                        self.hits += 1
                        return z["emb"]
            except (OSError, ValueError, KeyError, json.JSONDecodeError):
                pass  # unreadable or foreign file: recompute and overwrite
        self.misses += 1
        return None

    def put(self, key: dict, emb: np.ndarray) -> Path:
        """Write ``emb`` as float16 with its key, atomically (temporary file + rename)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, emb=np.asarray(emb, dtype=np.float16), key=np.array(json.dumps(key, sort_keys=True)))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(buf.getvalue())
            user_mode(tmp)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.writes += 1
        return path


def cache_key(
    embedder: Embedder, ds, chip_id: str, ctx: _fm_adapters.ChipContext, a: np.ndarray | None = None
) -> dict:
    """Everything an embedding depends on (see the module docstring)."""
    return {
        "model": embedder.name,
        "weights_sha256": embedder.weights_sha256,
        "dataset": ds.name,
        "chip_id": chip_id,
        "image": _fingerprint(ds, chip_id, a),
        "adapter_version": _fm_adapters.ADAPTER_VERSION,
        "settings": embedder.settings(),
        "context": ctx.key(),
    }


def embed_chip(
    embedder: Embedder, ds, chip_id: str, cache: EmbeddingCache | None = None
) -> tuple[np.ndarray, np.ndarray, _fm_adapters.ChipContext]:
    """Per-pixel embeddings of one chip, through the cache when given.

    Returns:
        ``emb`` float32 ``[D, H, W]`` (float16-rounded, identical on hit and miss), labels ``[H, W]`` int64, and
        the chip's :class:`~helpers.runs.fm_adapters.ChipContext`.
    """
    ctx = _fm_adapters.chip_context(ds, chip_id)
    a, y = ds.read_arrays(chip_id)
    if a.shape[0] != 6 * len(ctx.months):
        raise ValueError(f"{ds.name}/{chip_id}: {a.shape[0]} channels but {len(ctx.months)} months")
    stored = None
    key = None
    if cache is not None:
        key = cache_key(embedder, ds, chip_id, ctx, a)
        stored = cache.get(key)
    if stored is None:
        stored = embedder.encode(a, ctx).astype(np.float16)
        if cache is not None:
            cache.put(key, stored)
    emb = embedder.to_pixels(stored.astype(np.float32), y.shape)
    return emb, np.asarray(y, dtype=np.int64), ctx


def embed_pixels(
    embedder: PrestoEmbedder,
    ds,
    chip_id: str,
    idx: np.ndarray,
    cache: EmbeddingCache | None = None,
    *,
    arrays: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Presto embeddings ``[len(idx), D]`` of the pixels at flat indices ``idx`` of one chip, cached.

    The cache key is the chip's key plus a hash of ``idx`` (a seed's training sample), so each sample is encoded
    once. Values are float16-rounded like :func:`embed_chip`'s.
    """
    if not isinstance(embedder, PrestoEmbedder):
        raise TypeError("only Presto embeds single pixels; Galileo needs the whole chip (use embed_chip)")
    ctx = _fm_adapters.chip_context(ds, chip_id)
    a, _ = arrays if arrays is not None else ds.read_arrays(chip_id)
    idx = np.asarray(idx, dtype=np.int64)
    key = None
    if cache is not None:
        key = cache_key(embedder, ds, chip_id, ctx, a)
        key["pixels"] = hashlib.sha256(idx.tobytes()).hexdigest()[:20] + f"/{len(idx)}"
        hit = cache.get(key)
        if hit is not None:
            return hit.astype(np.float32)
    rows = a.reshape(a.shape[0], -1)[:, idx].T
    out = embedder.encode_pixels(rows, ctx).astype(np.float16)
    if cache is not None:
        cache.put(key, out)
    return out.astype(np.float32)

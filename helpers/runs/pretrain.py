"""In-study self-supervised pretraining of a *small* Prithvi-architecture model on the study's own imagery.

The paper explains its results by pretext-task alignment: Prithvi's masked-autoencoder (MAE) objective rewards
reconstructing spatial context, which helps texture-dependent labels but not spectral ones. The real Prithvi-100M
cannot be retrained on a 2-core CPU, so this module makes the claim testable at CPU scale: the same architecture
(3-D tubelet ViT, fixed sin-cos positions, MAE decoder), much smaller (default embed 128, depth 4), pretrained on
the **unlabelled training imagery** of a task (or of several tasks pooled) with one of two pretexts:

* ``"mae"`` — Prithvi's recipe: hide 75 % of the tokens (``mask_ratio``), encode the visible ones, reconstruct the
  hidden patches' normalised pixels; the loss is the MSE on hidden patches only.
* ``"spectral"`` — a pretext built for pixel-level spectral labels: every token stays visible, but within each
  token a random ``band_mask_ratio`` of the bands is hidden (set to the band mean) and, for multi-date inputs,
  ``date_mask_ratio`` of the tokens lose all their bands (a whole date at that place). The encoder is told which
  bands are hidden (a learned per-band embedding added to the token, dropped at fine-tuning) and the decoder
  reconstructs the hidden bands at every pixel; the loss is the MSE on hidden (pixel, band) entries only. To solve
  it the encoder must model how a pixel's bands relate to each other, which is what spectral labels need.

Both use the same model, data, optimiser and budget, so the two fine-tuned rows differ only in the pretext.
Pixels that are nodata (all six bands of a date exactly 0, the readers' fill) are left out of both losses.

Two stopping rules. The epoch mode stops when the epoch-mean loss stops falling. The probe-plateau mode
(``PretrainConfig.probe_every``, :mod:`helpers.runs.pretexts`) judges pretraining on what it is for: every ``probe_every`` steps a ridge linear
probe of the frozen encoder is scored on the validation split of each task (:mod:`helpers.runs.probe`), the run
stops when the mean probe score has stopped rising, and the encoder of the best probe is kept.

Runs are cached and resumable: the folder ``<cache_dir>/pretrain/<pretext>-<key>`` is keyed by a hash of the
config, the dataset names, their training chip lists (plus a content fingerprint of a few chips), the seed and (probe
mode) the probe tasks' content; it holds ``last.pt`` (resume state, written after every epoch or probe),
``encoder.pt`` (the final encoder), ``loss.csv`` (one row per optimiser step: the loss curve), ``probe.csv`` (probe
mode: one row per probe), ``checkpoints/`` (probe mode: the encoders at the probes nearest 0, 1/4, 1/2 and all of
the selected step, and the last) and ``config.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.data.io import atomic_write, locked
from helpers.models.prithvi import PrithviConfig
from helpers.runs import pretexts, probe
from helpers.runs.runner import seed_everything
from helpers.runs.runtime import platform_class, torch_threads
from helpers.runs.schedule import lr_factor
from helpers.runs.train import param_groups

FORMAT = 1


# ---------------------------------------------------------------------------------------------- data
def _as_list(datasets) -> list:
    return list(datasets) if isinstance(datasets, list | tuple) else [datasets]


def _frames_of(datasets: Sequence, cfg: pretexts.PretrainConfig) -> int:
    if cfg.single_date:
        return 1
    frames = {int(ds.n_times) for ds in datasets}
    if len(frames) > 1:
        raise ValueError(
            f"datasets have different date counts {sorted(frames)}; pool them with single_date=True (1-frame model)"
        )
    return frames.pop()


def fingerprint(datasets: Sequence) -> list[dict]:
    """What the cache key must know about the data: names, training chip lists, a content hash of three chips.

    Chip lists catch changed splits; the content hash catches regenerated data behind unchanged chip names.
    """
    out = []
    for ds in datasets:
        ids = list(ds.chip_ids("train"))
        if not ids:
            raise ValueError(f"{ds.name}: no training chips to pretrain on")
        h = hashlib.sha256()
        for cid in sorted({ids[0], ids[len(ids) // 2], ids[-1]}):
            a, _ = ds.read_arrays(cid)
            h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
        out.append({"dataset": ds.name, "chips": ids, "content": h.hexdigest()[:16]})
    return out


def run_key(
    cfg: pretexts.PretrainConfig, data: list[dict], seed: int, probe_data: list[dict] | None = None
) -> str:
    """16-hex-digit hash of (config, data fingerprint, seed, probe tasks): the cache folder's name.

    The probe tasks enter only in the probe-plateau mode (they decide where the run stops).
    """
    body = {"config": cfg.to_dict(), "data": data, "seed": int(seed)}
    if probe_data is not None:
        body["probe"] = probe_data
    blob = json.dumps(body, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _probe_data(cfg: pretexts.PretrainConfig, probe_on: Sequence | None) -> list[dict] | None:
    """What the cache key must know of the probe tasks (probe-plateau mode only): names and content hashes."""
    from helpers.data.datasets import fingerprint as content_fingerprint

    if cfg.probe_every is None:
        return None
    if not probe_on:
        raise ValueError("the probe-plateau mode (probe_every) needs the probe tasks (probe_on)")
    return [{"dataset": d.name, "content": content_fingerprint(d)} for d in probe_on]


def _probe_tasks(probe_on: Sequence, cfg: pretexts.PretrainConfig, seed: int) -> list:
    """The fixed probe data of a probe-plateau run (:func:`helpers.runs.probe.probe_tasks` with its settings)."""
    return probe.probe_tasks(
        probe_on,
        max_train_chips=cfg.probe_chips,
        pixels=cfg.probe_pixels,
        seed=seed,
        held_out=cfg.probe_held_out,
    )


def key_for(datasets, cfg: pretexts.PretrainConfig, seed: int, probe_on: Sequence | None = None) -> str:
    """The cache key :func:`pretrain` gives these inputs, without pretraining (a fine-tune's run key holds it)."""
    return run_key(cfg, fingerprint(_as_list(datasets)), seed, _probe_data(cfg, probe_on))


# ---------------------------------------------------------------------------------------------- the run
@dataclass
class PretrainResult:
    """A finished (or cached) pretraining run.

    Attributes:
        out_dir: Cache folder (``encoder.pt``, ``last.pt``, ``loss.csv``, ``config.json``).
        key: Cache key (hash of config, data and seed).
        encoder_state: Encoder weights (keys as in :class:`~helpers.models.prithvi.PrithviEncoder`).
        model_config: Architecture the encoder was trained with (crop size, frames).
        history: Per-step loss curve.
        skipped: True when the run was found finished in the cache.
        train_s: Wall time of the pretraining, summed over resumptions.
        stopped_by: ``"plateau"`` (loss plateau), ``"probe plateau"`` or ``"cap"`` (``epochs`` or ``max_steps``
            reached); empty for old caches.
        probe: The probe-plateau mode's probe curve: one row per probe (``step``, ``mean``, ``probe <task>``,
            the chunk's mean ``loss``, ``elapsed_s``); empty in the epoch mode.
    """

    out_dir: Path
    key: str
    encoder_state: dict
    model_config: PrithviConfig
    history: pd.DataFrame
    skipped: bool
    train_s: float
    stopped_by: str = ""
    probe: pd.DataFrame = field(default_factory=pd.DataFrame)

    def describe(self) -> str:
        """One line for the results table's ``weights`` column."""
        c = self.model_config
        return (
            f"in-study {self.history.attrs.get('pretext', '')} pretraining {self.key} "
            f"(embed {c.embed_dim}, depth {c.depth}, {int(self.history['step'].max()) if len(self.history) else 0} steps)"
        )


def _save(obj: dict, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _load(path: Path) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means the same: unusable cache file
        raise ValueError(f"{path}: unreadable pretraining checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{path}: not a pretraining checkpoint of format {FORMAT}")
    return obj


def _history_frame(history: list[dict], pretext: str) -> pd.DataFrame:
    df = pd.DataFrame(history, columns=["step", "epoch", "loss", "lr", "elapsed_s"])
    df.attrs["pretext"] = pretext
    return df


def load_pretrained_encoder(out_dir: str | os.PathLike) -> tuple[dict, PrithviConfig]:
    """Encoder weights and architecture of a finished pretraining run folder."""
    obj = _load(Path(out_dir) / "encoder.pt")
    return obj["encoder"], PrithviConfig(
        **{**obj["model_config"], "coords_encoding": tuple(obj["model_config"]["coords_encoding"])}
    )


def _optimizer(model: nn.Module, cfg: pretexts.PretrainConfig) -> torch.optim.AdamW:
    """AdamW with the fine-tuning loop's decay groups and the MAE recipe's betas (0.9, 0.95).

    The groups are :func:`helpers.runs.train.param_groups` (every parameter of the pretrainer is trainable).
    """
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))


def _train_epoch(model, opt, crops, state: dict, cfg, epoch: int, lr_at, device, t0: float):
    """One pass over these crops, one optimiser step per batch at ``cfg.lr * lr_at(step)``; losses to the history."""
    losses = []
    for i in range(len(crops) // cfg.batch_size):
        x = torch.from_numpy(crops[i * cfg.batch_size : (i + 1) * cfg.batch_size]).to(device)
        lr = cfg.lr * lr_at(state["step"])
        for g in opt.param_groups:
            g["lr"] = lr
        loss = model(x, cfg)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["step"] += 1
        losses.append(float(loss.detach()))
        state["history"].append(
            {
                "step": state["step"],
                "epoch": epoch + 1,
                "loss": losses[-1],
                "lr": lr,
                "elapsed_s": state["train_s"] + time.perf_counter() - t0,
            }
        )
    return losses


def _end_epoch(state: dict, losses: list[float], cfg, epoch: int) -> float:
    """Close an epoch and return its mean loss.

    The run is finished at a loss plateau (``patience`` epochs without a relative gain of
    ``min_rel_improvement``) or at the epoch cap.
    """
    state["epoch"] = epoch + 1
    mean_loss = float(np.mean(losses))
    if mean_loss < state["best_loss"] * (1.0 - cfg.min_rel_improvement):
        state["best_loss"], state["best_loss_epoch"] = mean_loss, epoch + 1
    plateau = cfg.patience is not None and epoch + 1 - state["best_loss_epoch"] >= cfg.patience
    state["finished"] = plateau or epoch + 1 == cfg.epochs
    state["stopped_by"] = ("plateau" if plateau else "cap") if state["finished"] else ""
    return mean_loss


def pretrain(
    datasets,
    cfg: pretexts.PretrainConfig = pretexts.PretrainConfig(),  # noqa: B008 - frozen dataclass, safe as a default
    *,
    probe_on: Sequence | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike = "cache",
    device: str | torch.device | None = None,
    num_threads: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> PretrainResult:
    """Pretrain (or fetch from the cache, or resume) a small Prithvi-architecture model on unlabelled imagery.

    Args:
        datasets: One dataset, corpus (:class:`helpers.data.corpus.Corpus`) or a list (pooled). Only
            ``chip_ids("train")`` and ``read_arrays`` are used; labels are never looked at.
        cfg: Settings; see :class:`helpers.runs.pretexts.PretrainConfig`.
        probe_on: Probe-plateau mode (``cfg.probe_every``): the datasets (six HLS bands) whose validation split the
            linear probe scores; they enter the cache key.
        seed: Seeds initialisation, crops and masks (part of the cache key).
        cache_dir: Root of the cache (``<cache_dir>/pretrain/<pretext>-<key>``).
        device: Torch device; default CUDA when available, else CPU.
        num_threads: CPU threads; default all cores this process may use.
        force: Ignore a cached or partial run and start over.
        progress: Show a tqdm bar.

    Returns:
        A :class:`PretrainResult` with the encoder weights and the loss curve (and the probe curve in the
        probe-plateau mode).
    """
    datasets = _as_list(datasets)
    frames = _frames_of(datasets, cfg)
    data = fingerprint(datasets)
    probe_data = _probe_data(cfg, probe_on)
    key = run_key(cfg, data, seed, probe_data)
    out_dir = Path(cache_dir) / "pretrain" / f"{cfg.pretext}-{key}"
    # one process trains a cache entry; another one (an engine worker, a second notebook) waits, then finds it
    with locked(out_dir):
        mcfg = cfg.model_config(frames)
        last, enc_path = out_dir / "last.pt", out_dir / "encoder.pt"
        if force:
            for f in (last, enc_path):
                f.unlink(missing_ok=True)
        if enc_path.exists():
            state = _load(last) if last.exists() else {"history": [], "train_s": float("nan")}
            encoder, _ = load_pretrained_encoder(out_dir)
            return PretrainResult(
                out_dir,
                key,
                encoder,
                mcfg,
                _history_frame(state["history"], cfg.pretext),
                True,
                state["train_s"],
                state.get("stopped_by", ""),
                _probe_frame(state.get("probe", [])),
            )
        meta = {
            "config": cfg.to_dict(),
            "datasets": [d["dataset"] for d in data],
            "n_chips": [len(d["chips"]) for d in data],
            "probe_on": [d["dataset"] for d in probe_data or []],
            "seed": seed,
            "key": key,
        }
        atomic_write(out_dir / "config.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))

        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        with torch_threads(num_threads):
            seed_everything(seed)
            model = pretexts.Pretrainer(mcfg, cfg.pretext).to(device)
            opt = _optimizer(model, cfg)
            images = pretexts.load_images(datasets, cfg.single_date)
            desc = f"pretrain {cfg.pretext} {'+'.join(meta['datasets'])}"
            if cfg.probe_every is None:
                state = _run_epochs(model, opt, images, cfg, key, seed, last, out_dir, device, desc, progress)
                encoder = {k: v.detach().cpu() for k, v in model.mae.encoder.state_dict().items()}
            else:
                tasks = _probe_tasks(probe_on, cfg, seed)
                state = _run_probed(
                    model, opt, images, tasks, cfg, key, seed, last, out_dir, device, desc, progress
                )
                encoder = _load(out_dir / CHECKPOINTS / f"step-{state['best_step']:07d}.pt")["encoder"]
                _prune_checkpoints(out_dir, state)
            _save(
                {
                    "format": FORMAT,
                    "key": key,
                    "model_config": json.loads(json.dumps(dataclasses.asdict(mcfg))),
                    "encoder": encoder,
                },
                enc_path,
            )
            return PretrainResult(
                out_dir,
                key,
                encoder,
                mcfg,
                _history_frame(state["history"], cfg.pretext),
                False,
                state["train_s"],
                state["stopped_by"],
                _probe_frame(state.get("probe", [])),
            )


def _new_state(key: str) -> dict:
    return {
        "format": FORMAT,
        "key": key,
        "epoch": 0,
        "step": 0,
        "history": [],
        "train_s": 0.0,
        "finished": False,
        "best_loss": math.inf,
        "best_loss_epoch": 0,
        "stopped_by": "",
        "probe": [],
        "best_probe": -math.inf,
        "best_step": 0,
        "ref_probe": -math.inf,
        "since_progress": 0,
    }


def _resume(state: dict, last: Path, key: str, model: nn.Module, opt) -> dict:
    """The saved state of an interrupted run (model, optimiser and torch RNG restored), else ``state``."""
    if not last.exists():
        return state
    state = _load(last)
    if state.get("key") != key:
        raise ValueError(f"{last}: belongs to run {state.get('key')}, not {key}")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return state


def _checkpoint(state: dict, model: nn.Module, opt, last: Path, out_dir: Path, pretext: str) -> None:
    """Save the resume state and the loss curve (and the probe curve) after an epoch or a probe."""
    state.update(model=model.state_dict(), optimizer=opt.state_dict(), torch_rng=torch.get_rng_state())
    _save(state, last)
    hist = _history_frame(state["history"], pretext)
    atomic_write(out_dir / "loss.csv", lambda tmp, h=hist: h.to_csv(tmp, index=False))
    if state["probe"]:
        frame = _probe_frame(state["probe"])
        atomic_write(out_dir / "probe.csv", lambda tmp, f=frame: f.to_csv(tmp, index=False))


def _run_epochs(model, opt, images, cfg, key, seed, last, out_dir, device, desc, progress) -> dict:
    """The epoch mode: epochs of random crops under a cosine schedule, stopped by the loss plateau or the cap."""
    n_crops = len(images) * cfg.crops_per_chip
    steps_per_epoch = max(1, n_crops // cfg.batch_size)
    total, warm = cfg.epochs * steps_per_epoch, int(round(cfg.warmup_epochs * steps_per_epoch))
    state = _resume(_new_state(key), last, key, model, opt)
    bar = tqdm(
        range(state["epoch"], cfg.epochs),
        initial=state["epoch"],
        total=cfg.epochs,
        disable=not progress,
        desc=desc,
        unit="epoch",
    )
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        rng = np.random.default_rng([seed, epoch])
        crops = pretexts.sample_crops(images, steps_per_epoch * cfg.batch_size, cfg.crop_size, rng)
        losses = _train_epoch(
            model, opt, crops, state, cfg, epoch, lambda s: lr_factor(s, total, warm), device, t0
        )
        state["train_s"] += time.perf_counter() - t0
        mean_loss = _end_epoch(state, losses, cfg, epoch)
        _checkpoint(state, model, opt, last, out_dir, cfg.pretext)
        bar.set_postfix(loss=f"{mean_loss:.4f}")
        if state["finished"]:
            break
    bar.close()
    return state


#: Folder of the probe-plateau mode's encoder checkpoints (``step-<step>.pt``), inside the run's cache folder.
CHECKPOINTS = "checkpoints"


def _probe(model: pretexts.Pretrainer, tasks, state: dict, out_dir: Path, t0: float, loss: float) -> float:
    """Score the current encoder on every probe task, save it as a checkpoint, record the scores; their mean.

    The probe builds throw-away heads; the torch RNG is forked so that it does not move the pretraining's masks.
    """
    encoder = {k: v.detach().cpu().clone() for k, v in model.mae.encoder.state_dict().items()}
    with torch.random.fork_rng(devices=[]):
        scores = probe.probe_scores(tasks, encoder, model.mae.config)
    mean = float(np.nanmean(list(scores.values())))
    state["probe"].append(
        {
            "step": state["step"],
            "mean": mean,
            **{f"probe {k}": v for k, v in scores.items()},
            "loss": loss,
            "elapsed_s": state["train_s"] + time.perf_counter() - t0,
        }
    )
    _save({"format": FORMAT, "key": state["key"], "step": state["step"], "encoder": encoder},
          out_dir / CHECKPOINTS / f"step-{state['step']:07d}.pt")  # fmt: skip
    return mean


def _end_probe(state: dict, mean: float, cfg: pretexts.PretrainConfig) -> None:
    """Update the selection (best probe) and the plateau rule (on the smoothed probe) after a probe."""
    if mean > state["best_probe"]:
        state["best_probe"], state["best_step"] = mean, state["step"]
    smoothed = float(np.mean([r["mean"] for r in state["probe"][-cfg.probe_smooth :]]))
    state["probe"][-1]["smoothed"] = smoothed
    if smoothed >= state["ref_probe"] + cfg.probe_min_delta:
        state["ref_probe"], state["since_progress"] = smoothed, 0
    else:
        state["since_progress"] += 1
    plateau = state["since_progress"] >= cfg.probe_patience
    capped = state["step"] >= cfg.max_steps
    state["finished"] = plateau or capped
    state["stopped_by"] = ("probe plateau" if plateau else "cap") if state["finished"] else ""


def _run_probed(model, opt, images, tasks, cfg, key, seed, last, out_dir, device, desc, progress) -> dict:
    """The probe-plateau mode: chunks of ``probe_every`` steps at a warmed-up constant rate, a probe after each."""
    state = _resume(_new_state(key), last, key, model, opt)

    def warm_then_constant(step: int) -> float:
        return min(1.0, (step + 1) / max(cfg.warmup_steps, 1))

    if not state["probe"]:  # the starting point: a random-init encoder's probe
        t0 = time.perf_counter()
        _end_probe(state, _probe(model, tasks, state, out_dir, t0, float("nan")), cfg)
        state["train_s"] += time.perf_counter() - t0
        _checkpoint(state, model, opt, last, out_dir, cfg.pretext)
    bar = tqdm(total=cfg.max_steps, initial=state["step"], disable=not progress, desc=desc, unit="step")
    while not state["finished"]:
        t0 = time.perf_counter()
        model.train()
        chunk = state["step"] // cfg.probe_every
        rng = np.random.default_rng([seed, chunk])
        crops = pretexts.sample_crops(images, cfg.probe_every * cfg.batch_size, cfg.crop_size, rng)
        losses = _train_epoch(model, opt, crops, state, cfg, chunk, warm_then_constant, device, t0)
        model.eval()
        mean = _probe(model, tasks, state, out_dir, t0, float(np.mean(losses)))
        state["train_s"] += time.perf_counter() - t0
        _end_probe(state, mean, cfg)
        state["epoch"] = chunk + 1
        _checkpoint(state, model, opt, last, out_dir, cfg.pretext)
        bar.update(len(losses))
        bar.set_postfix(probe=f"{mean:.3f}", best=f"{state['best_probe']:.3f}")
    bar.close()
    return state


#: The continuation check's summary file, in the run's cache folder (:func:`continuation`).
CONTINUATION = "continuation.json"


def continuation_summary(result: PretrainResult) -> dict | None:
    """A finished run's continuation summary (:func:`continuation`), or ``None`` before its check has run."""
    path = result.out_dir / CONTINUATION
    return json.loads(path.read_text()) if path.exists() else None


def continuation(
    datasets,
    cfg: pretexts.PretrainConfig,
    *,
    probe_on: Sequence,
    seed: int = 0,
    cache_dir: str | os.PathLike = "cache",
    factor: float = 2.0,
    device: str | torch.device | None = None,
    num_threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Continue a finished probe-plateau pretraining to ``factor`` times its steps and say how far the probe moves.

    The check of a plateau that means something: the run is resumed from its last state (same rate, same crops
    and masks it would have drawn), without a stopping rule, to ``factor`` times the steps it ran, probing as before.
    The finished run's encoder is not touched; the continuation lives in ``<run>/continuation/`` and its summary in
    ``<run>/continuation.json`` (cached: a second call reads it).

    Returns:
        ``steps`` (of the finished run), ``continued_to``, ``best_smoothed`` / ``best_smoothed_continued`` (the best
        smoothed mean probe up to the stop and up to the continuation's end), ``moved`` (their difference, a
        fraction), ``best_probe`` / ``best_probe_continued`` (single probes) and ``cpu_s`` of the continuation.
    """
    datasets = _as_list(datasets)
    if cfg.probe_every is None:
        raise ValueError("the continuation check needs the probe-plateau mode (probe_every)")
    key = key_for(datasets, cfg, seed, probe_on)
    out_dir = Path(cache_dir) / "pretrain" / f"{cfg.pretext}-{key}"
    summary_path = out_dir / CONTINUATION
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    if not (out_dir / "encoder.pt").exists():
        raise FileNotFoundError(f"{out_dir}: no finished pretraining to continue; run pretrain() first")
    done = _load(out_dir / "last.pt")
    cont_dir = out_dir / "continuation"
    longer = dataclasses.replace(
        cfg, probe_patience=2**31 - 1, max_steps=int(math.ceil(factor * done["step"]))
    )
    with locked(cont_dir):
        last = cont_dir / "last.pt"
        if not last.exists():
            _save({**done, "finished": False, "stopped_by": ""}, last)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        with torch_threads(num_threads):
            model = pretexts.Pretrainer(cfg.model_config(_frames_of(datasets, cfg)), cfg.pretext).to(device)
            opt = _optimizer(model, cfg)
            images = pretexts.load_images(datasets, cfg.single_date)
            tasks = _probe_tasks(probe_on, cfg, seed)
            desc = f"continue {cfg.pretext} to {longer.max_steps} steps"
            state = _run_probed(
                model, opt, images, tasks, longer, key, seed, last, cont_dir, device, desc, progress
            )
        for path in (cont_dir / CHECKPOINTS).glob("step-*.pt"):
            path.unlink()
    before = [r for r in state["probe"] if r["step"] <= done["step"]]
    summary = {
        "key": key,
        "steps": int(done["step"]),
        "continued_to": int(state["step"]),
        "best_smoothed": max(r["smoothed"] for r in before),
        "best_smoothed_continued": max(r["smoothed"] for r in state["probe"]),
        "best_probe": max(r["mean"] for r in before),
        "best_probe_continued": max(r["mean"] for r in state["probe"]),
        "cpu_s": state["train_s"] - done["train_s"],
    }
    summary["moved"] = summary["best_smoothed_continued"] - summary["best_smoothed"]
    atomic_write(summary_path, lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))
    return summary


#: Columns of the pretraining table (:func:`record`): one row per in-study pretraining run.
RECORD_COLUMNS = (
    "key", "pretext", "pretrained_on", "chips", "steps", "train_s", "stopped_by", "best_step", "best_probe",
    "best_smoothed", "continued_to", "best_smoothed_continued", "moved", "continuation_s", "quarter_step",
    "half_step", "platform",
)  # fmt: skip


#: The pretraining table's columns that count (chips, steps): written as integers, blank where unknown.
_COUNT_COLUMNS = ("chips", "steps", "best_step", "continued_to", "quarter_step", "half_step")


def _same_run(table: pd.DataFrame, key: str, platform: str) -> pd.Series:
    """Rows of a pretraining (or probe) table that belong to the pretraining ``key`` run on ``platform``.

    The cache key names the inputs, not the CPU: the same key pretrained on another CPU class is another encoder
    (its floating-point path differs; measured: 3,500 steps on an AMD EPYC where an AMX CPU stopped at 3,250), so a
    record is one (key, platform), as a fine-tune's run key holds both. A row without a platform (a table written
    before the column) belongs to no platform.
    """
    plat = (
        table["platform"].fillna("").astype(str) if "platform" in table else pd.Series("", index=table.index)
    )
    return (table["key"].astype(str) == str(key)) & (plat == platform)


def recorded_check(path: str | os.PathLike, key: str, platform: str | None = None) -> dict | None:
    """The continuation check the pretraining table (:func:`record`) holds for ``key``, or ``None`` if none.

    Only a check of the same pretraining counts: the same key on the same ``platform`` (default: this machine's,
    :func:`helpers.runs.runtime.platform_class`); another CPU's check was of another encoder.

    Returns what the table keeps of :func:`continuation`'s summary: ``key``, ``steps``, ``continued_to``,
    ``best_smoothed``, ``best_smoothed_continued``, ``moved`` and ``cpu_s`` (its ``continuation_s``).
    """
    path = Path(path)
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"key": str})
    mine = _same_run(table, key, platform or platform_class())
    rows = table[mine & table["moved"].notna()] if "moved" in table else table.iloc[:0]
    if rows.empty:
        return None
    row = rows.iloc[-1]
    return {
        "key": str(key),
        "steps": int(row["steps"]),
        "continued_to": int(row["continued_to"]),
        "best_smoothed": float(row["best_smoothed"]),
        "best_smoothed_continued": float(row["best_smoothed_continued"]),
        "moved": float(row["moved"]),
        "cpu_s": float(row["continuation_s"]),
    }


def record(
    result: PretrainResult, path: str | os.PathLike, check: dict | None = None, platform: str | None = None
) -> pd.DataFrame:
    """Add (or update, by key and platform) a pretraining's row in the pretraining table, and its probe curve.

    The table (``path``, e.g. ``results/pretraining.csv``) says what each in-study pretraining cost and where it
    stopped; ``<stem>_probe.csv`` beside it holds every probe (tidy: ``key``, ``platform``, ``pretext``, ``step``,
    ``task``, ``probe``), the continuation check's included once it has run, the curves notebook 04 draws. Both are
    small and committed with the results, so figures and the convergence evidence survive a fresh clone without the
    cache. A row is replaced only by a row of the same key and ``platform`` (default: this machine's;
    :func:`_same_run`), so a table can hold one pretraining's record from two CPUs, each beside the fine-tunes it fed.
    ``quarter_step`` and ``half_step`` are the kept checkpoints at a quarter and half of the selected step
    (:func:`checkpoint_encoder`).
    """
    platform = platform or platform_class()
    path = Path(path)
    meta = json.loads((result.out_dir / "config.json").read_text())
    pr = result.probe
    best = int(pr.loc[pr["mean"].idxmax(), "step"]) if len(pr) else None
    # the kept checkpoints part of the way (the pretraining-compute curve's starting points)
    part = [compute_checkpoints(pr["step"], best, (f,))[0] if len(pr) else None for f in (0.25, 0.5)]
    row = {
        "key": result.key,
        "pretext": meta["config"]["pretext"],
        "pretrained_on": " + ".join(meta["datasets"]),
        "chips": int(sum(meta["n_chips"])),
        "steps": int(result.history["step"].max()) if len(result.history) else 0,
        "train_s": round(float(result.train_s), 1),
        "stopped_by": result.stopped_by,
        "best_step": best,
        "best_probe": float(pr["mean"].max()) if len(pr) else None,
        "best_smoothed": float(pr["smoothed"].max()) if len(pr) else None,
        **{k: (check or {}).get(k) for k in ("continued_to", "best_smoothed_continued", "moved")},
        "continuation_s": round(float(check["cpu_s"]), 1) if check else None,
        "quarter_step": part[0],
        "half_step": part[1],
        "platform": platform,
    }
    curve = pd.DataFrame()
    cont_path = result.out_dir / "continuation" / "probe.csv"
    # the continuation's probes after the stop: the figure's dashed stretch
    if len(pr) and check and cont_path.exists():
        cont = pd.read_csv(cont_path)
        pr = pd.concat([pr, cont[cont["step"] > pr["step"].max()]], ignore_index=True)
    if len(pr):
        tasks = [c for c in pr.columns if c.startswith("probe ")]
        curve = pr.melt(id_vars=["step"], value_vars=[*tasks, "mean"], var_name="task", value_name="probe")
        curve["task"] = curve["task"].str.removeprefix("probe ")
        curve.insert(0, "pretext", row["pretext"])
        curve.insert(0, "platform", platform)
        curve.insert(0, "key", result.key)
    probe_path = path.with_name(f"{path.stem}_probe.csv")
    with locked(path):
        table = (
            pd.read_csv(path, dtype={"key": str}) if path.exists() else pd.DataFrame(columns=RECORD_COLUMNS)
        )
        table = pd.concat(
            [table[~_same_run(table, result.key, platform)], pd.DataFrame([row])], ignore_index=True
        )
        for col in _COUNT_COLUMNS:  # counts stay integers when a row before had none (no "9500.0")
            table[col] = pd.to_numeric(table[col], errors="coerce").astype("Int64")
        atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
        if len(curve):
            old = pd.read_csv(probe_path, dtype={"key": str}) if probe_path.exists() else curve.iloc[:0]
            both = pd.concat([old[~_same_run(old, result.key, platform)], curve], ignore_index=True)
            atomic_write(probe_path, lambda tmp: both.to_csv(tmp, index=False))
    return table


def compute_checkpoints(steps: Sequence[int], stop_step: int, fractions=(0.0, 0.25, 0.5, 1.0)) -> list[int]:
    """The probed steps nearest each fraction of ``stop_step`` (the selected encoder's step), in order, unique.

    They are what the pretraining-compute curve fine-tunes from (the rest of the checkpoints are dropped).
    """
    steps = sorted(int(s) for s in steps)
    return sorted({min(steps, key=lambda s, f=f: (abs(s - f * stop_step), s)) for f in fractions})


def checkpoint_encoder(result: PretrainResult, fraction: float) -> tuple[int, dict]:
    """The encoder a probe-plateau pretraining had at ``fraction`` of its selected step: ``(step, weights)``.

    The step is :func:`compute_checkpoints`' (the probed step nearest ``fraction`` of the best probe's step), one
    of the checkpoints the run keeps; what the pretraining-compute curve fine-tunes from.

    Raises:
        ValueError: The run has no probe curve (epoch mode) or lacks that checkpoint (``fraction`` not one of the
            kept ones: 0, 1/4, 1/2, 1).
    """
    if result.probe.empty:
        raise ValueError(f"{result.out_dir}: an epoch-mode pretraining keeps no checkpoints along the way")
    best = int(result.probe.loc[result.probe["mean"].idxmax(), "step"])
    step = compute_checkpoints(result.probe["step"], best, (float(fraction),))[0]
    path = result.out_dir / CHECKPOINTS / f"step-{step:07d}.pt"
    if not path.is_file():
        raise ValueError(f"{path}: no checkpoint at {fraction:g} of step {best} (kept: 0, 1/4, 1/2, 1)")
    return step, _load(path)["encoder"]


def _prune_checkpoints(out_dir: Path, state: dict) -> None:
    """Keep the checkpoints of :func:`compute_checkpoints` and the last probe's; delete the others."""
    steps = [int(r["step"]) for r in state["probe"]]
    keep = {*compute_checkpoints(steps, state["best_step"]), steps[-1]}
    for path in (out_dir / CHECKPOINTS).glob("step-*.pt"):
        if int(path.stem.split("-")[1]) not in keep:
            path.unlink()


def _probe_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def read_loss_curves(cache_dir: str | os.PathLike) -> pd.DataFrame:
    """Every cached pretraining run's loss per step, with its ``pretext``, ``pretrained on`` (the pool) and ``key``.

    Empty when the cache holds none (a fresh clone: the cache is not committed).
    """
    curves = []
    for loss_csv in sorted(Path(cache_dir, "pretrain").glob("*/loss.csv")):
        meta = json.loads((loss_csv.parent / "config.json").read_text())
        frame = pd.read_csv(loss_csv)
        frame["pretext"] = meta["config"]["pretext"]
        frame["pretrained on"] = "+".join(meta["datasets"])
        frame["key"] = meta.get("key", loss_csv.parent.name.split("-")[-1])
        curves.append(frame)
    return pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()

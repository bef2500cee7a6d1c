"""Find, or fetch and verify, the published foundation-model weight files.

The weight files may not be committed with the study, so every model that needs one asks :func:`resolve_weights`,
which looks in this order and returns the first file it finds:

1. an explicit ``path`` (a notebook parameter);
2. ``$FM_WEIGHTS_DIR/<folder>/<file>`` (a folder laid out like the project's offline copy, e.g.
   ``<dir>/galileo_nano/encoder.pt``; CI and the tests point it at ``../shared/weights``);
3. the user cache, ``$FM_CACHE_DIR`` or ``$XDG_CACHE_HOME/fm-suitability`` or ``~/.cache/fm-suitability``,
   under ``weights/<folder>/<file>``;
4. a download from the public upstream repository, pinned to a commit, into the user cache.

Every file is checked against the byte size and sha256 recorded for that commit, wherever it came from: a wrong
or truncated file is an error that names the file, never a silently different model. Downloads go to a ``.part``
file that a later call resumes (HTTP Range), and are moved into place only after the checksum matches.

Without a copy and without network the function raises :class:`WeightsUnavailable`, whose message is the reason;
the pretrained-model rows catch :class:`WeightsError` and record a ``not_run`` row with that reason.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from helpers.data.io import sha256_file


class WeightsError(RuntimeError):
    """Base class: the weights for a model cannot be used (the message says why)."""


class WeightsUnavailable(WeightsError):
    """No local copy and the download was not possible (offline, disabled, or interrupted)."""


class WeightsCorrupt(WeightsError):
    """A file was found or downloaded but its size or sha256 is not the pinned one."""


@dataclass(frozen=True)
class WeightsSpec:
    """Where one published weight file lives and what it must hash to."""

    name: str  # key used by the study, also the folder name under a weights dir
    filename: str
    url: str
    sha256: str
    size: int
    source: str  # "owner/repo @ commit : path", for notes and error messages


SPECS: dict[str, WeightsSpec] = {
    "galileo_nano": WeightsSpec(
        name="galileo_nano",
        filename="encoder.pt",
        url="https://raw.githubusercontent.com/nasaharvest/galileo/"
        "0f0b5b95ac81acef4b74cf4686dc877202f4541b/data/models/nano/encoder.pt",
        sha256="eab6acacf527886a508a555bc24efe4b4a2cf91b162e84cd1c4a1807e942180c",
        size=4189406,
        source="nasaharvest/galileo @ 0f0b5b95ac81acef4b74cf4686dc877202f4541b : data/models/nano/encoder.pt",
    ),
    "presto": WeightsSpec(
        name="presto",
        filename="default_model.pt",
        url="https://raw.githubusercontent.com/nasaharvest/presto/"
        "13173d028f035abcbcc3b13829314323a5c15d02/data/default_model.pt",
        sha256="559c9d76f525bdf2dd3774da8b1e7f1510769b73baacac12e9e4d8d5c67fbe65",
        size=3321716,
        source="nasaharvest/presto @ 13173d028f035abcbcc3b13829314323a5c15d02 : data/default_model.pt",
    ),
}

_CHUNK = 1 << 16


def default_cache_dir() -> Path:
    """The user cache folder of the study (``$FM_CACHE_DIR``, else the XDG cache, else ``~/.cache``)."""
    if os.environ.get("FM_CACHE_DIR"):
        return Path(os.environ["FM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fm-suitability"


def verify(path: str | os.PathLike, spec: WeightsSpec) -> Path:
    """Check a file's size and sha256 against ``spec``.

    Raises:
        WeightsCorrupt: Wrong size (e.g. truncated) or wrong checksum, with both values and the file named.
    """
    path = Path(path)
    size = path.stat().st_size
    if size != spec.size:
        raise WeightsCorrupt(
            f"{path}: {size} bytes, expected {spec.size} for {spec.source} "
            f"({'truncated' if size < spec.size else 'not this file'}); delete it or point to a good copy"
        )
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise WeightsCorrupt(f"{path}: sha256 {digest}, expected {spec.sha256} for {spec.source}")
    return path


def resolve_weights(
    name: str | WeightsSpec,
    path: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Path to a verified copy of the named weights (``"galileo_nano"`` or ``"presto"``).

    Args:
        name: A key of :data:`SPECS`, or a :class:`WeightsSpec` (the tests use a loopback URL this way).
        path: Explicit file to use; it must exist and match the pinned checksum.
        cache_dir: The user cache (default :func:`default_cache_dir`).
        download: Allow the network step; default: yes unless ``$FM_OFFLINE`` is set to a non-empty value.
        timeout: Seconds before a stalled connection counts as offline.
        progress: Show a tqdm bar while downloading.

    Returns:
        The path of the verified file.

    Raises:
        FileNotFoundError: An explicit ``path`` that does not exist.
        WeightsCorrupt: A file found or downloaded has the wrong size or checksum.
        WeightsUnavailable: No copy found and downloading is disabled or failed (message: what was tried).
    """
    spec = name if isinstance(name, WeightsSpec) else _spec(name)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: weights file for {spec.name} not found (expected {spec.source})"
            )
        return verify(path, spec)
    tried = []
    env_dir = os.environ.get("FM_WEIGHTS_DIR")
    if env_dir:
        candidate = Path(env_dir) / spec.name / spec.filename
        if candidate.is_file():
            return verify(candidate, spec)
        tried.append(f"{candidate} (FM_WEIGHTS_DIR) does not exist")
    cached = Path(cache_dir or default_cache_dir()) / "weights" / spec.name / spec.filename
    if cached.is_file():
        return verify(cached, spec)
    tried.append(f"{cached} (cache) does not exist")
    if download is None:
        download = not os.environ.get("FM_OFFLINE")
    if not download:
        raise WeightsUnavailable(
            f"{spec.name} weights unavailable: " + "; ".join(tried) + "; downloading disabled"
        )
    try:
        return _download(spec, cached, timeout=timeout, progress=progress)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise WeightsUnavailable(
            f"{spec.name} weights unavailable: "
            + "; ".join(tried)
            + f"; download from {spec.url} failed: {reason}"
        ) from err


def _spec(name: str) -> WeightsSpec:
    if name not in SPECS:
        raise KeyError(f"unknown weights {name!r}; known: {sorted(SPECS)}")
    return SPECS[name]


def _download(spec: WeightsSpec, dest: Path, *, timeout: float, progress: bool) -> Path:
    """Fetch ``spec.url`` into ``dest`` through ``dest.part``, resuming a partial file, verifying before rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if have > spec.size:
        part.unlink()
        have = 0
    request = urllib.request.Request(spec.url, headers={"User-Agent": "fm-suitability"})
    if 0 < have < spec.size:
        request.add_header("Range", f"bytes={have}-")
    if have < spec.size:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            resumed = have > 0 and resp.status == 206
            mode = "ab" if resumed else "wb"
            have = have if resumed else 0
            with (
                open(part, mode) as fh,
                tqdm(
                    total=spec.size,
                    initial=have,
                    unit="B",
                    unit_scale=True,
                    desc=f"{spec.name} weights",
                    disable=not progress,
                ) as bar,
            ):
                try:
                    for block in iter(lambda: resp.read(_CHUNK), b""):
                        fh.write(block)
                        bar.update(len(block))
                except (http.client.HTTPException, OSError):
                    pass  # connection cut: what arrived stays in the .part file; the size check below reports
    size = part.stat().st_size
    if size < spec.size:
        raise WeightsUnavailable(
            f"{spec.name} weights unavailable: download from {spec.url} stopped at {size} of {spec.size} bytes; "
            f"the partial file {part} is kept and the next call resumes it"
        )
    try:
        verify(part, spec)
    except WeightsCorrupt as err:
        part.unlink()
        raise WeightsCorrupt(f"download from {spec.url} is not the pinned file ({err}); removed it") from err
    os.replace(part, dest)
    return dest

"""Fetch the three original datasets into the layouts :mod:`helpers.data.datasets` reads.

``python -m helpers.data.download NAME --to DIR`` with NAME one of ``sen1floods11``, ``burn_scars``, ``crop``.

Why this exists: the study's numbers are only as good as the bytes behind them, so every file is verified (size and
checksum) before it is given its final name, interrupted downloads resume instead of starting over, and the result
is checked by opening it with the same loader the notebooks use.

Sources (what was checked, from public pages and code, in 2025; re-check if a download fails):

* **Sen1Floods11** (hand-labelled part): public Google Cloud Storage bucket ``sen1floods11``, objects under
  ``v1.1/data/flood_events/HandLabeled/{S2Hand,LabelHand,S1Hand}/`` and split lists
  ``v1.1/splits/flood_handlabeled/flood_{train,valid,test,bolivia}_data.csv`` (first column an S1Hand file name).
  Listed with the JSON API, which gives each object's size and base64 MD5; downloaded over plain HTTPS.
* **HLS Burn Scars** (``ibm-nasa-geospatial/hls_burn_scars``): since commit 80ca8df the repo ships one archive,
  ``hls_burn_scars.tar.gz`` (2,645,552,531 bytes, sha256 ``4e6f99a7…e8e6`` per its LFS pointer), whose members are
  ``training/…`` and ``validation/…`` at the archive root.
* **Multi-temporal crop** (``ibm-nasa-geospatial/multi-temporal-crop-classification``): ``training_chips.tgz``
  (10.6 GB), ``validation_chips.tgz`` (1,179,542,384 bytes, sha256 ``d6e616cc…2fd3``), ``training_data.txt`` and
  ``validation_data.txt`` at the repo root; members are ``training_chips/chip_<r>_<c>_merged.tif`` /
  ``….mask.tif`` and the archives also carry macOS ``._*`` resource-fork twins, which are skipped.
  Not verified here: the member layout of ``training_chips.tgz`` (assumed like the validation archive; the
  arrangement step searches for the folder rather than assuming its depth) and its sha256 (taken from the hub's
  LFS metadata at download time).

Hub files are checked against the hub's own metadata (LFS sha256, or the git blob id of small files) and against
the digests pinned above; a disagreement stops the download rather than silently using changed data.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

GCS_BASE_URL = "https://storage.googleapis.com"
SEN1FLOODS11_BUCKET = "sen1floods11"
SEN1FLOODS11_HAND = "v1.1/data/flood_events/HandLabeled/"
SEN1FLOODS11_SPLITS = "v1.1/splits/flood_handlabeled/"
SEN1FLOODS11_SPLIT_FILES = tuple(f"flood_{s}_data.csv" for s in ("train", "valid", "test", "bolivia"))

CHUNK = 1 << 20
#: HTTP statuses worth another try (the server may recover); anything else 4xx is final.
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

T = TypeVar("T")


class DownloadError(RuntimeError):
    """A file could not be fetched, or what arrived is not what the source promised."""


# ---------------------------------------------------------------------------------------------------- checksums
def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest of a file, read in chunks (archives are GBs). ``algorithm``: any hashlib name or ``git-sha1``."""
    path = Path(path)
    if algorithm == "git-sha1":  # the object id git (and the hub) gives small non-LFS files
        h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    else:
        h = hashlib.new(algorithm, usedforsecurity=False)  # integrity checks, not security
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, size: int | None, digests: dict[str, str], source: str) -> None:
    """Raise unless ``path`` has the expected size and every expected digest (hex, lower case)."""
    got_size = path.stat().st_size
    if size is not None and got_size != size:
        raise DownloadError(f"{source}: size mismatch, expected {size:,} bytes, got {got_size:,} ({path})")
    for algorithm, expected in digests.items():
        got = file_digest(path, algorithm)
        if got != expected.lower():
            raise DownloadError(f"{source}: {algorithm} mismatch, expected {expected}, got {got} ({path})")


# ---------------------------------------------------------------------------------------------------- HTTP
def _retrying(fn: Callable[[], T], what: str, retries: int, wait: float) -> T:
    """Call ``fn``; retry transient network failures with growing waits, fail at once on final HTTP errors."""
    for attempt in range(1, retries + 1):
        try:
            return fn()
        except urllib.error.HTTPError as err:
            if err.code not in RETRY_STATUS or attempt == retries:
                raise DownloadError(f"{what}: HTTP {err.code} {err.reason}") from err
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            if attempt == retries:
                raise DownloadError(f"{what}: failed after {retries} attempts ({err})") from err
        time.sleep(wait * attempt)
    raise AssertionError("unreachable")


def _open(url: str, headers: dict[str, str] | None = None, timeout: float = 60):
    req = urllib.request.Request(url, headers={"User-Agent": "fm-suitability-download/1", **(headers or {})})
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - https or the tests' loopback server


def _fetch_into(url: str, part: Path, bar: tqdm | None, timeout: float) -> None:
    """Append the rest of ``url`` to ``part``, asking only for the missing bytes (HTTP Range)."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, {"Range": f"bytes={offset}-"} if offset else None, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the partial file is already longer than the object: start over
            part.unlink()
            if bar is not None:
                bar.update(-offset)
            return _fetch_into(url, part, bar, timeout)
        raise
    with resp:
        if offset and resp.status != 206:  # the server ignored the range and sends the whole file
            if bar is not None:
                bar.update(-offset)
            offset = 0
        elif offset and not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            raise DownloadError(
                f"{url}: asked for bytes {offset}- but got Content-Range {resp.headers.get('Content-Range')!r}"
            )
        announced = int(resp.headers.get("Content-Length") or -1)
        received = 0
        with open(part, "ab" if offset else "wb") as f:
            while block := resp.read(CHUNK):
                f.write(block)
                received += len(block)
                if bar is not None:
                    bar.update(len(block))
        if received < announced:  # http.client returns short reads silently when the peer closes early
            raise http.client.IncompleteRead(b"", announced - received)


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    retries: int = 4,
    retry_wait: float = 2.0,
    timeout: float = 60.0,
    bar: tqdm | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resumable and verified; the final name appears only for verified bytes.

    Bytes go to ``dest + ".part"``; a rerun (or a retry after a dropped connection) continues it with an HTTP
    Range request. When the transfer ends, size and checksums are checked, and only then is the file renamed
    (atomically) to ``dest``. A ``dest`` that already verifies is kept without a request.

    Args:
        url: The source.
        dest: The final path.
        size: Expected size in bytes, if known.
        md5: Expected MD5 (hex), e.g. from a bucket listing.
        sha256: Expected SHA-256 (hex), when pinned.
        retries: Attempts for transient failures (connection drops, timeouts, HTTP 408/429/5xx).
        retry_wait: Seconds of back-off, times the attempt number.
        timeout: Socket timeout in seconds.
        bar: A shared byte progress bar to update; ``None`` shows one for this file.

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: HTTP error (e.g. 404), repeated network failure, or size/checksum mismatch. On a mismatch
            the partial file is deleted (a rerun starts clean) and no file is left at ``dest``.
    """
    dest = Path(dest)
    digests = {k: v for k, v in (("md5", md5), ("sha256", sha256)) if v}
    if dest.is_file():
        try:
            _verify(dest, size, digests, url)
            if bar is not None:
                bar.update(dest.stat().st_size)
            return dest
        except DownloadError:
            pass  # stale or corrupt: fetch again; it is only replaced once the new bytes verify
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if part.exists() and size is not None and part.stat().st_size > size:
        part.unlink()
    own_bar = bar is None
    if own_bar:
        bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, leave=False)
    try:
        if part.exists():
            bar.update(part.stat().st_size)
        if not (size is not None and part.exists() and part.stat().st_size == size):
            _retrying(lambda: _fetch_into(url, part, bar, timeout), url, retries, retry_wait)
        try:
            _verify(part, size, digests, url)
        except DownloadError:
            part.unlink(missing_ok=True)
            raise
    finally:
        if own_bar:
            bar.close()
    os.replace(part, dest)
    return dest


# ---------------------------------------------------------------------------------------------------- Sen1Floods11
def list_bucket(
    bucket: str, prefix: str, *, base_url: str = GCS_BASE_URL, retries: int = 4, retry_wait: float = 2.0
) -> list[dict]:
    """Objects under ``prefix`` via the GCS JSON API: dicts with ``name``, ``size`` (int) and ``md5`` (hex or None).

    Follows ``nextPageToken`` (the API returns at most 1,000 objects a page).
    """
    objects, token = [], None
    while True:
        query = {"prefix": prefix, "fields": "items(name,size,md5Hash),nextPageToken"}
        if token:
            query["pageToken"] = token
        url = f"{base_url.rstrip('/')}/storage/v1/b/{bucket}/o?{urllib.parse.urlencode(query)}"

        def get(url: str = url) -> bytes:
            with _open(url) as resp:
                return resp.read()

        try:
            page = json.loads(_retrying(get, url, retries, retry_wait))
        except json.JSONDecodeError as err:
            raise DownloadError(f"{url}: listing is not JSON ({err})") from err
        for item in page.get("items", []):
            md5 = item.get("md5Hash")  # composite objects have none; then only the size is checked
            objects.append(
                {
                    "name": item["name"],
                    "size": int(item["size"]),
                    "md5": base64.b64decode(md5).hex() if md5 else None,
                }
            )
        token = page.get("nextPageToken")
        if not token:
            return objects


def _safe_basename(name: str, source: str) -> str:
    """The last path part of an object name, refused unless it is a plain file name (no traversal)."""
    base = name.rsplit("/", 1)[-1]
    if not _SAFE_NAME.match(base) or base in {".", ".."}:
        raise DownloadError(f"{source}: refusing object name {name!r} (not a plain file name)")
    return base


def fetch_sen1floods11(
    dest: str | os.PathLike,
    *,
    include_s1: bool = False,
    base_url: str = GCS_BASE_URL,
    retries: int = 4,
    retry_wait: float = 2.0,
) -> Path:
    """Download the hand-labelled Sen1Floods11 chips into ``dest/{S2Hand,LabelHand[,S1Hand]}/`` plus split CSVs.

    Every object is verified against the size and MD5 of the bucket listing; a rerun skips verified files and
    resumes partial ones. About 1.0 GB (S2Hand + LabelHand), plus 0.7 GB with ``include_s1``.

    Args:
        dest: Dataset root to create (what ``datasets.open("sen1floods11", dest)`` reads).
        include_s1: Also fetch the Sentinel-1 chips (unused by the HLS models).
        base_url: Storage endpoint; tests point it at a loopback server.
        retries: Attempts per request for transient failures.
        retry_wait: Back-off seconds per attempt.

    Raises:
        DownloadError: Listing or download failure, mismatch, or a chip named in a split without its files.
    """
    dest = Path(dest)
    folders = ["S2Hand", "LabelHand"] + (["S1Hand"] if include_s1 else [])
    jobs: list[tuple[dict, Path]] = []
    for folder in folders:
        listed = [
            o
            for o in list_bucket(
                SEN1FLOODS11_BUCKET,
                f"{SEN1FLOODS11_HAND}{folder}/",
                base_url=base_url,
                retries=retries,
                retry_wait=retry_wait,
            )
            if o["name"].endswith(".tif")
        ]
        if not listed:
            raise DownloadError(
                f"{base_url}: no .tif objects under gs://{SEN1FLOODS11_BUCKET}/{SEN1FLOODS11_HAND}{folder}/"
            )
        jobs += [(o, dest / folder / _safe_basename(o["name"], base_url)) for o in listed]
    splits = {
        o["name"].rsplit("/", 1)[-1]: o
        for o in list_bucket(
            SEN1FLOODS11_BUCKET,
            SEN1FLOODS11_SPLITS,
            base_url=base_url,
            retries=retries,
            retry_wait=retry_wait,
        )
    }
    missing = [n for n in SEN1FLOODS11_SPLIT_FILES if n not in splits]
    if missing:
        raise DownloadError(f"{base_url}: split lists {missing} not found under {SEN1FLOODS11_SPLITS}")
    jobs += [(splits[n], dest / n) for n in SEN1FLOODS11_SPLIT_FILES]

    _warn_if_low_space(dest, sum(o["size"] for o, _ in jobs))
    with tqdm(
        total=sum(o["size"] for o, _ in jobs),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc="sen1floods11",
    ) as bar:
        for obj, path in jobs:
            url = f"{base_url.rstrip('/')}/{SEN1FLOODS11_BUCKET}/{urllib.parse.quote(obj['name'])}"
            download_file(
                url, path, size=obj["size"], md5=obj["md5"], retries=retries, retry_wait=retry_wait, bar=bar
            )
    _check_layout("sen1floods11", dest)
    _write_record(dest, "sen1floods11", {"source": f"{base_url}/{SEN1FLOODS11_BUCKET}", "files": len(jobs)})
    return dest


# ---------------------------------------------------------------------------------------------------- Hugging Face
@dataclass(frozen=True)
class HubDataset:
    """A dataset repo on the Hugging Face hub and how its files become our layout."""

    repo_id: str
    files: tuple[str, ...]  # files to fetch (archives and split lists)
    folders: tuple[str, ...]  # folders the archives must yield, moved to the dataset root
    lists: tuple[str, ...] = ()  # small files copied to the dataset root
    sha256: dict[str, str] = field(default_factory=dict)  # digests pinned from the LFS pointers we read
    approx_bytes: int = 0  # archives plus extracted files, for the free-space warning


HUB = {
    "burn_scars": HubDataset(
        repo_id="ibm-nasa-geospatial/hls_burn_scars",
        files=("hls_burn_scars.tar.gz",),
        folders=("training", "validation"),
        sha256={"hls_burn_scars.tar.gz": "4e6f99a75cb2c500547b20662a15cbd531dc421376f815e91846ea542798e8e6"},
        approx_bytes=9 * 10**9,
    ),
    "crop": HubDataset(
        repo_id="ibm-nasa-geospatial/multi-temporal-crop-classification",
        files=("training_chips.tgz", "validation_chips.tgz", "training_data.txt", "validation_data.txt"),
        folders=("training_chips", "validation_chips"),
        lists=("training_data.txt", "validation_data.txt"),
        sha256={"validation_chips.tgz": "d6e616cc008858a1935a8937e0cdf852d574754273b0655fb696bd29aebd2fd3"},
        approx_bytes=20 * 10**9,
    ),
}


def hub_digests(repo_id: str, paths: Iterable[str], revision: str) -> dict[str, tuple[int, str, str]]:
    """``{path: (size, algorithm, hex)}`` from the hub's metadata: LFS sha256, else the git blob id (sha1)."""
    from huggingface_hub import HfApi

    out = {}
    for info in HfApi().get_paths_info(repo_id, list(paths), repo_type="dataset", revision=revision):
        lfs = getattr(info, "lfs", None)
        out[info.path] = (info.size, "sha256", lfs.sha256) if lfs else (info.size, "git-sha1", info.blob_id)
    return out


def _is_resource_fork(name: str) -> bool:
    """Whether a member is macOS metadata (``._x``, ``__MACOSX/``) that tar on a Mac adds: not data, not TIFFs."""
    parts = name.split("/")
    return any(p.startswith("._") or p == "__MACOSX" for p in parts)


def extract_archive(archive: str | os.PathLike, into: str | os.PathLike) -> Path:
    """Extract a tar(.gz) archive safely: regular files and folders only, no absolute or ``..`` paths, no links."""
    archive, into = Path(archive), Path(into)
    into.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            members = []
            for m in tar:
                if _is_resource_fork(m.name) or not (m.isfile() or m.isdir()):
                    continue
                if m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise DownloadError(f"{archive}: refusing member {m.name!r} (path outside the archive)")
                members.append(m)
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(into, members=tqdm(members, desc=f"extract {archive.name}", unit="file"), **kwargs)
    except tarfile.TarError as err:
        raise DownloadError(f"{archive}: not a readable tar archive ({err})") from err
    return into


def _find_folder(root: Path, name: str, pattern: str) -> Path | None:
    """The shallowest folder called ``name`` under ``root`` that holds files matching ``pattern``."""
    hits = sorted(
        (p for p in root.rglob(name) if p.is_dir() and any(p.glob(pattern))), key=lambda p: len(p.parts)
    )
    return hits[0] if hits else None


def _refuse_existing(spec: HubDataset, dest: Path) -> None:
    clash = [f for f in spec.folders if (dest / f).exists()]
    if clash:
        raise DownloadError(f"{dest}: {clash} already exist; remove them or choose another --to folder")


def arrange_hub(name: str, staging: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Turn a staged hub snapshot (archives + lists) into the layout :mod:`helpers.data.datasets` reads.

    Archives are extracted inside ``staging``; the expected folders (``training/``, ``validation/`` or
    ``training_chips/``, ``validation_chips/``) are found wherever the archive put them and moved into ``dest``,
    and split lists are copied next to them. Existing folders in ``dest`` are never overwritten.

    Raises:
        DownloadError: A folder already in ``dest``, an expected folder missing from the archives, or a chip
            named in a split without its files.
    """
    spec, staging, dest = HUB[name], Path(staging), Path(dest)
    _refuse_existing(spec, dest)
    extracted = staging / "_extracted"
    for archive in (f for f in spec.files if f.endswith((".tar.gz", ".tgz", ".tar"))):
        extract_archive(staging / archive, extracted / archive.split(".")[0])
    found = {f: _find_folder(extracted, f, "*_merged.tif") for f in spec.folders}
    missing = [f for f, p in found.items() if p is None]
    if missing:
        raise DownloadError(f"{staging}: the archives hold no {missing} folder(s) with *_merged.tif files")
    dest.mkdir(parents=True, exist_ok=True)
    for f, path in found.items():
        shutil.move(str(path), dest / f)
    for lst in spec.lists:
        shutil.copyfile(staging / lst, dest / lst)
    shutil.rmtree(extracted)
    _check_layout(name, dest)
    return dest


def fetch_hub(
    name: str, dest: str | os.PathLike, *, revision: str = "main", keep_archives: bool = False
) -> Path:
    """Download a hub-hosted dataset (``"burn_scars"`` or ``"crop"``) into ``dest`` in the loader's layout.

    Files are staged in ``dest/.staging`` with ``huggingface_hub.snapshot_download`` (which resumes), verified
    against the hub's digests and our pinned ones, then extracted and arranged.

    Args:
        name: ``"burn_scars"`` or ``"crop"``.
        dest: Dataset root.
        revision: Hub revision (branch, tag or commit); pin a commit for exact reproducibility.
        keep_archives: Keep the staged archives after a successful arrangement (else deleted to save space).

    Raises:
        DownloadError: Download, verification or arrangement failure.
    """
    from huggingface_hub import snapshot_download

    spec, dest = HUB[name], Path(dest)
    if all((dest / f).is_dir() for f in spec.folders) and _record(dest, name):
        print(f"{name}: already complete in {dest} (see {_record_path(dest, name).name})")
        return dest
    _refuse_existing(spec, dest)  # before GBs of download, not after
    staging = dest / ".staging"
    _warn_if_low_space(dest, spec.approx_bytes)
    try:
        snapshot_download(
            spec.repo_id,
            repo_type="dataset",
            revision=revision,
            local_dir=staging,
            allow_patterns=list(spec.files),
        )
    except Exception as err:  # the hub client raises many types; the user needs the repo and the cause
        raise DownloadError(
            f"{spec.repo_id}@{revision}: hub download failed ({type(err).__name__}: {err})"
        ) from err
    expected = hub_digests(spec.repo_id, spec.files, revision)
    for f in spec.files:
        if f not in expected:
            raise DownloadError(f"{spec.repo_id}@{revision}: {f} is not in the repo")
        size, algorithm, digest = expected[f]
        pinned = spec.sha256.get(f)
        if pinned and algorithm == "sha256" and digest != pinned:
            raise DownloadError(
                f"{spec.repo_id}@{revision}: {f} changed upstream (hub sha256 {digest}, pinned {pinned}); "
                "the data may differ from the study's, check the repo history"
            )
        if not (staging / f).is_file():
            raise DownloadError(f"{spec.repo_id}@{revision}: {f} missing after download in {staging}")
        _verify(
            staging / f,
            size,
            {algorithm: digest} | ({"sha256": pinned} if pinned else {}),
            f"{spec.repo_id}/{f}",
        )
    arrange_hub(name, staging, dest)
    if not keep_archives:
        shutil.rmtree(staging)
    _write_record(
        dest,
        name,
        {"repo_id": spec.repo_id, "revision": revision, "files": {f: list(v) for f, v in expected.items()}},
    )
    return dest


# ---------------------------------------------------------------------------------------------------- shared
def _check_layout(name: str, dest: Path) -> None:
    """Open the result with the study's own loader and make sure every chip of every split has its files."""
    from helpers.data import datasets
    from helpers.data.io import DataError

    try:
        ds = datasets.open(name, dest)
        n = 0
        for split in ds.splits:
            for chip in ds.chip_ids(split):
                ds.paths(chip)
                n += 1
    except DataError as err:
        raise DownloadError(f"{dest}: download finished but the {name} layout is incomplete: {err}") from err
    if n == 0:
        raise DownloadError(f"{dest}: download finished but no {name} chips were found")
    print(f"{name}: {n} chips in {dest} ({', '.join(f'{s}={len(ds.chip_ids(s))}' for s in ds.splits)})")


def _record_path(dest: Path, name: str) -> Path:
    return dest / f".download-{name}.json"


def _record(dest: Path, name: str) -> dict | None:
    path = _record_path(dest, name)
    return json.loads(path.read_text()) if path.is_file() else None


def _write_record(dest: Path, name: str, info: dict) -> None:
    """Provenance of a finished download (source, revision, digests), written atomically."""
    path = _record_path(dest, name)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps({"dataset": name, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **info}, indent=1)
    )
    os.replace(tmp, path)


def _warn_if_low_space(dest: Path, needed: int) -> None:
    probe = next((p for p in (dest, *dest.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(probe).free
    if free < needed:
        print(
            f"warning: {free / 1e9:.1f} GB free at {probe}, about {needed / 1e9:.1f} GB needed",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m helpers.data.download NAME --to DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.data.download", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("name", choices=["sen1floods11", "burn_scars", "crop"])
    parser.add_argument("--to", required=True, type=Path, help="dataset root to create")
    parser.add_argument("--s1", action="store_true", help="sen1floods11: also fetch the Sentinel-1 chips")
    parser.add_argument("--base-url", default=GCS_BASE_URL, help="sen1floods11: storage endpoint")
    parser.add_argument("--revision", default="main", help="hub datasets: branch, tag or commit")
    parser.add_argument(
        "--keep-archives", action="store_true", help="hub datasets: keep the downloaded archives"
    )
    args = parser.parse_args(argv)
    try:
        if args.name == "sen1floods11":
            fetch_sen1floods11(args.to, include_s1=args.s1, base_url=args.base_url)
        else:
            fetch_hub(args.name, args.to, revision=args.revision, keep_archives=args.keep_archives)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"done: {args.name} in {args.to}; open it with helpers.data.datasets.open({args.name!r}, {str(args.to)!r})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Downloads against a loopback HTTP server and fake hub snapshots: no test touches the internet."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import shutil
import tarfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import make_fixtures
import numpy as np
import pytest

from helpers.data import datasets
from helpers.data import download as dl


# ---------------------------------------------------------------------------------------------------- fake server
class FakeStorage:
    """What the loopback server serves: files by URL path, a GCS-style listing, and failure switches."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.md5_override: dict[str, str] = {}  # object name -> base64 md5 to list instead of the true one
        self.truncate_once: set[str] = set()  # paths whose next response stops halfway
        self.ignore_range = False
        self.page_size = 4
        self.log: list[tuple[str, str | None]] = []  # (path, Range header)

    def put_object(self, name: str, data: bytes, bucket: str = dl.SEN1FLOODS11_BUCKET) -> None:
        self.files[f"/{bucket}/{name}"] = data

    def objects(self, bucket: str, prefix: str) -> list[dict]:
        out = []
        for path, data in sorted(self.files.items()):
            name = path.removeprefix(f"/{bucket}/")
            if path.startswith(f"/{bucket}/") and name.startswith(prefix):
                md5 = self.md5_override.get(name, base64.b64encode(hashlib.md5(data).digest()).decode())
                out.append({"name": name, "size": str(len(data)), "md5Hash": md5})
        return out

    def object_gets(self) -> list[str]:
        return [p for p, _ in self.log if not p.startswith("/storage/")]


class _Handler(BaseHTTPRequestHandler):
    store: FakeStorage

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(
        self, status: int, body: bytes, headers: dict[str, str] | None = None, cut: bool = False
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        self.store.log.append((path, self.headers.get("Range")))
        if path.startswith("/storage/v1/b/"):
            bucket = path.split("/")[4]
            query = urllib.parse.parse_qs(url.query)
            items = self.store.objects(bucket, query["prefix"][0])
            start = int(query.get("pageToken", ["0"])[0])
            page: dict = {"items": items[start : start + self.store.page_size]}
            if start + self.store.page_size < len(items):
                page["nextPageToken"] = str(start + self.store.page_size)
            return self._send(200, json.dumps(page).encode(), {"Content-Type": "application/json"})
        if path not in self.store.files:
            return self._send(404, b"not found")
        data = self.store.files[path]
        cut = path in self.store.truncate_once
        self.store.truncate_once.discard(path)
        rng = self.headers.get("Range")
        if rng and not self.store.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            return self._send(206, data[start:], headers, cut)
        self._send(200, data, cut=cut)


@pytest.fixture
def server():
    store = FakeStorage()
    handler = type("Handler", (_Handler,), {"store": store})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    store.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield store
    httpd.shutdown()
    httpd.server_close()


def _payload(n: int = 300_000, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


# ---------------------------------------------------------------------------------------------------- download_file
def test_full_download_verifies_and_renames(server, tmp_path):
    data = _payload()
    server.files["/f.bin"] = data
    out = dl.download_file(f"{server.url}/f.bin", tmp_path / "f.bin", size=len(data), md5=_md5(data))
    assert out.read_bytes() == data
    assert not (tmp_path / "f.bin.part").exists()
    assert server.log == [("/f.bin", None)]
    # a verified file is kept without another request
    dl.download_file(f"{server.url}/f.bin", out, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert len(server.log) == 1


def test_resume_from_partial_file_uses_range(server, tmp_path):
    data = _payload()
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data[:123_457])
    dl.download_file(f"{server.url}/f.bin", tmp_path / "f.bin", size=len(data), md5=_md5(data))
    assert (tmp_path / "f.bin").read_bytes() == data
    assert server.log == [("/f.bin", "bytes=123457-")]


def test_server_ignoring_range_still_gives_the_right_bytes(server, tmp_path):
    data = _payload()
    server.files["/f.bin"] = data
    server.ignore_range = True
    (tmp_path / "f.bin.part").write_bytes(data[:1000])
    dl.download_file(f"{server.url}/f.bin", tmp_path / "f.bin", size=len(data), md5=_md5(data))
    assert (tmp_path / "f.bin").read_bytes() == data


def test_partial_longer_than_object_starts_over(server, tmp_path):
    data = _payload(5000)
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(b"x" * 6000)  # size unknown to the caller: the server answers 416
    dl.download_file(f"{server.url}/f.bin", tmp_path / "f.bin", md5=_md5(data), retry_wait=0)
    assert (tmp_path / "f.bin").read_bytes() == data


def test_dropped_connection_is_retried_and_resumed(server, tmp_path):
    data = _payload()
    server.files["/f.bin"] = data
    server.truncate_once.add("/f.bin")
    dl.download_file(f"{server.url}/f.bin", tmp_path / "f.bin", size=len(data), md5=_md5(data), retry_wait=0)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert server.log == [("/f.bin", None), ("/f.bin", f"bytes={len(data) // 2}-")]


def test_checksum_mismatch_leaves_no_file(server, tmp_path):
    data = _payload()
    server.files["/f.bin"] = data
    with pytest.raises(dl.DownloadError, match=r"md5 mismatch, expected 0+, got " + _md5(data)):
        dl.download_file(f"{server.url}/f.bin", tmp_path / "f.bin", size=len(data), md5="0" * 32)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(dl.DownloadError, match="sha256 mismatch"):
        dl.download_file(f"{server.url}/f.bin", tmp_path / "f.bin", sha256="1" * 64)
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_leaves_no_file(server, tmp_path):
    data = _payload()
    server.files["/f.bin"] = data
    with pytest.raises(
        dl.DownloadError, match=rf"size mismatch, expected {len(data) - 1:,} bytes, got {len(data):,}"
    ):
        dl.download_file(f"{server.url}/f.bin", tmp_path / "f.bin", size=len(data) - 1)
    assert list(tmp_path.iterdir()) == []


def test_404_is_a_clear_error_without_retries(server, tmp_path):
    with pytest.raises(dl.DownloadError, match=r"/missing\.bin: HTTP 404"):
        dl.download_file(
            f"{server.url}/missing.bin", tmp_path / "m.bin", retry_wait=5
        )  # no wait: 404 is final
    assert len(server.log) == 1
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_fails_after_retries(tmp_path):
    with pytest.raises(dl.DownloadError, match="failed after 2 attempts"):
        dl.download_file("http://127.0.0.1:9/x", tmp_path / "x", retries=2, retry_wait=0, timeout=2)


# ---------------------------------------------------------------------------------------------------- Sen1Floods11
def _serve_sen1floods11(server: FakeStorage, tmp_path: Path) -> Path:
    """Put a fixture Sen1Floods11 tree into the fake bucket at the official object names."""
    src = make_fixtures.make_sen1floods11(tmp_path / "src", counts=(3, 1, 1, 1))
    for folder in ("S2Hand", "LabelHand", "S1Hand"):
        for f in sorted((src / folder).iterdir()):
            server.put_object(f"{dl.SEN1FLOODS11_HAND}{folder}/{f.name}", f.read_bytes())
    for name in dl.SEN1FLOODS11_SPLIT_FILES:
        server.put_object(f"{dl.SEN1FLOODS11_SPLITS}{name}", (src / name).read_bytes())
    server.put_object(
        f"{dl.SEN1FLOODS11_HAND}S2Hand/", b""
    )  # folder placeholder objects exist in real buckets
    return src


def test_sen1floods11_end_to_end(server, tmp_path):
    src = _serve_sen1floods11(server, tmp_path)
    dest = dl.fetch_sen1floods11(tmp_path / "s1f", base_url=server.url, retry_wait=0)
    for folder in ("S2Hand", "LabelHand"):
        got = sorted(p.name for p in (dest / folder).iterdir())
        assert got == sorted(p.name for p in (src / folder).iterdir())
        assert all((dest / folder / n).read_bytes() == (src / folder / n).read_bytes() for n in got)
    assert not (dest / "S1Hand").exists()
    assert not list(dest.rglob("*.part"))
    ds = datasets.open("sen1floods11", dest)
    assert {s: len(ds.chip_ids(s)) for s in ds.splits} == {"train": 3, "val": 1, "test": 1, "bolivia": 1}
    x, y = ds.read(ds.chip_ids("test")[0])
    x0, y0 = datasets.open("sen1floods11", src).read(ds.chip_ids("test")[0])
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(x.values, x0.values)
    assert json.loads((dest / ".download-sen1floods11.json").read_text())["files"] == 6 + 6 + 4
    # listings were paginated (page size 4 < 6 objects per folder) and a rerun downloads nothing again
    assert (
        sum(p.startswith("/storage/") for p, _ in server.log) == 2 + 2 + 1
    )  # S2Hand, LabelHand: 2 pages each
    n_gets = len(server.object_gets())
    dl.fetch_sen1floods11(dest, base_url=server.url, retry_wait=0)
    assert len(server.object_gets()) == n_gets
    dl.fetch_sen1floods11(dest, include_s1=True, base_url=server.url, retry_wait=0)
    assert sorted(p.name for p in (dest / "S1Hand").iterdir()) == sorted(
        p.name for p in (src / "S1Hand").iterdir()
    )


def test_list_bucket_follows_pages(server):
    for i in range(10):
        server.put_object(f"p/{i:02d}.tif", bytes([i]) * (i + 1))
    server.page_size = 3
    objs = dl.list_bucket(dl.SEN1FLOODS11_BUCKET, "p/", base_url=server.url)
    assert [o["name"] for o in objs] == [f"p/{i:02d}.tif" for i in range(10)]
    assert objs[4]["size"] == 5 and objs[4]["md5"] == _md5(bytes([4]) * 5)
    assert len(server.log) == 4


def test_sen1floods11_listing_md5_mismatch(server, tmp_path):
    _serve_sen1floods11(server, tmp_path)
    bad = f"{dl.SEN1FLOODS11_HAND}LabelHand/Ghana_00000_LabelHand.tif"
    server.md5_override[bad] = base64.b64encode(b"\0" * 16).decode()
    with pytest.raises(dl.DownloadError, match="Ghana_00000_LabelHand.tif: md5 mismatch"):
        dl.fetch_sen1floods11(tmp_path / "s1f", base_url=server.url, retry_wait=0)
    assert not (tmp_path / "s1f" / "LabelHand" / "Ghana_00000_LabelHand.tif").exists()
    assert not list((tmp_path / "s1f").rglob("*.part"))


def test_sen1floods11_chip_in_split_without_files(server, tmp_path):
    _serve_sen1floods11(server, tmp_path)
    del server.files[f"/{dl.SEN1FLOODS11_BUCKET}/{dl.SEN1FLOODS11_HAND}LabelHand/Spain_00000_LabelHand.tif"]
    with pytest.raises(dl.DownloadError, match="layout is incomplete.*Spain_00000_LabelHand.tif"):
        dl.fetch_sen1floods11(tmp_path / "s1f", base_url=server.url, retry_wait=0)


def test_cli_reports_errors(server, tmp_path, capsys):
    assert dl.main(["sen1floods11", "--to", str(tmp_path / "s"), "--base-url", server.url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no .tif objects under gs://sen1floods11/v1.1/" in err


# ---------------------------------------------------------------------------------------------------- hub layouts
def _tar(path: Path, members: dict[str, Path | bytes], symlink: str | None = None) -> Path:
    """A .tar.gz with the given member names (file contents from a path or bytes)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            data = content.read_bytes() if isinstance(content, Path) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


def _stage_burn(tmp_path: Path) -> tuple[Path, Path]:
    """Staged snapshot like the hub repo: hls_burn_scars.tar.gz with training/ and validation/ at its root."""
    src = make_fixtures.make_burn_scars(tmp_path / "src", n_train=3, n_test=2)
    members: dict[str, Path | bytes] = {}
    for f in sorted(src.rglob("*.tif")):
        rel = f.relative_to(src).as_posix()
        members[rel] = f
        members[f"{rel.split('/')[0]}/._{f.name}"] = b"\0\x05\x16\x07 AppleDouble"  # macOS twin: not a TIFF
    staging = tmp_path / "stage"
    staging.mkdir()
    _tar(staging / "hls_burn_scars.tar.gz", members, symlink="training/evil_merged.tif")
    return src, staging


def _stage_crop(tmp_path: Path) -> tuple[Path, Path]:
    """Staged snapshot like the hub repo: two .tgz archives with a top folder each, plus the two split lists."""
    src = make_fixtures.make_crop(tmp_path / "src", n_train=3, n_test=2)
    staging = tmp_path / "stage"
    staging.mkdir()
    for folder in ("training_chips", "validation_chips"):
        members: dict[str, Path | bytes] = {f"{folder}/._{folder}": b"junk"}
        members |= {f"{folder}/{f.name}": f for f in sorted((src / folder).iterdir())}
        _tar(staging / f"{folder}.tgz", members)
    for lst in ("training_data.txt", "validation_data.txt"):
        shutil.copyfile(src / lst, staging / lst)
    return src, staging


@pytest.mark.parametrize("name", ["burn_scars", "crop"])
def test_arrange_hub_gives_the_loader_layout(tmp_path, name):
    src, staging = (_stage_burn if name == "burn_scars" else _stage_crop)(tmp_path)
    dest = dl.arrange_hub(name, staging, tmp_path / "data")
    for folder in dl.HUB[name].folders:
        got = sorted(p.name for p in (dest / folder).iterdir())
        assert got == sorted(p.name for p in (src / folder).iterdir())  # no ._ twins, no symlink
    ds, ds0 = datasets.open(name, dest), datasets.open(name, src)
    assert {s: ds.chip_ids(s) for s in ds.splits} == {s: ds0.chip_ids(s) for s in ds0.splits}
    chip = ds.chip_ids("test")[0]
    np.testing.assert_array_equal(ds.read(chip)[1], ds0.read(chip)[1])
    with pytest.raises(dl.DownloadError, match="already exist"):
        dl.arrange_hub(name, staging, dest)


def test_extract_refuses_path_traversal(tmp_path):
    _tar(tmp_path / "bad.tar.gz", {"training/ok_merged.tif": b"1", "../evil.txt": b"2"})
    with pytest.raises(dl.DownloadError, match="refusing member '../evil.txt'"):
        dl.extract_archive(tmp_path / "bad.tar.gz", tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_arrange_hub_without_expected_folders(tmp_path):
    staging = tmp_path / "stage"
    staging.mkdir()
    _tar(staging / "hls_burn_scars.tar.gz", {"other/x_merged.tif": b"1"})
    with pytest.raises(dl.DownloadError, match=r"no \['training', 'validation'\] folder"):
        dl.arrange_hub("burn_scars", staging, tmp_path / "data")


def _fake_hub(monkeypatch, staged: Path, calls: list) -> None:
    """snapshot_download copies the staged files; hub metadata comes from those same bytes (git-sha1 for .txt)."""
    import huggingface_hub

    def snapshot_download(repo_id, *, repo_type, revision, local_dir, allow_patterns):
        calls.append((repo_id, repo_type, revision, sorted(allow_patterns)))
        shutil.copytree(staged, local_dir, dirs_exist_ok=True)
        return str(local_dir)

    def hub_digests(repo_id, paths, revision):
        algo = {p: "git-sha1" if p.endswith(".txt") else "sha256" for p in paths}
        return {p: ((staged / p).stat().st_size, algo[p], dl.file_digest(staged / p, algo[p])) for p in paths}

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(dl, "hub_digests", hub_digests)


def test_fetch_hub_end_to_end_with_fake_snapshot(tmp_path, monkeypatch):
    src, staged = _stage_crop(tmp_path)
    calls: list = []
    _fake_hub(monkeypatch, staged, calls)
    monkeypatch.setitem(dl.HUB, "crop", dataclasses.replace(dl.HUB["crop"], sha256={}))  # fake bytes, no pins
    dest = dl.fetch_hub("crop", tmp_path / "crop", revision="abc123")
    assert calls == [(dl.HUB["crop"].repo_id, "dataset", "abc123", sorted(dl.HUB["crop"].files))]
    assert (dest / "training_data.txt").read_bytes() == (src / "training_data.txt").read_bytes()
    assert not (dest / ".staging").exists()
    record = json.loads((dest / ".download-crop.json").read_text())
    assert record["revision"] == "abc123" and record["files"]["training_data.txt"][1] == "git-sha1"
    dl.fetch_hub("crop", dest)  # already complete: no second download
    assert len(calls) == 1


def test_fetch_hub_refuses_changed_upstream_and_corrupt_files(tmp_path, monkeypatch):
    _, staged = _stage_burn(tmp_path)
    _fake_hub(monkeypatch, staged, [])
    with pytest.raises(
        dl.DownloadError, match="changed upstream"
    ):  # the pinned real sha256 is not the fake's
        dl.fetch_hub("burn_scars", tmp_path / "a")
    monkeypatch.setitem(dl.HUB, "burn_scars", dataclasses.replace(dl.HUB["burn_scars"], sha256={}))
    real = dl.hub_digests
    monkeypatch.setattr(
        dl, "hub_digests", lambda *a: {k: (v[0], v[1], "0" * 64) for k, v in real(*a).items()}
    )
    with pytest.raises(dl.DownloadError, match="sha256 mismatch"):
        dl.fetch_hub("burn_scars", tmp_path / "b")
    assert not (tmp_path / "b" / "training").exists()


def test_git_blob_sha1_matches_git(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"hello\n")
    assert dl.file_digest(tmp_path / "a.txt", "git-sha1") == "ce013625030ba8dba906f756967f9e9ca394464a"

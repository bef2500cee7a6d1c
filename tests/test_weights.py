"""Weights resolution: explicit path, FM_WEIGHTS_DIR, cache, and a real HTTP download from a loopback server."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.models import weights

PAYLOAD = bytes(range(256)) * 300  # 76,800 bytes: several read chunks
# read before the autouse fixture clears the variable for the other tests
SHARED_WEIGHTS = Path(
    os.environ.get("FM_WEIGHTS_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "weights")
)


def spec_for(url: str, payload: bytes = PAYLOAD, name: str = "fixture") -> weights.WeightsSpec:
    return weights.WeightsSpec(
        name=name,
        filename="model.pt",
        url=url,
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        source="test fixture",
    )


class _Server:
    """Serves ``body`` at any path, honouring Range; can cut the first response short."""

    def __init__(self) -> None:
        self.body = PAYLOAD
        self.cut_first_at: int | None = None
        self.requests: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                rng = self.headers.get("Range")
                outer.requests.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                data = outer.body[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if outer.cut_first_at is not None and len(outer.requests) == 1:
                    self.wfile.write(data[: outer.cut_first_at])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/weights/model.pt"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FM_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("FM_OFFLINE", raising=False)
    monkeypatch.setenv("FM_CACHE_DIR", str(tmp_path / "cache"))


def test_download_verifies_and_caches(server: _Server, tmp_path: Path) -> None:
    spec = spec_for(server.url)
    got = weights.resolve_weights(spec, progress=False)
    assert got == tmp_path / "cache" / "weights" / "fixture" / "model.pt"
    assert got.read_bytes() == PAYLOAD
    assert not got.with_name("model.pt.part").exists()
    again = weights.resolve_weights(spec, progress=False)  # cache hit: no second request
    assert again == got and len(server.requests) == 1


def test_interrupted_download_is_resumed(server: _Server) -> None:
    server.cut_first_at = 10_000
    spec = spec_for(server.url)
    with pytest.raises(weights.WeightsUnavailable, match="stopped at 10000 of 76800 bytes"):
        weights.resolve_weights(spec, progress=False)
    got = weights.resolve_weights(spec, progress=False)
    assert got.read_bytes() == PAYLOAD
    assert server.requests == [None, "bytes=10000-"]


def test_checksum_mismatch_is_rejected_and_removed(server: _Server, tmp_path: Path) -> None:
    server.body = bytes(reversed(PAYLOAD))  # same size, different bytes
    with pytest.raises(weights.WeightsCorrupt, match="sha256 .* expected"):
        weights.resolve_weights(spec_for(server.url), progress=False)
    folder = tmp_path / "cache" / "weights" / "fixture"
    assert not any(folder.iterdir())


def test_offline_gives_unavailable_with_reason(tmp_path: Path) -> None:
    spec = spec_for("http://127.0.0.1:9/none.pt")  # discard port: connection refused
    with pytest.raises(
        weights.WeightsUnavailable, match="fixture weights unavailable: .*download from .* failed"
    ):
        weights.resolve_weights(spec, progress=False, timeout=5)
    with pytest.raises(weights.WeightsUnavailable, match="downloading disabled"):
        weights.resolve_weights(spec, download=False)


def test_offline_env_var_disables_download(monkeypatch: pytest.MonkeyPatch, server: _Server) -> None:
    monkeypatch.setenv("FM_OFFLINE", "1")
    with pytest.raises(weights.WeightsUnavailable, match="downloading disabled"):
        weights.resolve_weights(spec_for(server.url))
    assert server.requests == []


def test_explicit_path_and_env_dir_are_verified(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = spec_for("http://127.0.0.1:9/unused")
    good = tmp_path / "good.pt"
    good.write_bytes(PAYLOAD)
    assert weights.resolve_weights(spec, good) == good
    short = tmp_path / "short.pt"
    short.write_bytes(PAYLOAD[:100])
    with pytest.raises(weights.WeightsCorrupt, match=r"short\.pt: 100 bytes, expected 76800 .*truncated"):
        weights.resolve_weights(spec, short)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        weights.resolve_weights(spec, tmp_path / "missing.pt")
    env = tmp_path / "env"
    (env / "fixture").mkdir(parents=True)
    (env / "fixture" / "model.pt").write_bytes(PAYLOAD)
    monkeypatch.setenv("FM_WEIGHTS_DIR", str(env))
    assert weights.resolve_weights(spec, download=False) == env / "fixture" / "model.pt"


def test_pinned_specs_match_the_shared_copies() -> None:
    root = SHARED_WEIGHTS
    if not root.is_dir():
        pytest.skip(f"no offline weights at {root}")
    for spec in weights.SPECS.values():
        assert spec.url.startswith("https://raw.githubusercontent.com/nasaharvest/")
        assert (
            weights.resolve_weights(spec, root / spec.name / spec.filename)
            == root / spec.name / spec.filename
        )

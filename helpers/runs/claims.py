"""Claims on runs: one process trains a run while every other chain or cluster worker waits for it.

The skip rule (:func:`helpers.runs.runner.finished`) only sees runs that are already in the results table, so two
chains started together on one table (or two cluster clients sharing a scheduler's file system) would both find a
run missing and both train it, one after the other or at once in the same run folder. A claim closes that gap: before
a run trains, its process creates ``claims/<run_key>.claim`` beside the results table with ``O_CREAT | O_EXCL`` (which
only one process can win, also on NFS), holding its host, pid, a random token and a heartbeat time. Every other
process that reaches the same run waits (:data:`POLL_S` between looks, one log line) until the file is gone, then
re-reads the table: the run is finished there (skip it) or its holder died without finishing (train it, resuming its
checkpoints).

The file lives on the shared file system next to the table because cluster workers may run on other hosts: a lock
held in memory or a pid alone would mean nothing there. A claim is **stale**, and taken over, when

* its holder ran on this host and that process is gone (or is a zombie), or this process's pid holds it without
  knowing it (a crashed earlier process had the same pid), or
* its heartbeat is older than :data:`TIMEOUT_S` (any host; the only sign of life a remote holder can give).

A daemon thread refreshes the heartbeat every :data:`HEARTBEAT_S` while the claim is held; the claim is removed when
the holder releases it, including on an exception or ``KeyboardInterrupt``. Creation, heartbeats, takeover and release
all happen under one ``flock`` beside the table (``.claims.lock``, :func:`helpers.data.io.locked`, the kind of lock
the results table already relies on across workers), so two processes can never both take over one stale claim.

Two ways to hold a claim: the context manager :func:`claim`, or :func:`hold` inside a :func:`scope` (released when
the scope ends), which lets a family's run function claim in the middle of its body without re-indenting it
(:func:`helpers.runs.runner.claimed`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

from helpers.data.io import locked

#: Seconds without a heartbeat after which any claim is stale. Ten minutes is twenty missed heartbeats: a holder
#: that is alive but slow (a long pure-Python stretch holding the GIL, a stalled NFS mount, a laptop-sized machine
#: swapping) is not robbed of its run, while a worker on another host that died is taken over within ten minutes.
#: A holder on this host is checked by its pid at once, so the wait only applies to remote crashes; host clocks must
#: agree to well within it (NTP does).
TIMEOUT_S = 600.0

#: Seconds between heartbeats of a held claim (one small write under the lock; far below :data:`TIMEOUT_S`).
HEARTBEAT_S = 30.0

#: Seconds between looks at a claim held by another process (a lock and a small read; runs take minutes).
POLL_S = 2.0

#: The folder beside the results table that holds the claims.
FOLDER = "claims"

_HOST = socket.gethostname()
_held: dict[Path, tuple[int, str]] = {}  # claims this process holds: path -> (thread ident, token)
_held_guard = threading.Lock()
_scopes = threading.local()


class ClaimError(RuntimeError):
    """A claim used wrongly (claimed twice by one thread, or held outside a scope)."""


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a claim, as its file says.

    Attributes:
        host: The holder's host name.
        pid: Its process id on that host.
        token: A random id of this one claim (a reused pid or a takeover is told apart by it).
        key: The run key claimed.
        started: When the claim was made (seconds since the epoch, the holder's clock).
        heartbeat: Its last sign of life (same clock).
    """

    host: str
    pid: int
    token: str
    key: str
    started: float
    heartbeat: float

    def describe(self, now: float | None = None) -> str:
        """``host:pid since HH:MM:SS, heartbeat N s ago``: who to look for when a wait takes long."""
        age = (time.time() if now is None else now) - self.heartbeat
        since = time.strftime("%H:%M:%S", time.localtime(self.started))
        return f"process {self.pid} on {self.host} (since {since}, heartbeat {max(age, 0):.0f} s ago)"


def folder(results_path: str | os.PathLike) -> Path:
    """The claims folder of a results table: ``claims/`` beside it (shared by everyone who writes the table).

    The path is made absolute, so one process names a claim the same way whichever spelling of the table it got.
    """
    return Path(os.path.abspath(results_path)).parent / FOLDER


def claim_path(results_path: str | os.PathLike, key: str) -> Path:
    """The claim file of run ``key`` on the table ``results_path``: ``claims/<key>.claim`` beside the table."""
    if not key or os.sep in key or key.startswith("."):
        raise ValueError(f"a claim needs a run key usable as a file name, got {key!r}")
    return folder(results_path) / f"{key}.claim"


def read(path: str | os.PathLike) -> Holder | None:
    """The holder a claim file names; ``None`` when the file is gone or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
        return Holder(
            host=str(data["host"]),
            pid=int(data["pid"]),
            token=str(data["token"]),
            key=str(data["key"]),
            started=float(data["started"]),
            heartbeat=float(data["heartbeat"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust kill(0)
    return state != "Z"


def _holds(path: Path, token: str | None = None) -> bool:
    """Whether this process holds ``path`` (under ``token``, when given)."""
    with _held_guard:
        mine = _held.get(path)
    return mine is not None and (token is None or mine[1] == token)


def stale_reason(holder: Holder | None, *, timeout: float | None = None, now: float | None = None) -> str:
    """Why a claim may be taken over; ``""`` while its holder is alive.

    Args:
        holder: What the claim file says (``None``: unreadable; files are written under the lock, so only a holder
            that died while writing leaves one).
        timeout: Seconds without a heartbeat after which any holder counts as dead (default :data:`TIMEOUT_S`).
        now: The current time (default: now).
    """
    timeout = _or(timeout, TIMEOUT_S)
    if holder is None:
        return "its file is unreadable (its writer died while writing it)"
    age = (time.time() if now is None else now) - holder.heartbeat
    if age > timeout:
        return f"no heartbeat for {age:.0f} s (timeout {timeout:.0f} s)"
    if holder.host == _HOST:
        if holder.pid == os.getpid():
            with _held_guard:
                tokens = {t for _, t in _held.values()}
            if holder.token not in tokens:
                return f"it names this pid ({holder.pid}) but this process never made it (a reused pid)"
        elif not _alive(holder.pid):
            return f"process {holder.pid} on {holder.host} is gone"
    return ""


def _say(message: str) -> None:
    """One log line on stderr (shown in a notebook's output and in a dask worker's log)."""
    print(f"[claims] {message}", file=sys.stderr, flush=True)


class Claim:
    """A claim this process holds; :meth:`release` (or leaving :func:`claim`) removes it.

    Attributes:
        path: The claim file.
        holder: What the file says (this process).
        took_over: Why the previous holder's claim was stale (``""`` when there was none).
    """

    def __init__(self, path: Path, holder: Holder, *, took_over: str = "", heartbeat_s: float = HEARTBEAT_S):
        self.path = path
        self.holder = holder
        self.took_over = took_over
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(heartbeat_s,), name=f"claim-heartbeat-{holder.key}", daemon=True
        )
        self._thread.start()

    @property
    def key(self) -> str:
        """The run key claimed."""
        return self.holder.key

    @property
    def held(self) -> bool:
        """Whether this claim is still held (not released)."""
        return not self._stop.is_set()

    def _beat(self, every: float) -> None:
        """Refresh the heartbeat until released; stop (with a warning) if another process took the claim over."""
        while not self._stop.wait(every):
            try:
                with locked(self.path.parent):
                    if self._stop.is_set():
                        return
                    now = read(self.path)
                    if now is None or now.token != self.holder.token:
                        warnings.warn(
                            f"{self.path}: this claim was taken over by "
                            f"{now.describe() if now else 'nobody (its file was removed)'} while this process held "
                            "it (no heartbeat for the timeout: was it suspended?); two processes may now train "
                            "this run",
                            stacklevel=1,
                        )
                        return
                    self.holder = dataclasses.replace(self.holder, heartbeat=time.time())
                    self.path.write_text(_dump(self.holder))
            except OSError as err:  # a passing file-system hiccup: the next beat tries again
                warnings.warn(f"{self.path}: heartbeat failed ({err})", stacklevel=1)

    def release(self) -> None:
        """Remove the claim (only if it is still this one) and the claims folder once empty; safe to call twice.

        Never raises: it runs while an exception or ``KeyboardInterrupt`` is on its way up, which must not be
        replaced by a file-system error here (a claim left behind is taken over as stale anyway).
        """
        if self._stop.is_set():
            return
        self._stop.set()
        with _held_guard:
            if _held.get(self.path, (None, None))[1] == self.holder.token:
                del _held[self.path]
        try:
            with locked(self.path.parent):
                now = read(self.path)
                if now is not None and now.token == self.holder.token:
                    self.path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # other claims there: keep the folder
                    self.path.parent.rmdir()
        except OSError as err:
            warnings.warn(f"{self.path}: could not release this claim ({err}); it goes stale", stacklevel=2)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _or(value: float | None, default: float) -> float:
    """``value``, or the module's setting when ``None`` (read at call time, so a test or a site can change it)."""
    return default if value is None else float(value)


def _dump(holder: Holder) -> str:
    return json.dumps(dataclasses.asdict(holder), indent=1) + "\n"


def _try(
    results_path: str | os.PathLike, key: str, timeout: float, heartbeat_s: float
) -> tuple[Claim | None, Holder | None]:
    """One attempt: ``(claim, None)`` when this process now holds it, ``(None, holder)`` while another one does."""
    path = claim_path(results_path, key)
    ident = threading.get_ident()
    with _held_guard:
        mine = _held.get(path)
    if mine is not None and mine[0] == ident:
        raise ClaimError(f"{path}: this thread already holds the claim on run {key} (a run inside itself?)")
    with locked(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        took_over = ""
        if path.exists():
            holder = read(path)
            took_over = stale_reason(holder, timeout=timeout)
            if not took_over:
                return None, holder
            # stale; under the lock, so no other process takes it over at the same time
            path.unlink(missing_ok=True)
            if holder is not None:
                took_over = f"{holder.describe()}: {took_over}"
        now = time.time()
        holder = Holder(_HOST, os.getpid(), uuid.uuid4().hex, key, now, now)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # the user's umask applies
        with os.fdopen(fd, "w") as fh:
            fh.write(_dump(holder))
        with _held_guard:
            _held[path] = (ident, holder.token)
    return Claim(path, holder, took_over=took_over, heartbeat_s=heartbeat_s), None


def try_acquire(
    results_path: str | os.PathLike,
    key: str,
    *,
    timeout: float | None = None,
    heartbeat_s: float | None = None,
) -> Claim | None:
    """Claim run ``key`` now if nobody alive holds it (taking over a stale claim); ``None`` otherwise.

    ``timeout`` and ``heartbeat_s`` default to :data:`TIMEOUT_S` and :data:`HEARTBEAT_S`.

    Raises:
        ClaimError: This thread already holds it (waiting for itself would never end).
    """
    return _try(results_path, key, _or(timeout, TIMEOUT_S), _or(heartbeat_s, HEARTBEAT_S))[0]


def acquire(
    results_path: str | os.PathLike,
    key: str,
    *,
    what: str = "",
    timeout: float | None = None,
    poll: float | None = None,
    heartbeat_s: float | None = None,
) -> Claim:
    """Claim run ``key``, waiting while another live process holds it (one log line when the wait starts).

    Args:
        results_path: The results table the run writes (its claims folder is beside it).
        key: The run key.
        what: How the log lines name the run (default: its key).
        timeout: Seconds without a heartbeat after which a holder counts as dead (default :data:`TIMEOUT_S`).
        poll: Seconds between looks at a held claim (default :data:`POLL_S`).
        heartbeat_s: Seconds between this claim's heartbeats (default :data:`HEARTBEAT_S`).

    Raises:
        ClaimError: This thread already holds it.
    """
    name = what or f"run {key}"
    timeout, poll, heartbeat_s = _or(timeout, TIMEOUT_S), _or(poll, POLL_S), _or(heartbeat_s, HEARTBEAT_S)
    waited_for = None
    while True:
        got, holder = _try(results_path, key, timeout, heartbeat_s)
        if got is not None:
            if got.took_over:
                _say(f"{name}: took over the claim of {got.took_over}; this process runs it now")
            elif waited_for is not None:
                _say(f"{name}: {waited_for} released it")
            return got
        if waited_for is None:
            waited_for = f"process {holder.pid} on {holder.host}" if holder else "its holder"
            _say(
                f"{name}: being trained by {holder.describe() if holder else 'another process'} "
                f"(claim {claim_path(results_path, key)}); waiting for it to finish, then it is skipped "
                f"(or taken over if that process dies or its heartbeat stops for {timeout:.0f} s)"
            )
        time.sleep(poll)


@contextlib.contextmanager
def claim(
    results_path: str | os.PathLike,
    key: str,
    *,
    wait: bool = True,
    what: str = "",
    timeout: float | None = None,
    poll: float | None = None,
    heartbeat_s: float | None = None,
) -> Iterator[Claim | None]:
    """Hold the claim on run ``key`` for a ``with`` block; it is released however the block ends.

    Yields the :class:`Claim`, or ``None`` when ``wait=False`` and another live process holds it.
    Arguments as :func:`acquire`.
    """
    got = (
        acquire(results_path, key, what=what, timeout=timeout, poll=poll, heartbeat_s=heartbeat_s)
        if wait
        else try_acquire(results_path, key, timeout=timeout, heartbeat_s=heartbeat_s)
    )
    try:
        yield got
    finally:
        if got is not None:
            got.release()


@contextlib.contextmanager
def scope() -> Iterator[list[Claim]]:
    """Release every claim :func:`hold` takes in this thread until the block ends (returns or raises).

    Yields the list of claims taken so far in this scope (for tests and logs). Scopes nest; a claim belongs to the
    innermost one.
    """
    stack = _scopes.__dict__.setdefault("stack", [])
    mine: list[Claim] = []
    stack.append(mine)
    try:
        yield mine
    finally:
        stack.pop()  # scopes nest in one thread: the innermost is this one
        for got in reversed(mine):
            got.release()


def hold(results_path: str | os.PathLike, key: str, **kwargs) -> Claim:
    """Claim run ``key`` (waiting as :func:`acquire`) until the innermost :func:`scope` of this thread ends.

    Raises:
        ClaimError: No scope is open (the claim would never be released), or this thread already holds it.
    """
    stack = getattr(_scopes, "stack", None)
    if not stack:
        raise ClaimError(f"claims.hold({key!r}) outside claims.scope(): the claim would never be released")
    got = acquire(results_path, key, **kwargs)
    stack[-1].append(got)
    return got

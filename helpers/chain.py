"""Re-execute the numbered notebooks in order with papermill: ``python -m helpers.chain``.

One parameters file drives every notebook (stellargraph-style): top-level keys go to every notebook that declares
them in its ``parameters`` cell, and a ``notebooks:`` section can override them per notebook::

    data_dir: ../data
    seeds: [0, 1, 2]
    notebooks:
      03_cnn_models: {max_steps: 5000}

A top-level ``side_by_side`` list (or ``--side-by-side 03 04``) names notebooks that run at the same time, each in its
own process pinned to its share of the CPU cores, once every notebook before them has finished. Notebooks 03 (CNNs)
and 04 (foundation models) are independent and both write the results table under a lock
(:func:`helpers.data.io.locked`); on a 2-core machine two 1-thread trainings side by side finish in about two thirds of
the time of one 2-thread training after the other (``benchmarks/train_loop.py``). A run's thread count is part of
its identity (stored in its checkpoint), and a notebook pinned to one core trains with one thread.

A top-level ``workers: N`` (``auto``: one per core; or ``--workers N``) starts ``N`` dask.distributed worker
processes on this machine for the chain's duration, one thread each, each pinned to its own core
(:func:`helpers.runs.engine.local_cluster`), and gives its address to every notebook that declares a ``scheduler``
parameter. Notebooks 03 and 04 then submit their runs as jobs to the same pool, so a core never idles while either
notebook has runs left, and side-by-side notebooks are not pinned (they only orchestrate). With a cluster of your
own, set ``scheduler:`` to its address instead.

Executed copies go to an output folder (never over the sources). The chain stops at the first failing notebook
with its name, the failing cell and the path of the executed copy, and prints each notebook's wall time at the end.
Notebooks run with the ``notebooks/`` folder as working directory, exactly as when opened in Jupyter, so relative
paths in the parameters file mean the same thing in both.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
DEFAULT_PARAMS = NOTEBOOKS / "params" / "default.yaml"


class ChainError(RuntimeError):
    """A notebook of the chain failed or the chain was configured wrongly."""


def numbered_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """The ``NN_*.ipynb`` notebooks of ``folder`` in number order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in a notebook's ``parameters``-tagged cell (what papermill may override)."""
    nb = json.loads(notebook.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ChainError(f"{notebook}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    source = "".join(cells[0]["source"])
    names = set()
    for node in ast.parse(source).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def load_params(path: str | Path) -> dict:
    """Read a parameters file (YAML); its ``notebooks`` section holds per-notebook overrides."""
    path = Path(path)
    if not path.is_file():
        raise ChainError(f"{path}: parameters file not found")
    params = yaml.safe_load(path.read_text()) or {}
    if not isinstance(params, dict):
        raise ChainError(f"{path}: expected a mapping of parameter names to values")
    return params


def parameters_for(notebook: Path, params: dict) -> dict:
    """The parameters one notebook receives: shared keys it declares, then its own overrides.

    A key that the notebook does not declare is not passed (papermill would inject it silently); an override in
    the ``notebooks`` section naming an undeclared parameter is an error, since it would do nothing.
    """
    declared = declared_parameters(notebook)
    shared = {k: v for k, v in params.items() if k != "notebooks" and k in declared}
    own = (params.get("notebooks") or {}).get(notebook.stem, {}) or {}
    unknown = set(own) - declared
    if unknown:
        raise ChainError(
            f"parameters for {notebook.stem} name {sorted(unknown)}, which its parameters cell does not declare"
        )
    return {**shared, **own}


def _select(books: list[Path], names: Sequence[str]) -> list[Path]:
    return [b for b in books if any(b.stem == o or b.stem.startswith(f"{o}_") for o in names)]


#: What every failure and interrupt of the chain ends with: nothing finished is lost, and how to go on.
RESUME = (
    "Finished rows are kept in the results table (and finished checkpoints in the run folders); rerun the same "
    "command to resume: finished runs are skipped."
)


def _execute(book: Path, out: Path, p: dict, notebooks_dir: Path) -> None:
    import papermill as pm

    try:
        pm.execute_notebook(
            str(book),
            str(out),
            parameters=p,
            cwd=str(notebooks_dir),
            kernel_name="python3",
            progress_bar=False,
        )
    except pm.PapermillExecutionError as err:
        raise ChainError(
            f"{book.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); executed copy: {out}. "
            + RESUME
        ) from err
    except (KeyboardInterrupt, ChainError):
        raise
    except Exception as err:  # noqa: BLE001 - every other end of a kernel gets the same paragraph
        dead = "DeadKernel" in type(err).__name__ or "kernel died" in str(err).lower()
        what = (
            "its kernel died (killed from outside, e.g. by the out-of-memory killer: watch the memory of large runs)"
            if dead
            else f"papermill stopped ({type(err).__name__}: {err})"
        )
        raise ChainError(f"{book.name}: {what}; executed copy so far: {out}. " + RESUME) from None


#: Path parameters whose folders hold the chain's outputs (temporary files of interrupted writes may be left there).
OUTPUT_KEYS = (
    "results_path",
    "convergence_path",
    "figures_dir",
    "runs_dir",
    "cache_dir",
    "maps_dir",
    "data_dir",
)


def _is_temp(path: Path) -> bool:
    """A temporary file of an atomic write (:func:`helpers.data.io.atomic_write` and its siblings)."""
    return path.name.endswith(".tmp") and (path.name.startswith(".") or path.name.startswith("tmp"))


def remove_leftover_temps(params: dict, notebooks_dir: Path) -> list[Path]:
    """Delete temporary files that interrupted writes left in the chain's output folders; returns what went.

    Only when no other chain is running on the same outputs (a lock held for the whole run, :func:`run`), so another
    chain's write in progress is never touched. A temp file is never read as a result (the rename is what publishes
    a write), so removing it only tidies up; a rerun never depends on it.
    """
    roots = set()
    for key in OUTPUT_KEYS:
        value = params.get(key)
        if not value:
            continue
        path = (notebooks_dir / str(value)).resolve()
        roots.add(path.parent if key.endswith("_path") else path)
    gone = []
    for root in sorted(roots):
        if not root.is_dir():
            continue
        for path in root.rglob("*.tmp"):
            if path.is_file() and _is_temp(path):
                path.unlink(missing_ok=True)
                gone.append(path)
    return gone


@contextlib.contextmanager
def _sole_chain(params: dict, notebooks_dir: Path):
    """Hold a lock beside the results table for a chain's whole run; yields whether this chain is the only one."""
    target = params.get("results_path")
    if not target:
        yield True
        return
    lock = (notebooks_dir / str(target)).resolve().parent / ".chain.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield False
        return
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except OSError:
            alone = False  # another chain runs on these outputs: share the table, leave its temp files alone
        yield alone


def core_shares(n_jobs: int, cores: Sequence[int] | None = None) -> list[set[int]]:
    """Split this process's CPU cores into ``n_jobs`` disjoint sets (round-robin; at least one core each)."""
    cores = sorted(os.sched_getaffinity(0) if cores is None else cores)
    if n_jobs > len(cores):
        return [set(cores) for _ in range(n_jobs)]  # more jobs than cores: share them all
    return [set(cores[i::n_jobs]) for i in range(n_jobs)]


def _run_side_by_side(
    group: list[Path], params: dict, output_dir: Path, notebooks_dir: Path, pin: bool = True
) -> dict[str, float]:
    """Run ``group`` at once, each notebook in a child process (pinned to its share of the cores if ``pin``)."""
    procs = []
    every = set(os.sched_getaffinity(0))
    shares = core_shares(len(group)) if pin else [every] * len(group)
    for book, cores in zip(group, shares, strict=True):
        out = output_dir / book.name
        p = parameters_for(book, params)
        where = f"on cores {sorted(cores)}" if pin else "(runs on the engine's workers)"
        print(f"[chain] {book.name} side by side {where} with {p}", flush=True)
        job = json.dumps(
            {"book": str(book), "out": str(out), "params": p, "notebooks_dir": str(notebooks_dir)}
        )
        cmd = [sys.executable, "-m", "helpers.chain", "--_one", job]
        procs.append(
            (
                book,
                time.perf_counter(),
                subprocess.Popen(cmd, cwd=REPO, preexec_fn=lambda c=cores: os.sched_setaffinity(0, c)),
            )
        )
    times, failed = {}, []
    for book, start, proc in procs:
        if proc.wait() != 0:
            failed.append(book.name)
        times[book.stem] = time.perf_counter() - start
        print(f"[chain] {book.name} done in {times[book.stem]:.1f} s", flush=True)
    if failed:
        raise ChainError(f"{', '.join(failed)} failed (side by side); see the messages above. " + RESUME)
    return times


def run(
    params_file: str | Path = DEFAULT_PARAMS,
    output_dir: str | Path = REPO / "output" / "notebooks",
    only: Sequence[str] | None = None,
    notebooks_dir: Path = NOTEBOOKS,
    extra: dict | None = None,
    side_by_side: Sequence[str] | None = None,
    workers: int | str | None = None,
) -> dict[str, float]:
    """Execute the numbered notebooks in order (``side_by_side`` ones at the same time).

    Args:
        params_file: YAML parameters file.
        output_dir: Folder for the executed copies.
        only: Notebook numbers or stems to run (e.g. ``["01", "02"]``); all when ``None``.
        notebooks_dir: Folder holding the notebooks.
        extra: Parameters that override the file's shared keys (e.g. from ``--set``).
        side_by_side: Notebook numbers or stems to run at the same time, each pinned to its share of the cores;
            default the parameters file's ``side_by_side`` key (none when absent). ``[]`` runs all in order.
        workers: Local engine workers to start for the chain (``"auto"``: one per core; default the file's
            ``workers`` key; ``0`` or none:
            no cluster, every notebook trains in its own process). Ignored when the parameters name a
            ``scheduler`` of their own.

    Returns:
        Wall time in seconds per notebook stem (side-by-side notebooks overlap).

    Raises:
        ChainError: On the first failing notebook.
    """
    params = load_params(params_file)
    params.update(extra or {})
    from_file = params.pop("side_by_side", None)  # chain settings, never notebook parameters
    together_names = from_file if side_by_side is None else side_by_side
    workers_from_file = params.pop("workers", None)
    workers = workers_from_file if workers is None else workers
    books = numbered_notebooks(notebooks_dir)
    if only:
        books = _select(books, only)
    if not books:
        raise ChainError(f"no numbered notebooks selected in {notebooks_dir} (only={only})")
    together = _select(books, together_names or [])
    if len(together) < 2:
        together = []
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    start_all = time.perf_counter()
    cluster = None
    if workers == "auto":
        from helpers.runs.runtime import machine_threads

        workers = machine_threads()
    if workers and not params.get("scheduler"):
        from helpers.runs import engine

        cluster, client = engine.local_cluster(int(workers))
        params["scheduler"] = cluster.scheduler_address
        print(
            f"[chain] {int(workers)} engine workers, 1 thread each, at {cluster.scheduler_address}",
            flush=True,
        )
        cluster = (cluster, client)
    with _sole_chain(params, notebooks_dir) as alone:
        if alone:
            for path in remove_leftover_temps(params, notebooks_dir):
                print(f"[chain] removed {path}: a temporary file an interrupted write left", flush=True)
        _run_books(books, together, params, output_dir, notebooks_dir, cluster, times)
    print("[chain] wall time per notebook:")
    for stem, t in times.items():
        print(f"  {stem:<28} {t:8.1f} s")
    print(f"  {'total (wall)':<28} {time.perf_counter() - start_all:8.1f} s")
    return times


def _run_books(books, together, params, output_dir, notebooks_dir, cluster, times) -> None:
    """The chain's notebooks in order (``together`` side by side), closing its engine cluster however it ends."""
    client = None
    if cluster is not None:
        cluster, client = cluster
    try:
        for book in books:
            if book in together:
                if book == together[0]:
                    times.update(
                        _run_side_by_side(together, params, output_dir, notebooks_dir, pin=cluster is None)
                    )
                continue
            out = output_dir / book.name
            p = parameters_for(book, params)
            print(f"[chain] {book.name} with {p}", flush=True)
            start = time.perf_counter()
            _execute(book, out, p, notebooks_dir)
            times[book.stem] = time.perf_counter() - start
            print(f"[chain] {book.name} done in {times[book.stem]:.1f} s", flush=True)
    finally:
        if cluster is not None:
            client.close()
            cluster.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m helpers.chain", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--params", default=str(DEFAULT_PARAMS), help="parameters file (default: %(default)s)"
    )
    parser.add_argument(
        "--output", default=str(REPO / "output" / "notebooks"), help="folder for executed copies"
    )
    parser.add_argument("--only", nargs="*", help="notebook numbers or stems to run, e.g. 01 02")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="override shared parameters (YAML values)"
    )
    parser.add_argument(
        "--side-by-side",
        nargs="*",
        default=None,
        help="notebooks to run at the same time (default: the parameters file's side_by_side; none: in order)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local engine workers (default: the parameters file's workers)",
    )
    parser.add_argument("--_one", help=argparse.SUPPRESS)  # a side-by-side child: one notebook, as JSON
    args = parser.parse_args(argv)
    if args._one:
        job = json.loads(args._one)
        try:
            _execute(Path(job["book"]), Path(job["out"]), job["params"], Path(job["notebooks_dir"]))
        except ChainError as err:
            print(f"[chain] FAILED: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130  # the parent prints the paragraph
        return 0
    extra = {}
    for item in args.set:
        key, _, value = item.partition("=")
        extra[key] = yaml.safe_load(value)
    try:
        run(
            args.params,
            args.output,
            args.only,
            extra=extra,
            side_by_side=args.side_by_side,
            workers=args.workers,
        )
    except ChainError as err:
        print(f"[chain] FAILED: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        again = " ".join(["python -m helpers.chain", *(argv if argv is not None else sys.argv[1:])])
        print(f"\n[chain] interrupted. {RESUME} Command: {again}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

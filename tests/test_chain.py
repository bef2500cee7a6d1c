import json
import os
from pathlib import Path

import make_fixtures
import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers import chain, results
from helpers.runs import convergence, run_folders

REPO = Path(__file__).resolve().parents[1]


def _notebook(path: Path, params: str, body: str) -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, new_code_cell(body)]
    nbformat.write(nb, path)
    return path


def test_every_numbered_notebook_has_one_parameters_cell_and_no_outputs():
    books = chain.numbered_notebooks()
    assert books and books[0].name.startswith("01_")
    for book in books:
        assert chain.declared_parameters(book)
        nb = json.loads(book.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, book


def test_parameters_for_passes_only_declared_keys(tmp_path):
    book = _notebook(tmp_path / "01_a.ipynb", "x = 1\ny: int = 2", "pass")
    params = {"x": 5, "z": 9, "notebooks": {"01_a": {"y": 3}}}
    assert chain.parameters_for(book, params) == {"x": 5, "y": 3}
    with pytest.raises(chain.ChainError, match="does not declare"):
        chain.parameters_for(book, {"notebooks": {"01_a": {"nope": 1}}})


def test_two_parameters_cells_rejected(tmp_path):
    book = _notebook(tmp_path / "01_a.ipynb", "x = 1", "pass")
    nb = nbformat.read(book, as_version=4)
    nb.cells[1].metadata["tags"] = ["parameters"]
    nbformat.write(nb, book)
    with pytest.raises(chain.ChainError, match="exactly one"):
        chain.declared_parameters(book)


def test_chain_runs_in_order_and_stops_at_first_failure(tmp_path):
    books = tmp_path / "nb"
    books.mkdir()
    _notebook(books / "01_first.ipynb", "out = ''", "open(out, 'w').write('1')")
    _notebook(books / "02_fails.ipynb", "out = ''", "raise RuntimeError('boom')")
    _notebook(books / "03_never.ipynb", "out = ''", "open(out, 'w').write('3')")
    params = tmp_path / "p.yaml"
    params.write_text(f"out: {tmp_path / 'marker'}\n")
    with pytest.raises(chain.ChainError, match=r"02_fails.ipynb failed .*RuntimeError: boom"):
        chain.run(params, tmp_path / "executed", notebooks_dir=books)
    assert (tmp_path / "marker").read_text() == "1"  # 03 never ran
    assert (tmp_path / "executed" / "02_fails.ipynb").exists()
    assert chain.main(["--params", str(tmp_path / "missing.yaml")]) == 1


def test_side_by_side_notebooks_run_at_once_on_their_own_cores(tmp_path):
    books = tmp_path / "nb"
    books.mkdir()
    # each notebook says it started, then waits (up to 60 s) for its partner's start: two notebooks run one after
    # the other never see each other, two run at once always do, however slowly a loaded machine starts kernels
    body = (
        "import os, time; open(out + name, 'w').write(str(sorted(os.sched_getaffinity(0))));"
        " open(out + name + '.start', 'w').write(str(time.time()));"
        " t0 = time.time()\n"
        "while other and not os.path.exists(out + other + '.start') and time.time() - t0 < 60:\n"
        "    time.sleep(0.05)\n"
        "saw = (not other) or os.path.exists(out + other + '.start')\n"
        "open(out + name + '.end', 'w').write(f'{time.time()} {saw}')"
    )
    partner = {"01_a": "", "02_b": "03_c", "03_c": "02_b"}
    for stem in ("01_a", "02_b", "03_c"):
        _notebook(books / f"{stem}.ipynb", f"out = ''\nname = '{stem}'\nother = '{partner[stem]}'", body)
    params = tmp_path / "p.yaml"
    params.write_text(f"out: {tmp_path}/\nside_by_side: ['02', '03']\n")
    times = chain.run(params, tmp_path / "executed", notebooks_dir=books)
    assert list(times) == ["01_a", "02_b", "03_c"]
    cores = [set(eval((tmp_path / s).read_text())) for s in ("02_b", "03_c")]  # noqa: S307 - our own file
    all_cores = os.sched_getaffinity(0)
    if len(all_cores) >= 2:
        assert not cores[0] & cores[1] and cores[0] | cores[1] <= all_cores  # disjoint shares
    # 01 ran before both; 02 and 03 overlapped (each saw the other start)
    ends = {s: (tmp_path / f"{s}.end").read_text().split() for s in ("01_a", "02_b", "03_c")}
    starts = {s: float((tmp_path / f"{s}.start").read_text()) for s in ("02_b", "03_c")}
    assert float(ends["01_a"][0]) < min(starts.values())
    assert ends["02_b"][1] == ends["03_c"][1] == "True"
    assert chain.core_shares(2, [0, 1, 2]) == [{0, 2}, {1}] and chain.core_shares(3, [5]) == [{5}, {5}, {5}]
    # a failing side-by-side notebook fails the chain, naming it
    _notebook(books / "03_c.ipynb", "out = ''\nname = ''\nother = ''", "raise RuntimeError('boom')")
    with pytest.raises(chain.ChainError, match="03_c.ipynb failed"):
        chain.run(params, tmp_path / "executed", notebooks_dir=books)


@pytest.mark.slow
def test_quick_chain_end_to_end(tmp_path):
    """The whole chain in quick mode: generated data plus a real-layout fixture dataset."""
    data = tmp_path / "data"
    make_fixtures.make_sen1floods11(data / "sen1floods11")
    extra = {
        # a 3-date task, the burn-scar layout, a real-layout fixture (Sen1Floods11) and both ends of the texture
        # sweep; Indian Pines and sim-flood have their own tests and stay out to keep this under a few minutes
        "dataset_names": ["sim-crop", "sim-burn", "sen1floods11"],
        "texture_knobs": [0.0, 1.0],
        "data_dir": str(data),
        "results_path": str(tmp_path / "results.csv"),
        "figures_dir": str(tmp_path / "figures"),
        "cache_dir": str(tmp_path / "cache"),
        "runs_dir": str(tmp_path / "runs"),
        "maps_dir": str(tmp_path / "maps"),
    }
    extra["convergence_path"] = str(tmp_path / "convergence.csv")
    times = chain.run(
        REPO / "notebooks" / "params" / "quick.yaml",
        tmp_path / "executed",
        extra=extra,
        side_by_side=["03", "04"],
        workers=2,  # 03 and 04 feed one pool of two pinned 1-thread engine workers
    )
    assert sorted(times) == [b.stem for b in chain.numbered_notebooks()]
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert any(f.startswith("01_") and f.endswith(".pdf") for f in figures)
    assert any(f.startswith("01_") and f.endswith(".png") for f in figures)
    from PIL import Image

    for png in (tmp_path / "figures").glob("*.png"):  # every figure of every notebook fits a printed page
        w, h = Image.open(png).size
        assert w <= 2250 and h <= 2700, (png.name, w, h)
    if len(times) > 1:
        df = results.read(tmp_path / "results.csv")
        assert not df.empty and set(df["dataset"]) >= {"sen1floods11"}
        # the pretraining-compute rows sit beside the results table, never in it (no verdict picks them)
        compute = results.read(tmp_path / "pretraining_compute.csv")
        assert set(compute["model"]) == {"prithvi_arch_small_mae_pt50", "prithvi_arch_small_spectral_pt50"}
        assert set(compute["label_budget"].fillna("all")) == {
            "all",
            "points-10",
        }  # quick.yaml's compute_budgets
        assert not df["model"].str.contains("_pt50").any() and "04_pretraining_compute.png" in figures
    if len(times) == 5:
        # notebook 05 draws the saved test maps of the best model of each family, for every main dataset
        for name in extra["dataset_names"]:
            assert f"05_prediction_maps_{name}.png" in figures
        # every deep row says how it stopped, and its first seed was trained on to twice its steps
        deep = df[
            df["model"].isin(["unet", "vit", "galileo_nano_finetune", "galileo_nano_finetune_random"])
            & (df["status"] == "ok")
        ]
        assert "galileo_nano_finetune_random" in set(deep["model"])  # needs no weights: it always runs
        assert set(deep["stopped_by"]) == {"cap"} and (deep["steps"] > 0).all()  # quick mode: a few steps
        conv = convergence.read(tmp_path / "convergence.csv")
        assert {"unet", "fcn", "vit", "prithvi_arch_small_mae"} <= set(conv["model"])
        assert (conv["steps_x2"] == 2 * conv["steps"]).all()
        assert (
            "05_convergence.png" in figures and (tmp_path / "figures" / "tables" / "convergence.md").exists()
        )
        # every deep run trained on an engine worker: one thread, whichever notebook submitted it
        trained = ["unet", "vit", "prithvi_arch_small_mae", "galileo_nano_finetune_random"]
        trained += ["galileo_nano_finetune"] if _weights_available() else []  # without weights: a not_run row
        for model in trained:
            config = run_folders.load_checkpoint(
                run_folders.run_dir(tmp_path / "runs", "sim-crop", model, 0) / run_folders.LAST
            )
            assert config["config"]["num_threads"] == 1, model
        saved = {p.parent.name for p in (tmp_path / "maps" / "sim-crop").glob("*/seed0.npz")}
        assert {"rf", "unet", "vit"} <= saved
        published = df[
            df["model"].isin(["galileo_nano_frozen_lgbm", "galileo_nano_finetune", "presto_frozen_lgbm"])
        ]
        if _weights_available():  # CI: the real weights from ../shared; the rows are real
            assert set(published["status"]) == {"ok"}
            assert {"galileo_nano_frozen_lgbm", "galileo_nano_finetune"} <= saved
        else:  # a fresh machine without the weights and offline: the rows say why they could not run
            assert set(published["status"]) == {"not_run"} and published["note"].str.contains("weights").all()
    assert os.path.getsize(tmp_path / "executed" / "01_data_exploration.ipynb") > 0
    if len(times) < 5:
        return

    # A rerun with nothing changed recomputes nothing and rewrites nothing: table, checks, maps, figures.
    def snapshot() -> dict:
        files = [tmp_path / "results.csv", tmp_path / "convergence.csv"]
        files += sorted(p for d in ("maps", "figures") for p in (tmp_path / d).rglob("*") if p.is_file())
        return {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in files}

    before = snapshot()
    chain.run(REPO / "notebooks" / "params" / "quick.yaml", tmp_path / "again", extra=extra, side_by_side=["03", "04"], workers=2)  # fmt: skip
    after = snapshot()
    assert sorted(after) == sorted(before)
    assert [k for k in before if before[k] != after[k]] == []

    # One worker computes what two do: the same value in every row (runtime columns aside).
    outputs = ("results_path", "convergence_path", "figures_dir", "cache_dir", "runs_dir", "maps_dir")
    one = {**extra, **{k: str(tmp_path / "one" / Path(extra[k]).name) for k in outputs}}  # the same data
    chain.run(REPO / "notebooks" / "params" / "quick.yaml", tmp_path / "one-nb", extra=one, only=["02", "03", "04"], workers=1)  # fmt: skip
    cols = [*results.RUN_COLUMNS, "split", "metric", "class"]  # one row per index entry, every budget
    two = results.read(tmp_path / "results.csv").set_index(cols)["value"].sort_index()
    single = results.read(Path(one["results_path"])).set_index(cols)["value"].sort_index()
    assert single.index.equals(two.index)
    np.testing.assert_array_equal(single.to_numpy(), two.to_numpy())


def _weights_available() -> bool:
    from helpers.models import weights

    try:
        for name in ("galileo_nano", "presto"):
            weights.resolve_weights(name, progress=False)
    except weights.WeightsError:
        return False
    return True


def _readme_block(heading: str, lang: str = "bash") -> list[str]:
    """The command lines of the first ``lang`` code block under a README heading."""
    text = (REPO / "README.md").read_text()
    section = text.split(heading, 1)[1]
    block = section.split(f"```{lang}\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def _outputs_under(tmp_path: Path, data: Path) -> dict:
    """Chain overrides that move the data folder and every output of a README command line under tmp_path."""
    return {
        "data_dir": data,
        "results_path": tmp_path / "results.csv",
        "convergence_path": tmp_path / "convergence.csv",
        "figures_dir": tmp_path / "figures",
        "cache_dir": tmp_path / "cache",
        "runs_dir": tmp_path / "runs",
        "maps_dir": tmp_path / "maps",
    }


def test_readme_own_data_example_runs_as_written(tmp_path, capsys):
    """The README's worked example on a dataset of one's own: its commands, with only the output folders moved.

    The example is written and checked by the README's own command lines (their data path moved under tmp_path);
    the quick chain line runs as written plus overrides that move every output to tmp_path. Its classical, CNN,
    ViT and SegFormer rows score; every row that needs the six HLS bands is a not_run row naming the missing ones.
    """
    import shlex

    from helpers.data import check

    lines = [shlex.split(line) for line in _readme_block("### Your own data")]
    assert [line[:3] for line in lines] == [["python", "-m", "helpers.data.generic"]] * 2 + [
        ["python", "-m", "helpers.chain"]
    ] * 2
    data = tmp_path / "data"
    for line in lines[:2]:
        args = [str(data / Path(a).name) if a.startswith("data/") else a for a in line[3:]]
        assert check.generic_main(args) == 0  # what `python -m helpers.data.generic` runs
    assert "not_run (missing B8A, B11, B12)" in capsys.readouterr().out
    quick, full = lines[2][3:], lines[3][3:]
    assert (
        full == quick[: quick.index("--set")]
    )  # the study's line is the smoke line without its quick settings
    outputs = _outputs_under(tmp_path, data)
    at = quick.index("--set") + 1
    argv = (
        quick[:at]
        + [f"{k}={v}" for k, v in outputs.items()]
        + quick[at:]
        + ["--output", str(tmp_path / "nb")]
    )
    cwd = os.getcwd()
    try:
        os.chdir(REPO)  # the README's commands run from the repository root
        assert chain.main(argv) == 0
    finally:
        os.chdir(cwd)
    df = results.read(tmp_path / "results.csv")
    assert set(df["dataset"]) == {"example-wetlands"} and df["simulated"].all()
    status = df.drop_duplicates("model").set_index("model")["status"]
    scored = ["rf", "lgbm", "rf_aug", "lgbm_aug", "fcn", "unet", "deeplabv3plus", "vit", "segformer"]
    assert (status[scored] == "ok").all(), status
    hls_rows = [m for m in status.index if m.startswith(("prithvi", "galileo", "presto"))]
    assert len(hls_rows) >= 5 and (status[hls_rows] == "not_run").all()
    notes = df[df["model"].isin(hls_rows)]["note"]
    assert notes.str.contains("lacks B8A, B11, B12").all()
    test_miou = df[(df["split"] == "test") & (df["metric"] == "miou_macro") & (df["class"] == "")]
    assert test_miou.set_index("model").loc[scored, "value"].between(0, 1).all()
    figures = {p.name for p in (tmp_path / "figures").glob("*.png")}
    assert {"01_example_chips_example-wetlands.png", "05_prediction_maps_example-wetlands.png"} <= figures
    assert not (REPO / "output" / "own").exists() or not any((REPO / "output" / "own").iterdir())


def test_readme_own_scene_example_runs_as_written(tmp_path, capsys):
    """The README's worked example on one scene with polygon labels, through the chain in quick mode.

    Its commands run as written (data and outputs moved under tmp_path); every family scores on the scene but
    Prithvi-100M (no weights in CI), every row records the scene's split protocol, and the prediction maps show the
    whole scene.
    """
    import shlex

    from helpers.data import check

    lines = [shlex.split(line) for line in _readme_block("### Your own scene")]
    assert [line[:3] for line in lines] == [["python", "-m", "helpers.data.scene"]] * 2 + [
        ["python", "-m", "helpers.chain"]
    ]
    data = tmp_path / "data"
    for line in lines[:2]:
        args = [str(data / Path(a).name) if a.startswith("data/") else a for a in line[3:]]
        assert check.scene_main(args) == 0  # what `python -m helpers.data.scene` runs
    assert "split: blocks, blocks of 16 px, guard 0 px" in capsys.readouterr().out
    argv = lines[2][3:]
    at = argv.index("--set") + 1
    outputs = _outputs_under(tmp_path, data)
    argv = (
        argv[:at] + [f"{k}={v}" for k, v in outputs.items()] + argv[at:] + ["--output", str(tmp_path / "nb")]
    )
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        assert chain.main(argv) == 0
    finally:
        os.chdir(cwd)
    df = results.read(tmp_path / "results.csv")
    assert set(df["dataset"]) == {"example-scene"} and df["simulated"].all()
    assert set(df["protocol"]) == {"scene blocks, 16 px, guard 0 px"}
    status = df.drop_duplicates("model").set_index("model")["status"]
    assert status.drop("prithvi_100m").eq("ok").all(), status
    families = set(df.loc[df["status"] == "ok", "family"])
    assert {"classical", "cnn", "fm"} <= families
    assert set(df["n_train_chips"].dropna()) == {1}
    test_miou = df[(df["split"] == "test") & (df["metric"] == "miou_macro") & (df["class"] == "")]
    assert test_miou["value"].between(0, 1).all() and test_miou.set_index("model").loc["rf", "value"] > 0.9
    maps = {p.name for p in (tmp_path / "figures").glob("05_prediction_maps_*.png")}
    assert maps == {"05_prediction_maps_example-scene.png"}
    # notebook 05 draws the scene against its split protocol
    assert (tmp_path / "figures" / "05_scene_protocols.png").is_file()


def test_a_killed_kernel_ends_with_the_paragraph_and_leftover_temps_go(tmp_path):
    books = tmp_path / "nb"
    books.mkdir()
    results_dir = tmp_path / "results"
    _notebook(
        books / "01_dies.ipynb",
        "results_path = ''",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    )
    params = tmp_path / "p.yaml"
    params.write_text(f"results_path: {results_dir}/results.csv\n")
    with pytest.raises(chain.ChainError) as err:
        chain.run(params, tmp_path / "executed", notebooks_dir=books)
    text = str(err.value)
    assert "01_dies.ipynb" in text and "kernel died" in text and str(tmp_path / "executed") in text
    assert "rerun the same command to resume" in text
    # an interrupted atomic write left its temporary file; the next start removes it, and only such files
    results_dir.mkdir(exist_ok=True)
    (results_dir / ".results.csv.abc123.tmp").write_text("half")
    (results_dir / "keep.tmp.csv").write_text("not a temp file")
    _notebook(books / "01_dies.ipynb", "results_path = ''", "x = 1")
    chain.run(params, tmp_path / "executed", notebooks_dir=books)
    assert not (results_dir / ".results.csv.abc123.tmp").exists() and (results_dir / "keep.tmp.csv").exists()

"""Replicates: a data draw of every simulated dataset together with a model seed (issue 27, item 1).

The run of seed ``k`` must train and be scored on replicate ``k``'s data; what depends on the data (pretraining,
embedding caches) must be done once per draw, and a fixed dataset must not be redrawn.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.data import datasets, generic
from helpers.runs import fm_settings, matrix, schedule


def test_simulated_replicates_are_new_draws_in_their_own_folders(tmp_path):
    reps = datasets.prepare_replicates("sim-flood", tmp_path, [0, 1], size="quick", seed=3)
    a, b = reps[0], reps[1]
    assert a.root == tmp_path / "sim-flood" and b.root == tmp_path / "sim-flood.r1"
    assert a.name == b.name == "sim-flood"  # rows keep the dataset's name; the seed column is the replicate
    assert a.fingerprint() != b.fingerprint()
    assert {s: len(a.chip_ids(s)) for s in a.splits} == {s: len(b.chip_ids(s)) for s in b.splits}
    x0, _ = a.read_arrays(a.chip_ids("test")[0])
    x1, _ = b.read_arrays(b.chip_ids("test")[0])
    assert not np.array_equal(x0, x1)
    # replicate k is generator seed sim_seed + k: the same bytes as a plain generation with that seed
    plain = datasets.prepare("sim-flood", tmp_path / "plain", size="quick", seed=4)
    assert plain.fingerprint() == b.fingerprint()


def test_fixed_datasets_are_one_object_for_every_replicate(tmp_path):
    generic.write_example(tmp_path / "example-wetlands")
    reps = datasets.prepare_replicates("example-wetlands", tmp_path, [0, 1, 2])
    assert reps[0] is reps[1] is reps[2]
    assert not datasets.varies_by_replicate("indian-pines-hls")
    assert datasets.replicate_root(tmp_path, "indian-pines-hls", 2) == tmp_path / "indian-pines-hls"
    assert not (tmp_path / "example-wetlands.r1").exists()


class _Draw:
    """Stands in for a dataset object: only its identity matters to the matrix."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.name = label.split("@")[0]

    def __repr__(self) -> str:
        return self.label


@pytest.fixture
def recorder(monkeypatch):
    calls = []

    def submit(client, fn, *args, **kwargs):
        calls.append((getattr(fn, "__name__", str(fn)), args, kwargs))
        return len(calls) - 1  # the job's token

    monkeypatch.setattr(matrix.engine, "submit", submit)
    return calls


def _draws(names, seeds, simulated):
    out = {}
    for n in names:
        if n in simulated:
            out[n] = {s: _Draw(f"{n}@{s}") for s in seeds}
        else:
            fixed = _Draw(f"{n}@fixed")
            out[n] = dict.fromkeys(seeds, fixed)
    return out


def test_fm_matrix_pretrains_once_per_draw_and_fine_tunes_on_the_seeds_draw(recorder):
    seeds = [0, 1, 2]
    draws = _draws(["sim-a", "real-b"], seeds, simulated={"sim-a"})
    matrix.submit_fm_runs(
        None,
        draws,
        main=["sim-a", "real-b"],
        seeds=seeds,
        fm_models=["prithvi_arch_small_mae"],
        pretrained_models=["presto_frozen_linear"],
        texture_models=[],
        pooled_models=[],
        settings=None,
        prithvi_checkpoint=None,
        galileo_steps=1,
        results_path=None,
        runs_dir="runs",
        cache_dir="cache",
        maps_dir=None,
        convergence_path=None,
    )
    pre = [(i, c) for i, c in enumerate(recorder) if c[0] == "ensure_pretraining"]
    # three draws of the simulated dataset, one of the fixed one
    assert sorted(repr(c[1][0]) for _, c in pre) == ["real-b@fixed", "sim-a@0", "sim-a@1", "sim-a@2"]
    token_of = {repr(c[1][0]): i for i, c in pre}
    fine = [c for c in recorder if c[0] == "run_fm_rows"]
    assert len(fine) == 6
    for _, args, kwargs in fine:
        ds, seed = args
        assert repr(ds) == (f"sim-a@{seed}" if ds.name == "sim-a" else "real-b@fixed")
        assert kwargs["after"] == [token_of[repr(ds)]]  # waits for its own draw's pretraining
    frozen = [c for c in recorder if c[0] == "run_frozen_plan"]
    # one embedding job per draw, each with the seeds that use that draw
    got = sorted((repr(args[0]), tuple(s.seed for s in args[1])) for _, args, _ in frozen)
    assert got == [("real-b@fixed", (0, 1, 2)), ("sim-a@0", (0,)), ("sim-a@1", (1,)), ("sim-a@2", (2,))]


def test_galileo_fine_tunes_run_both_inits_on_the_seeds_draw_and_at_budgets(recorder):
    seeds = [0, 1]
    draws = _draws(["sim-a"], seeds, simulated={"sim-a"})
    rows = ["galileo_nano_finetune", "galileo_nano_finetune_random"]
    matrix.submit_fm_runs(
        None,
        draws,
        main=["sim-a"],
        seeds=seeds,
        fm_models=[],
        pretrained_models=rows,
        texture_models=[],
        pooled_models=[],
        settings=None,
        prithvi_checkpoint=None,
        galileo_steps=None,
        results_path=None,
        runs_dir="runs",
        cache_dir="cache",
        maps_dir=None,
        convergence_path=None,
        budget_models=rows,
        label_budgets=["points-10"],
        budget_names=["sim-a"],
    )
    full = [(repr(a[0]), a[1], k["pretrained"]) for n, a, k in recorder if n == "run_galileo_nano_finetune"]
    assert full == [("sim-a@0", 0, True), ("sim-a@0", 0, False), ("sim-a@1", 1, True), ("sim-a@1", 1, False)]
    budget = [(repr(a[1]), a[2], a[3], k["pretrained"]) for n, a, k in recorder if n == "at_budget"]
    assert sorted(budget) == [
        ("sim-a@0", "points-10", 0, False),
        ("sim-a@0", "points-10", 0, True),
        ("sim-a@1", "points-10", 1, False),
        ("sim-a@1", "points-10", 1, True),
    ]
    # no frozen job: the fine-tunes are not frozen rows
    assert not [n for n, _, _ in recorder if n == "run_frozen_plan"]


def test_cnn_and_classical_jobs_get_their_seeds_draw(recorder):
    seeds = [0, 1]
    draws = _draws(["sim-a"], seeds, simulated={"sim-a"})
    matrix.submit_cnn_runs(
        None,
        draws,
        main=["sim-a"],
        models=["unet"],
        texture_models=[],
        seeds=seeds,
        model_size="cpu",
        fit_settings={"patience": 2},
        epoch_cap=None,
        results_path=None,
        runs_dir="runs",
        maps_dir=None,
        convergence_path=None,
        budget_models=["unet"],
        label_budgets=["points-10"],
        budget_names=["sim-a"],
    )
    seen = []
    for name, args, kwargs in recorder:
        if name == "run_checked":  # the main block: the run and its convergence check
            seen.append((repr(args[0]), kwargs["seed"]))
        elif name == "at_budget":
            seen.append((repr(args[1]), args[3]))
    assert seen == [("sim-a@0", 0), ("sim-a@1", 1), ("sim-a@0", 0), ("sim-a@1", 1)]
    # on point labels a falling validation loss counts as progress too (helpers.runs.schedule.SPARSE_LABELS)
    delta = [kw.get("loss_delta") for name, _, kw in recorder if name in ("run_checked", "at_budget")]
    assert delta == [None, None, schedule.SPARSE_LABELS["loss_delta"], schedule.SPARSE_LABELS["loss_delta"]]
    recorder.clear()
    matrix.submit_classical_runs(None, draws, matrix.specs(["sim-a"], ["rf"], seeds))
    assert [(repr(args[0]), args[1].seed) for _, args, _ in recorder] == [("sim-a@0", 0), ("sim-a@1", 1)]


def test_fm_matrix_pretrains_once_per_pretext_on_the_pooled_corpus(recorder):
    seeds = [0, 1, 2]
    draws = _draws(["sim-a", "real-b", "sim-texture-0"], seeds, simulated={"sim-a", "sim-texture-0"})
    settings = fm_settings.FMSettings(
        corpus=fm_settings.corpus_spec("data", ["sim-a", "real-b"], ["sim-texture-0"])
    )
    assert settings.corpus.real == ("real-b",) and settings.corpus.probe == ("sim-a", "sim-texture-0")
    # notebook 04's corpus_datasets: one list of main and sweep names names the same corpus (same pretraining)
    assert fm_settings.corpus_spec("data", ["sim-a", "real-b", "sim-texture-0"]) == settings.corpus
    matrix.submit_fm_runs(
        None,
        draws,
        main=["sim-a", "real-b"],
        seeds=seeds,
        fm_models=["prithvi_arch_small_mae", "prithvi_arch_small_spectral"],
        pretrained_models=[],
        texture_models=["prithvi_arch_small_mae"],
        pooled_models=[],
        settings=settings,
        prithvi_checkpoint=None,
        galileo_steps=1,
        results_path=None,
        runs_dir="runs",
        cache_dir="cache",
        maps_dir=None,
        convergence_path=None,
    )
    pre = [(i, c) for i, c in enumerate(recorder) if c[0] == "ensure_pretraining"]
    assert sorted(c[1][1] for _, c in pre) == ["prithvi_arch_small_mae", "prithvi_arch_small_spectral"]
    # corpus jobs one after another (each holds the pool in memory): the pretrainings, then their checks
    corpus_jobs = [
        (i, c) for i, c in enumerate(recorder) if c[0] in ("ensure_pretraining", "check_pretraining")
    ]
    assert [c[0] for _, c in corpus_jobs] == ["ensure_pretraining"] * 2 + ["check_pretraining"] * 2
    assert "after" not in corpus_jobs[0][1][2]
    for (prev, _), (_, c) in zip(corpus_jobs, corpus_jobs[1:], strict=False):
        assert c[2]["after"] == [prev]
    token_of = {c[1][1]: i for i, c in pre}
    fine = [c for c in recorder if c[0] == "run_fm_rows"]
    assert len(fine) == (2 * 2 + 1) * 3  # two rows on two main datasets, one on the knob; three seeds each
    for _, _, kwargs in fine:
        assert set(kwargs["after"]) <= set(token_of.values()) and kwargs["after"]


def test_a_budget_runs_its_own_replicates_and_the_full_label_block_keeps_the_seeds(recorder):
    """``budget_seeds``: more replicates at one budget (the regime map's smallest, where rows are not separated) for
    every family's budget rows, on their own draws, and nothing more anywhere else."""
    seeds, budget_seeds = [0, 1], {"points-10.0": [0, 1, 2]}
    assert matrix.all_seeds(seeds, budget_seeds) == [0, 1, 2]
    assert matrix.all_seeds([1, 0]) == [1, 0]
    assert matrix.all_seeds(seeds, budget_seeds, ["points-10"]) == [0, 1, 2]
    with pytest.raises(
        ValueError, match=r"budget_seeds names \['points-100'\]"
    ):  # a misspelt budget runs nothing
        matrix.all_seeds(seeds, {"points-100": [3]}, ["all", "points-10"])
    got = matrix.specs(
        ["sim-a"], ["rf"], seeds, matrix.below_all(["all", "points-10", "points-100"]), budget_seeds
    )
    assert [(s.label_budget, s.seed) for s in got] == [
        ("points-10", 0),
        ("points-10", 1),
        ("points-10", 2),
        ("points-100", 0),
        ("points-100", 1),
    ]
    assert matrix.specs(["sim-a"], ["rf"], seeds, ["points-10"], {}) == matrix.specs(
        ["sim-a"], ["rf"], seeds, ["points-10"]
    )
    draws = _draws(["sim-a"], [0, 1, 2], simulated={"sim-a"})
    budget = dict(label_budgets=["points-10"], budget_names=["sim-a"], budget_seeds=budget_seeds)
    paths = dict(results_path=None, runs_dir="runs", maps_dir=None, convergence_path=None)
    matrix.submit_cnn_runs(
        None, draws, main=["sim-a"], models=["unet"], texture_models=[], seeds=seeds, model_size="cpu",
        fit_settings={}, epoch_cap=None, budget_models=["unet"], **budget, **paths,
    )  # fmt: skip
    full = [(repr(a[0]), k["seed"]) for n, a, k in recorder if n == "run_checked"]
    at = [(repr(a[1]), a[2], a[3]) for n, a, _ in recorder if n == "at_budget"]
    assert full == [("sim-a@0", 0), ("sim-a@1", 1)]
    assert at == [("sim-a@0", "points-10", 0), ("sim-a@1", "points-10", 1), ("sim-a@2", "points-10", 2)]
    recorder.clear()
    matrix.submit_fm_runs(
        None, draws, main=["sim-a"], seeds=seeds, fm_models=["prithvi_arch_small_mae"],
        pretrained_models=["presto_frozen_linear"], texture_models=[], pooled_models=[], settings=None,
        prithvi_checkpoint=None, galileo_steps=1, cache_dir="cache",
        budget_models=["prithvi_arch_small_mae", "presto_frozen_linear"], **budget, **paths,
    )  # fmt: skip
    pre = {repr(a[0]): i for i, (n, a, _) in enumerate(recorder) if n == "ensure_pretraining"}
    assert sorted(pre) == ["sim-a@0", "sim-a@1", "sim-a@2"]  # the third draw's fine-tune has its pretraining
    fine = [(repr(a[1]), a[2], a[3], k["after"]) for n, a, k in recorder if n == "at_budget"]
    assert fine == [(f"sim-a@{s}", "points-10", s, [pre[f"sim-a@{s}"]]) for s in (0, 1, 2)]
    assert (
        len([1 for n, _, _ in recorder if n == "run_fm_rows"]) == 2
    )  # the full-label fine-tunes: seeds only
    frozen = sorted(
        (repr(a[0]), [(s.label_budget, s.seed) for s in a[1]])
        for n, a, _ in recorder
        if n == "run_frozen_plan"
    )
    assert frozen == [
        ("sim-a@0", [("all", 0), ("points-10", 0)]),
        ("sim-a@1", [("all", 1), ("points-10", 1)]),
        ("sim-a@2", [("points-10", 2)]),
    ]


def test_a_main_dataset_may_run_its_own_cnns(recorder):
    """``dataset_models``: the default runs each main dataset's best CNN beside U-Net; others keep ``models``."""
    draws = _draws(["sim-a", "sim-b", "sim-texture-0"], [0], simulated={"sim-a", "sim-b", "sim-texture-0"})
    matrix.submit_cnn_runs(
        None, draws, main=["sim-a", "sim-b"], models=["fcn", "unet"], texture_models=["unet"], seeds=[0],
        model_size="cpu", fit_settings={}, epoch_cap=None, results_path=None, runs_dir="runs", maps_dir=None,
        convergence_path=None, dataset_models={"sim-a": ["unet"], "sim-texture-0": ["fcn"]},
    )  # fmt: skip
    ran = [(repr(a[0]), a[1]) for n, a, _ in recorder if n == "run_checked"]
    # sim-a its own list, sim-b every model, the sweep its texture_models (a main-dataset setting only)
    assert ran == [("sim-a@0", "unet"), ("sim-b@0", "fcn"), ("sim-b@0", "unet"), ("sim-texture-0@0", "unet")]


def test_the_default_runs_u_net_and_only_main_datasets_in_its_per_dataset_cnns():
    """U-Net is the regime map's CNN: its full-label rows must exist wherever its budget rows run."""
    import yaml

    from helpers import chain

    params = yaml.safe_load((chain.REPO / "notebooks" / "params" / "default.yaml").read_text())
    chosen = params["notebooks"]["03_cnn_models"]["dataset_models"]
    assert set(chosen) == set(params["dataset_names"])
    assert all("unet" in models for models in chosen.values())


def test_the_compute_curve_follows_the_rows_run_at_each_budget(recorder, tmp_path):
    """``compute_budgets``: at every label the curve fine-tunes the first draw's ``fm_models`` pretext rows from the
    checkpoints; at a smaller budget, the ``budget_models`` pretext rows there, on the first draw seen through it (its
    ends are that budget's rows), and nothing on a dataset the budgets do not run on."""
    draws = _draws(["sim-a", "sim-b"], [0, 1], simulated={"sim-a", "sim-b"})
    matrix.submit_fm_runs(
        None, draws, main=["sim-a", "sim-b"], seeds=[0, 1],
        fm_models=["prithvi_arch_small_random", "prithvi_arch_small_mae", "prithvi_arch_small_spectral"],
        pretrained_models=[], texture_models=[], pooled_models=[], settings=None, prithvi_checkpoint=None,
        galileo_steps=1, results_path=tmp_path / "results.csv", runs_dir="runs", cache_dir="cache", maps_dir=None,
        convergence_path=None, label_budgets=["points-10"], budget_names=["sim-a"],
        budget_models=["prithvi_arch_small_random", "prithvi_arch_small_spectral"],
        compute_fractions=[0.25, 0.5], compute_budgets=["all", "points-10"],
    )  # fmt: skip
    full = sorted(
        (repr(a[0]), a[2], k["pretraining_fraction"]) for n, a, k in recorder if n == "run_prithvi_small"
    )
    assert full == [
        (f"{d}@0", m, f)
        for d in ("sim-a", "sim-b")
        for m in ("prithvi_arch_small_mae", "prithvi_arch_small_spectral")
        for f in (0.25, 0.5)
    ]
    small = [
        (a[0].__name__, repr(a[1]), a[2], a[3], a[5], k["pretraining_fraction"], k["results_path"].name)
        for n, a, k in recorder
        if n == "at_budget" and "pretraining_fraction" in k
    ]
    assert small == [
        (
            "run_prithvi_small",
            "sim-a@0",
            "points-10",
            0,
            "prithvi_arch_small_spectral",
            f,
            "pretraining_compute.csv",
        )
        for f in (0.25, 0.5)
    ]
    recorder.clear()  # without compute_budgets: every label only, as before the budgets
    matrix.submit_fm_runs(
        None, draws, main=["sim-a"], seeds=[0], fm_models=["prithvi_arch_small_mae"], pretrained_models=[],
        texture_models=[], pooled_models=[], settings=None, prithvi_checkpoint=None, galileo_steps=1,
        results_path=tmp_path / "results.csv", runs_dir="runs", cache_dir="cache", maps_dir=None,
        convergence_path=None, label_budgets=["points-10"], budget_names=["sim-a"],
        budget_models=["prithvi_arch_small_mae"], compute_fractions=[0.5],
    )  # fmt: skip
    assert [n for n, a, k in recorder if "pretraining_fraction" in k] == ["run_prithvi_small"]
    with pytest.raises(ValueError, match=r"compute_budgets names \['points-100'\]"):  # never run: not silent
        matrix.submit_fm_runs(
            None, draws, main=["sim-a"], seeds=[0], fm_models=[], pretrained_models=[], texture_models=[],
            pooled_models=[], settings=None, prithvi_checkpoint=None, galileo_steps=1, results_path=None,
            runs_dir="runs", cache_dir="cache", maps_dir=None, convergence_path=None, label_budgets=["points-10"],
            budget_names=["sim-a"], compute_fractions=[0.5], compute_budgets=["all", "points-100"],
        )  # fmt: skip

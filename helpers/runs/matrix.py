"""The run matrix of the deep families: which (dataset, model, seed) runs notebooks 03 and 04 submit, as engine jobs.

Each function submits one notebook's runs to the engine (:mod:`helpers.runs.engine`: a dask client, or ``None`` to
run each job at once in this process) and returns ``(jobs, runs)``: the jobs to :func:`helpers.runs.engine.gather`
and one dict per job saying what it runs, for the notebook's summary table. What a run does, and whether it is
skipped, is the family's business (:mod:`helpers.runs.train`, :mod:`helpers.runs.fm_finetuned`,
:mod:`helpers.runs.fm_frozen`, all through :mod:`helpers.runs.runner`); this module only decides the
matrix and its order:

* the main datasets get every model, the texture sweep its own shorter list (README, "The default run matrix");
* the first seed of every (dataset, model), the texture sweep included, has its convergence check recorded (its last
  cycle, or for one-cycle runs a continuation from a restarted learning rate: :mod:`helpers.runs.convergence`); it
  gets priority 1 and starts first, so the evidence comes early;
* in-study pretraining is a job of its own at priority 2, once per pretext on the pooled corpus when the settings
  name one (:class:`helpers.runs.fm_settings.CorpusSpec`), else once per (dataset or pool, pretext); the fine-tunes of
  every seed are submitted ``after`` it, so no two workers repeat or wait inside the same pretraining;
* the frozen published-encoder rows of one dataset are one job: they share its embedding cache.

**Replicates.** Every function takes ``draws``: ``{name: {seed: dataset}}``
(:func:`helpers.data.datasets.prepare_replicates`). The run of seed ``k`` trains on replicate ``k``'s dataset: a data
draw of its own for a simulated dataset, the same fixed data for a real one. What depends on the data (pretraining,
the embedding cache) is therefore done once per distinct dataset object: once per replicate on simulated data, once
in all on real data.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

from helpers.data import labels
from helpers.models import cnn
from helpers.runs import (
    classical,
    convergence,
    deep_run,
    engine,
    fm_finetuned,
    fm_frozen,
    fm_settings,
    galileo_finetuned,
    schedule,
)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of the matrix: dataset, model, seed and its axes (the label budget).

    The spec is all a job needs to know: the job applies the budget's view once
    (:func:`helpers.data.labels.label_view`, drawn with the run's seed), and every family names the run from the
    view (:func:`helpers.runs.runner.identity`). Adding an axis is a field here plus the view that applies it.
    """

    dataset: str
    model: str
    seed: int
    label_budget: str = labels.ALL

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_budget", labels.LabelBudget.parse(self.label_budget).tag)


def specs(
    datasets: Sequence[str],
    models: Sequence[str],
    seeds: Sequence[int],
    label_budgets: Sequence[str] = (labels.ALL,),
    budget_seeds: Mapping[str, Sequence[int]] | None = None,
) -> list[RunSpec]:
    """Every (dataset, model, seed, budget) of a block of the matrix, budgets outermost after the dataset.

    A budget that ``budget_seeds`` names runs its own seeds (:func:`seeds_by_budget`), the others ``seeds``: the
    regime map asks for more replicates where its leading rows are not separated at the smallest budget, and naming
    them per budget costs only those rows (the full-label block keeps ``seeds``).
    """
    by = seeds_by_budget(budget_seeds)
    return [
        RunSpec(d, m, int(s), b)
        for d in datasets
        for b in [x.tag for x in labels.parse_all(label_budgets)]
        for m in models
        for s in by.get(b, seeds)
    ]


def seeds_by_budget(budget_seeds: Mapping[str, Sequence[int]] | None) -> dict[str, list[int]]:
    """``budget_seeds`` keyed by budget tag (``points-10.0`` and ``points-10`` name one budget)."""
    return {labels.LabelBudget.parse(b).tag: [int(s) for s in v] for b, v in (budget_seeds or {}).items()}


def all_seeds(
    seeds: Sequence[int],
    budget_seeds: Mapping[str, Sequence[int]] | None = None,
    label_budgets: Sequence[str] | None = None,
) -> list[int]:
    """Every replicate the matrix runs, ``seeds`` first: the data draws a notebook prepares.

    With ``label_budgets`` (the budgets the notebook runs), a budget of ``budget_seeds`` that none of them is raises:
    a misspelt budget would otherwise add no run, silently.
    """
    by = seeds_by_budget(budget_seeds)
    if label_budgets is not None:
        unknown = sorted(set(by) - {b.tag for b in labels.parse_all(label_budgets)})
        if unknown:
            raise ValueError(
                f"budget_seeds names {unknown}, which the label budgets run here ({list(label_budgets)}) do not hold"
            )
    extra = [s for v in by.values() for s in v]
    return list(dict.fromkeys([*map(int, seeds), *extra]))


def distinct(per_seed: Mapping[int, object], seeds: Sequence[int]) -> list[tuple[object, list[int]]]:
    """The distinct dataset objects among ``per_seed[s]`` for ``seeds``, each with the seeds that use it, in order.

    On a fixed dataset every seed maps to one object (one group); on a simulated one each seed has its own draw.
    """
    groups: dict[int, tuple[object, list[int]]] = {}
    for s in seeds:
        ds = per_seed[int(s)]
        groups.setdefault(id(ds), (ds, []))[1].append(int(s))
    return list(groups.values())


def budget_datasets(main: Sequence[str], opened: Mapping, knobs: Sequence[float]) -> list[str]:
    """The datasets the label budgets run on: the main ones and the sweep at ``knobs`` (those opened)."""
    sweep = [f"sim-texture-{float(k):g}" for k in knobs]
    return [n for n in [*main, *sweep] if n in opened]


def at_budget(fn, ds, label_budget: str, seed: int, /, *args, **kwargs):
    """``fn(view, *args, **kwargs)`` on ``ds`` seen through ``label_budget`` drawn with ``seed``: an engine job.

    The view is built in the job (on the worker), so only the dataset and the budget's name travel.
    """
    return fn(labels.label_view(ds, label_budget, seed), *args, **kwargs)


def run_classical_spec(ds, spec: RunSpec, keep_fitted: bool = False, **kwargs) -> classical.ClassicalRun:
    """One classical run of the matrix (:func:`helpers.runs.classical.run_classical` on the spec's view).

    ``keep_fitted=False`` drops the fitted model and the kept maps from the returned outcome (the rows and saved
    maps are written either way): notebook 02 keeps them for its figures of the first seed at full labels only.
    """
    run = classical.run_classical(
        labels.label_view(ds, spec.label_budget, spec.seed), spec.model, spec.seed, **kwargs
    )
    if not keep_fitted:
        run.model, run.predictions = None, {}
    return run


def submit_classical_runs(
    client, draws: Mapping, run_specs: Sequence[RunSpec], *, keep_fitted=None, **kwargs
) -> list:
    """Notebook 02's runs, one job per spec (``client=None``: each runs at submit, here, sharing one feature cache).

    Args:
        client: Engine client or None.
        draws: ``{name: {seed: dataset}}`` (the spec's seed picks its replicate).
        run_specs: From :func:`specs`.
        keep_fitted: ``spec -> bool``: keep that run's fitted model and maps in the outcome (default: none).
        **kwargs: Passed to :func:`helpers.runs.classical.run_classical` (``results_path``, ``budget``, ``cache``, ...).
    """
    from tqdm.auto import tqdm

    return [
        engine.submit(
            client,
            run_classical_spec,
            draws[s.dataset][s.seed],
            s,
            bool(keep_fitted(s)) if keep_fitted else False,
            **kwargs,
        )
        for s in tqdm(run_specs, desc="classical runs", disable=client is not None)  # in-process: runs here
    ]


def _checked(convergence_path, seed: int, seeds: Sequence[int]):
    """The convergence table for the first seed of every dataset (its convergence check), else None.

    The texture sweep is checked too, not only the main datasets: its runs carry claim 2, and a check that skipped
    them would leave the claim's own evidence unchecked.
    """
    return convergence_path if seed == seeds[0] else None


def submit_cnn_runs(
    client,
    draws: Mapping,
    *,
    main: Sequence[str],
    models: Sequence[str],
    texture_models: Sequence[str],
    seeds: Sequence[int],
    model_size: str,
    fit_settings: Mapping,
    epoch_cap: float | None,
    results_path: str | os.PathLike,
    runs_dir: str | os.PathLike,
    maps_dir: str | os.PathLike | None,
    convergence_path: str | os.PathLike | None,
    force: bool = False,
    budget_models: Sequence[str] = (),
    label_budgets: Sequence[str] = (),
    budget_names: Sequence[str] = (),
    budget_seeds: Mapping[str, Sequence[int]] | None = None,
    dataset_models: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list, list[dict]]:
    """Notebook 03's runs: every CNN on every main dataset, ``texture_models`` on the sweep, every seed.

    Then ``budget_models`` at each of ``label_budgets`` (below ``all``) on ``budget_names``, every seed (the regime
    map; no convergence check: its table is of full-label runs).

    Args:
        client: Engine client (``None``: each run trains at submit, here).
        draws: ``{name: {seed: dataset}}``, the main datasets and the texture sweep (module docstring: replicates).
        main: Names of the main datasets (the rest of ``draws`` is the texture sweep).
        models: CNNs of the main datasets (:data:`helpers.models.cnn.MODELS`).
        texture_models: CNNs of the texture sweep.
        seeds: Run seeds.
        model_size: ``"cpu"`` or ``"paper"`` (:data:`helpers.models.cnn.SIZES`).
        fit_settings: :func:`helpers.runs.train.fit` settings, before each dataset's plateau settings and cap
            (:func:`helpers.runs.schedule.settings_for`).
        epoch_cap: Cap in passes over the training chips (the paper profile), or None.
        results_path: Results table.
        runs_dir: Root of the run folders (checkpoints, logs).
        maps_dir: Where runs save their test maps (None: none).
        convergence_path: Convergence table of the convergence checks (None: no check).
        force: Retrain even runs the table holds under the same key.
        budget_models: CNNs that also run at the label budgets.
        label_budgets: Budget tags (:mod:`helpers.data.labels`); ``all`` is the main block and is left out here.
        budget_names: Datasets the budgets run on (:func:`budget_datasets`).
        budget_seeds: ``{budget: seeds}`` for budgets that run other replicates than ``seeds``
            (:func:`specs`; ``draws`` must hold them, :func:`all_seeds`).
        dataset_models: ``{main dataset: CNNs}`` run there instead of ``models`` (a dataset not named runs
            ``models``): the default runs each main dataset's validation-best CNN beside U-Net, for its budget.
    """
    jobs, runs = [], []
    per_dataset = dict(dataset_models or {})
    for name, per_seed in draws.items():
        for model_name in per_dataset.get(name, models) if name in main else texture_models:
            for seed in seeds:
                ds = per_seed[seed]
                checked = _checked(convergence_path, seed, seeds)
                jobs.append(
                    engine.submit(
                        client,
                        convergence.run_checked,
                        ds,
                        model_name,
                        partial(cnn.build_for, model_name, ds, model_size),
                        key_settings=cnn.key_settings(model_size),
                        seed=seed,
                        results_path=results_path,
                        runs_dir=runs_dir,
                        maps_dir=maps_dir,
                        force=force,
                        convergence_path=checked,
                        progress=client is None,
                        priority=1 if checked else 0,
                        # each dataset's plateau settings (sim-crop: a steadier test) and epoch cap
                        **schedule.settings_for(ds, fit_settings, epoch_cap),
                    )
                )
                runs.append({"dataset": name, "model": model_name, "seed": seed})
    for spec in specs(budget_names, budget_models, seeds, below_all(label_budgets), budget_seeds):
        ds = draws[spec.dataset][spec.seed]
        jobs.append(
            engine.submit(
                client,
                at_budget,
                deep_run.run,
                ds,
                spec.label_budget,
                spec.seed,
                spec.model,
                partial(cnn.build_for, spec.model, ds, model_size),
                key_settings=cnn.key_settings(model_size),
                seed=spec.seed,
                results_path=results_path,
                runs_dir=runs_dir,
                maps_dir=maps_dir,
                force=force,
                progress=client is None,
                **schedule.settings_for(ds, fit_settings, epoch_cap, spec.label_budget),
            )
        )
        runs.append(dataclasses.asdict(spec))
    return jobs, runs


def below_all(label_budgets: Sequence[str]) -> list[str]:
    """The budgets of ``label_budgets`` below ``all``, as tags (the full-label runs are the matrix's main block)."""
    return [b.tag for b in labels.parse_all(label_budgets) if b.kind != labels.ALL]


def submit_fm_runs(
    client,
    draws: Mapping,
    *,
    main: Sequence[str],
    seeds: Sequence[int],
    fm_models: Sequence[str],
    pretrained_models: Sequence[str],
    texture_models: Sequence[str],
    pooled_models: Sequence[str],
    settings: fm_settings.FMSettings,
    prithvi_checkpoint: str | os.PathLike | None,
    galileo_steps: int | None,
    results_path: str | os.PathLike,
    runs_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    maps_dir: str | os.PathLike | None,
    convergence_path: str | os.PathLike | None,
    force: bool = False,
    quick: bool = False,
    budget_models: Sequence[str] = (),
    label_budgets: Sequence[str] = (),
    budget_names: Sequence[str] = (),
    deep_label_budgets: Sequence[str] | None = None,
    compute_fractions: Sequence[float] = (),
    compute_budgets: Sequence[str] = (labels.ALL,),
    budget_seeds: Mapping[str, Sequence[int]] | None = None,
) -> tuple[list, list[dict]]:
    """Notebook 04's runs: in-study pretraining, the fine-tuned rows, and the published-encoder rows.

    Then ``budget_models`` (in-study variants and frozen rows) at each of ``label_budgets`` below ``all`` on
    ``budget_names``, every seed: the fine-tunes (at ``deep_label_budgets`` when given) after their dataset's
    pretraining (which never sees a budget), the frozen rows in their dataset's one job (one embedding cache for
    every budget).

    Args:
        client: Engine client (``None``: each job runs at submit, here).
        draws: ``{name: {seed: dataset}}``, the main datasets and the texture sweep (module docstring: replicates).
        main: Names of the main datasets (the rest of ``draws`` is the texture sweep).
        seeds: Run seeds.
        fm_models: Rows of :mod:`helpers.runs.fm_finetuned` (Prithvi-arch variants, ViT, SegFormer, Prithvi-100M) on the
            main datasets.
        pretrained_models: Rows of :mod:`helpers.runs.fm_frozen` (frozen Galileo-nano / Presto, Galileo-nano
            fine-tuned from its published weights and from random init) on the main datasets.
        texture_models: Rows of either module on the texture sweep.
        pooled_models: In-study variants pretrained once on the main datasets pooled (``*_pooled`` rows).
        settings: FM sizes and budgets (:class:`helpers.runs.fm_settings.FMSettings`).
        prithvi_checkpoint: The user's ``Prithvi_100M.pt`` (or None).
        galileo_steps: Step cap of the Galileo-nano fine-tunes (``None``: the plateau protocol's own cap).
        results_path: Results table.
        runs_dir: Root of the run folders (checkpoints, logs).
        cache_dir: Pretraining and embedding caches.
        maps_dir: Where runs save their test maps (None: none).
        convergence_path: Convergence table of the convergence checks (None: no check).
        force: Rerun even runs the table holds under the same key.
        quick: Quick mode (Galileo-nano fine-tuning validates every 2 steps, no plateau rule).
        budget_models: In-study variants, Galileo-nano fine-tunes and frozen rows that also run at the label budgets.
        label_budgets: Budget tags (:mod:`helpers.data.labels`) of the frozen rows (``all`` is left out here).
        budget_names: Datasets the budgets run on (:func:`budget_datasets`).
        deep_label_budgets: Budget tags of the fine-tuned rows (``None``: ``label_budgets``).
        compute_fractions: The pretraining-compute curve: each in-study pretext row of every dataset is also
            fine-tuned, first seed only, from its pretraining's checkpoint at these fractions of the selected step
            (0.25, 0.5; :func:`helpers.runs.fm_finetuned.run_prithvi_small`). Its rows go to ``pretraining_compute.csv``
            beside the results table, not into it: they are a diagnostic of pretraining, never a verdict's
            candidate.
        compute_budgets: The label budgets of that curve: at ``all`` it follows ``fm_models`` / ``texture_models``;
            at a budget of ``deep_label_budgets`` below it, the pretext rows of ``budget_models`` on ``budget_names``
            (its ends, random init and selected encoder, are those rows), on the first replicate's draw.
        budget_seeds: ``{budget: seeds}`` for budgets that run other replicates than ``seeds``
            (:func:`specs`; ``draws`` must hold them, :func:`all_seeds`).
    """
    below = below_all(label_budgets)
    deep_below = below if deep_label_budgets is None else below_all(deep_label_budgets)
    compute_tags = [b.tag for b in labels.parse_all(compute_budgets)] if compute_fractions else []
    unknown = sorted(set(compute_tags) - {labels.ALL, *deep_below})  # else a misspelt budget runs nothing
    if unknown:
        raise ValueError(f"compute_budgets names {unknown}: the fine-tuned rows run at none of them")
    common = dict(results_path=results_path, force=force, maps_dir=maps_dir, progress=client is None)
    pre_kw = dict(cache_dir=cache_dir, progress=client is None)
    # the Galileo fine-tunes' quick mode: validate every 2 steps, no plateau rule
    finetune_quick = {"eval_every": 2, "patience": None} if quick else {}
    pool_of, pooled_pre = _pooled_pretrainings(client, draws, main, seeds, pooled_models, settings, pre_kw)
    # the pooled corpus (settings.corpus): one pretraining per pretext, shared by every dataset and draw
    corpus = _CorpusJobs() if getattr(settings, "corpus", None) is not None else None
    # the pretraining table (one row per in-study pretraining, its probe curve beside it) sits beside the results
    record_kw = {"pretraining_path": Path(results_path).with_name("pretraining.csv")} if results_path else {}
    compute_path = Path(results_path).with_name(fm_finetuned.COMPUTE_TABLE) if results_path else None
    out = _Submitted(client)
    galileo_kw = dict(runs_dir=runs_dir, max_steps=galileo_steps, **common, **finetune_quick)
    for name, per_seed in draws.items():
        chosen = [*fm_models, *pretrained_models] if name in main else list(texture_models)
        in_study = [m for m in chosen if m in fm_finetuned.DEFAULT_MODELS]
        published_rows = [m for m in chosen if m not in fm_finetuned.DEFAULT_MODELS]
        budgeted = list(budget_models) if name in budget_names else []
        study_budgeted = [m for m in budgeted if m in fm_finetuned.DEFAULT_MODELS] if deep_below else []
        pretext = {
            m: fm_finetuned.VARIANTS[m].pretext
            for m in [*in_study, *study_budgeted]
            if m in fm_finetuned.VARIANTS
        }
        study_specs = specs([name], study_budgeted, seeds, deep_below, budget_seeds)
        # every draw a fine-tune starts on, the budgets' own replicates included
        pre_seeds = all_seeds([*seeds, *(s.seed for s in study_specs)])
        pre = _pretrainings(client, per_seed, pre_seeds, pretext, settings, corpus, {**pre_kw, **record_kw})
        fm_kw = dict(
            settings=settings,
            prithvi_checkpoint=prithvi_checkpoint,
            runs_dir=runs_dir,
            cache_dir=cache_dir,  # in-study pretraining runs land in cache_dir/pretrain/
            **common,
        )
        pooled = list(pooled_models) if name in main else []
        galileo_rows = [r for r in galileo_finetuned.FINETUNE_ROWS if r in published_rows]
        for seed in seeds:
            checked = _checked(convergence_path, seed, seeds)
            jobs_kw = dict(fm_kw=fm_kw, galileo_kw=galileo_kw, checked=checked)
            _seed_rows(
                out,
                name,
                per_seed[seed],
                seed,
                in_study,
                pooled,
                galileo_rows,
                pre,
                pretext,
                pooled_pre,
                pool_of[seed],
                **jobs_kw,
            )
        # the curve at each budget follows the pretext rows run there (its ends are those rows)
        fine_tuned = [m for m, p in pretext.items() if p and not fm_finetuned.VARIANTS[m].probe]
        curve = {
            b: [m for m in fine_tuned if m in (in_study if b == labels.ALL else study_budgeted)]
            for b in compute_tags
        }
        _compute_curve(
            out, name, per_seed, seeds, curve, compute_fractions, pre, pretext, fm_kw, compute_path
        )
        finetune_budgeted = (
            [m for m in budgeted if m in galileo_finetuned.FINETUNE_ROWS] if deep_below else []
        )
        galileo_specs = specs([name], finetune_budgeted, seeds, deep_below, budget_seeds)
        _budget_fine_tunes(out, name, per_seed, study_specs, galileo_specs, pre, pretext, fm_kw, galileo_kw)
        frozen = [r for r in published_rows if r not in galileo_finetuned.FINETUNE_ROWS]
        frozen_budgeted = [m for m in budgeted if m in fm_frozen.ROWS] if below else []
        frozen_plan = [
            *specs([name], frozen, seeds),
            *specs([name], frozen_budgeted, seeds, below, budget_seeds),
        ]
        _frozen_jobs(out, name, per_seed, frozen_plan, cache_dir, common)
    if (
        corpus is not None
    ):  # the pooled pretrainings' checks, after every pretraining (fine-tunes do not wait)
        out.jobs += corpus.submit_checks(client, settings, {**pre_kw, **record_kw})
    return out.jobs, out.runs


def _budget_fine_tunes(
    out, name, per_seed, study_specs, galileo_specs, pre, pretext, fm_kw, galileo_kw
) -> None:
    """The fine-tuned rows of one dataset below full labels, each on its seed's draw seen through its budget.

    The in-study rows wait for their draw's pretraining (which never sees a budget); the Galileo-nano pair starts
    from its published weights and from random init.
    """
    for spec in study_specs:
        ds = per_seed[spec.seed]
        after = [pre[id(ds), pretext[spec.model]]] if pretext.get(spec.model) else []
        run = {"dataset": name, "seed": spec.seed, "rows": f"{spec.model} @ {spec.label_budget}"}
        fm_args = (fm_finetuned.run_fm_rows, ds, spec.label_budget, spec.seed, spec.seed)
        out.add(run, at_budget, *fm_args, models=[spec.model], after=after, **fm_kw)
    for spec in galileo_specs:
        out.add(
            {"dataset": name, "seed": spec.seed, "rows": f"{spec.model} @ {spec.label_budget}"},
            at_budget,
            galileo_finetuned.run_galileo_nano_finetune,
            per_seed[spec.seed],
            spec.label_budget,
            spec.seed,
            spec.seed,
            pretrained=spec.model == galileo_finetuned.FINETUNE_ROW,
            **galileo_kw,
        )


def _seed_rows(
    out,
    name,
    ds,
    seed,
    in_study,
    pooled,
    galileo_rows,
    pre,
    pretext,
    pooled_pre,
    pool,
    *,
    fm_kw,
    galileo_kw,
    checked,
) -> None:
    """One replicate's fine-tuned rows at full labels, in submission order.

    The in-study rows (after their pretraining), the rows pretrained on the pooled main datasets, and the Galileo-nano
    fine-tunes; ``checked`` is the convergence table for the first replicate (its runs are checked and go first),
    else ``None``.
    """
    for model in in_study:
        after = [pre[id(ds), pretext[model]]] if pretext.get(model) else []
        out.add(
            {"dataset": name, "seed": seed, "rows": model},
            fm_finetuned.run_fm_rows,
            ds,
            seed,
            models=[model],
            after=after,
            priority=1 if checked else 0,
            convergence_path=checked,
            **fm_kw,
        )
    for variant in pooled:
        out.add(
            {"dataset": name, "seed": seed, "rows": f"{variant}_pooled"},
            fm_finetuned.run_fm_rows,
            ds,
            seed,
            models=[],
            pooled=[variant],
            pool=pool,
            after=[pooled_pre[variant, tuple(id(d) for d in pool)]],
            convergence_path=checked,
            **fm_kw,
        )
    for row in galileo_rows:
        out.add(
            {"dataset": name, "seed": seed, "rows": row},
            galileo_finetuned.run_galileo_nano_finetune,
            ds,
            seed,
            pretrained=row == galileo_finetuned.FINETUNE_ROW,
            convergence_path=checked,
            priority=1 if checked else 0,
            **galileo_kw,
        )


@dataclasses.dataclass
class _Submitted:
    """The jobs one notebook submitted, in order, and a description of each run (what the notebook prints)."""

    client: object
    jobs: list = dataclasses.field(default_factory=list)
    runs: list[dict] = dataclasses.field(default_factory=list)

    def add(self, run: dict, fn, /, *args, **kwargs) -> None:
        """Submit ``fn(*args, **kwargs)`` (:func:`helpers.runs.engine.submit`) and record ``run``."""
        self.jobs.append(engine.submit(self.client, fn, *args, **kwargs))
        self.runs.append(run)


@dataclasses.dataclass
class _CorpusJobs:
    """The pooled corpus's pretrainings: one per pretext for every dataset and draw, run one after another.

    Each holds the whole pool in memory (1.1 GB at 1,024 images per family); two at once would take the chain past
    its memory budget, so each waits for the previous one, and so do their continuation checks.
    """

    by_pretext: dict = dataclasses.field(default_factory=dict)
    jobs: list = dataclasses.field(default_factory=list)
    checks: list = dataclasses.field(
        default_factory=list
    )  # (dataset, variant) of each, checked once all have run

    def submit_checks(self, client, settings, pre_kw: Mapping) -> list:
        """The continuation check of every corpus pretraining, chained after the last job."""
        for ds, m in self.checks:
            self.jobs.append(
                engine.submit(
                    client,
                    fm_finetuned.check_pretraining,
                    ds,
                    m,
                    settings,
                    priority=2,
                    after=self.jobs[-1:],
                    **pre_kw,
                )
            )
        return self.jobs[len(self.jobs) - len(self.checks) :]


def _pooled_pretrainings(client, draws, main, seeds, pooled_models, settings, pre_kw) -> tuple[dict, dict]:
    """One MAE-style pretraining per distinct pool of main datasets (one per replicate on simulated data).

    Returns ``({seed: pool}, {(variant, pool id): job})``.
    """
    pools: dict[tuple, list] = {}
    for seed in seeds:
        pool = [draws[n][seed] for n in main]
        pools.setdefault(tuple(id(d) for d in pool), pool)
    pool_of = {seed: pools[tuple(id(draws[n][seed]) for n in main)] for seed in seeds}
    pooled_pre = {
        (v, key): engine.submit(
            client,
            fm_finetuned.ensure_pretraining,
            pool[0],
            v,
            settings,
            pretrain_on=pool,
            priority=2,
            **pre_kw,
        )
        for v in pooled_models
        for key, pool in pools.items()
    }
    return pool_of, pooled_pre


def _pretrainings(client, per_seed, seeds, pretext, settings, corpus: _CorpusJobs | None, pre_kw) -> dict:
    """The in-study pretraining jobs of one dataset: ``{(id(data draw), pretext): job}``.

    One per (data draw, pretext), probes sharing it; on the pooled corpus one per pretext for every dataset, submitted
    with the first dataset that needs it.
    """
    first = {p: m for m, p in reversed(pretext.items()) if p}
    pre: dict[tuple[int, str], object] = {}
    for ds, _ in distinct(per_seed, seeds):
        for p, m in first.items():
            if corpus is not None and p in corpus.by_pretext:
                pre[id(ds), p] = corpus.by_pretext[p]
                continue
            chained = {"after": corpus.jobs[-1:]} if corpus is not None and corpus.jobs else {}
            pre[id(ds), p] = engine.submit(
                client, fm_finetuned.ensure_pretraining, ds, m, settings, priority=2, **pre_kw, **chained
            )
            if corpus is not None:
                corpus.by_pretext[p] = pre[id(ds), p]
                corpus.jobs.append(pre[id(ds), p])
                corpus.checks.append((ds, m))
    return pre


def _compute_curve(out, name, per_seed, seeds, curve, fractions, pre, pretext, fm_kw, compute_path) -> None:
    """The pretraining-compute curve: the first seed again, from checkpoints part of the way through pretraining.

    ``curve`` maps each label budget to the fine-tuned pretext rows run at it (a linear probe's curve is the
    pretraining's own probe curve); a budget below ``all`` sees the first seed's draw through it, as that budget's
    rows do. The rows go to ``compute_path`` beside the results table, never into it.
    """
    first_ds, seed = per_seed[seeds[0]], seeds[0]
    for model, fraction, budget in [
        (m, f, b) for b, models in curve.items() for m in models for f in fractions
    ]:
        at = "" if budget == labels.ALL else f" @ {budget}"
        if at:  # the view is built in the job, as for the budget's own rows
            fn, args = at_budget, (fm_finetuned.run_prithvi_small, first_ds, budget, seed, seed, model)
        else:
            fn, args = fm_finetuned.run_prithvi_small, (first_ds, seed, model)
        out.add(
            {"dataset": name, "seed": seed, "rows": f"{model} from {fraction:g} of pretraining{at}"},
            fn,
            *args,
            pretraining_fraction=fraction,
            after=[pre[id(first_ds), pretext[model]]],
            settings=fm_kw["settings"],
            runs_dir=fm_kw["runs_dir"],
            cache_dir=fm_kw["cache_dir"],
            results_path=compute_path,
            force=fm_kw["force"],
            progress=fm_kw["progress"],
            chips_dir=None,
        )


def _frozen_jobs(out, name, per_seed, frozen_plan, cache_dir, common) -> None:
    """The frozen rows of one dataset: one job per data draw, its rows sharing the draw's embedding cache."""
    for ds, group in distinct(per_seed, all_seeds([s.seed for s in frozen_plan])):
        plan = [s for s in frozen_plan if s.seed in group]
        if not plan:
            continue
        cache = Path(cache_dir) / "embeddings"
        out.add(
            {
                "dataset": name,
                "seed": ",".join(map(str, group)),
                "rows": "+".join(dict.fromkeys(s.model for s in plan)),
            },
            fm_frozen.run_frozen_plan,
            ds,
            plan,
            cache_dir=cache,
            **common,
        )

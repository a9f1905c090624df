"""The evaluate stage: every trained variant and seed and every baseline on the held-out perturbations, in
one table, beside the data's own noise ceiling (metric definitions: ``dygenept.evaluation.metrics``), with
paired bootstrap intervals of each method's difference to train_mean and to the best baseline.

Protocol ``split``: the test perturbations of the dataset's split, one model per variant and seed.
Protocol ``cross_validation``: the folds of ``folds.json``, one model per variant, seed and fold; every
baseline is fitted on each fold's training perturbations, and each perturbation is scored by the methods
of the fold that held it out (once per split seed)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.conditions import condition_genes, parse_context_label
from ..data.perturbations import PerturbationData, half_split_means, load_perturbation_data
from ..data.splits import Fold, Split
from ..devices import resolve_device
from ..evaluation.baselines import BaselineSettings, make_baselines
from ..evaluation.bootstrap import BootstrapSettings, best_baseline, comparisons
from ..evaluation.interactions import InteractionSettings, evaluate_interactions
from ..evaluation.metrics import METRICS, discrimination_scores, perturbation_metrics
from ..io.artifacts import atomic_path, read_json, write_json_atomic
from ..model.checkpoint import checkpoint_inputs, load_checkpoint, load_fold_checkpoints
from ..model.inference import predict_condition
from ..model.network import TrainedModel
from ..settings import read_fields

log = logging.getLogger(__name__)

CEILING = "noise_ceiling"
CEILING_METRICS = ("pearson_delta", "pearson_delta_de", "pearson_delta_centred", "discrimination")
# The metrics whose differences between methods get bootstrap intervals.
COMPARED_METRICS = [
    "pearson_delta",
    "pearson_delta_de",
    "pearson_delta_centred",
    "discrimination",
    "mse_de",
]
# Baselines that predict every perturbation (additive predicts doubles of trained singles only, no_change
# has no pearson_delta): the candidates for "the best baseline".
FULL_BASELINES = ("train_mean", "linear", "kernel", "knn", "selected", "other_contexts")
Predictions = dict[
    str, dict[int, dict[str, np.ndarray]]
]  # method → seed → condition → mean expression (within one fold)


@dataclass
class FoldModels:
    """One fold (the single split, or one cross-validation fold) and the models trained on it."""

    name: str
    split_seed: int
    split: Split
    models: dict[str, dict[int, TrainedModel]] = field(default_factory=dict)
    records: dict[str, dict[int, dict]] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluateSettings:
    """Config ``evaluate``, with ``baselines`` and ``interactions``."""

    main_variant: str
    ceiling_draws: int
    seed: int
    show_condition: str | None
    device: str
    baselines: BaselineSettings
    bootstrap: BootstrapSettings
    interactions: InteractionSettings

    @classmethod
    def from_params(cls, params: dict) -> EvaluateSettings:
        return read_fields(
            cls,
            params,
            baselines=BaselineSettings.from_params(params["baselines"]),
            bootstrap=BootstrapSettings.from_params(params["bootstrap"]),
            interactions=InteractionSettings.from_params(params["interactions"]),
        )


def subgroup_of(split: dict) -> dict[str, str]:
    return {
        condition: group
        for group, conditions in split.get("test_subgroups", {}).items()
        for condition in conditions
    }


def reference_change(data: PerturbationData, train: list[str]) -> np.ndarray:
    """The reference of the centred metrics, as a change from control: the training perturbations' mean
    change (the train_mean baseline's)."""
    return np.mean([data.change(c) for c in data.measured(train)], axis=0)


class Scorer:
    """Scores predictions of the scored perturbations against the observed means. The discrimination
    score ranks each prediction among every scored perturbation's observed change (pooled over folds)."""

    def __init__(self, data: PerturbationData, test: list[str], de_genes: dict):
        position = {gene: i for i, gene in enumerate(data.gene_names)}
        self.data, self.test = data, test
        # each scored perturbation's controls (its context's, in data split by context)
        self.control = np.stack([data.control_mean_of(c) for c in test]).astype(np.float64)
        self.de_index = {
            c: np.array([position[g] for g in de_genes.get(c, []) if g in position], dtype=int)
            for c in test
        }
        self.target_index = {
            c: np.array([position[g] for g in condition_genes(c) if g in position], dtype=int)
            for c in test
        }
        self.row = {c: i for i, c in enumerate(test)}
        self.true = np.stack([data.true_mean(c) for c in test]).astype(np.float64)

    def score(
        self,
        predicted: dict[str, np.ndarray],
        reference: np.ndarray | dict[str, np.ndarray],
        true: np.ndarray | None = None,
        control: np.ndarray | None = None,
    ) -> list[dict]:
        """Rows of per-perturbation metrics; ``reference`` the centred metrics' change of reference (the
        training mean change of the fold that held the perturbation out: one, or one per condition);
        ``true``/``control`` (one row per scored perturbation) replace the observed means (ceiling)."""
        true = self.true if true is None else true
        control = self.control if control is None else control
        conditions = [c for c in self.test if c in predicted]
        if not conditions:
            return []
        matrix = np.stack([predicted[c] for c in conditions])
        discrimination = discrimination_scores(
            matrix,
            true,
            control,
            [self.target_index[c] for c in conditions],
            np.array([self.row[c] for c in conditions]),
        )
        return [
            {
                "condition": c,
                **perturbation_metrics(
                    predicted[c],
                    true[self.row[c]],
                    control[self.row[c]],
                    self.de_index[c],
                    control[self.row[c]]
                    + (reference[c] if isinstance(reference, dict) else reference),
                ),
                "discrimination": float(score),
            }
            for c, score in zip(conditions, discrimination)
        ]


def noise_ceiling(
    scorer: Scorer, h5ad: Path, draws: int, seed: int, reference: dict[str, np.ndarray]
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The metrics of one random half of each test perturbation's cells "predicting" the other half
    (each half against its own half of the controls), for ``draws`` draws."""
    halves, control_halves = half_split_means(h5ad, scorer.test, draws, seed)
    rows, first_draw = [], {}
    for draw in range(draws):
        # Deltas from each half's own controls (of the perturbation's context), expressed around the
        # full control mean.
        predicted, true = {}, scorer.true.copy()
        for c, pair in halves.items():
            control_a, control_b = control_halves[parse_context_label(c)[1]][draw]
            control = scorer.control[scorer.row[c]]
            predicted[c] = pair[draw][0] - control_a + control
            true[scorer.row[c]] = pair[draw][1] - control_b + control
        rows += [{"seed": draw, **row} for row in scorer.score(predicted, reference, true)]
        if draw == 0:
            first_draw = predicted
    return rows, first_draw


def predict_fold(
    data: PerturbationData, fold: FoldModels, settings: EvaluateSettings
) -> Predictions:
    """Predictions of the fold's test perturbations by every baseline fitted on its training
    perturbations (seed 0: they are deterministic) and by every variant and seed trained on them."""
    test, train = data.measured(fold.split.test), data.measured(fold.split.train)
    predictions: Predictions = {}
    for name, predictor in make_baselines(data, train, settings.baselines).items():
        made = {c: predictor(c) for c in test}
        predictions[name] = {0: {c: v for c, v in made.items() if v is not None}}
    for variant, seeds in fold.models.items():
        predictions[variant] = {
            seed: {c: predict_condition(model, data, c)[0] for c in test}
            for seed, model in sorted(seeds.items())
        }
    return predictions


def split_folds(split: dict, inputs: dict[str, Path], device: str) -> list[FoldModels]:
    """Protocol split: one fold, the dataset's split, with one checkpoint per variant and seed (each
    network on ``device``)."""
    the_split = Split(
        split["train"],
        split.get("val", []),
        split["test"],
        split.get("test_subgroups", {}),
        split.get("val_subgroups", {}),
    )
    fold = FoldModels("split", 0, the_split)
    for variant, seeds in checkpoint_inputs(inputs).items():
        for seed, (weights, config) in sorted(seeds.items()):
            model, saved = load_checkpoint(weights, config)
            fold.models.setdefault(variant, {})[seed] = model.to(device)
            fold.records.setdefault(variant, {})[seed] = saved
    return [fold]


def cross_validation_folds(folds: dict, inputs: dict[str, Path], device: str) -> list[FoldModels]:
    """Protocol cross_validation: every fold of ``folds.json``, with its model of every variant and seed
    (each checkpoint input holds one model per fold)."""
    found = [FoldModels(f.name, f.split_seed, f.split) for f in map(Fold.from_dict, folds["folds"])]
    by_name = {fold.name: fold for fold in found}
    for variant, seeds in checkpoint_inputs(inputs).items():
        for seed, (weights, config) in sorted(seeds.items()):
            for name, (model, record) in load_fold_checkpoints(weights, config).items():
                by_name[name].models.setdefault(variant, {})[seed] = model.to(device)
                by_name[name].records.setdefault(variant, {})[seed] = record
    return found


def summarise(per_condition: pd.DataFrame) -> dict:
    """Per method and group ('all' and each test subgroup): each metric's mean over the perturbations
    for each run (a training seed and a split seed), then the mean and standard deviation over runs (sd 0
    with one run)."""
    summary: dict = {}
    for method, table in per_condition.groupby("method", sort=False):
        summary[method] = {}
        groups = [("all", table), *table.groupby("subgroup")]
        for group, part in groups:
            by_run = part.groupby(["seed", "split_seed"])[list(METRICS)].mean()
            entry = {"n": int(part["condition"].nunique()), "seeds": int(len(by_run))}
            for metric in METRICS:
                values = by_run[metric].dropna()
                entry[metric] = round(float(values.mean()), 4) if len(values) else None
                entry[f"{metric}_sd"] = (
                    round(float(values.std(ddof=1)), 4) if len(values) > 1 else 0.0
                )
            summary[method][group] = entry
    return summary


def method_comparisons(per_condition: pd.DataFrame, settings: BootstrapSettings) -> dict:
    """Every method's paired intervals of difference to train_mean and to the best baseline (the one
    with the highest mean pearson_delta over the scored perturbations), per metric."""
    scored = per_condition[per_condition["method"] != CEILING]
    values = scored.groupby(["method", "condition"])["pearson_delta"].mean().unstack("method")
    best = best_baseline(
        pd.concat({"pearson_delta": values}, axis=1),
        [m for m in FULL_BASELINES if m in values],
        "pearson_delta",
    )
    references = {"train_mean": "train_mean"} | ({"best_baseline": best} if best else {})
    methods = [m for m in scored["method"].unique() if m != "no_change"]
    return {
        "best_baseline": best,
        "methods": comparisons(scored, methods, references, COMPARED_METRICS, settings),
    }


def fraction_of_ceiling(summary: dict) -> dict:
    """Each method's mean over the ceiling's, per group, for the correlation-like metrics."""
    ceiling = summary.get(CEILING, {})
    result: dict = {}
    for method, groups in summary.items():
        if method == CEILING:
            continue
        for group, entry in groups.items():
            for metric in CEILING_METRICS:
                bound = ceiling.get(group, {}).get(metric)
                value = entry.get(metric)
                if bound and value is not None:
                    result.setdefault(method, {}).setdefault(group, {})[metric] = round(
                        value / bound, 4
                    )
    return result


def facet_weight_rows(
    condition: str, data: PerturbationData, facet_weights: np.ndarray
) -> list[dict]:
    rows = []
    for slot, row in enumerate(data.known_rows(condition)):
        for k, facet in enumerate(data.facets.facet_ids):
            per_cell = facet_weights[:, slot, k]
            rows.append(
                {
                    "condition": condition,
                    "gene": data.facets.symbols[row],
                    "facet": facet,
                    "has_facet": bool(data.facets.mask[row, k]),
                    "mean_weight": float(per_cell.mean()),
                    "std_weight": float(per_cell.std()),
                    "share_of_cells_attending": float((per_cell > 0).mean()),
                }
            )
    return rows


def cell_state_axis(cell_state: np.ndarray) -> np.ndarray:
    """Each control cell's score on the first principal axis of the cell states (the colour of the
    cells × facets figure)."""
    centred = cell_state - cell_state.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[0]


# The cells × facets view shows a gene with at least this many present facets where the data has one:
# with a single present facet every cell gives it all the weight, and the view shows no context.
MIN_SHOWN_FACETS = 3


def cell_facet_choice(candidates: dict[tuple[str, int], tuple[int, float]], show: str | None):
    """The (condition, gene slot) whose per-cell facet weights the report shows, from each candidate's
    (present facets, spread of its weights across cells): the configured condition's gene with the most
    present facets; else, among the genes with at least ``MIN_SHOWN_FACETS`` present facets (or the
    most any gene has), the one whose weights vary most across cells."""
    if show is not None and any(condition == show for condition, _ in candidates):
        return max((key for key in candidates if key[0] == show), key=lambda k: candidates[k][0])
    most = max(present for present, _ in candidates.values())
    enough = min(most, MIN_SHOWN_FACETS)
    eligible = [key for key, (present, _) in candidates.items() if present >= enough]
    return max(eligible, key=lambda key: (candidates[key][1], key))


def facet_outputs(
    models: dict[str, TrainedModel], data: PerturbationData, show: str | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean facet weights of every test perturbation with a known gene (each by the model that held it
    out), and the per-cell weights of one gene (``cell_facet_choice``)."""
    rows, per_cell, candidates = [], {}, {}
    for condition, model in models.items():
        if not data.known_rows(condition):
            continue
        _, weights = predict_condition(model, data, condition)
        rows += facet_weight_rows(condition, data, weights)
        for slot, row in enumerate(data.known_rows(condition)):
            per_cell[(condition, slot)] = weights[:, slot, :]
            spread = float(weights[:, slot, :].std(0).sum())
            candidates[(condition, slot)] = (int(data.facets.mask[row].sum()), spread)
    if not per_cell:
        return pd.DataFrame(rows), pd.DataFrame()
    chosen, slot = cell_facet_choice(candidates, show)
    cells = pd.DataFrame(per_cell[(chosen, slot)], columns=data.facets.facet_ids)
    shown = data.control_rows(chosen)  # the cells the chosen perturbation was predicted on
    cells.insert(0, "cell_state_pc1", cell_state_axis(data.cell_state)[shown])
    cells.insert(0, "cell", np.asarray(data.cells.cell_ids)[shown])
    cells.insert(0, "gene", data.facets.symbols[data.known_rows(chosen)[slot]])
    cells.insert(0, "condition", chosen)
    return pd.DataFrame(rows), cells


def de_change_rows(scorer: Scorer, predictions: Predictions) -> pd.DataFrame:
    """Observed and predicted (mean over seeds and split seeds) change from control on each scored
    perturbation's DE genes."""
    rows = []
    for condition in scorer.test:
        row = scorer.row[condition]
        for rank, gene in enumerate(scorer.de_index[condition]):
            entry = {
                "condition": condition,
                "gene": scorer.data.gene_names[gene],
                "rank": rank,
                "observed": float(scorer.true[row, gene] - scorer.control[row, gene]),
            }
            for method, seeds in predictions.items():
                values = [by[condition][gene] for by in seeds.values() if condition in by]
                if values:
                    entry[method] = float(np.mean(values) - scorer.control[row, gene])
            rows.append(entry)
    return pd.DataFrame(rows)


def write_predictions(path: Path, data: PerturbationData, seeds: dict, groups: dict, method: str):
    """One row per scored perturbation: the mean over runs (seeds, split seeds) of the predicted mean
    expression."""
    import anndata as ad

    conditions = sorted(set.intersection(*(set(by) for by in seeds.values())) if seeds else set())
    matrix = (
        np.stack([np.mean([by[c] for by in seeds.values()], axis=0) for c in conditions])
        if conditions
        else np.zeros((0, len(data.gene_names)), dtype=np.float32)
    )
    obs = pd.DataFrame(
        {"condition": conditions, "subgroup": [groups.get(c, "test") for c in conditions]},
        index=pd.Index(conditions, name="obs_names"),
    )
    adata = ad.AnnData(matrix.astype(np.float32), obs=obs, var=data.var)
    adata.uns["method"] = method
    adata.uns["runs"] = [f"seed{seed}_split{split_seed}" for seed, split_seed in sorted(seeds)]
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


def pooled(
    per_fold: list[tuple[FoldModels, Predictions]],
) -> dict[str, dict[tuple[int, int], dict[str, np.ndarray]]]:
    """method → (seed, split seed) → condition → prediction, over every fold (within one split seed each
    perturbation is in one fold's test)."""
    result: dict = {}
    for fold, predictions in per_fold:
        for method, seeds in predictions.items():
            for seed, by_condition in seeds.items():
                result.setdefault(method, {}).setdefault((seed, fold.split_seed), {}).update(
                    by_condition
                )
    return result


def fold_rows(
    data: PerturbationData, scorer: Scorer, fold: FoldModels, predictions: Predictions
) -> list[dict]:
    """Per-perturbation metrics of every method on one fold, each row labelled with its run and the
    fold's subgroup of the perturbation."""
    reference = reference_change(data, fold.split.train)
    groups = subgroup_of(fold.split.as_dict())
    return [
        {
            "method": method,
            "seed": seed,
            "split_seed": fold.split_seed,
            "fold": fold.name,
            "subgroup": groups.get(row["condition"], "test"),
            **row,
        }
        for method, seeds in predictions.items()
        for seed, predicted in seeds.items()
        for row in scorer.score(predicted, reference)
    ]


def training_records(folds: list[FoldModels]) -> dict:
    """Each variant's and seed's training history, prior and best step (of the first fold; every fold's
    prior choice under ``priors``)."""
    records: dict = {}
    for fold in folds:
        for variant, seeds in fold.records.items():
            for seed, saved in seeds.items():
                result = saved["training_result"]
                entry = records.setdefault(variant, {}).setdefault(
                    str(seed),
                    {k: result[k] for k in ("history", "best_step", "stopped_early")}
                    # what the training curve measures
                    | {"loss": saved["training"]["loss"], "priors": {}},
                )
                entry["priors"][fold.name] = {
                    size: [record["kind"], record["hyper"]]
                    for size, record in saved["prior"]["by_size"].items()
                }
    return records


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Score every trained variant and seed, the baselines and the noise ceiling on the held-out
    perturbations: the test split, or every fold's test part (protocol cross_validation).

    Reads ``h5ad``, ``split``, ``de_genes``, ``genes``, ``facet_tensor``, ``cell_embedding``, every
    checkpoint as ``weights__<variant>__<seed>`` / ``config__<variant>__<seed>`` (under cross-validation,
    each holds one model per fold) and, under cross-validation, ``folds``. Writes ``metrics`` (JSON
    summary: mean ± sd over runs, per subgroup, ceiling, fraction of ceiling, paired bootstrap intervals
    of each method's difference to train_mean and to the best baseline, training histories),
    ``per_condition`` (CSV), ``facet_weights`` (CSV), ``cell_facets`` (CSV: one gene's weights per cell),
    ``de_changes`` (CSV), ``predictions`` (h5ad of the main variant), ``interactions`` (CSV: observed and
    predicted GI scores of the held-out doubles whose singles are measured) and ``interactions_summary``
    (JSON). Params: the ``evaluate`` config section with ``baselines``, ``interactions`` (config
    'interactions') and ``device`` (config 'train.device': where the networks run).
    """
    settings = EvaluateSettings.from_params(params)
    data = load_perturbation_data(
        inputs["h5ad"], inputs["genes"], inputs["facet_tensor"], inputs["cell_embedding"]
    )
    split = read_json(inputs["split"])
    device = resolve_device(settings.device, "train.device")
    if "folds" in inputs:
        protocol, folds = (
            "cross_validation",
            cross_validation_folds(read_json(inputs["folds"]), inputs, device),
        )
    else:
        protocol, folds = "split", split_folds(split, inputs, device)
    scored = sorted({c for fold in folds for c in data.measured(fold.split.test)})
    scorer = Scorer(data, scored, read_json(inputs["de_genes"]))
    per_fold = [(fold, predict_fold(data, fold, settings)) for fold in folds]
    rows = [
        row for fold, predictions in per_fold for row in fold_rows(data, scorer, fold, predictions)
    ]
    first_seed = [fold for fold in folds if fold.split_seed == folds[0].split_seed]
    ceiling_reference = {
        c: reference_change(data, fold.split.train)
        for fold in first_seed
        for c in data.measured(fold.split.test)
    }
    ceiling_rows, _ = noise_ceiling(
        scorer, inputs["h5ad"], settings.ceiling_draws, settings.seed, ceiling_reference
    )
    rows += [
        {"method": CEILING, "split_seed": 0, "fold": "", "subgroup": "all", **row}
        for row in ceiling_rows
    ]
    per_condition = pd.DataFrame(rows)
    summary = summarise(per_condition)
    main = settings.main_variant
    held_out_by = {
        c: fold.models[main][min(fold.models[main])]
        for fold in first_seed
        if fold.models.get(main)
        for c in data.measured(fold.split.test)
    }
    facet_weights, cell_facets = facet_outputs(held_out_by, data, settings.show_condition)
    predictions = pooled(per_fold)
    for key, frame in (
        ("per_condition", per_condition),
        ("facet_weights", facet_weights),
        ("cell_facets", cell_facets),
        ("de_changes", de_change_rows(scorer, predictions)),
    ):
        with atomic_path(outputs[key]) as tmp:
            frame.to_csv(tmp, index=False)
    groups = {c: g for fold in folds for c, g in subgroup_of(fold.split.as_dict()).items()}
    write_predictions(outputs["predictions"], data, predictions.get(main, {}), groups, main)
    gi_table, gi_summary = evaluate_interactions(
        data, scored, predictions, inputs["h5ad"], settings.interactions
    )
    with atomic_path(outputs["interactions"]) as tmp:
        gi_table.to_csv(tmp, index=False)
    write_json_atomic(outputs["interactions_summary"], gi_summary)
    write_json_atomic(
        outputs["metrics"],
        {
            "protocol": protocol,
            "folds": len(folds),
            "split_seeds": sorted({fold.split_seed for fold in folds}),
            "summary": summary,
            "fraction_of_ceiling": fraction_of_ceiling(summary),
            "comparisons": method_comparisons(per_condition, settings.bootstrap),
            "main_variant": main,
            "skipped": data.skipped,
            "split": split.get("test_subgroups", {}) if protocol == "split" else {},
            "training": training_records(folds),
        },
    )
    for method, values in summary.items():
        log.info("%-18s %s", method, values["all"])
    return {"protocol": protocol, "scored_conditions": len(scored), "methods": list(summary)}

"""The evaluate stage: every trained variant and seed and every baseline on the held-out perturbations, in
one table, beside the data's own noise ceiling (metric definitions: ``dygenept.evaluation.metrics``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.conditions import condition_genes, parse_context_label
from ..data.perturbations import PerturbationData, half_split_means, load_perturbation_data
from ..devices import resolve_device
from ..evaluation.baselines import make_baselines
from ..evaluation.interactions import InteractionSettings, evaluate_interactions
from ..evaluation.metrics import METRICS, discrimination_scores, perturbation_metrics
from ..io.artifacts import atomic_path, read_json, write_json_atomic
from ..model.checkpoint import checkpoint_inputs, load_checkpoint
from ..model.inference import predict_condition

log = logging.getLogger(__name__)

CEILING = "noise_ceiling"
CEILING_METRICS = ("pearson_delta", "pearson_delta_de", "pearson_delta_centred", "discrimination")
Predictions = dict[
    str, dict[int, dict[str, np.ndarray]]
]  # method → seed → condition → mean expression


def subgroup_of(split: dict) -> dict[str, str]:
    return {
        condition: group
        for group, conditions in split.get("test_subgroups", {}).items()
        for condition in conditions
    }


class Scorer:
    """Scores predictions of the test perturbations against the observed means."""

    def __init__(self, data: PerturbationData, test: list[str], train: list[str], de_genes: dict):
        position = {gene: i for i, gene in enumerate(data.gene_names)}
        self.data, self.test = data, test
        # each test perturbation's controls (its context's, in data split by context) and the
        # reference of the centred metrics: the training perturbations' mean, around those controls
        self.control = np.stack([data.control_mean_of(c) for c in test]).astype(np.float64)
        if data.control_context is None:
            reference = np.mean([data.true_mean(c) for c in train], axis=0)
            self.reference = np.broadcast_to(reference, self.control.shape)
        else:
            self.reference = self.control + np.mean([data.change(c) for c in train], axis=0)
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
        true: np.ndarray | None = None,
        control: np.ndarray | None = None,
    ) -> list[dict]:
        """Rows of per-perturbation metrics; ``true``/``control`` (one row per test perturbation)
        replace the observed means (ceiling)."""
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
                    self.reference[self.row[c]],
                ),
                "discrimination": float(score),
            }
            for c, score in zip(conditions, discrimination)
        ]


def noise_ceiling(
    scorer: Scorer, h5ad: Path, draws: int, seed: int
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
        rows += [{"seed": draw, **row} for row in scorer.score(predicted, true)]
        if draw == 0:
            first_draw = predicted
    return rows, first_draw


def predict_all(
    data: PerturbationData, test: list[str], train: list[str], found: dict, params: dict
) -> tuple[Predictions, dict]:
    """Predictions of every baseline (seed 0: they are deterministic) and every variant and seed (each
    network on config 'train.device')."""
    device = resolve_device(params["device"], "train.device")
    predictions: Predictions = {}
    for name, predictor in make_baselines(data, train, params).items():
        made = {c: predictor(c) for c in test}
        predictions[name] = {0: {c: v for c, v in made.items() if v is not None}}
    trained = {}
    for variant, seeds in found.items():
        predictions[variant] = {}
        for seed, (weights, config) in sorted(seeds.items()):
            model, saved = load_checkpoint(weights, config)
            model.to(device)
            trained.setdefault(variant, {})[seed] = (model, saved)
            predictions[variant][seed] = {
                c: predict_condition(model, data, c)[0] for c in data.modelled(test)
            }
    return predictions, trained


def summarise(per_condition: pd.DataFrame) -> dict:
    """Per method and group ('all' and each test subgroup): each metric's mean over the perturbations
    for each seed, then the mean and standard deviation over seeds (sd 0 with one seed)."""
    summary: dict = {}
    for method, table in per_condition.groupby("method", sort=False):
        summary[method] = {}
        groups = [("all", table), *table.groupby("subgroup")]
        for group, part in groups:
            by_seed = part.groupby("seed")[list(METRICS)].mean()
            entry = {"n": int(part["condition"].nunique()), "seeds": int(len(by_seed))}
            for metric in METRICS:
                values = by_seed[metric].dropna()
                entry[metric] = round(float(values.mean()), 4) if len(values) else None
                entry[f"{metric}_sd"] = (
                    round(float(values.std(ddof=1)), 4) if len(values) > 1 else 0.0
                )
            summary[method][group] = entry
    return summary


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
    for slot, row in enumerate(data.facet_rows[condition]):
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


def facet_outputs(model, data: PerturbationData, test: list[str], show: str | None):
    """Mean facet weights of every modelled test perturbation, and the per-cell weights of one gene
    (``cell_facet_choice``)."""
    rows, per_cell, candidates = [], {}, {}
    for condition in data.modelled(test):
        _, weights = predict_condition(model, data, condition)
        rows += facet_weight_rows(condition, data, weights)
        for slot, row in enumerate(data.facet_rows[condition]):
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
    cells.insert(0, "gene", data.facets.symbols[data.facet_rows[chosen][slot]])
    cells.insert(0, "condition", chosen)
    return pd.DataFrame(rows), cells


def de_change_rows(scorer: Scorer, predictions: Predictions) -> pd.DataFrame:
    """Observed and predicted (mean over seeds) change from control on each test perturbation's DE genes."""
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
    """One row per test perturbation: the mean over seeds of the predicted mean expression."""
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
    adata.uns["seeds"] = sorted(seeds)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Score every trained variant and seed, the baselines and the noise ceiling on the test split.

    Reads ``h5ad``, ``split``, ``de_genes``, ``genes``, ``facet_tensor``, ``cell_embedding`` and every
    checkpoint as ``weights__<variant>__<seed>`` / ``config__<variant>__<seed>``. Writes ``metrics`` (JSON
    summary: mean ± sd over seeds, per subgroup, ceiling, fraction of ceiling, training histories),
    ``per_condition`` (CSV), ``facet_weights`` (CSV), ``cell_facets`` (CSV: one gene's weights per cell),
    ``de_changes`` (CSV), ``predictions`` (h5ad of the main variant), ``interactions`` (CSV: observed and
    predicted GI scores of the test doubles whose singles are measured) and ``interactions_summary``
    (JSON). Params: the ``evaluate`` config section (``main_variant``, ``linear_alpha``, ``knn_k``,
    ``ceiling_draws``, ``seed``, ``show_condition``), with ``interactions`` (config 'interactions') and
    ``device`` (config 'train.device').
    """
    data = load_perturbation_data(
        inputs["h5ad"], inputs["genes"], inputs["facet_tensor"], inputs["cell_embedding"]
    )
    split = read_json(inputs["split"])
    groups = subgroup_of(split)
    test, train = data.measured(split["test"]), data.measured(split["train"])
    found = checkpoint_inputs(inputs)
    predictions, trained = predict_all(data, test, train, found, params)
    scorer = Scorer(data, test, train, read_json(inputs["de_genes"]))
    rows = [
        {"method": method, "seed": seed, **row}
        for method, seeds in predictions.items()
        for seed, predicted in seeds.items()
        for row in scorer.score(predicted)
    ]
    ceiling_rows, _ = noise_ceiling(scorer, inputs["h5ad"], params["ceiling_draws"], params["seed"])
    rows += [{"method": CEILING, **row} for row in ceiling_rows]
    per_condition = pd.DataFrame(rows)
    per_condition.insert(3, "subgroup", per_condition["condition"].map(groups).fillna("test"))
    summary = summarise(per_condition)
    main = params["main_variant"]
    facet_weights, cell_facets = pd.DataFrame(), pd.DataFrame()
    if main in trained:
        model = trained[main][min(trained[main])][0]
        facet_weights, cell_facets = facet_outputs(model, data, test, params["show_condition"])
    for key, frame in (
        ("per_condition", per_condition),
        ("facet_weights", facet_weights),
        ("cell_facets", cell_facets),
        ("de_changes", de_change_rows(scorer, predictions)),
    ):
        with atomic_path(outputs[key]) as tmp:
            frame.to_csv(tmp, index=False)
    write_predictions(outputs["predictions"], data, predictions.get(main, {}), groups, main)
    gi_settings = InteractionSettings.from_params(params["interactions"])
    gi_table, gi_summary = evaluate_interactions(
        data, test, predictions, inputs["h5ad"], gi_settings
    )
    with atomic_path(outputs["interactions"]) as tmp:
        gi_table.to_csv(tmp, index=False)
    write_json_atomic(outputs["interactions_summary"], gi_summary)
    training = {
        variant: {
            str(seed): {
                **{
                    k: saved["training_result"][k]
                    for k in ("history", "best_step", "stopped_early")
                },
                "loss": saved["training"]["loss"],  # what the training curve measures
            }
            for seed, (_, saved) in seeds.items()
        }
        for variant, seeds in trained.items()
    }
    write_json_atomic(
        outputs["metrics"],
        {
            "summary": summary,
            "fraction_of_ceiling": fraction_of_ceiling(summary),
            "main_variant": main,
            "skipped": data.skipped,
            "split": split.get("test_subgroups", {}),
            "training": training,
        },
    )
    for method, values in summary.items():
        log.info("%-18s %s", method, values["all"])
    return {"test_conditions": len(test), "methods": list(summary)}

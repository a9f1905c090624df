"""The evaluate stage: the model and the baselines on held-out perturbations, plus the facet weights."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import atomic_path, read_json, write_json_atomic
from ..baselines import BASELINES
from ..metrics import perturbation_metrics
from ..model.checkpoint import load_checkpoint
from ..model.inference import predict_condition
from ..model.network import DyGenePTModule
from ..perturbations import PerturbationData, load_perturbation_data

log = logging.getLogger(__name__)

MODEL_NAME = "dygenept"
METRICS = ["pearson_delta", "pearson_delta_de", "mse_de", "mse"]


def subgroup_of(split: dict) -> dict[str, str]:
    return {
        condition: group
        for group, conditions in split["test_subgroups"].items()
        for condition in conditions
    }


def evaluate(
    model: DyGenePTModule, data: PerturbationData, split: dict, de_genes: dict[str, list[str]]
):
    gene_position = {gene: i for i, gene in enumerate(data.gene_names)}
    groups = subgroup_of(split)
    train = data.modelled(split["train"])
    predictors = {name: make(data, train) for name, make in BASELINES.items()}
    rows, weight_rows = [], []
    for condition in split["test"]:
        if condition not in data.mean_by_condition:
            continue
        de_index = np.array(
            [gene_position[g] for g in de_genes.get(condition, []) if g in gene_position], dtype=int
        )
        true = data.true_mean(condition)
        predictions = {name: predictor(condition) for name, predictor in predictors.items()}
        if condition in data.facet_rows:
            predictions[MODEL_NAME], facet_weights = predict_condition(model, data, condition)
            weight_rows += facet_weight_rows(condition, data, facet_weights)
        for method, predicted in predictions.items():
            if predicted is not None:
                rows.append(
                    {
                        "method": method,
                        "condition": condition,
                        "subgroup": groups.get(condition, "test"),
                        **perturbation_metrics(predicted, true, data.control_mean, de_index),
                    }
                )
    return pd.DataFrame(rows), pd.DataFrame(weight_rows)


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


def summarise(per_condition: pd.DataFrame) -> dict:
    """Mean of each metric per method, over all test perturbations and per subgroup (with counts)."""
    summary: dict = {}
    for method, table in per_condition.groupby("method", sort=False):
        summary[method] = {
            "all": {"n": int(len(table)), **table[METRICS].mean(skipna=True).round(4).to_dict()}
        }
        for group, part in table.groupby("subgroup"):
            summary[method][group] = {
                "n": int(len(part)),
                **part[METRICS].mean(skipna=True).round(4).to_dict(),
            }
    return summary


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Score the model and every baseline on the held-out perturbations.

    Reads ``h5ad``, ``split``, ``de_genes``, ``genes``, ``facet_tensor``, ``cell_embedding`` and the
    checkpoint (``weights``, ``config``). Writes ``metrics`` (JSON summary), ``per_condition`` and
    ``facet_weights`` (CSV). No params.
    """
    data = load_perturbation_data(
        inputs["h5ad"], inputs["genes"], inputs["facet_tensor"], inputs["cell_embedding"]
    )
    model, _ = load_checkpoint(inputs["weights"], inputs["config"])
    split = read_json(inputs["split"])
    per_condition, facet_weights = evaluate(model, data, split, read_json(inputs["de_genes"]))
    summary = summarise(per_condition)
    with atomic_path(outputs["per_condition"]) as tmp:
        per_condition.to_csv(tmp, index=False)
    with atomic_path(outputs["facet_weights"]) as tmp:
        facet_weights.to_csv(tmp, index=False)
    write_json_atomic(
        outputs["metrics"],
        {"summary": summary, "skipped": data.skipped, "split": split["test_subgroups"]},
    )
    for method, values in summary.items():
        log.info("%-10s %s", method, values["all"])
    return {"test_conditions": int(per_condition["condition"].nunique()), "methods": list(summary)}

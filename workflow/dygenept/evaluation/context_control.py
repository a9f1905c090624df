"""The positive (and negative) control for context, on ``data.simulation``: train model variants on the
simulated genes, score their held-out genes in each cell state, and ask whether the facet attention found
the planted facet.

For each held-out (gene, state): pearson_delta of the predicted against the observed change (from the
state's own controls), and the facet with the largest mean attention weight over the state's control
cells (``recovered``: it is the planted one). ``control_summary`` gives each variant's mean, the paired
bootstrap interval of the main variant's difference to the static one, and the recovery share.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..data.conditions import parse_context_label
from ..data.simulation import Simulation
from ..model.inference import predict_condition
from ..model.network import TrainedModel
from ..model.training import TrainSettings, train_model
from .bootstrap import BootstrapSettings, paired_interval, verdict
from .metrics import pearson


def score_model(model: TrainedModel, simulation: Simulation, conditions: list[str]) -> list[dict]:
    data = simulation.data
    rows = []
    for condition in conditions:
        predicted, weights = predict_condition(model, data, condition)
        change = predicted - data.control_mean_of(condition)
        mean_weights = weights[:, 0, :].mean(axis=0)
        present = data.facets.mask[data.facet_rows[condition][0]]
        top = int(np.flatnonzero(present)[np.argmax(mean_weights[present])])
        planted = simulation.planted[condition]
        gene, state = parse_context_label(condition)
        rows.append(
            {
                "condition": condition,
                "gene": gene.split("+")[0],
                "state": state,
                "pearson_delta": pearson(change, data.change(condition)),
                "planted": planted,
                "top_facet": top,
                "top_weight": float(mean_weights[top]),
                "recovered": None if planted is None else top == planted,
            }
        )
    return rows


def run_control(
    simulation: Simulation,
    train: list[str],
    val: list[str],
    test: list[str],
    variants: dict[str, TrainSettings],
    seeds: list[int],
) -> pd.DataFrame:
    """Every variant trained with every seed on ``train`` (early stopping on ``val``), scored on ``test``
    conditions; one row per (variant, seed, test condition). The nested prior is scored as ``prior``."""
    rows = []
    for name, settings in variants.items():
        for seed in seeds:
            chosen = dataclasses.replace(settings, seed=seed)
            model, _ = train_model(simulation.data, train, val, chosen)
            rows += [
                {"variant": name, "seed": seed, **row}
                for row in score_model(model, simulation, test)
            ]
            if name == next(iter(variants)) and seed == seeds[0]:
                model.module.apply(zero_residual)
                rows += [
                    {"variant": "prior", "seed": seed, **row}
                    for row in score_model(model, simulation, test)
                ]
    return pd.DataFrame(rows)


def zero_residual(module) -> None:
    """Zero the last layer of the residual MLPs: the network then predicts its prior exactly."""
    import torch

    for name in ("shift", "pair_shift"):
        layers = getattr(module, name, None)
        if layers is not None:
            with torch.no_grad():
                layers[-1].weight.zero_()
                layers[-1].bias.zero_()


def control_summary(
    table: pd.DataFrame, main: str, static: str, settings: BootstrapSettings, simulation: Simulation
) -> dict:
    """Each variant's mean pearson_delta (each held-out condition averaged over seeds first), the main
    variant's difference to the static one with its paired interval, the share of (gene, state)
    pairs whose planted facet the main variant's attention ranks first, and the held-out conditions'
    mean half-split noise ceiling."""
    values = table.groupby(["variant", "condition"])["pearson_delta"].mean().unstack("variant")
    interval = paired_interval(values[main].to_numpy(), values[static].to_numpy(), settings)
    main_rows = table[table["variant"] == main]
    ceiling = {c: simulation.ceiling[c] for c in values.index}
    recovered = main_rows["recovered"].dropna()
    return {
        "pearson_delta": {v: round(float(values[v].mean()), 4) for v in values.columns},
        "difference": None if interval is None else interval.as_dict(),
        "verdict": verdict(interval, "pearson_delta"),
        "noise_ceiling": round(float(np.mean(list(ceiling.values()))), 4),
        "planted_first": None
        if recovered.empty
        else round(float(recovered.astype(bool).mean()), 4),
        "held_out_conditions": int(values.shape[0]),
    }

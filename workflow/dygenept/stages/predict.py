"""The predict stage: an in-silico screen of any genes and pairs with the trained model, explained by facets.

Each requested perturbation (``A`` or ``A+B``) is predicted as evaluation predicts a held-out one: the
mean over every control cell of the model's predicted expression, averaged over the seeds the main
variant was trained with. A gene that never was perturbed in
training gets a prediction from its facets alone; a gene without any facet text is listed and skipped,
never predicted from nothing. Beside each prediction: its effect size, the training perturbations it
resembles (cosine of facet-averaged embeddings), the genes it moves most, and the facets the cells attended
to, with their text.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ..data.conditions import condition_genes
from ..data.perturbations import PerturbationData, load_perturbation_data
from ..data.screen_requests import Request, parse_requests, read_request_file
from ..errors import InputError
from ..evaluation.screen import effect_size, facet_weight_summary, nearest, top_changes, top_facets
from ..formats.facet_tensor import load_facet_tensor, with_genes_of
from ..formats.gene_table import read_genes
from ..io.artifacts import (
    atomic_path,
    canonical_json,
    read_json,
    sha256_file,
    sha256_text,
    write_json_atomic,
    write_text_atomic,
)
from ..model.checkpoint import checkpoint_inputs, load_checkpoint
from ..model.inference import predict_condition
from ..model.prior import perturbation_feature

log = logging.getLogger(__name__)

SCREEN_COLUMNS = [
    "condition", "entry", "genes", "unseen_genes", "effect_norm", "n_changed", "top_facets",
    "top_up", "top_down", "nearest_training",
]  # fmt: skip


def requested(inputs: dict[str, Path], params: dict) -> list[Request]:
    entries = list(params["perturbations"])
    if "requests" in inputs:
        entries += read_request_file(inputs["requests"])
    return parse_requests(entries, "config 'predict' (perturbations and file)")


def facet_rows_of(
    requests: list[Request], data: PerturbationData, genes: pd.DataFrame
) -> tuple[dict[Request, list[int]], dict[str, str]]:
    """Each request's facet-tensor rows, and why the others cannot be predicted."""
    entrez_of = dict(zip(genes["query"], genes["entrez_id"]))
    row_of = data.facets.row_of()
    rows, skipped = {}, {}
    for request in requests:
        absent = [gene for gene in request.genes if entrez_of.get(gene) not in row_of]
        if absent:
            skipped[request.entry] = (
                f"{absent} not in the gene universe of this run: run the pipeline with the perturbation in "
                "'predict.perturbations' (the genes stage adds its genes), not the predict stage alone"
            )
            continue
        gene_rows = [row_of[entrez_of[gene]] for gene in request.genes]
        empty = [g for g, row in zip(request.genes, gene_rows) if not data.facets.mask[row].any()]
        if empty:
            skipped[request.entry] = (
                f"{empty} has no facet text (its knowledge names no process under any facet): "
                "nothing to predict from"
            )
            continue
        rows[request] = gene_rows
    return rows, skipped


def explain(
    request: Request,
    rows: list[int],
    weights: np.ndarray,
    facet_text: dict[tuple[str, str], str],
    data: PerturbationData,
    params: dict,
) -> list[dict]:
    """The facets the cells attended to for each gene of the request: mean and spread of the weight, text."""
    mean, spread = facet_weight_summary(weights)
    explained = []
    for slot, (gene, row) in enumerate(zip(request.genes, rows)):
        entrez = data.facets.entrez_ids[row]
        for k in top_facets(mean[slot], data.facets.mask[row], params["top_facets"]):
            facet = data.facets.facet_ids[k]
            explained.append({
                "gene": gene, "facet": facet, "mean_weight": round(float(mean[slot, k]), 4),
                "sd_weight": round(float(spread[slot, k]), 4), "text": facet_text[(entrez, facet)],
            })  # fmt: skip
    return explained


def static_feature(data: PerturbationData, condition: str) -> np.ndarray:
    """The perturbation's static (facet-mean) embedding, by which the nearest training ones are found
    (every screened gene has facets; training perturbations without any are left out)."""
    return perturbation_feature(data.perturbation_genes(condition))


def screen_table(records: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(records, columns=SCREEN_COLUMNS)
    return table.sort_values(["effect_norm", "condition"], ascending=[False, True], kind="stable")


def screen_markdown(table: pd.DataFrame, explanations: dict, skipped: dict[str, str]) -> str:
    lines = [
        "# In-silico screen",
        "",
        "Predicted with the trained model over every control cell, ranked by effect size (L2 norm of the",
        "predicted change). `unseen_genes`: genes never perturbed in training, predicted from their facets.",
        "",
        "| rank | perturbation | effect | genes changed | unseen genes | top facets | nearest training |",
        "|---|---|---|---|---|---|---|",
    ]
    for rank, row in enumerate(table.itertuples(index=False), start=1):
        lines.append(
            f"| {rank} | {row.condition} | {row.effect_norm:.3f} | {row.n_changed} | "
            f"{row.unseen_genes or '-'} | {row.top_facets} | {row.nearest_training} |"
        )
    for condition, explanation in explanations.items():
        lines += ["", f"## {condition}", ""]
        lines += [
            f"- **{item['gene']} · {item['facet']}** (weight {item['mean_weight']:.2f} ± "
            f"{item['sd_weight']:.2f}): {item['text']}"
            for item in explanation["facets"]
        ]
        lines.append(f"- up: {', '.join(explanation['top_up']) or '-'}")
        lines.append(f"- down: {', '.join(explanation['top_down']) or '-'}")
    if skipped:
        lines += ["", "## Not predicted", ""]
        lines += [f"- `{entry}`: {reason}" for entry, reason in skipped.items()]
    return "\n".join(lines) + "\n"


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Predict each requested perturbation with the trained model and explain it.

    Reads ``h5ad``, ``split``, ``genes`` (the screen's gene set), ``facet_tensor`` and ``facets`` (the
    model's gene set: its genes keep the facets they were trained and evaluated with),
    ``screen_facet_tensor`` and ``screen_facets`` (the screen's gene set, for the genes the model's set
    lacks), ``cell_embedding``, the main variant's checkpoint for every seed
    (``weights__<variant>__<seed>``, ``config__<variant>__<seed>``) and optionally ``requests`` (one
    perturbation per line). Writes ``predictions`` (h5ad: one row per perturbation, predicted mean
    expression, ``layers['delta']`` the change from control, ``obs`` the screen columns, ``uns`` the
    model, data and params hashes), ``screen`` (TSV ranked by effect size), ``explanations`` (JSON) and
    ``page`` (Markdown). Params: the ``predict`` config section.
    """
    requests = requested(inputs, params)
    facet_tensor = with_genes_of(
        load_facet_tensor(inputs["facet_tensor"]), load_facet_tensor(inputs["screen_facet_tensor"])
    )
    data = load_perturbation_data(
        inputs["h5ad"], inputs["genes"], facet_tensor, inputs["cell_embedding"]
    )
    trained = {
        (variant, seed): load_checkpoint(weights, config)[0]
        for variant, seeds in checkpoint_inputs(inputs).items()
        for seed, (weights, config) in sorted(seeds.items())
    }
    rows, skipped = facet_rows_of(requests, data, read_genes(inputs["genes"]))
    for entry, reason in skipped.items():
        log.warning("not predicted: %s: %s", entry, reason)
    if not rows:
        raise InputError(
            "config 'predict': none of the requested perturbations can be predicted:\n"
            + "\n".join(f"  {entry}: {reason}" for entry, reason in skipped.items())
        )
    train = [
        c
        for c in data.measured(read_json(inputs["split"])["train"])
        if perturbation_feature(data.perturbation_genes(c)) is not None
    ]
    seen = {gene for condition in train for gene in condition_genes(condition)}
    train_features = np.stack([static_feature(data, c) for c in train])
    facets, screen_facets = (pd.read_parquet(inputs[name]) for name in ("facets", "screen_facets"))
    facets = pd.concat(
        [facets, screen_facets[~screen_facets["entrez_id"].isin(facets["entrez_id"])]]
    )
    facet_text = dict(zip(zip(facets["entrez_id"], facets["facet"]), facets["text"]))
    # The requests join the data's own conditions; a request equal to a measured one gets its rows.
    data.facet_rows.update({request.condition: gene_rows for request, gene_rows in rows.items()})
    records, explanations, predicted = [], {}, []
    for request, gene_rows in rows.items():
        each = [predict_condition(model, data, request.condition) for model in trained.values()]
        mean_expression = np.mean([expression for expression, _ in each], axis=0)
        weights = np.concatenate([cell_weights for _, cell_weights in each])  # cells of every seed
        delta = mean_expression - data.control_mean
        norm, changed = effect_size(delta, params["fold_change_threshold"])
        up, down = top_changes(delta, data.gene_names, params["top_genes"])
        close = nearest(
            static_feature(data, request.condition), train_features, train,
            params["nearest_training"],
        )  # fmt: skip
        explained = explain(request, gene_rows, weights, facet_text, data, params)
        explanations[request.condition] = {
            "entry": request.entry, "facets": explained, "top_up": up, "top_down": down,
            "nearest_training": [{"condition": c, "cosine": s} for c, s in close],
        }  # fmt: skip
        records.append({
            "condition": request.condition, "entry": request.entry, "genes": ";".join(request.genes),
            "unseen_genes": ";".join(g for g in request.genes if g not in seen),
            "effect_norm": round(norm, 4), "n_changed": changed,
            "top_facets": "; ".join(f"{e['gene']}:{e['facet']}" for e in explained),
            "top_up": ",".join(up), "top_down": ",".join(down),
            "nearest_training": "; ".join(f"{c} ({s:.2f})" for c, s in close),
        })  # fmt: skip
        predicted.append(mean_expression)
    table = screen_table(records)
    var = ad.read_h5ad(inputs["h5ad"], backed="r").var.copy()
    obs = pd.DataFrame(records).set_index("condition", drop=False)
    obs.index.name = None
    expression = np.stack(predicted).astype(np.float32)
    predictions = ad.AnnData(X=expression, obs=obs, var=var)
    predictions.layers["delta"] = expression - data.control_mean.astype(np.float32)
    predictions.uns = {
        "model_weights_sha256": {
            f"{variant}_seed{seed}": sha256_file(inputs[f"weights__{variant}__{seed}"])
            for variant, seed in trained
        },
        "dataset_sha256": sha256_file(inputs["h5ad"]),
        "facet_tensor_sha256": sha256_file(inputs["facet_tensor"]),
        "screen_facet_tensor_sha256": sha256_file(inputs["screen_facet_tensor"]),
        "params_sha256": sha256_text(canonical_json(params)),
        "facet_ids": list(data.facets.facet_ids),
        "not_predicted": json.dumps(skipped),
    }
    with atomic_path(outputs["predictions"]) as tmp:
        predictions.write_h5ad(tmp)
    with atomic_path(outputs["screen"]) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    write_json_atomic(
        outputs["explanations"], {"predicted": explanations, "not_predicted": skipped}
    )
    write_text_atomic(outputs["page"], screen_markdown(table, explanations, skipped))
    log.info("predicted %d perturbations (%d skipped); strongest: %s", len(records), len(skipped),
             table["condition"].head(3).tolist())  # fmt: skip
    return {
        "predicted": len(records),
        "not_predicted": skipped,
        "unseen": int((table["unseen_genes"] != "").sum()),
    }

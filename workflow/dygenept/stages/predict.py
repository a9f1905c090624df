"""The predict stage: an in-silico screen of any genes and pairs with the trained model, explained by facets.

Each requested perturbation (``A`` or ``A+B``) is predicted as evaluation predicts a held-out one: the
mean over every control cell of the model's predicted expression, averaged over the seeds the main
variant was trained with. A gene that never was perturbed in
training gets a prediction from its facets alone; a gene without any facet text is listed and skipped,
never predicted from nothing. Beside each prediction: its effect size, its distance from the training
mean's prediction against the data's noise floor (its rank, and the entries it cannot be told from), the
training perturbations it resembles (cosine of facet-averaged embeddings), the genes it moves most, the
facets the cells attended to, with their text, and for a pair its genetic-interaction scores. The work is the library's
(``evaluation.in_silico``, which the notebook API uses too); this module reads and writes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ..data.screen_requests import Request, parse_requests, read_request_file
from ..errors import InputError
from ..evaluation.in_silico import (
    InSilicoScreen,
    ScreenSettings,
    interaction_markdown,
    screen_frame,
)
from ..io.artifacts import (
    atomic_path,
    canonical_json,
    sha256_file,
    sha256_text,
    write_json_atomic,
    write_text_atomic,
)

log = logging.getLogger(__name__)


def requested(inputs: dict[str, Path], params: dict) -> list[Request]:
    entries = list(params["perturbations"])
    if "requests" in inputs:
        entries += read_request_file(inputs["requests"])
    return parse_requests(entries, "config 'predict' (perturbations and file)")


def screen_table(records: list[dict]) -> pd.DataFrame:
    """The screen, ranked entries first (by rank, then distance from the training mean), then the
    entries the noise floor cannot tell from the training mean."""
    table = screen_frame(records)
    ordered = table.assign(unranked=table["rank"].isna())
    ordered = ordered.sort_values(
        ["unranked", "rank", "specific_effect", "condition"],
        ascending=[True, True, False, True],
        kind="stable",
    )
    return ordered.drop(columns="unranked")


def noise_summary(table: pd.DataFrame, floor: float) -> list[str]:
    """What the noise floor says about the screen, in sentences."""
    lines = [
        f"Noise floor: {floor:.3f} — two measurements of one perturbation's mean expression (as many cells "
        "as a training perturbation has) differ by about this much (L2 over the data's genes; median over "
        "the training perturbations). `specific` is the L2 distance of an entry's prediction from the "
        "training mean's (the train_mean baseline: control plus the mean change of the training "
        "perturbations); `× noise` divides it by the floor."
    ]
    unranked = table.loc[table["rank"].isna(), "condition"].tolist()
    if len(unranked) == len(table):
        lines.append(
            "**No entry can be told apart from the training mean**: every prediction lies within the "
            "noise floor of it, so the screen ranks nothing."
        )
    elif unranked:
        lines.append(
            f"Not ranked — within the noise floor of the training mean: {', '.join(unranked)}."
        )
    ties = table[(table["same_as"] != "") & table["rank"].notna()]
    for rank, group in ties.groupby("rank"):
        lines.append(
            f"Rank {rank} is shared: {', '.join(group['condition'])} lie within the noise floor of "
            "each other, so the screen cannot order them."
        )
    return lines


def screen_markdown(
    table: pd.DataFrame, explanations: dict, skipped: dict[str, str], floor: float
) -> str:
    lines = [
        "# In-silico screen",
        "",
        "Predicted with the trained model over every control cell, ranked by how far each prediction",
        "lies from the training mean's, where the data's noise floor can tell them apart. `effect`: L2",
        "norm of the predicted change from control. `unseen genes`: never perturbed in training,",
        "predicted from their facets.",
        "",
        *[part for line in noise_summary(table, floor) for part in (line, "")],
        "| rank | perturbation | specific | × noise | effect | genes changed | unseen genes | top facets | nearest training |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        rank = "-" if pd.isna(row.rank) else str(row.rank)
        lines.append(
            f"| {rank} | {row.condition} | {row.specific_effect:.3f} | {row.effect_over_noise:.2f} | "
            f"{row.effect_norm:.3f} | {row.n_changed} | {row.unseen_genes or '-'} | {row.top_facets} | "
            f"{row.nearest_training} |"
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
    expression, ``layers['delta']`` the change from control, ``obs`` the screen columns with each pair's
    GI scores, ``uns`` the model, data and params hashes, the noise floor), ``screen`` (TSV ranked by the
    distance from the training mean's prediction, where the data's noise floor tells entries apart),
    ``explanations`` (JSON) and ``page`` (Markdown). Params: the ``predict`` config section, with
    ``interactions`` (config 'interactions').
    """
    requests = requested(inputs, params)
    settings = ScreenSettings.from_params(params)
    screen = InSilicoScreen.load(inputs, settings)
    result = screen.screen(requests)
    skipped = result.skipped
    for entry, reason in skipped.items():
        log.warning("not predicted: %s: %s", entry, reason)
    if not result.records:
        raise InputError(
            "config 'predict': none of the requested perturbations can be predicted:\n"
            + "\n".join(f"  {entry}: {reason}" for entry, reason in skipped.items())
        )
    table = screen_table(result.records)
    predictions = screen.anndata(result)
    predictions.uns.update({
        "model_weights_sha256": {
            f"{variant}_seed{seed}": sha256_file(inputs[f"weights__{variant}__{seed}"])
            for variant, seed in screen.models
        },
        "dataset_sha256": sha256_file(inputs["h5ad"]),
        "facet_tensor_sha256": sha256_file(inputs["facet_tensor"]),
        "screen_facet_tensor_sha256": sha256_file(inputs["screen_facet_tensor"]),
        "params_sha256": sha256_text(canonical_json(params)),
        "not_predicted": json.dumps(skipped),
    })  # fmt: skip
    with atomic_path(outputs["predictions"]) as tmp:
        predictions.write_h5ad(tmp)
    with atomic_path(outputs["screen"]) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    write_json_atomic(
        outputs["explanations"], {"predicted": result.explanations, "not_predicted": skipped}
    )
    page = screen_markdown(table, result.explanations, skipped, screen.floor)
    gi_section = interaction_markdown(
        result.records, result.explanations, settings.top_interactions
    )
    write_text_atomic(outputs["page"], page + ("\n" + gi_section if gi_section else ""))
    log.info("predicted %d perturbations (%d skipped); strongest: %s", len(result.records),
             len(skipped), table["condition"].head(3).tolist())  # fmt: skip
    return {
        "predicted": len(result.records),
        "not_predicted": skipped,
        "noise_floor": round(screen.floor, 4),
        "ranked": int(table["rank"].notna().sum()),
        "unseen": int((table["unseen_genes"] != "").sum()),
    }

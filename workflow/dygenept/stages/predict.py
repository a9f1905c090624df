"""The predict stage: an in-silico screen of any genes and pairs with the trained model, explained by facets.

Each requested perturbation (``A`` or ``A+B``) is predicted as evaluation predicts a held-out one: the
mean over every control cell of the model's predicted expression, averaged over the seeds the main
variant was trained with. A gene that never was perturbed in
training gets a prediction from its facets alone; a gene without any facet text is listed and skipped,
never predicted from nothing. Beside each prediction: its effect size, the training perturbations it
resembles (cosine of facet-averaged embeddings), the genes it moves most, the facets the cells attended
to, with their text, and for a pair its genetic-interaction scores. The work is the library's
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
    INTERACTION_COLUMNS,
    SCREEN_COLUMNS,
    InSilicoScreen,
    ScreenSettings,
    interaction_markdown,
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
    table = pd.DataFrame(records, columns=SCREEN_COLUMNS + INTERACTION_COLUMNS)
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
    expression, ``layers['delta']`` the change from control, ``obs`` the screen columns with each pair's
    GI scores, ``uns`` the model, data and params hashes), ``screen`` (TSV ranked by effect size),
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
    page = screen_markdown(table, result.explanations, skipped)
    gi_section = interaction_markdown(
        result.records, result.explanations, settings.top_interactions
    )
    write_text_atomic(outputs["page"], page + ("\n" + gi_section if gi_section else ""))
    log.info("predicted %d perturbations (%d skipped); strongest: %s", len(result.records),
             len(skipped), table["condition"].head(3).tolist())  # fmt: skip
    return {
        "predicted": len(result.records),
        "not_predicted": skipped,
        "unseen": int((table["unseen_genes"] != "").sum()),
    }

"""The train stage: fit the DyGenePT adapters on the training perturbations (``model.training``).

Reads the canonical data, split, gene table, facet tensor and cell embedding; writes the checkpoint
(``weights`` safetensors + ``config`` JSON with the training history). Params: the ``train`` config
section with one variant's ``model`` overrides applied and one ``seed``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..data.perturbations import load_perturbation_data
from ..errors import InputError
from ..io.artifacts import read_json
from ..model.checkpoint import remove_training_state, save_checkpoint
from ..model.network import trainable_parameters
from ..model.training import build_model, fit

log = logging.getLogger(__name__)


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Train the adapters and keep the weights of the best validation loss.

    Reads ``h5ad``, ``split``, ``genes``, ``facet_tensor`` and ``cell_embedding``. Writes ``weights`` and
    ``config`` (``model.checkpoint``); while it runs, a resumable state beside ``weights``
    (``<weights>.resume.*``, every ``checkpoint_every`` steps) that a rerun after a kill continues from.
    Params: the ``train`` config section for one variant and seed.
    """
    data = load_perturbation_data(
        inputs["h5ad"], inputs["genes"], inputs["facet_tensor"], inputs["cell_embedding"]
    )
    split = read_json(inputs["split"])
    train_conditions = data.modelled(split["train"])
    if not train_conditions:
        raise InputError(
            f"{inputs['split']}: no training perturbation has facets for its genes; nothing to train on."
        )
    torch.manual_seed(params["seed"])
    model = build_model(data, params["model"], data.measured(split["train"]))
    trainable = trainable_parameters(model)
    log.info("%s: %d trainable parameters", model.config, trainable)
    val_conditions = data.modelled(split.get("val", []))
    resume = Path(str(outputs["weights"]) + ".resume")
    result = fit(model, data, train_conditions, params, val_conditions, resume_path=resume)
    save_checkpoint(
        model,
        Path(outputs["weights"]),
        Path(outputs["config"]),
        {
            "gene_names": data.gene_names,
            "facet_ids": data.facets.facet_ids,
            "train_conditions": train_conditions,
            "val_conditions": val_conditions,
            "training": {k: v for k, v in params.items() if k != "model"},
            "training_result": result,
            "trainable_parameters": trainable,
        },
    )
    remove_training_state(resume)
    return {
        "train_conditions": len(train_conditions),
        "val_conditions": len(val_conditions),
        "trainable_parameters": trainable,
        "best_step": result["best_step"],
        "device": result["device"],
        "skipped": data.skipped,
    }

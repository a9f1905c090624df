"""The train stage: fit the DyGenePT adapters on the training perturbations (``model.training``).

Reads the canonical data, split, gene table, facet tensor and cell embedding; writes the checkpoint
(``weights`` safetensors + ``config`` JSON with the training history). Params: the ``train`` config
section (``seed``, ``steps``, ``learning_rate``, ``model``: sizes and attention).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..artifacts import read_json
from ..errors import InputError
from ..model.checkpoint import save_checkpoint
from ..model.training import build_model, fit
from ..perturbations import load_perturbation_data

log = logging.getLogger(__name__)


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Train the adapters and keep the weights of the best validation loss.

    Reads ``h5ad``, ``split``, ``genes``, ``facet_tensor`` and ``cell_embedding``. Writes ``weights`` and
    ``config`` (``model.checkpoint``). Params: the ``train`` config section.
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
    model = build_model(data, params["model"])
    val_conditions = data.modelled(split.get("val", []))
    history = fit(model, data, train_conditions, params, val_conditions)
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
            "history": history,
        },
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "train_conditions": len(train_conditions),
        "val_conditions": len(val_conditions),
        "trainable_parameters": trainable,
        "final_loss": history[-1]["loss"],
        "skipped": data.skipped,
    }

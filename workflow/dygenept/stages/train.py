"""The train stage: fit the DyGenePT adapters on the training perturbations (``model.training``).

Reads the canonical data, split, gene table, facet tensor and cell embedding; writes the checkpoint
(``weights`` safetensors + ``config`` JSON with the prior's choice and the training history). Params: the
``train`` config section with one variant's ``model`` overrides applied, one ``seed``, and the
``baselines`` section (the prior's candidates).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..data.perturbations import load_perturbation_data
from ..errors import InputError
from ..io.artifacts import read_json
from ..model.checkpoint import remove_training_state, save_checkpoint
from ..model.network import trainable_parameters
from ..model.training import TrainSettings, train_model

log = logging.getLogger(__name__)


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Choose the prior, train the adapters over it and keep the weights of the best validation score.

    Reads ``h5ad``, ``split``, ``genes``, ``facet_tensor`` and ``cell_embedding``. Writes ``weights`` and
    ``config`` (``model.checkpoint``); while it runs, a resumable state beside ``weights``
    (``<weights>.resume.*``, every ``checkpoint_every`` steps) that a rerun after a kill continues from.
    Params: the ``train`` config section for one variant and seed, with ``baselines``.
    """
    settings = TrainSettings.from_params(params)
    data = load_perturbation_data(
        inputs["h5ad"], inputs["genes"], inputs["facet_tensor"], inputs["cell_embedding"]
    )
    split = read_json(inputs["split"])
    train_conditions = data.measured(split["train"])
    if not train_conditions:
        raise InputError(
            f"{inputs['split']}: no training perturbation is measured; nothing to train on."
        )
    val_conditions = data.measured(split.get("val", []))
    resume = Path(str(outputs["weights"]) + ".resume")
    model, result = train_model(data, train_conditions, val_conditions, settings, resume)
    trainable = trainable_parameters(model.module)
    log.info("%s: %d trainable parameters", model.module.config, trainable)
    save_checkpoint(
        model,
        Path(outputs["weights"]),
        Path(outputs["config"]),
        {
            "gene_names": data.gene_names,
            "facet_ids": data.facets.facet_ids,
            "train_conditions": train_conditions,
            "val_conditions": val_conditions,
            "training": settings.as_dict(),
            "training_result": result,
            "trainable_parameters": trainable,
        },
    )
    remove_training_state(resume)
    return {
        "train_conditions": len(train_conditions),
        "val_conditions": len(val_conditions),
        "trainable_parameters": trainable,
        "prior": model.prior.describe(),
        "best_step": result["best_step"],
        "device": result["device"],
        "skipped": data.skipped,
    }

"""The train_folds stage (protocol cross_validation): one variant and seed trained on every fold's
training perturbations, as the train stage trains on the split's (``model.training.train_model``)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..data.perturbations import load_perturbation_data
from ..data.splits import Fold
from ..io.artifacts import read_json
from ..model.checkpoint import remove_training_state, save_fold_checkpoints
from ..model.training import TrainSettings, train_model

log = logging.getLogger(__name__)


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Train one model per fold.

    Reads ``h5ad``, ``folds``, ``genes``, ``facet_tensor`` and ``cell_embedding``. Writes ``weights`` and
    ``config``: every fold's model in one pair of files (``model.checkpoint.save_fold_checkpoints``);
    while it runs, a resumable state per fold beside ``weights``. Params: as the train stage's.
    """
    settings = TrainSettings.from_params(params)
    data = load_perturbation_data(
        inputs["h5ad"], inputs["genes"], inputs["facet_tensor"], inputs["cell_embedding"]
    )
    folds = [Fold.from_dict(record) for record in read_json(inputs["folds"])["folds"]]
    models, resumes = {}, []
    for fold in folds:
        train, val = data.measured(fold.split.train), data.measured(fold.split.val)
        resume = Path(f"{outputs['weights']}.resume.{fold.name}")
        resumes.append(resume)
        log.info("fold %s: %d train, %d val perturbations", fold.name, len(train), len(val))
        model, result = train_model(data, train, val, settings, resume)
        models[fold.name] = (
            model,
            {
                "train_conditions": train,
                "val_conditions": val,
                "training": settings.as_dict(),
                "training_result": result,
            },
        )
    save_fold_checkpoints(models, Path(outputs["weights"]), Path(outputs["config"]))
    for resume in resumes:
        remove_training_state(resume)
    return {
        "folds": len(folds),
        "priors": {name: model.prior.describe() for name, (model, _) in models.items()},
    }

"""The folds stage (protocol cross_validation): k-fold or leave-one-out folds over every perturbation of
the dataset, once per split seed, each keeping its split kind's constraint (``data.splits``)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..data.splits import CrossValidationSettings, cross_validation_folds
from ..io.artifacts import read_json, write_json_atomic

log = logging.getLogger(__name__)


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Cut every perturbation of the split into folds.

    Reads ``split`` (its perturbations, held-out ones included, and its kind). Writes ``folds`` (JSON: the
    scheme and, per fold, its name, split seed, train / val / test perturbations, test subgroups and the
    doubles held out of its training). Params: the ``evaluate.cross_validation`` config section.
    """
    settings = CrossValidationSettings.from_params(params)
    split = read_json(inputs["split"])
    conditions = [c for key in ("train", "val", "test", "held_out") for c in split.get(key, [])]
    folds = cross_validation_folds(conditions, split["kind"], settings)
    write_json_atomic(
        outputs["folds"],
        {"scheme": settings.scheme, "kind": split["kind"], "folds": [f.as_dict() for f in folds]},
    )
    sizes = [len(fold.split.test) for fold in folds]
    log.info(
        "%d folds over %d perturbations (%s, split seeds %s); test sizes %s",
        len(folds),
        len(set(conditions)),
        settings.scheme,
        list(settings.split_seeds),
        sizes,
    )
    return {"folds": len(folds), "perturbations": len(set(conditions))}

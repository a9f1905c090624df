"""train + evaluate: training steps per second and predicted cells per second on the demo's artifacts."""

import torch

from dygenept.config_defaults import section_defaults
from dygenept.data.perturbations import load_perturbation_data
from dygenept.model.inference import predict_condition
from dygenept.model.network import TrainedModel, trainable_parameters
from dygenept.model.training import TrainSettings, build_model, build_prior, fit

from _common import DEMO_OUT, parse_args, report, require, timed

args = parse_args(__doc__)
paths = [
    DEMO_OUT / p
    for p in (
        "data/dataset.h5ad",
        "model/genes/genes.tsv",
        "model/facet_embed/facet_tensor.safetensors",
        "cells/control_embeddings.safetensors",
    )
]
require(*paths)
torch.set_num_threads(2)
data = load_perturbation_data(*paths)
conditions = sorted(data.mean_by_condition)
settings = TrainSettings.from_params(
    section_defaults("train")
    | {"seed": 0, "steps": 20 if args.quick else 200, "device": "cpu", "amp": False}
    | {"eval_every": 10_000, "patience": 0, "checkpoint_every": 10_000, "log_every": 10_000}
    | {"baselines": section_defaults("baselines")}
)
prior, _ = build_prior(data, conditions, settings)
torch.manual_seed(0)
model = TrainedModel(build_model(data, settings.model), prior)
_, seconds = timed(fit, model, data, conditions, settings)
report(
    "train",
    settings.steps / seconds,
    "steps/s",
    f"{len(conditions)} perturbations, {settings.conditions_per_step} × "
    f"{settings.cells_per_condition} cells per step, {len(data.gene_names)} genes, "
    f"{trainable_parameters(model.module):,} trainable parameters, prior: {prior.describe()}",
)
n_cells = data.cell_state.shape[0]
_, seconds = timed(lambda: [predict_condition(model, data, c) for c in conditions], repeat=3)
report(
    "evaluate",
    len(conditions) * n_cells / seconds,
    "predicted cells/s",
    f"{len(conditions)} perturbations × {n_cells} control cells",
)

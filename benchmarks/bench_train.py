"""train + evaluate: training steps per second and predicted cells per second on the demo's artifacts."""

import torch

from dygenept.data.perturbations import load_perturbation_data
from dygenept.model.inference import predict_condition
from dygenept.model.network import trainable_parameters
from dygenept.model.training import build_model, fit

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
conditions = sorted(data.facet_rows)
params = {
    "seed": 0,
    "steps": 20 if args.quick else 200,
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
    "warmup_steps": 20,
    "grad_clip": 1.0,
    "conditions_per_step": 8,
    "cells_per_condition": 32,
    "loss": "mse",
    "entropy_penalty": 0.0,
    "eval_every": 10_000,
    "patience": 0,
    "checkpoint_every": 10_000,
    "log_every": 10_000,
    "device": "cpu",
    "amp": False,
}
model = build_model(
    data,
    {"hidden_dim": 128, "mlp_dim": 256, "dropout": 0.1, "attention": "sparsemax"},
    conditions,
)
_, seconds = timed(fit, model, data, conditions, params)
report(
    "train",
    params["steps"] / seconds,
    "steps/s",
    f"{len(conditions)} perturbations, 8 × 32 cells per step, {len(data.gene_names)} genes, "
    f"{trainable_parameters(model):,} trainable parameters",
)
n_cells = data.cell_state.shape[0]
_, seconds = timed(lambda: [predict_condition(model, data, c) for c in conditions], repeat=3)
report(
    "evaluate",
    len(conditions) * n_cells / seconds,
    "predicted cells/s",
    f"{len(conditions)} perturbations × {n_cells} control cells",
)

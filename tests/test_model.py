"""The DyGenePT network: shapes, sparse facet weights, the null vector, training, checkpoints."""

import numpy as np
import pytest
import torch

from dygenept.formats.cell_embedding import CellEmbedding
from dygenept.formats.facet_tensor import FacetTensor
from dygenept.model.checkpoint import load_checkpoint, save_checkpoint
from dygenept.model.network import DyGenePTModule, ModelConfig
from dygenept.model.training import fit, training_step_loss
from dygenept.perturbations import PerturbationData

CONFIG = ModelConfig(
    cell_dim=6, facet_dim=12, n_facets=8, n_genes=20, hidden_dim=16, mlp_dim=32, dropout=0.0
)


def inputs(batch=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, 2, 8, generator=g) > 0.4
    present = torch.tensor([[True, i % 2 == 0] for i in range(batch)])
    return (
        torch.randn(batch, 6, generator=g),
        torch.randn(batch, 20, generator=g),
        torch.randn(batch, 2, 8, 12, generator=g),
        mask,
        present,
    )


@pytest.mark.parametrize("attention", ["sparsemax", "entmax15", "softmax"])
def test_shapes_and_weights_are_distributions(attention):
    torch.manual_seed(0)
    model = DyGenePTModule(ModelConfig(**{**CONFIG.to_dict(), "attention": attention}))
    expression, weights = model(*inputs())
    assert expression.shape == (5, 20) and weights.shape == (5, 2, 8)
    assert torch.allclose(weights.sum(-1), torch.ones(5, 2), atol=1e-5)
    assert (weights >= 0).all()


def test_sparsemax_gives_exact_zeros():
    torch.manual_seed(0)
    model = DyGenePTModule(CONFIG)
    with torch.no_grad():
        model.attention.key.weight.mul_(
            50
        )  # sharp scores: sparsemax must cut some facets to exactly 0
    _, weights = model(*inputs())
    assert (weights == 0).any()


def test_none_facets_use_the_null_vector_only():
    torch.manual_seed(0)
    model = DyGenePTModule(CONFIG).eval()
    state, control, facets, mask, present = inputs()
    altered = facets.clone()
    altered[~mask] = 123.0  # whatever sits under a NONE facet must not matter
    assert torch.allclose(
        model(state, control, facets, mask, present)[0],
        model(state, control, altered, mask, present)[0],
    )


def test_single_perturbation_ignores_the_empty_second_slot():
    torch.manual_seed(0)
    model = DyGenePTModule(CONFIG).eval()
    state, control, facets, mask, present = inputs()
    altered = facets.clone()
    altered[~present] = -7.0
    assert torch.allclose(
        model(state, control, facets, mask, present)[0],
        model(state, control, altered, mask, present)[0],
    )


def test_residual_decoding_keeps_control_cells_when_the_shift_is_zero():
    torch.manual_seed(0)
    model = DyGenePTModule(CONFIG).eval()
    for layer in (model.shift[-1], model.pair_shift[-1]):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    state, control, facets, mask, present = inputs()
    assert torch.allclose(model(state, control, facets, mask, present)[0], control, atol=1e-6)


def tiny_data(seed=0) -> PerturbationData:
    rng = np.random.default_rng(seed)
    n_genes, n_facet_genes = 20, 4
    facets = FacetTensor(
        rng.normal(size=(n_facet_genes, 8, 12)).astype(np.float32),
        rng.random((n_facet_genes, 8)) > 0.3,
        [str(i) for i in range(n_facet_genes)],
        [f"G{i}" for i in range(n_facet_genes)],
        [f"f{k}" for k in range(8)],
    )
    cells = CellEmbedding(
        rng.normal(size=(30, 6)).astype(np.float32), [f"c{i}" for i in range(30)], "pca"
    )
    control = rng.normal(size=(30, n_genes)).astype(np.float32)
    conditions = {"G0+ctrl": [0], "G1+ctrl": [1], "G2+ctrl": [2], "G0+G1": [0, 1]}
    shifts = {c: rng.normal(scale=2.0, size=n_genes).astype(np.float32) for c in conditions}
    mean_by_condition = {c: control[:20].mean(axis=0) + shifts[c] for c in conditions}
    return PerturbationData(
        [f"g{i}" for i in range(n_genes)],
        control,
        cells.embeddings,
        mean_by_condition,
        conditions,
        facets,
        cells,
        {},
    )


def test_training_lowers_the_loss_and_checkpoint_round_trips(tmp_path):
    data = tiny_data()
    torch.manual_seed(0)
    model = DyGenePTModule(ModelConfig(**{**CONFIG.to_dict(), "n_genes": 20}))
    conditions = ["G0+ctrl", "G1+ctrl", "G2+ctrl", "G0+G1"]
    params = {
        "seed": 0,
        "steps": 60,
        "learning_rate": 1e-2,
        "weight_decay": 0.0,
        "conditions_per_step": 4,
        "cells_per_condition": 8,
        "log_every": 20,
    }
    before = training_step_loss(model.eval(), data, conditions, 8, np.random.default_rng(1)).item()
    history = fit(model, data, conditions, params, val_conditions=["G0+G1"])
    after = training_step_loss(model.eval(), data, conditions, 8, np.random.default_rng(1)).item()
    assert after < 0.5 * before
    assert [h["step"] for h in history] == [20, 40, 60] and all("val_loss" in h for h in history)
    save_checkpoint(model, tmp_path / "m.safetensors", tmp_path / "m.json", {"note": "test"})
    loaded, saved = load_checkpoint(tmp_path / "m.safetensors", tmp_path / "m.json")
    assert saved["note"] == "test" and loaded.config == model.config
    batch = inputs()
    assert torch.equal(model(*batch)[0], loaded(*batch)[0])

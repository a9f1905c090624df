"""The DyGenePT network with tiny real torch models: slot semantics, sparse weights, the null vector's gradient,
a hand-written AdamW loop on ``training_step_loss``, and checkpoints."""

import numpy as np
import pytest
import torch

from dygenept.formats.cell_embedding import CellEmbedding
from dygenept.formats.facet_tensor import FacetTensor
from dygenept.model.checkpoint import load_checkpoint, save_checkpoint
from dygenept.model.network import DyGenePTModule, ModelConfig
from dygenept.model.training import build_model, training_step_loss
from dygenept.perturbations import PerturbationData

K, D, CELL, GENES = 8, 12, 6, 20


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors gain nothing from threads, and on a busy 2-core machine OpenMP's spinning threads made a
    60-step loop take 3-16 s instead of 0.1 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CONFIG = ModelConfig(
    cell_dim=CELL, facet_dim=D, n_facets=K, n_genes=GENES, hidden_dim=16, mlp_dim=32, dropout=0.0
)


def model_with(seed=0, **changes):
    torch.manual_seed(seed)
    return DyGenePTModule(ModelConfig(**{**CONFIG.to_dict(), **changes})).eval()


def batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    state, control = torch.randn(n, CELL, generator=g), torch.randn(n, GENES, generator=g)
    facets = torch.randn(n, 2, K, D, generator=g)
    mask = torch.rand(n, 2, K, generator=g) > 0.3
    return state, control, facets, mask


def test_single_and_double_shapes():
    model = model_with()
    state, control, facets, mask = batch()
    singles = torch.tensor([[True, False]] * 4)
    doubles = torch.ones(4, 2, dtype=torch.bool)
    for present in (singles, doubles):
        expression, weights = model(state, control, facets, mask, present)
        assert expression.shape == (4, GENES) and weights.shape == (4, 2, K)
    expression, weights = model(state, control, facets[:, :1], mask[:, :1], singles[:, :1])
    assert expression.shape == (4, GENES) and weights.shape == (4, 1, K)


def test_a_one_slot_batch_equals_a_two_slot_batch_with_the_second_slot_empty():
    model = model_with()
    state, control, facets, mask = batch()
    one_slot = model(
        state, control, facets[:, :1], mask[:, :1], torch.ones(4, 1, dtype=torch.bool)
    )[0]
    two_slot = model(state, control, facets, mask, torch.tensor([[True, False]] * 4))[0]
    torch.testing.assert_close(one_slot, two_slot)


def test_a_double_does_not_depend_on_the_order_of_its_genes():
    model = model_with()
    state, control, facets, mask = batch()
    present = torch.ones(4, 2, dtype=torch.bool)
    ab = model(state, control, facets, mask, present)
    ba = model(state, control, facets.flip(1), mask.flip(1), present)
    torch.testing.assert_close(ab[0], ba[0])
    torch.testing.assert_close(ab[1], ba[1].flip(1))


def test_a_double_is_not_just_its_first_gene():
    model = model_with()
    state, control, facets, mask = batch()
    single = model(state, control, facets, mask, torch.tensor([[True, False]] * 4))[0]
    double = model(state, control, facets, mask, torch.ones(4, 2, dtype=torch.bool))[0]
    assert not torch.allclose(single, double)


@pytest.mark.parametrize(
    "attention, sparse", [("sparsemax", True), ("entmax15", True), ("softmax", False)]
)
def test_weights_are_distributions_and_only_sparse_kinds_give_exact_zeros(attention, sparse):
    model = model_with(attention=attention)
    with torch.no_grad():
        model.attention.key.weight.mul_(30)  # sharp scores
    state, control, facets, mask = batch(n=16)
    _, weights = model(state, control, facets, mask, torch.ones(16, 2, dtype=torch.bool))
    torch.testing.assert_close(weights.sum(-1), torch.ones(16, 2))
    assert (weights >= 0).all()
    assert bool((weights == 0).any()) is sparse


def test_a_gene_with_every_facet_none_spreads_weight_evenly_over_null_facets():
    model = model_with()
    state, control, facets, _ = batch()
    none = torch.zeros(4, 2, K, dtype=torch.bool)
    _, weights = model(state, control, facets, none, torch.ones(4, 2, dtype=torch.bool))
    torch.testing.assert_close(
        weights, torch.full((4, 2, K), 1 / K)
    )  # identical null keys: equal scores


def test_facet_values_under_a_none_mask_do_not_matter_and_the_null_vector_does():
    model = model_with()
    state, control, facets, mask = batch()
    present = torch.ones(4, 2, dtype=torch.bool)
    reference = model(state, control, facets, mask, present)[0]
    noisy = torch.where(mask.unsqueeze(-1), facets, torch.randn_like(facets) * 100)
    torch.testing.assert_close(model(state, control, noisy, mask, present)[0], reference)
    with torch.no_grad():
        model.attention.null_facet.add_(1.0)
    assert not torch.allclose(model(state, control, facets, mask, present)[0], reference)


def test_the_null_vector_learns_only_from_none_facets():
    model = model_with()
    state, control, facets, _ = batch()
    present = torch.ones(4, 2, dtype=torch.bool)
    model(state, control, facets, torch.ones(4, 2, K, dtype=torch.bool), present)[
        0
    ].sum().backward()
    assert (
        model.attention.null_facet.grad is None
        or torch.count_nonzero(model.attention.null_facet.grad) == 0
    )
    model.zero_grad()
    some_none = torch.ones(4, 2, K, dtype=torch.bool)
    some_none[:, :, 0] = False
    model(state, control, facets, some_none, present)[0].sum().backward()
    assert torch.count_nonzero(model.attention.null_facet.grad) > 0


def tiny_data(seed=0) -> PerturbationData:
    rng = np.random.default_rng(seed)
    facets = FacetTensor(
        rng.normal(size=(3, K, D)).astype(np.float32),
        rng.random((3, K)) > 0.3,
        ["101", "102", "103"],
        ["A", "B", "C"],
        [f"f{k}" for k in range(K)],
    )
    decoder_weight = rng.normal(size=(GENES, CELL)).astype(np.float32)
    decoder_bias = rng.normal(size=GENES).astype(np.float32)
    state = rng.normal(size=(24, CELL)).astype(np.float32)
    cells = CellEmbedding(state, [f"c{i}" for i in range(24)], "pca", decoder_weight, decoder_bias)
    control = state @ decoder_weight.T + decoder_bias
    rows = {"A+ctrl": [0], "B+ctrl": [1], "C+ctrl": [2], "A+B": [0, 1]}
    means = {
        c: control.mean(axis=0) + rng.normal(scale=1.5, size=GENES).astype(np.float32) for c in rows
    }
    return PerturbationData(
        [f"g{i}" for i in range(GENES)], control, state, means, rows, facets, cells, {}
    )


def test_facet_inputs_place_each_genes_row_in_its_slot():
    data = tiny_data()
    facets, mask, present = data.facet_inputs(["B+ctrl", "A+B"])
    assert (
        facets.shape == (2, 2, K, D)
        and mask.shape == (2, 2, K)
        and present.tolist() == [[True, False], [True, True]]
    )
    np.testing.assert_array_equal(facets[0, 0].numpy(), data.facets.embeddings[1])
    np.testing.assert_array_equal(facets[1, 1].numpy(), data.facets.embeddings[1])
    assert not facets[0, 1].any() and not mask[0, 1].any()


def test_build_model_takes_its_sizes_and_decoder_from_the_data():
    data = tiny_data()
    model = build_model(
        data, {"hidden_dim": 16, "mlp_dim": 32, "dropout": 0.0, "attention": "entmax15"}
    )
    assert (
        model.config.cell_dim,
        model.config.facet_dim,
        model.config.n_facets,
        model.config.n_genes,
    ) == (CELL, D, K, GENES)
    np.testing.assert_array_equal(model.decoder.weight.detach().numpy(), data.cells.decoder_weight)
    np.testing.assert_array_equal(model.decoder.bias.detach().numpy(), data.cells.decoder_bias)


def test_a_few_adamw_steps_on_the_training_loss_lower_it():
    data = tiny_data()
    conditions = ["A+ctrl", "B+ctrl", "C+ctrl", "A+B"]
    torch.manual_seed(0)
    model = build_model(
        data, {"hidden_dim": 16, "mlp_dim": 32, "dropout": 0.0, "attention": "sparsemax"}
    )

    def held_loss():
        with torch.no_grad():
            return training_step_loss(
                model.eval(), data, conditions, 8, np.random.default_rng(123)
            ).item()

    before = held_loss()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(60):
        loss = training_step_loss(model, data, conditions, 8, rng)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert held_loss() < 0.5 * before
    assert before > 1.0  # the planted shifts (scale 1.5) are far from the control mean


def test_training_step_loss_is_the_mse_of_means_for_an_untouched_model():
    # With the shift heads zeroed, the prediction is each control cell itself, so the loss is the squared error
    # between the mean of the drawn control cells and each target: computed here independently with numpy.
    data = tiny_data()
    model = build_model(
        data, {"hidden_dim": 16, "mlp_dim": 32, "dropout": 0.0, "attention": "softmax"}
    )
    for layer in (model.shift[-1], model.pair_shift[-1]):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    conditions = ["A+ctrl", "A+B"]
    loss = training_step_loss(model.eval(), data, conditions, 5, np.random.default_rng(7)).item()
    picks = np.random.default_rng(7).integers(0, 24, size=(2, 5))
    expected = np.mean(
        [
            (data.control_expression[picks[i]].mean(0) - data.true_mean(c)) ** 2
            for i, c in enumerate(conditions)
        ]
    )
    assert loss == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("attention", ["sparsemax", "entmax15", "softmax"])
def test_checkpoint_round_trip_keeps_outputs_and_config(tmp_path, attention):
    model = model_with(seed=3, attention=attention)
    save_checkpoint(
        model, tmp_path / "w.safetensors", tmp_path / "c.json", {"gene_names": ["a", "b"]}
    )
    loaded, saved = load_checkpoint(tmp_path / "w.safetensors", tmp_path / "c.json")
    assert (
        loaded.config == model.config and saved["gene_names"] == ["a", "b"] and not loaded.training
    )
    state, control, facets, mask = batch(seed=5)
    present = torch.tensor([[True, True], [True, False], [True, True], [True, False]])
    assert torch.equal(
        model(state, control, facets, mask, present)[0],
        loaded(state, control, facets, mask, present)[0],
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "w.safetensors"]


def test_checkpoint_with_a_config_that_does_not_match_the_weights_is_refused(tmp_path):
    save_checkpoint(model_with(), tmp_path / "w.safetensors", tmp_path / "c.json", {})
    save_checkpoint(
        model_with(n_genes=GENES + 1), tmp_path / "other.safetensors", tmp_path / "other.json", {}
    )
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_checkpoint(tmp_path / "w.safetensors", tmp_path / "other.json")

"""The DyGenePT network and its training with tiny real torch models: the nesting identity (an untrained
network is the train_mean baseline), slot semantics, sparse weights, NONE facets and the null vector, the
static ablation, the parameter budget, training steps, early stopping, resume after a kill, checkpoints."""

import numpy as np
import pytest
import torch

from dygenept.data.perturbations import PerturbationData
from dygenept.errors import InputError
from dygenept.evaluation.baselines import train_mean
from dygenept.formats.cell_embedding import CellEmbedding
from dygenept.formats.facet_tensor import FacetTensor
from dygenept.model.checkpoint import load_checkpoint, save_checkpoint
from dygenept.model.inference import predict_condition
from dygenept.model.network import DyGenePTModule, ModelConfig, trainable_parameters
from dygenept.model.training import (
    DeviceData,
    batch_loss,
    build_model,
    fit,
    learning_rate,
    mean_shift,
    training_step_loss,
)

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
    """A network as after some training: its residual heads (zero at initialisation) drawn at random."""
    torch.manual_seed(seed)
    model = DyGenePTModule(ModelConfig(**{**CONFIG.to_dict(), **changes})).eval()
    with torch.no_grad():
        for layer in (model.shift[-1], model.pair_shift[-1]):
            torch.nn.init.normal_(layer.weight, std=0.3)
            torch.nn.init.normal_(layer.bias, std=0.3)
    return model


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
    model = model_with(attention="softmax")  # sparsemax may give the null facet exactly 0 here
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


TRAIN = ["A+ctrl", "B+ctrl", "A+B"]


def params(attention="sparsemax", contrastive_weight=0.0):
    return {
        "hidden_dim": 16,
        "mlp_dim": 32,
        "dropout": 0.0,
        "attention": attention,
        "contrastive_weight": contrastive_weight,
        "contrastive_dim": 8,
        "contrastive_temperature": 0.1,
    }


def fit_params(**changes):
    return {
        "seed": 0,
        "steps": 30,
        "learning_rate": 1e-2,
        "weight_decay": 0.0,
        "warmup_steps": 3,
        "grad_clip": 1.0,
        "conditions_per_step": 3,
        "cells_per_condition": 8,
        "loss": "mse",
        "entropy_penalty": 0.0,
        "eval_every": 5,
        "patience": 0,
        "checkpoint_every": 10,
        "log_every": 10,
        "device": "cpu",
        "amp": True,
        "model": params(),
    } | changes


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
    model = build_model(data, params("entmax15"), TRAIN)
    assert (
        model.config.cell_dim,
        model.config.facet_dim,
        model.config.n_facets,
        model.config.n_genes,
    ) == (CELL, D, K, GENES)
    np.testing.assert_array_equal(model.decoder.weight.detach().numpy(), data.cells.decoder_weight)
    assert model.decoder.bias is None  # decode(z + shift) − decode(z): a bias cancels
    np.testing.assert_allclose(model.mean_shift.numpy(), mean_shift(data, TRAIN), rtol=1e-5)


def test_a_few_adamw_steps_on_the_training_loss_lower_it():
    data = tiny_data()
    conditions = ["A+ctrl", "B+ctrl", "C+ctrl", "A+B"]
    torch.manual_seed(0)
    model = build_model(data, params("sparsemax"), TRAIN)

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
    assert before > 1.0  # the planted shifts (scale 1.5) are far from the training mean


def test_training_step_loss_is_the_mse_of_means_for_an_untrained_model():
    # Untrained, the prediction is each control cell plus the training-mean change, so the loss is the
    # squared error between the drawn cells' mean plus that change and each target: computed with numpy.
    data = tiny_data()
    model = build_model(data, params("softmax"), TRAIN)
    conditions = ["A+ctrl", "A+B"]
    loss = training_step_loss(model.eval(), data, conditions, 5, np.random.default_rng(7)).item()
    picks = np.random.default_rng(7).integers(0, 24, size=(2, 5))
    shift = mean_shift(data, TRAIN)
    expected = np.mean(
        [
            (data.control_expression[picks[i]].mean(0) + shift - data.true_mean(c)) ** 2
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


# ---- nesting: the untrained network is the train_mean baseline --------------------------------


@pytest.mark.parametrize("attention", ["sparsemax", "entmax15", "softmax", "mean"])
def test_an_untrained_network_predicts_exactly_the_train_mean_baseline(attention):
    data = tiny_data()
    torch.manual_seed(0)
    model = build_model(data, params(attention), TRAIN).eval()
    baseline = train_mean(data, TRAIN)
    for condition in ["A+ctrl", "C+ctrl", "A+B"]:
        predicted, _ = predict_condition(model, data, condition)
        np.testing.assert_allclose(predicted, baseline(condition), rtol=0, atol=1e-5)


def test_the_residual_moves_the_prediction_away_from_the_baseline_after_training():
    data = tiny_data()
    torch.manual_seed(0)
    model = build_model(data, params(), TRAIN)
    fit(model, data, TRAIN, fit_params(steps=10))
    predicted, _ = predict_condition(model, data, "A+ctrl")
    assert np.abs(predicted - train_mean(data, TRAIN)("A+ctrl")).max() > 1e-3


def test_batched_inference_equals_one_batch_of_every_control_cell():
    data = tiny_data()
    model = build_model(data, params(), TRAIN)
    fit(model, data, TRAIN, fit_params(steps=10))
    cells = len(data.control_rows("A+B"))
    for condition in ["A+ctrl", "C+ctrl", "A+B"]:
        whole, whole_weights = predict_condition(model, data, condition, batch_size=cells)
        batched, batched_weights = predict_condition(model, data, condition, batch_size=5)
        np.testing.assert_allclose(batched, whole, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(batched_weights.shape, (cells, 2, K))
        np.testing.assert_allclose(batched_weights, whole_weights, rtol=1e-6, atol=1e-7)


def test_deterministic_algorithms_are_on_during_a_cpu_fit_and_restored_after(tmp_path):
    """The switch is process-wide: left on, a later CUDA matrix product in the process could fail."""
    data = tiny_data()
    model = build_model(data, params(), TRAIN)
    during = []

    def record(step):
        during.append(torch.are_deterministic_algorithms_enabled())
        if step == 10:
            raise RuntimeError("a fit that fails")

    torch.use_deterministic_algorithms(False)
    fit(model, data, TRAIN, fit_params(steps=5, checkpoint_every=5), [], tmp_path / "a", record)
    assert during == [True]
    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(RuntimeError, match="a fit that fails"):
        fit(
            model,
            data,
            TRAIN,
            fit_params(steps=10, checkpoint_every=10),
            [],
            tmp_path / "b",
            record,
        )
    assert during == [True, True]
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible")
def test_training_on_cuda_without_a_gpu_stops_with_the_config_key_and_the_fix():
    data = tiny_data()
    model = build_model(data, params(), TRAIN)
    with pytest.raises(
        InputError, match=r"config 'train.device' = cuda .* Fix: set it to auto or cpu"
    ):
        fit(model, data, TRAIN, fit_params(device="cuda"))


# ---- the static ablation and the parameter budget ------------------------------------------------


def test_the_static_variant_averages_present_facets_whatever_the_cell():
    model = model_with(attention="mean")
    state, control, facets, mask = batch()
    mask[0, 0] = False  # a gene without any facet: only null facets, evenly
    present = torch.ones(4, 2, dtype=torch.bool)
    _, weights = model(state, control, facets, mask, present)
    expected = mask.float() / mask.float().sum(-1, keepdim=True)
    expected[0, 0] = 1 / K
    torch.testing.assert_close(weights, expected)
    _, other_cells = model(torch.randn_like(state) * 5, control, facets, mask, present)
    torch.testing.assert_close(other_cells, weights)
    assert not hasattr(model.attention, "key")  # the same network less the attention's keys


def test_the_real_configuration_has_under_ten_million_trainable_parameters():
    for n_facets in (8, 10):
        config = ModelConfig(cell_dim=512, facet_dim=768, n_facets=n_facets, n_genes=5000)
        count = trainable_parameters(DyGenePTModule(config))
        print(f"real config, K={n_facets}: {count:,} trainable parameters")
        assert 1_000_000 < count < 10_000_000


# ---- training --------------------------------------------------------------------------------------


def test_one_adamw_step_lowers_the_loss_on_its_batch():
    data = tiny_data()
    model = model_with(seed=1, attention="sparsemax")
    batch_data = DeviceData.build(data, TRAIN, torch.device("cpu"))
    cells = np.random.default_rng(0).integers(0, 24, size=(3, 8))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before, _ = batch_loss(model, batch_data, np.arange(3), cells)
    optimiser.zero_grad()
    before.backward()
    optimiser.step()
    after, _ = batch_loss(model, batch_data, np.arange(3), cells)
    assert after.item() < before.item()


def test_the_entropy_penalty_adds_the_mean_entropy_of_present_slots():
    data = tiny_data()
    model = model_with(attention="softmax")
    batch_data = DeviceData.build(data, ["A+ctrl", "A+B"], torch.device("cpu"))
    cells = np.zeros((2, 3), dtype=int)
    loss, squared_error = batch_loss(model, batch_data, np.arange(2), cells, entropy_penalty=0.5)
    _, weights = model(
        batch_data.cell_state[[0, 0, 0, 0, 0, 0]],
        batch_data.control[[0] * 6],
        batch_data.facets[[0, 0, 0, 1, 1, 1]],
        batch_data.mask[[0, 0, 0, 1, 1, 1]],
        batch_data.present[[0, 0, 0, 1, 1, 1]],
    )
    entropies = -(weights * weights.log()).sum(-1)  # softmax: no zeros
    present = batch_data.present[[0, 0, 0, 1, 1, 1]]
    expected = squared_error + 0.5 * entropies[present].mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_relative_loss_weighs_each_perturbation_by_the_size_of_its_change():
    data = tiny_data()
    model = model_with(seed=2)
    batch_data = DeviceData.build(data, ["A+ctrl", "B+ctrl"], torch.device("cpu"))
    cells = np.arange(6).reshape(2, 3)
    each = [
        batch_loss(model, batch_data, np.array([i]), cells[i : i + 1])[1].item() for i in (0, 1)
    ]
    sizes = [np.mean((data.true_mean(c) - data.control_mean) ** 2) for c in ("A+ctrl", "B+ctrl")]
    _, plain = batch_loss(model, batch_data, np.arange(2), cells)
    _, relative = batch_loss(model, batch_data, np.arange(2), cells, relative=True)
    assert plain.item() == pytest.approx(np.mean(each), rel=1e-5)
    assert relative.item() == pytest.approx(np.mean(np.divide(each, sizes)), rel=1e-5)


def test_learning_rate_warms_up_linearly_then_decays_to_zero():
    settings = {"learning_rate": 1.0, "warmup_steps": 10, "steps": 110}
    assert learning_rate(5, settings) == pytest.approx(0.5)
    assert learning_rate(10, settings) == pytest.approx(1.0)
    assert learning_rate(60, settings) == pytest.approx(0.5)
    assert learning_rate(110, settings) == pytest.approx(0.0)


def test_early_stopping_keeps_the_baseline_when_validation_never_improves():
    # The validation perturbation's mean is exactly control + the training-mean change: step 0 (the
    # train_mean baseline) has zero validation loss, so no step can beat it and its weights are kept.
    data = tiny_data()
    data.mean_by_condition["C+ctrl"] = data.control_mean + mean_shift(data, TRAIN)
    torch.manual_seed(0)
    model = build_model(data, params(), TRAIN)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(model, data, TRAIN, fit_params(steps=40, patience=2), val_conditions=["C+ctrl"])
    assert result["best_step"] == 0 and result["stopped_early"] and result["steps_run"] == 10
    for name, value in model.state_dict().items():
        assert torch.equal(value, initial[name]), name


RESUME_SCRIPT = """
import os, signal, sys, json
sys.path[:0] = {paths!r}
import torch
torch.set_num_threads(1)
from test_model import tiny_data, build_model, params, fit_params, fit, TRAIN
data = tiny_data()
torch.manual_seed(0)
model = build_model(data, params(), TRAIN)

def die(step):
    if step == 20:
        os.kill(os.getpid(), signal.SIGKILL)  # a real kill: no cleanup, no exception handling

fit(model, data, TRAIN, fit_params(steps=50), ["C+ctrl"], resume_path={prefix!r}, on_checkpoint=die)
"""


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    prefix = str(tmp_path / "state")
    paths = [str(Path(__file__).parent), *sys.path]
    script = RESUME_SCRIPT.format(paths=paths, prefix=prefix)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "state.json").exists()

    data = tiny_data()
    torch.manual_seed(0)
    resumed_model = build_model(data, params(), TRAIN)
    resumed = fit(resumed_model, data, TRAIN, fit_params(steps=50), ["C+ctrl"], resume_path=prefix)
    torch.manual_seed(0)
    whole_model = build_model(data, params(), TRAIN)
    whole = fit(whole_model, data, TRAIN, fit_params(steps=50), ["C+ctrl"])
    assert resumed["history"] == whole["history"] and resumed["best_step"] == whole["best_step"]
    for name, value in whole_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[name], value), name


def test_a_saved_state_of_another_run_is_not_resumed(tmp_path):
    data = tiny_data()
    torch.manual_seed(0)
    model = build_model(data, params(), TRAIN)
    fit(model, data, TRAIN, fit_params(steps=10), resume_path=tmp_path / "state")
    torch.manual_seed(0)
    other = build_model(data, params(), TRAIN)
    result = fit(
        other, data, TRAIN, fit_params(steps=10, learning_rate=5e-3), resume_path=tmp_path / "state"
    )
    assert result["history"][0]["step"] == 1  # started afresh: the settings differ


def test_the_alignment_loss_is_log_n_at_chance_and_leaves_predictions_alone():
    model = model_with(seed=2, contrastive_dim=8)
    changes = torch.randn(5, GENES)
    with torch.no_grad():
        # every embedding maps to one point and every change to another: no pair is nearer than any
        for head in (model.gene_projection, model.change_projection):
            head.weight.zero_()
            head.bias.fill_(1.0)
        chance = model.contrastive_loss(torch.randn(5, 16), changes, temperature=0.1)
        assert chance.item() == pytest.approx(np.log(5), rel=1e-6)
        state, control, facets, mask = batch()
        present = torch.ones(4, 2, dtype=torch.bool)
        before = model(state, control, facets, mask, present)[0]
        model.change_projection.weight.normal_()  # the heads never reach a prediction
        expression, _, embedding = model(state, control, facets, mask, present, with_embedding=True)
    assert torch.equal(before, expression) and embedding.shape == (4, 16)


def test_training_with_the_alignment_loss_aligns_embeddings_with_their_changes():
    data = tiny_data()
    conditions = ["A+ctrl", "B+ctrl", "C+ctrl", "A+B"]
    torch.manual_seed(0)
    model = build_model(data, params("sparsemax", contrastive_weight=1.0), TRAIN)
    batch_data = DeviceData.build(data, conditions, torch.device("cpu"))
    cells = np.random.default_rng(0).integers(0, 24, size=(4, 8))

    def alignment() -> float:
        total, squared_error = batch_loss(
            model.eval(), batch_data, np.arange(4), cells, contrastive=(1.0, 0.1)
        )
        return (total - squared_error).item()

    with torch.no_grad():
        before = alignment()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    model.train()
    for _ in range(40):
        loss, _ = batch_loss(model, batch_data, np.arange(4), cells, contrastive=(1.0, 0.1))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        after = alignment()
    assert after < 0.5 * before and before > 0.5  # log 4 ≈ 1.39 at chance

"""The DyGenePT network and its training with tiny real torch models: the nesting identity (an untrained
network is the baseline it nests), slot semantics, sparse weights, NONE facets and unknown genes, the
truly static ablation, slot keys, the parameter budget, noise-free targets, training steps, early
stopping, resume after a kill, checkpoints."""

import dataclasses

import numpy as np
import pytest
import torch

from dygenept.config_defaults import merged, section_defaults
from dygenept.data.perturbations import PerturbationData
from dygenept.errors import InputError
from dygenept.evaluation.baselines import selected, train_mean
from dygenept.formats.cell_embedding import CellEmbedding
from dygenept.formats.facet_tensor import FacetTensor
from dygenept.model.checkpoint import (
    load_checkpoint,
    load_fold_checkpoints,
    save_checkpoint,
    save_fold_checkpoints,
)
from dygenept.model.inference import predict_condition
from dygenept.model.network import DyGenePTModule, ModelConfig, TrainedModel, trainable_parameters
from dygenept.model.prior import Prior, PriorSettings, fit_prior
from dygenept.model.training import (
    DeviceData,
    ModelSettings,
    TrainSettings,
    batch_loss,
    build_model,
    build_prior,
    fit,
    learning_rate,
    train_model,
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
    cell_dim=CELL,
    facet_dim=D,
    n_facets=K,
    n_genes=GENES,
    hidden_dim=16,
    mlp_dim=32,
    dropout=0.0,
    attention="sparsemax",
    contrastive_dim=0,
    slot_keys=True,
    query_in_shift=False,
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
    """Cell states, control expression, facets, a mask (every gene keeps facet 0) and a prior change."""
    g = torch.Generator().manual_seed(seed)
    state, control = torch.randn(n, CELL, generator=g), torch.randn(n, GENES, generator=g)
    facets = torch.randn(n, 2, K, D, generator=g)
    mask = torch.rand(n, 2, K, generator=g) > 0.3
    mask[:, :, 0] = True
    return state, control, facets, mask, torch.randn(n, GENES, generator=g)


def test_single_and_double_shapes():
    model = model_with()
    state, control, facets, mask, prior = batch()
    singles = torch.tensor([[True, False]] * 4)
    doubles = torch.ones(4, 2, dtype=torch.bool)
    for present in (singles, doubles):
        expression, weights = model(state, control, facets, mask, present, prior)
        assert expression.shape == (4, GENES) and weights.shape == (4, 2, K)
    expression, weights = model(state, control, facets[:, :1], mask[:, :1], singles[:, :1], prior)
    assert expression.shape == (4, GENES) and weights.shape == (4, 1, K)


def test_a_one_slot_batch_equals_a_two_slot_batch_with_the_second_slot_empty():
    model = model_with()
    state, control, facets, mask, prior = batch()
    one_slot = model(
        state, control, facets[:, :1], mask[:, :1], torch.ones(4, 1, dtype=torch.bool), prior
    )[0]
    two_slot = model(state, control, facets, mask, torch.tensor([[True, False]] * 4), prior)[0]
    torch.testing.assert_close(one_slot, two_slot)


def test_a_double_does_not_depend_on_the_order_of_its_genes():
    model = model_with()
    state, control, facets, mask, prior = batch()
    present = torch.ones(4, 2, dtype=torch.bool)
    ab = model(state, control, facets, mask, present, prior)
    ba = model(state, control, facets.flip(1), mask.flip(1), present, prior)
    torch.testing.assert_close(ab[0], ba[0])
    torch.testing.assert_close(ab[1], ba[1].flip(1))


def test_a_double_is_not_just_its_first_gene():
    model = model_with()
    state, control, facets, mask, prior = batch()
    single = model(state, control, facets, mask, torch.tensor([[True, False]] * 4), prior)[0]
    double = model(state, control, facets, mask, torch.ones(4, 2, dtype=torch.bool), prior)[0]
    assert not torch.allclose(single, double)


@pytest.mark.parametrize(
    "attention, sparse", [("sparsemax", True), ("entmax15", True), ("softmax", False)]
)
def test_weights_are_distributions_and_only_sparse_kinds_give_exact_zeros(attention, sparse):
    model = model_with(attention=attention)
    with torch.no_grad():
        model.attention.key.weight.mul_(30)  # sharp scores
    state, control, facets, mask, prior = batch(n=16)
    all_present = torch.ones_like(mask)
    _, weights = model(
        state, control, facets, all_present, torch.ones(16, 2, dtype=torch.bool), prior
    )
    torch.testing.assert_close(weights.sum(-1), torch.ones(16, 2))
    assert (weights >= 0).all()
    assert bool((weights == 0).any()) is sparse


@pytest.mark.parametrize("attention", ["sparsemax", "entmax15", "softmax", "mean"])
def test_none_facets_get_no_weight_and_their_values_do_not_matter(attention):
    model = model_with(attention=attention)
    state, control, facets, mask, prior = batch()
    present = torch.ones(4, 2, dtype=torch.bool)
    reference, weights = model(state, control, facets, mask, present, prior)
    assert (weights[~mask] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 2))
    noisy = torch.where(mask.unsqueeze(-1), facets, torch.randn_like(facets) * 100)
    torch.testing.assert_close(model(state, control, noisy, mask, present, prior)[0], reference)


def test_an_absent_slot_adds_nothing_whatever_its_inputs():
    """A gene without any facet is unknown: data.facet_inputs leaves its slot absent, and the prediction
    is the prior (plus the other gene's part)."""
    model = model_with()
    state, control, facets, mask, prior = batch()
    nothing = torch.zeros(4, 2, dtype=torch.bool)
    expression, _ = model(state, control, facets, mask, nothing, prior)
    torch.testing.assert_close(expression, control + prior)
    first = torch.tensor([[True, False]] * 4)
    noisy = facets.clone()
    noisy[:, 1] = torch.randn_like(noisy[:, 1]) * 100
    torch.testing.assert_close(
        model(state, control, noisy, mask, first, prior)[0],
        model(state, control, facets, mask, first, prior)[0],
    )


def test_slot_keys_let_identical_facet_texts_in_different_slots_get_different_weights():
    state, control, facets, mask, prior = batch()
    same = facets[:, :, :1].expand_as(facets).contiguous()  # every facet the same vector
    present = torch.ones(4, 2, dtype=torch.bool)
    all_present = torch.ones_like(mask)
    _, uniform = model_with(attention="softmax", slot_keys=False)(
        state, control, same, all_present, present, prior
    )
    torch.testing.assert_close(uniform, torch.full_like(uniform, 1 / K))
    _, by_slot = model_with(attention="softmax", slot_keys=True)(
        state, control, same, all_present, present, prior
    )
    assert by_slot.std(dim=-1).min() > 1e-3


def tiny_data(seed=0) -> PerturbationData:
    rng = np.random.default_rng(seed)
    mask = rng.random((4, K)) > 0.3
    mask[:3, 0] = True
    mask[3] = False  # gene D has no facet: unknown
    facets = FacetTensor(
        rng.normal(size=(4, K, D)).astype(np.float32),
        mask,
        ["101", "102", "103", "104"],
        ["A", "B", "C", "D"],
        [f"f{k}" for k in range(K)],
    )
    decoder_weight = rng.normal(size=(GENES, CELL)).astype(np.float32)
    decoder_bias = rng.normal(size=GENES).astype(np.float32)
    state = rng.normal(size=(24, CELL)).astype(np.float32)
    cells = CellEmbedding(state, [f"c{i}" for i in range(24)], "pca", decoder_weight, decoder_bias)
    control = state @ decoder_weight.T + decoder_bias
    rows = {
        "A+ctrl": [0],
        "B+ctrl": [1],
        "C+ctrl": [2],
        "A+B": [0, 1],
        "D+ctrl": [3],
        "A+D": [0, 3],
    }
    means = {
        c: control.mean(axis=0) + rng.normal(scale=1.5, size=GENES).astype(np.float32) for c in rows
    }
    return PerturbationData(
        [f"g{i}" for i in range(GENES)], control, state, means, rows, facets, cells, {}
    )


TRAIN = ["A+ctrl", "B+ctrl", "A+B"]
# One candidate of each kind (too few perturbations for leave-one-out to choose between them).
PRIOR = {"prior_kinds": ["mean", "ridge", "kernel"], "ridge_alphas": [1.0], "kernel_betas": [1.0]}


def params(attention="sparsemax", contrastive_weight=0.0, **changes) -> ModelSettings:
    return ModelSettings.from_params(
        merged(section_defaults("train")["model"], {"hidden_dim": 16, "mlp_dim": 32})
        | {"dropout": 0.0, "attention": attention, "contrastive_weight": contrastive_weight}
        | {"contrastive_dim": 8}
        | changes
    )


def fit_params(model: ModelSettings | None = None, **changes) -> TrainSettings:
    scalars = section_defaults("train") | {
        "seed": 0, "steps": 30, "learning_rate": 1e-2, "weight_decay": 0.0, "warmup_steps": 3,
        "conditions_per_step": 3, "cells_per_condition": 8, "eval_every": 5, "patience": 0,
        "checkpoint_every": 10, "log_every": 10, "device": "cpu", "baselines": PRIOR,
    }  # fmt: skip
    settings = TrainSettings.from_params(
        scalars | changes | {"model": section_defaults("train")["model"]}
    )
    return dataclasses.replace(settings, model=model or params())


def trained_model(data, settings: TrainSettings, train=TRAIN, seed=0) -> TrainedModel:
    """An untrained network over the prior the settings choose."""
    prior, _ = build_prior(data, train, settings)
    torch.manual_seed(seed)
    return TrainedModel(build_model(data, settings.model), prior)


def test_facet_inputs_place_each_known_genes_row_in_its_slot():
    data = tiny_data()
    facets, mask, present = data.facet_inputs(["B+ctrl", "A+B", "D+ctrl", "A+D"])
    assert facets.shape == (4, 2, K, D) and mask.shape == (4, 2, K)
    assert present.tolist() == [[True, False], [True, True], [False, False], [True, False]]
    np.testing.assert_array_equal(facets[0, 0].numpy(), data.facets.embeddings[1])
    np.testing.assert_array_equal(facets[1, 1].numpy(), data.facets.embeddings[1])
    np.testing.assert_array_equal(facets[3, 0].numpy(), data.facets.embeddings[0])
    assert not facets[0, 1].any() and not mask[0, 1].any()


def test_build_model_takes_its_sizes_and_decoder_from_the_data():
    data = tiny_data()
    model = build_model(data, params("entmax15"))
    assert (
        model.config.cell_dim,
        model.config.facet_dim,
        model.config.n_facets,
        model.config.n_genes,
    ) == (CELL, D, K, GENES)
    np.testing.assert_array_equal(model.decoder.weight.detach().numpy(), data.cells.decoder_weight)
    assert model.decoder.bias is None  # decode(z + shift) − decode(z): a bias cancels


def test_a_few_adamw_steps_on_the_training_loss_lower_it():
    data = tiny_data()
    conditions = ["A+ctrl", "B+ctrl", "C+ctrl", "A+B"]
    model = trained_model(data, fit_params(), conditions)
    changes = np.stack([data.change(c) for c in conditions])
    batch_data = DeviceData.build(data, conditions, np.zeros_like(changes), torch.device("cpu"))
    cells = np.random.default_rng(123).integers(0, 24, size=(4, 8))

    def held_loss():
        with torch.no_grad():
            return batch_loss(model.module.eval(), batch_data, np.arange(4), cells)[1].item()

    before = held_loss()
    optimiser = torch.optim.AdamW(model.module.parameters(), lr=1e-2, weight_decay=0.0)
    rng = np.random.default_rng(0)
    model.module.train()
    for _ in range(60):
        picks = rng.integers(0, 24, size=(4, 8))
        loss, _ = batch_loss(model.module, batch_data, np.arange(4), picks)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert held_loss() < 0.5 * before
    assert before > 1.0  # the planted changes (scale 1.5) are far from a zero prior


def test_the_target_is_the_observed_change_against_the_full_control_mean():
    """No sampled-control noise: an untrained network whose prior is each condition's observed change
    has zero loss whatever control cells are drawn (the old target, the mean of the drawn cells plus
    the change, was noisy in the draw)."""
    data = tiny_data()
    conditions = ["A+ctrl", "A+B"]
    model = model_with()
    with torch.no_grad():
        for layer in (model.shift[-1], model.pair_shift[-1]):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    observed = np.stack([data.true_mean(c) - data.control_mean for c in conditions])
    batch_data = DeviceData.build(data, conditions, observed, torch.device("cpu"))
    for seed in range(3):
        picks = np.random.default_rng(seed).integers(0, 24, size=(2, 5))
        assert batch_loss(model, batch_data, np.arange(2), picks)[1].item() < 1e-10
    shifted = DeviceData.build(data, conditions, observed + 1.0, torch.device("cpu"))
    picks = np.random.default_rng(0).integers(0, 24, size=(2, 5))
    assert batch_loss(model, shifted, np.arange(2), picks)[1].item() == pytest.approx(1.0)


@pytest.mark.parametrize("attention", ["sparsemax", "entmax15", "softmax"])
def test_checkpoint_round_trip_keeps_outputs_prior_and_config(tmp_path, attention):
    data = tiny_data()
    prior = Prior.same_for_all(
        fit_prior("kernel", 2.0, data.training_set(["A+ctrl", "B+ctrl", "C+ctrl", "A+B"]))
    )
    model = TrainedModel(model_with(seed=3, attention=attention), prior)
    save_checkpoint(
        model, tmp_path / "w.safetensors", tmp_path / "c.json", {"gene_names": ["a", "b"]}
    )
    loaded, saved = load_checkpoint(tmp_path / "w.safetensors", tmp_path / "c.json")
    assert loaded.module.config == model.module.config and saved["gene_names"] == ["a", "b"]
    assert not loaded.module.training
    state, control, facets, mask, prior = batch(seed=5)
    present = torch.tensor([[True, True], [True, False], [True, True], [True, False]])
    assert torch.equal(
        model.module(state, control, facets, mask, present, prior)[0],
        loaded.module(state, control, facets, mask, present, prior)[0],
    )
    data = tiny_data()
    for condition in ("C+ctrl", "A+B", "D+ctrl"):
        np.testing.assert_array_equal(
            loaded.prior_change(data, condition), model.prior_change(data, condition)
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "w.safetensors"]


def test_fold_checkpoints_keep_each_folds_model_apart(tmp_path):
    data = tiny_data()
    models = {}
    for seed, name in enumerate(("s1f0", "s1f1")):
        prior = Prior.same_for_all(fit_prior("ridge", 1.0 + seed, data.training_set(TRAIN)))
        models[name] = (TrainedModel(model_with(seed=seed), prior), {"fold": name})
    save_fold_checkpoints(models, tmp_path / "w.safetensors", tmp_path / "c.json")
    loaded = load_fold_checkpoints(tmp_path / "w.safetensors", tmp_path / "c.json")
    assert sorted(loaded) == ["s1f0", "s1f1"]
    state, control, facets, mask, prior = batch()
    present = torch.ones(4, 2, dtype=torch.bool)
    for name, (model, _) in models.items():
        again, record = loaded[name]
        assert record["fold"] == name and again.prior.describe() == model.prior.describe()
        assert torch.equal(
            model.module(state, control, facets, mask, present, prior)[0],
            again.module(state, control, facets, mask, present, prior)[0],
        )


def test_checkpoint_with_a_config_that_does_not_match_the_weights_is_refused(tmp_path):
    prior = Prior.same_for_all(fit_prior("mean", None, tiny_data().training_set(TRAIN)))
    save_checkpoint(
        TrainedModel(model_with(), prior), tmp_path / "w.safetensors", tmp_path / "c.json", {}
    )
    save_checkpoint(
        TrainedModel(model_with(n_genes=GENES + 1), prior),
        tmp_path / "other.safetensors",
        tmp_path / "other.json",
        {},
    )
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_checkpoint(tmp_path / "w.safetensors", tmp_path / "other.json")


# ---- nesting: the untrained network is the baseline it starts from ---------------------------------


@pytest.mark.parametrize("attention", ["sparsemax", "entmax15", "softmax", "mean"])
@pytest.mark.parametrize("prior", ["selected", "mean", "ridge", "kernel"])
def test_an_untrained_network_predicts_exactly_the_baseline_it_nests(attention, prior):
    data = tiny_data()
    settings = fit_params(params(attention, prior=prior))
    model = trained_model(data, settings)
    candidates = PriorSettings.from_params(PRIOR)
    if prior != "selected":
        candidates = dataclasses.replace(candidates, kinds=(prior,))
    baseline = selected(data, TRAIN, candidates)
    for condition in ["A+ctrl", "C+ctrl", "A+B", "D+ctrl", "A+D"]:
        predicted, _ = predict_condition(model, data, condition)
        np.testing.assert_allclose(predicted, baseline(condition), rtol=0, atol=1e-5)


def test_a_facet_less_gene_gets_the_prior_the_training_mean_even_after_training():
    data = tiny_data()
    settings = fit_params(params(prior="ridge"))
    model = trained_model(data, settings)
    fit(model, data, TRAIN, settings)
    mean = train_mean(data, TRAIN)("D+ctrl")
    predicted, _ = predict_condition(model, data, "D+ctrl")
    np.testing.assert_allclose(predicted, mean, rtol=0, atol=1e-5)
    # a double with one unknown gene: the known gene's part only (the same as its single's residual)
    assert np.abs(predict_condition(model, data, "A+D")[0] - mean).max() > 1e-3


def test_the_residual_moves_the_prediction_away_from_the_baseline_after_training():
    data = tiny_data()
    settings = fit_params(steps=10)
    model = trained_model(data, settings)
    before, _ = predict_condition(model, data, "A+ctrl")
    fit(model, data, TRAIN, settings)
    predicted, _ = predict_condition(model, data, "A+ctrl")
    assert np.abs(predicted - before).max() > 1e-3


def test_training_a_model_records_the_priors_leave_one_out_choice():
    data = tiny_data()
    model, record = train_model(
        data, ["A+ctrl", "B+ctrl", "C+ctrl", "A+B"], ["D+ctrl"], fit_params(steps=5)
    )
    scores = record["prior_selection"]["scores"]
    assert {s["kind"] for s in scores} == {"mean", "ridge", "kernel"}
    chosen = record["prior_selection"]["chosen"]
    assert [model.prior.by_size[size].kind for size in (1, 2)] == [chosen[1][0], chosen[2][0]]


def test_batched_inference_equals_one_batch_of_every_control_cell():
    data = tiny_data()
    settings = fit_params(steps=10)
    model = trained_model(data, settings)
    fit(model, data, TRAIN, settings)
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
    model = trained_model(data, fit_params())
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
    model = trained_model(data, fit_params())
    with pytest.raises(
        InputError, match=r"config 'train.device' = cuda .* Fix: set it to auto or cpu"
    ):
        fit(model, data, TRAIN, fit_params(device="cuda"))


# ---- the static ablation and the parameter budget ------------------------------------------------


def test_the_static_variant_averages_present_facets_and_sees_no_cell():
    model = model_with(attention="mean")
    state, control, facets, mask, prior = batch()
    present = torch.ones(4, 2, dtype=torch.bool)
    expression, weights = model(state, control, facets, mask, present, prior)
    torch.testing.assert_close(weights, mask.float() / mask.float().sum(-1, keepdim=True))
    other_cells, other_weights = model(
        torch.randn_like(state) * 5, control, facets, mask, present, prior
    )
    torch.testing.assert_close(other_weights, weights)
    # truly static: no cell information reaches the change
    torch.testing.assert_close(other_cells - control, expression - control)
    assert model.attention.slot is None and not hasattr(model.attention, "key")


def test_with_the_query_in_the_shift_mlp_even_mean_attention_sees_the_cell():
    model = model_with(attention="mean", query_in_shift=True)
    state, control, facets, mask, prior = batch()
    present = torch.ones(4, 2, dtype=torch.bool)
    expression, _ = model(state, control, facets, mask, present, prior)
    other, _ = model(torch.randn_like(state) * 5, control, facets, mask, present, prior)
    assert not torch.allclose(expression - control, other - control)


def test_the_real_configuration_has_under_ten_million_trainable_parameters():
    for n_facets in (8, 10):
        config = dataclasses.replace(
            CONFIG, cell_dim=512, facet_dim=768, n_facets=n_facets, n_genes=5000,
            hidden_dim=128, mlp_dim=256,
        )  # fmt: skip
        count = trainable_parameters(DyGenePTModule(config))
        print(f"real config, K={n_facets}: {count:,} trainable parameters")
        assert 1_000_000 < count < 10_000_000


# ---- training --------------------------------------------------------------------------------------


def zero_prior(data, conditions) -> DeviceData:
    return DeviceData.build(
        data, conditions, np.zeros((len(conditions), GENES)), torch.device("cpu")
    )


def test_one_adamw_step_lowers_the_loss_on_its_batch():
    data = tiny_data()
    model = model_with(seed=1, attention="sparsemax")
    batch_data = zero_prior(data, TRAIN)
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
    batch_data = zero_prior(data, ["A+ctrl", "A+B"])
    cells = np.zeros((2, 3), dtype=int)
    loss, squared_error = batch_loss(model, batch_data, np.arange(2), cells, entropy_penalty=0.5)
    rows = [0, 0, 0, 1, 1, 1]
    _, weights = model(
        batch_data.cell_state[[0] * 6],
        torch.zeros(6, GENES),
        batch_data.facets[rows],
        batch_data.mask[rows],
        batch_data.present[rows],
        batch_data.prior[rows],
    )
    present = batch_data.present[rows]
    masked = batch_data.mask[rows]
    entropies = -(weights * weights.clamp_min(1e-12).log()).sum(-1)
    assert (weights[present][~masked[present]] == 0).all()  # NONE facets: no weight, no entropy
    expected = squared_error + 0.5 * entropies[present].mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_relative_loss_weighs_each_perturbation_by_the_size_of_its_change():
    data = tiny_data()
    model = model_with(seed=2)
    batch_data = zero_prior(data, ["A+ctrl", "B+ctrl"])
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
    settings = fit_params(learning_rate=1.0, warmup_steps=10, steps=110)
    assert learning_rate(5, settings) == pytest.approx(0.5)
    assert learning_rate(10, settings) == pytest.approx(1.0)
    assert learning_rate(60, settings) == pytest.approx(0.5)
    assert learning_rate(110, settings) == pytest.approx(0.0)


def test_early_stopping_keeps_the_prior_when_validation_never_improves():
    # The validation perturbation's change is exactly the prior's (the training mean): step 0 (the prior)
    # has a validation score of 1 − pearson 1 = 0, so no step can beat it and its weights are kept.
    data = tiny_data()
    settings = fit_params(params(prior="mean"), steps=40, patience=2)
    data.mean_by_condition["C+ctrl"] = (
        data.control_mean + train_mean(data, TRAIN)("A+ctrl") - data.control_mean
    )
    model = trained_model(data, settings)
    initial = {k: v.clone() for k, v in model.module.state_dict().items()}
    result = fit(model, data, TRAIN, settings, val_conditions=["C+ctrl"])
    assert result["history"][0]["val_loss"] == pytest.approx(0.0, abs=1e-6)
    assert result["best_step"] == 0 and result["stopped_early"] and result["steps_run"] == 10
    for name, value in model.module.state_dict().items():
        assert torch.equal(value, initial[name]), name


RESUME_SCRIPT = """
import os, signal, sys, json
sys.path[:0] = {paths!r}
import torch
torch.set_num_threads(1)
from test_model import tiny_data, trained_model, fit_params, fit, TRAIN
data = tiny_data()
model = trained_model(data, fit_params(steps=50))

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
    resumed_model = trained_model(data, fit_params(steps=50))
    resumed = fit(resumed_model, data, TRAIN, fit_params(steps=50), ["C+ctrl"], resume_path=prefix)
    whole_model = trained_model(data, fit_params(steps=50))
    whole = fit(whole_model, data, TRAIN, fit_params(steps=50), ["C+ctrl"])
    assert resumed["history"] == whole["history"] and resumed["best_step"] == whole["best_step"]
    for name, value in whole_model.module.state_dict().items():
        assert torch.equal(resumed_model.module.state_dict()[name], value), name


def test_a_saved_state_of_another_run_is_not_resumed(tmp_path):
    data = tiny_data()
    model = trained_model(data, fit_params(steps=10))
    fit(model, data, TRAIN, fit_params(steps=10), resume_path=tmp_path / "state")
    other = trained_model(data, fit_params(steps=10))
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
        state, control, facets, mask, prior = batch()
        present = torch.ones(4, 2, dtype=torch.bool)
        before = model(state, control, facets, mask, present, prior)[0]
        model.change_projection.weight.normal_()  # the heads never reach a prediction
        expression, _, embedding = model(
            state, control, facets, mask, present, prior, with_embedding=True
        )
    assert torch.equal(before, expression) and embedding.shape == (4, 16)


def test_training_with_the_alignment_loss_aligns_embeddings_with_their_changes():
    data = tiny_data()
    conditions = ["A+ctrl", "B+ctrl", "C+ctrl", "A+B"]
    torch.manual_seed(0)
    model = build_model(data, params("sparsemax", contrastive_weight=1.0))
    batch_data = zero_prior(data, conditions)
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

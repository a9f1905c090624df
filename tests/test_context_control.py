"""The positive control for context, small: simulated cells in two states whose response to a gene is
driven by a different facet in each (data.simulation, random facet vectors here; the benchmark uses the
real facet tensor of hundreds of genes). The attention must find the planted facet and beat the truly
static model on held-out genes."""

import dataclasses

import numpy as np
import pytest
import torch

from dygenept.config_defaults import section_defaults
from dygenept.data.simulation import (
    SimulationSettings,
    conditions_of,
    gene_split,
    planted_facets,
    simulate,
    state_rankings,
)
from dygenept.evaluation.bootstrap import BootstrapSettings
from dygenept.evaluation.context_control import control_summary, run_control
from dygenept.formats.facet_tensor import FacetTensor
from dygenept.model.training import TrainSettings

K, D, GENES = 4, 8, 120
FACET_IDS = ["immune_response", "cell_cycle", "metabolism", "signal_transduction"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_tensor(n=GENES, seed=0) -> FacetTensor:
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(n, K, D)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=-1, keepdims=True)
    mask = rng.random((n, K)) > 0.4
    mask[:, :2] = True
    ids = [str(i) for i in range(n)]
    return FacetTensor(embeddings, mask, ids, [f"G{i}" for i in ids], FACET_IDS)


def settings(rule="position", **changes) -> SimulationSettings:
    base = SimulationSettings(
        rule=rule, max_genes=GENES, control_cells_per_state=40, cells_per_perturbation=50,
        cell_dim=4, expression_genes=30, response_rank=3, cell_noise=1.0, state_separation=3.0,
        seed=0,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_the_planted_facet_follows_each_states_ranking():
    mask = np.array([False, True, True, True])
    position = state_rankings(FACET_IDS, "position")
    assert planted_facets(mask, position) == {"A": 1, "B": 3}
    by_type = state_rankings(
        FACET_IDS, "type"
    )  # A: immune, signal ...; B: cell cycle, metabolism ...
    assert by_type["A"][:2] == [0, 3] and by_type["B"][:2] == [1, 2]
    assert planted_facets(mask, by_type) == {"A": 3, "B": 1}


def test_each_condition_is_measured_against_its_own_states_controls():
    simulation = simulate(random_tensor(), settings())
    data = simulation.data
    assert set(data.control_context) == {"A", "B"}
    condition = conditions_of(simulation.genes[:1])[1]  # ...|B
    assert condition.endswith("|B")
    np.testing.assert_allclose(
        data.control_mean_of(condition),
        data.control_expression[data.control_context == "B"].mean(0),
    )
    planted = simulation.planted[condition]
    row = data.facet_rows[condition][0]
    assert planted == max(np.flatnonzero(data.facets.mask[row]))  # rule position, state B: the last
    assert 0.5 < np.mean(list(simulation.ceiling.values())) < 1


def test_without_a_planted_rule_both_states_get_the_same_change():
    simulation = simulate(
        random_tensor(), settings("none", cell_noise=0.0, cells_per_perturbation=400)
    )
    a, b = conditions_of(simulation.genes[:1])
    assert simulation.planted[a] is None
    data = simulation.data
    # the same change up to the sampling of cell states (400 cells)
    assert np.corrcoef(data.change(a), data.change(b))[0, 1] > 0.95


def test_the_attention_recovers_the_planted_facet_and_beats_the_static_model():
    simulation = simulate(random_tensor(), settings())
    train, val, test = gene_split(simulation.genes, (0.1, 0.25), 0)
    params = section_defaults("train") | {
        "seed": 0, "steps": 150, "learning_rate": 0.02, "warmup_steps": 10, "eval_every": 50,
        "patience": 0, "device": "cpu", "conditions_per_step": 32, "cells_per_condition": 2,
        "log_every": 1000, "baselines": section_defaults("baselines"),
    }  # fmt: skip
    params["model"] = params["model"] | {"hidden_dim": 16, "mlp_dim": 32, "dropout": 0.0}
    model = TrainSettings.from_params(params)
    static = dataclasses.replace(model, model=dataclasses.replace(model.model, attention="mean"))
    table = run_control(
        simulation,
        conditions_of(train),
        conditions_of(val),
        conditions_of(test),
        {"dygenept": model, "static": static},
        seeds=[0],
    )
    summary = control_summary(
        table, "dygenept", "static", BootstrapSettings(1000, 0.95, 0), simulation
    )
    assert summary["planted_first"] >= 0.8
    assert summary["verdict"] == "better" and summary["difference"]["difference"] > 0.15
    # the static model (and the prior both nest) cannot tell the states apart
    static_rows = table[table["variant"] == "static"].set_index("condition")
    a, b = conditions_of(test[:1])
    assert static_rows.loc[a, "top_facet"] == static_rows.loc[b, "top_facet"]

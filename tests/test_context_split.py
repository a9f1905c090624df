"""The held-out-context split and its baseline, on the demo file's four cell lines (Norman's K562 and
McFaline-Figueroa's A172, T98G, U87MG). Invariants only: the McFaline-Figueroa part's half-split ceiling is
near zero, so its metrics are no evidence either way."""

import anndata as ad
import numpy as np
import pytest

from dygenept.data.arrays import dense
from dygenept.data.conditions import context_label, parse_context_label
from dygenept.data.perturbations import PerturbationData
from dygenept.data.splits import context_pairs, context_split, context_splits
from dygenept.errors import InputError
from dygenept.evaluation.baselines import no_change, other_contexts
from dygenept.formats.cell_embedding import CellEmbedding
from dygenept.formats.facet_tensor import FacetTensor

from conftest import ROOT

DEMO = ROOT / "resources" / "demo" / "perturbench_devel_norman19_mcfaline23.h5ad"


@pytest.fixture(scope="module")
def demo():
    if not DEMO.exists():
        pytest.skip("the demo file is not in this checkout")
    adata = ad.read_h5ad(DEMO)
    labels = adata.obs["perturbation"].astype(str).replace({"control": "ctrl"})
    adata.obs["condition"] = [c if c == "ctrl" or "+" in c else f"{c}+ctrl" for c in labels]
    return adata


@pytest.fixture(scope="module")
def pairs(demo):
    return context_pairs(demo.obs["condition"], demo.obs["cell_type"].astype(str))


def test_each_context_is_held_out_once_with_all_its_perturbations_as_test(pairs):
    splits = context_splits(pairs, val_fraction=0.1, seed=1)
    assert sorted(splits) == ["A172", "T98G", "U87MG", "k562"]
    everything = {f"{c}|{x}" for c, x in pairs}
    for context, split in splits.items():
        parts = [set(split.train), set(split.val), set(split.test)]
        assert set.union(*parts) == everything  # every pair is assigned ...
        assert sum(map(len, parts)) == len(everything)  # ... exactly once
        assert {parse_context_label(label)[1] for label in split.test} == {context}
        assert context not in {parse_context_label(label)[1] for label in split.train + split.val}
        assert "ctrl" not in {parse_context_label(label)[0] for label in everything}
        groups = split.test_subgroups
        assert sorted(groups["seen_in_other_contexts"] + groups["unseen_in_other_contexts"]) == (
            split.test
        )
        elsewhere = {parse_context_label(label)[0] for label in split.train + split.val}
        for label in groups["seen_in_other_contexts"]:
            assert parse_context_label(label)[0] in elsewhere
        for label in groups["unseen_in_other_contexts"]:
            assert parse_context_label(label)[0] not in elsewhere


def test_the_mcfaline_lines_share_their_perturbations_and_k562_shares_few(pairs):
    splits = context_splits(pairs, val_fraction=0.1, seed=1)
    for line in ("A172", "T98G", "U87MG"):  # the same nine perturbations in each line
        assert len(splits[line].test_subgroups["seen_in_other_contexts"]) == 9
    k562 = splits["k562"].test_subgroups
    assert len(k562["unseen_in_other_contexts"]) > len(k562["seen_in_other_contexts"]) > 0


def test_the_split_is_deterministic_and_validation_comes_from_training_contexts(pairs):
    first, again = context_split(pairs, "T98G", 0.2, 7), context_split(pairs, "T98G", 0.2, 7)
    assert first == again
    other_seed = context_split(pairs, "T98G", 0.2, 8)
    assert first.val != other_seed.val and first.test == other_seed.test
    total = len(first.train) + len(first.val)
    assert len(first.val) == int(total * 0.2)
    with pytest.raises(InputError, match="HepG2"):
        context_split(pairs, "HepG2", 0.1, 1)


def context_data(
    means: dict[str, np.ndarray], controls: np.ndarray, control_context: list[str]
) -> PerturbationData:
    """Observed means by ``condition|context`` label and control cells with their contexts (no facets:
    the baseline reads none)."""
    cells = CellEmbedding(
        np.zeros((len(controls), 1), np.float32), [f"c{i}" for i in range(len(controls))], "pca"
    )
    facets = FacetTensor(np.zeros((0, 1, 1), np.float32), np.zeros((0, 1), bool), [], [], ["f"])
    genes = [f"g{i}" for i in range(controls.shape[1])]
    return PerturbationData(
        genes, controls, cells.embeddings, means, {}, facets, cells, {}, None,
        np.asarray(control_context),
    )  # fmt: skip


def test_other_contexts_baseline_on_the_demo_file(demo, pairs):
    split = context_split(pairs, "U87MG", 0.0, 1)
    contexts = demo.obs["cell_type"].astype(str).to_numpy()
    conditions = demo.obs["condition"].to_numpy()

    def mean(condition, context):
        rows = (conditions == condition) & (contexts == context)
        return np.asarray(demo.X[rows].mean(axis=0)).ravel()

    means = {context_label(c, x): mean(c, x) for c, x in pairs}
    control_rows = conditions == "ctrl"
    data = context_data(means, dense(demo.X[control_rows]), contexts[control_rows])
    controls = {x: mean("ctrl", x) for x in set(contexts)}
    predict = other_contexts(data, split.train)
    # SGK1 in U87MG: U87MG's controls + the mean of SGK1's change in A172, T98G and K562 (Norman's
    # screen has it too), each from its own line's controls.
    trained = sorted(x for c, x in map(parse_context_label, split.train) if c == "SGK1+ctrl")
    assert trained == ["A172", "T98G", "k562"]
    changes = [means[f"SGK1+ctrl|{x}"] - controls[x] for x in ("A172", "T98G", "k562")]
    expected = controls["U87MG"] + (changes[0] + changes[1] + changes[2]) / 3
    np.testing.assert_allclose(predict("SGK1+ctrl|U87MG"), expected, rtol=1e-5, atol=1e-5)
    # a double measured only in K562 (a training context): its K562 change on U87MG's controls
    np.testing.assert_allclose(
        predict("KLF1+MAP2K6|U87MG"),
        controls["U87MG"] + means["KLF1+MAP2K6|k562"] - controls["k562"],
        rtol=1e-5,
        atol=1e-5,
    )
    assert predict("NOT+ctrl|U87MG") is None
    # the other baselines measure each change from its own context's controls too
    np.testing.assert_allclose(
        no_change(data, split.train)("SGK1+ctrl|U87MG"), controls["U87MG"], rtol=1e-5, atol=1e-5
    )


def test_other_contexts_baseline_is_exact_when_the_change_does_not_depend_on_context():
    change = np.array([1.0, -2.0, 0.5])
    controls = {"a": np.zeros(3), "b": np.ones(3), "c": np.full(3, 5.0)}
    means = {f"P+ctrl|{x}": controls[x] + change for x in controls}
    data = context_data(means, np.stack(list(controls.values())), list(controls))
    predict = other_contexts(data, ["P+ctrl|a", "P+ctrl|b"])
    np.testing.assert_allclose(predict("P+ctrl|c"), means["P+ctrl|c"])

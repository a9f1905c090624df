"""The dataset stage: GEARS-style condition names, the simulation split's invariants on a synthetic
condition list, bad inputs (each refused naming file, field and fix), the counts path by hand, DE genes on
data whose answer is known, and the real demo file."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from dygenept.data.conditions import (
    CONDITION_KEY,
    CONTROL_KEY,
    canonical_condition,
    condition_genes,
    looks_like_control,
)
from dygenept.data.splits import SUBGROUPS, simulation_split
from dygenept.stages.dataset import DatasetError, data_card, load_dataset, top_de_genes

from conftest import DEMO_DATASET_PARAMS, DEMO_H5AD, dataset_params

# ---- conditions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("non-targeting", "ctrl"),
        ("NT", "ctrl"),
        ("KLF1_NT", "KLF1+ctrl"),
        ("NT_KLF1", "KLF1+ctrl"),
        (
            "SET_KLF1",
            "SET+KLF1",
        ),  # GEARS names keep the data's order (Norman has SET+KLF1, not KLF1+SET)
        ("KLF1_SET", "KLF1+SET"),
        ("NT_NT", "ctrl"),
    ],
)
def test_canonical_condition_with_other_separator_and_several_control_labels(raw, expected):
    assert canonical_condition(raw, ["non-targeting", "NT"], "_") == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("control", "ctrl"),
        ("KLF1", "KLF1+ctrl"),
        ("SET+KLF1", "SET+KLF1"),
        ("KLF1+control", "KLF1+ctrl"),
        (" A + B ", "A+B"),
    ],
)
def test_canonical_condition(raw, expected):
    assert canonical_condition(raw, ["control"], "+") == expected


def test_condition_genes():
    assert (
        condition_genes("ctrl") == []
        and condition_genes("A+ctrl") == ["A"]
        and condition_genes("B+A") == ["B", "A"]
    )


# ---- the simulation split ---------------------------------------------------------------------------

GENES = [f"G{i:02d}" for i in range(20)]
SINGLES = [f"{g}+ctrl" for g in GENES]
DOUBLES = [f"{GENES[i]}+{GENES[(i + k) % 20]}" for i in range(20) for k in (1, 2, 3)]
CONDITIONS = ["ctrl"] + SINGLES + DOUBLES


def split(conditions=CONDITIONS, seed=1):
    return simulation_split(
        conditions, seed=seed, train_gene_set_size=0.75, combo_seen2_train_frac=0.75
    )


def single_genes(conditions):
    return {condition_genes(c)[0] for c in conditions if len(condition_genes(c)) == 1}


def test_split_partitions_the_perturbations():
    s = split()
    everything = s.train + s.val + s.test
    assert len(everything) == len(set(everything)) == 80  # disjoint
    assert set(everything) == set(SINGLES + DOUBLES)  # complete, control left out
    assert sorted(s.test) == sorted(c for group in SUBGROUPS for c in s.test_subgroups[group])
    assert sorted(s.val) == sorted(c for group in SUBGROUPS for c in s.val_subgroups[group])


def test_split_test_subgroups_by_genes_seen_in_training():
    s = split()
    seen = single_genes(s.train + s.val)
    assert len(seen) == 15  # int(20 * 0.75) genes drawn as seen; every gene here has a single
    assert {condition_genes(c)[0] for c in s.test_subgroups["unseen_single"]} == set(GENES) - seen
    for n in (0, 1, 2):
        for condition in s.test_subgroups[f"combo_seen{n}"]:
            assert sum(g in seen for g in condition_genes(condition)) == n
    both_seen = [c for c in DOUBLES if all(g in seen for g in condition_genes(c))]
    in_training = [c for c in s.train + s.val if len(condition_genes(c)) == 2]
    assert set(in_training) <= set(both_seen)
    assert len(in_training) == int(len(both_seen) * 0.75)  # combo_seen2_train_frac of them train
    assert len(s.test_subgroups["combo_seen2"]) == len(both_seen) - len(in_training)


def test_split_validation_subgroups_by_genes_left_in_training():
    s = split()
    train_genes = single_genes(s.train)
    for condition in s.val_subgroups["unseen_single"]:
        assert condition_genes(condition)[0] not in train_genes
    for n in (0, 1, 2):
        for condition in s.val_subgroups[f"combo_seen{n}"]:
            assert sum(g in train_genes for g in condition_genes(condition)) == n
    assert all(
        g in train_genes for c in s.train for g in condition_genes(c)
    )  # training doubles are seen2


def test_split_is_deterministic_for_a_seed_and_ignores_order_and_repeats():
    assert split() == split(list(reversed(CONDITIONS)) + SINGLES[:3])
    assert split(seed=2) != split(seed=1)
    assert split(seed=2) == split(seed=2)


# ---- loading: bad inputs -------------------------------------------------------------------------

PARAMS = dataset_params(expression="log_normalized")


def write(tmp_path, X, labels, var_names=None, **columns):
    path = tmp_path / "data.h5ad"
    obs = pd.DataFrame(
        {"perturbation": labels, **columns}, index=[f"c{i}" for i in range(len(labels))]
    )
    var = pd.DataFrame(index=var_names or [f"g{i}" for i in range(X.shape[1])])
    ad.AnnData(X=X, obs=obs, var=var).write_h5ad(path)
    return path


LABELS = ["control", "control", "A", "A+B"]


def test_truncated_h5ad_is_refused(tmp_path):
    whole = DEMO_H5AD.read_bytes()
    path = tmp_path / "truncated.h5ad"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(
        DatasetError, match="cannot be read as .h5ad.*truncated.*Fix: download it again"
    ) as error:
        load_dataset(path, DEMO_DATASET_PARAMS)
    assert str(path) in str(error.value)


def test_nan_expression_is_refused(tmp_path):
    X = np.ones((4, 3), dtype=np.float32)
    X[2, 1] = np.nan
    with pytest.raises(DatasetError, match="NaN or infinite"):
        load_dataset(write(tmp_path, X, LABELS), PARAMS)


def test_negative_values_in_a_sparse_matrix_are_refused(tmp_path):
    X = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 2], [-0.5, 0, 0], [0, 0, 1]], dtype=np.float32))
    with pytest.raises(DatasetError, match="negative values.*Fix: give log-normalised"):
        load_dataset(write(tmp_path, X, LABELS), PARAMS)


@pytest.mark.filterwarnings("ignore:Variable names are not unique")
def test_duplicate_gene_names_are_refused(tmp_path):
    path = write(tmp_path, np.ones((4, 3), dtype=np.float32), LABELS, var_names=["g0", "g1", "g0"])
    with pytest.raises(
        DatasetError,
        match=r"1 duplicate gene name\(s\) in var_names, e.g. g0\. Fix: make them unique",
    ):
        load_dataset(path, PARAMS)


def test_filter_on_a_missing_column_or_a_value_no_cell_has(tmp_path):
    path = write(tmp_path, np.ones((4, 3), dtype=np.float32), LABELS, dataset=["a", "a", "b", "b"])
    with pytest.raises(
        DatasetError,
        match=r"no column 'batch' \(config 'dataset.filter.batch'\).*Columns present: perturbation, dataset",
    ):
        load_dataset(path, {**PARAMS, "filter": {"batch": "x"}})
    with pytest.raises(DatasetError, match="no cell has obs\\['dataset'\\] == 'zzz'"):
        load_dataset(path, {**PARAMS, "filter": {"dataset": "zzz"}})
    # A filter that leaves no control cells is the no-control error, naming the most common labels.
    with pytest.raises(DatasetError, match="no control cells.*Most common values: A"):
        load_dataset(path, {**PARAMS, "filter": {"dataset": "b"}})


@pytest.mark.parametrize("blank", ["", "  ", "+", None])
def test_cells_without_a_label_are_refused_not_taken_for_controls(tmp_path, blank):
    labels = pd.Categorical(["control", "control", "A", blank, "A+B"])
    path = write(tmp_path, np.ones((5, 3), dtype=np.float32), labels)
    with pytest.raises(
        DatasetError, match=r"1 cell\(s\) have an empty or missing obs\['perturbation'\].*Fix"
    ):
        load_dataset(path, PARAMS)


def test_missing_column_lists_the_columns_present(tmp_path):
    path = tmp_path / "data.h5ad"
    obs = pd.DataFrame({"guide": LABELS}, index=[f"c{i}" for i in range(4)])
    ad.AnnData(X=np.ones((4, 3), dtype=np.float32), obs=obs).write_h5ad(path)
    with pytest.raises(
        DatasetError, match=r"no column 'perturbation'.*Columns present: guide.*Fix"
    ) as error:
        load_dataset(path, PARAMS)
    assert str(path) in str(error.value)


def test_no_control_cells(tmp_path):
    path = write(tmp_path, np.ones((4, 3), dtype=np.float32), ["A", "B", "A", "A+B"])
    with pytest.raises(DatasetError, match="no control cells.*control_values"):
        load_dataset(path, PARAMS)


def test_controls_under_a_label_config_does_not_name_stop_with_the_counts_and_the_fix(tmp_path):
    """Half the demo's controls relabelled 'non-targeting' while config says 'control' (they became the
    perturbation 'non-targeting+ctrl', and the genes stage then blamed the symbol)."""
    adata = ad.read_h5ad(DEMO_H5AD)
    adata = adata[adata.obs["dataset"] == "norman19"].copy()
    labels = adata.obs["perturbation"].astype(str).to_numpy()
    controls = np.flatnonzero(labels == "control")
    labels[controls[: len(controls) // 2]] = "non-targeting"
    adata.obs["perturbation"] = labels
    adata.write_h5ad(tmp_path / "relabelled.h5ad")
    half = len(controls) // 2
    with pytest.raises(DatasetError) as error:
        load_dataset(tmp_path / "relabelled.h5ad", DEMO_DATASET_PARAMS)
    message = str(error.value)
    assert message.startswith(
        f"{tmp_path / 'relabelled.h5ad'}: {half} cell(s) of obs['perturbation']"
    )
    assert f"'dataset.control_values' ['control'] ({len(controls) - half} cells)" in message
    assert f"'non-targeting' ({half} cells)" in message
    assert (
        "Fix: name every control label, e.g. dataset.control_values: [control, non-targeting]"
        in message
    )


@pytest.mark.parametrize(
    "name, control",
    [
        ("non-targeting", True), ("NT", True), ("NTC_3", True), ("CTRL00320", True),
        ("Safe_Targeting", True), ("negative control", True), ("INTERGENIC", True),
        ("NT5C2", False), ("NT5E", False), ("NTRK1", False), ("KLF1", False), ("SET", False),
    ],
)  # fmt: skip
def test_control_labels_in_the_spellings_screens_use_and_no_gene_symbol(name, control):
    assert looks_like_control(name) is control


def test_a_control_label_inside_a_pair_is_caught_and_named_controls_pass(tmp_path):
    path = write(
        tmp_path, np.ones((5, 3), dtype=np.float32), ["ctrl", "ctrl", "A", "A+NT", "A+ctrl"]
    )
    with pytest.raises(DatasetError, match=r"'A\+NT' \(1 cells\)"):
        load_dataset(path, dataset_params(expression="log_normalized", control_values=["ctrl"]))
    assert (
        load_dataset(
            path, dataset_params(expression="log_normalized", control_values=["ctrl", "NT"])
        ).n_obs
        == 5
    )


def test_raw_counts_declared_as_log_are_refused_and_counts_mode_normalises(tmp_path):
    counts = sp.csr_matrix(np.random.default_rng(0).poisson(20, size=(4, 3)).astype(np.float32) * 3)
    path = write(tmp_path, counts, LABELS)
    with pytest.raises(DatasetError, match="looks like raw counts.*dataset.expression: counts"):
        load_dataset(path, PARAMS)
    adata = load_dataset(path, {**PARAMS, "expression": "counts"})
    assert "counts" in adata.layers and adata.X.max() < 15


def test_negative_values_are_refused(tmp_path):
    path = write(tmp_path, -np.ones((4, 3), dtype=np.float32), LABELS)
    with pytest.raises(DatasetError, match="negative values"):
        load_dataset(path, PARAMS)


def test_garbage_file_is_refused(tmp_path):
    path = tmp_path / "broken.h5ad"
    path.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DatasetError, match="cannot be read as .h5ad"):
        load_dataset(path, PARAMS)


def test_missing_file_names_the_config_key(tmp_path):
    with pytest.raises(DatasetError, match="dataset.path"):
        load_dataset(tmp_path / "absent.h5ad", PARAMS)


# ---- loading: good inputs -------------------------------------------------------------------------


def test_counts_are_normalised_to_the_median_total_then_log1p(tmp_path):
    counts = np.array(
        [[10, 30], [40, 40], [5, 15]], dtype=np.float32
    )  # totals 40, 80, 20: median 40
    adata = load_dataset(
        write(tmp_path, counts, ["control", "control", "A"]), {**PARAMS, "expression": "counts"}
    )
    expected = np.log1p(
        np.array([[10, 30], [20, 20], [10, 30]], dtype=np.float64)
    )  # rows scaled by 1, 1/2, 2
    np.testing.assert_allclose(adata.X, expected, rtol=1e-6)
    np.testing.assert_array_equal(adata.layers["counts"], counts)
    assert adata.obs[CONDITION_KEY].tolist() == ["ctrl", "ctrl", "A+ctrl"] and adata.obs[
        CONTROL_KEY
    ].tolist() == [True, True, False]


def test_sparse_input_stays_sparse_float32_and_small_integers_are_not_mistaken_for_counts(tmp_path):
    X = sp.csr_matrix(
        np.array([[0, 1, 0], [2, 0, 3], [0, 0, 1], [1, 1, 0]], dtype=np.float64)
    )  # integers, max 3
    adata = load_dataset(
        write(tmp_path, X, ["NT", "A_NT", "NT", "B_A"]),
        {**PARAMS, "control_values": ["NT"], "separator": "_"},
    )
    assert sp.isspmatrix_csr(adata.X) and adata.X.dtype == np.float32
    assert adata.obs[CONDITION_KEY].tolist() == ["ctrl", "A+ctrl", "ctrl", "B+A"]


def test_data_card_by_hand(tmp_path):
    X = np.array([[0, 1], [0, 2], [3, 0], [0, 0], [1, 1], [2, 2]], dtype=np.float32)
    adata = load_dataset(write(tmp_path, X, ["control", "control", "A", "A", "A", "A+B"]), PARAMS)
    s = simulation_split(adata.obs[CONDITION_KEY].unique().tolist(), 1, 0.75, 0.75)
    card = data_card(adata, "x.h5ad", PARAMS, s)
    assert (card["cells"], card["genes"], card["control_cells"], card["perturbations"]) == (
        6,
        2,
        2,
        2,
    )
    assert (card["singles"], card["doubles"], card["perturbed_genes"]) == (1, 1, 2)
    assert card["cells_per_perturbation"] == {"min": 1, "median": 2.0, "max": 3}
    assert card["perturbations_with_fewer_than_10_cells"] == ["A+B", "A+ctrl"]
    assert card["expression"]["max"] == 3.0 and card["expression"]["share_zero"] == pytest.approx(
        5 / 12
    )  # zeros: 1+1+1+2+0+0


def test_top_de_genes_finds_the_planted_changes(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.uniform(1.0, 1.2, size=(60, 6)).astype(np.float32)
    labels = ["control"] * 20 + ["A"] * 20 + ["B"] * 20
    X[20:40, 4] += 2.0  # A raises g4
    X[40:60, 1] -= 0.9  # B lowers g1: ranked by |score|, it still comes first
    adata = load_dataset(write(tmp_path, X, labels), PARAMS)
    de = top_de_genes(adata, 3)
    assert set(de) == {"A+ctrl", "B+ctrl"} and all(len(genes) == 3 for genes in de.values())
    assert de["A+ctrl"][0] == "g4" and de["B+ctrl"][0] == "g1"


# ---- the real demo file ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo():
    return load_dataset(DEMO_H5AD, DEMO_DATASET_PARAMS)


def test_demo_is_the_norman_part_only(demo):
    assert demo.n_obs == 3375 and demo.n_vars == 500 and int(demo.obs[CONTROL_KEY].sum()) == 100
    assert {"ctrl", "MAP3K21+ctrl", "KLF1+MAP2K6"} <= set(demo.obs[CONDITION_KEY])
    conditions = set(demo.obs[CONDITION_KEY]) - {"ctrl"}
    assert sum(len(condition_genes(c)) == 1 for c in conditions) == 18
    assert sum(len(condition_genes(c)) == 2 for c in conditions) == 15
    assert (demo.obs[CONDITION_KEY] == "ctrl").sum() == 100
    assert demo.X.dtype == np.float32 and 0 < demo.X.max() < 30


def test_demo_top_de_genes(demo):
    de = top_de_genes(demo, 20)
    assert set(de) == set(demo.obs[CONDITION_KEY]) - {"ctrl"}
    assert len(de) == 33 and all(len(genes) == 20 == len(set(genes)) for genes in de.values())
    assert all(set(genes) <= set(demo.var_names) for genes in de.values())
    assert (
        len({tuple(genes) for genes in de.values()}) > 25
    )  # each perturbation has its own DE genes

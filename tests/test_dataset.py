"""Loading and checking Perturb-seq data: the real demo file, and each kind of bad input."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from dygenept.conditions import CONDITION_KEY, CONTROL_KEY, canonical_condition
from dygenept.stages.dataset import DatasetError, load_dataset, top_de_genes

from conftest import DEMO_DATASET_PARAMS, DEMO_H5AD


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


@pytest.fixture(scope="module")
def demo():
    return load_dataset(DEMO_H5AD, DEMO_DATASET_PARAMS)


def test_demo_loads_canonical(demo):
    assert demo.n_obs == 3375 and demo.n_vars == 500
    assert int(demo.obs[CONTROL_KEY].sum()) == 100
    conditions = set(demo.obs[CONDITION_KEY])
    assert {"ctrl", "MAP3K21+ctrl", "KLF1+MAP2K6"} <= conditions and len(conditions) == 34


def test_top_de_genes(demo):
    de = top_de_genes(demo, 20)
    assert set(de) == set(demo.obs[CONDITION_KEY]) - {"ctrl"}
    assert all(len(genes) == 20 and set(genes) <= set(demo.var_names) for genes in de.values())


def write(tmp_path, X, labels, column="perturbation"):
    path = tmp_path / "data.h5ad"
    obs = pd.DataFrame({column: labels}, index=[f"c{i}" for i in range(len(labels))])
    ad.AnnData(
        X=X, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(X.shape[1])])
    ).write_h5ad(path)
    return path


PARAMS = {
    "perturbation_column": "perturbation",
    "control_values": ["control"],
    "separator": "+",
    "expression": "log_normalized",
}
LABELS = ["control", "control", "A", "A+B"]


def test_missing_column_lists_the_columns_present(tmp_path):
    path = write(tmp_path, np.ones((4, 3), dtype=np.float32), LABELS, column="guide")
    with pytest.raises(
        DatasetError, match=r"no column 'perturbation'.*Columns present: guide.*Fix"
    ) as error:
        load_dataset(path, PARAMS)
    assert str(path) in str(error.value)


def test_no_control_cells(tmp_path):
    path = write(tmp_path, np.ones((4, 3), dtype=np.float32), ["A", "B", "A", "A+B"])
    with pytest.raises(DatasetError, match="no control cells.*control_values"):
        load_dataset(path, PARAMS)


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

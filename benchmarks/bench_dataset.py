"""dataset: cells per second through load + checks, the GEARS split, and the top-20 DE genes."""

import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from _common import DEMO_DATASET_PARAMS, DEMO_H5AD, parse_args, report, timed

from dygenept.dataset import run

args = parse_args(__doc__)


def synthetic(path: Path, n_cells: int, n_genes: int, n_perts: int) -> None:
    """Log-normalised sparse expression with singles and doubles, fixed seed."""
    rng = np.random.default_rng(0)
    counts = sp.random(n_cells, n_genes, density=0.1, format="csr", random_state=0, data_rvs=lambda k: rng.poisson(3, k) + 1.0)
    X = counts.multiply(1e4 / np.maximum(counts.sum(axis=1), 1)).tocsr().log1p().astype(np.float32)
    genes = [f"G{i}" for i in range(n_perts)]
    labels = ["control"] * (n_cells // 10) + [
        genes[i % n_perts] if i % 3 else f"{genes[i % n_perts]}+{genes[(i * 7 + 1) % n_perts]}" for i in range(n_cells - n_cells // 10)
    ]
    obs = pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(n_cells)])
    ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)])).write_h5ad(path)


params = {**DEMO_DATASET_PARAMS, "split": {"seed": 1, "train_gene_set_size": 0.75, "combo_seen2_train_frac": 0.75}, "de_genes": 20}
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    outputs = {"h5ad": tmp / "o.h5ad", "split": tmp / "s.json", "de_genes": tmp / "d.json", "card": tmp / "c.json"}
    details, seconds = timed(run, {"h5ad": DEMO_H5AD}, outputs, params)
    report("dataset (demo)", details["cells"] / seconds, "cells/s", f"{details['cells']:,} cells × {details['genes']} genes, {details['perturbations']} perturbations")
    n_cells, n_genes, n_perts = (5_000, 500, 20) if args.quick else (40_000, 2_000, 100)
    synthetic(tmp / "big.h5ad", n_cells, n_genes, n_perts)
    big = {**params, "filter": {}}
    details, seconds = timed(run, {"h5ad": tmp / "big.h5ad"}, outputs, big)
    report("dataset (synthetic)", details["cells"] / seconds, "cells/s", f"{n_cells:,} cells × {n_genes:,} genes, {details['perturbations']} perturbations")

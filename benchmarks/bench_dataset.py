"""dataset: cells per second, wall time and peak RAM of the data stage (checks, gene harmonisation, GEARS split,
top-20 t-test DE genes, gzip h5ad) on the demo and on a Norman-sized synthetic AnnData (~91k cells × 5k genes).

The Norman-sized run goes through the stage's CLI in a child process, as Snakemake runs it, so the peak RSS
is the stage's own (the issue's bound: under 8 GB).
"""

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from dygenept.data.symbols import SymbolIndex
from dygenept.stages.dataset import run

from _common import (
    DEMO_DATASET_PARAMS,
    DEMO_H5AD,
    ORG_DB,
    ROOT,
    dataset_params,
    parse_args,
    report,
    require,
    timed,
)

args = parse_args(__doc__)
require(ORG_DB)


def synthetic(path: Path, n_cells: int, n_genes: int, n_targets: int, density: float) -> None:
    """Log-normalised sparse expression over real gene symbols; singles, doubles and 8% controls, fixed seed."""
    rng = np.random.default_rng(0)
    symbols = sorted(
        record.symbol
        for record in SymbolIndex.from_db(ORG_DB).records.values()
        if record.symbol.isalnum()
    )
    genes = list(rng.choice(symbols, n_genes, replace=False))
    targets = genes[:n_targets]
    nnz_per_row = int(n_genes * density)
    blocks = [
        np.sort(
            np.argsort(
                rng.random((min(5_000, n_cells - start), n_genes), dtype=np.float32), axis=1
            )[:, :nnz_per_row],
            axis=1,
        )
        for start in range(0, n_cells, 5_000)
    ]
    indices = np.concatenate(blocks).astype(np.int32)
    counts = rng.poisson(2.0, size=indices.size).astype(np.float32) + 1
    X = sp.csr_matrix(
        (counts, indices.ravel(), np.arange(0, indices.size + 1, nnz_per_row)),
        shape=(n_cells, n_genes),
    )
    X = sp.csr_matrix(X.multiply(1e4 / X.sum(axis=1)), dtype=np.float32).log1p()
    singles = [f"{gene}+ctrl" for gene in targets]
    pairs = {
        (targets[i % n_targets], targets[(i * 7 + 3) % n_targets])
        for i in range(int(n_targets * 1.25))
    }
    doubles = [f"{a}+{b}" for a, b in sorted(pairs) if a != b]
    labels = rng.choice(singles + doubles, n_cells)
    labels[: int(n_cells * 0.08)] = "ctrl"
    obs = pd.DataFrame({"condition": labels}, index=[f"c{i}" for i in range(n_cells)])
    ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)


def run_stage_in_child(h5ad: Path, out: Path, params: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of ``python -m dygenept dataset`` on ``h5ad``."""
    outputs = [f"--out={name}={out / name}" for name in ("h5ad", "split", "de_genes", "card")]
    command = [
        sys.executable,
        "-m",
        "dygenept",
        "dataset",
        f"--in=h5ad={h5ad}",
        f"--in=org_db={ORG_DB}",
        *outputs,
        "--params",
        json.dumps(params),
    ]
    start = time.perf_counter()
    subprocess.run(
        command,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "workflow"), "PATH": str(Path(sys.executable).parent)},
    )
    seconds = time.perf_counter() - start
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2


params = DEMO_DATASET_PARAMS
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    outputs = {
        "h5ad": tmp / "o.h5ad",
        "split": tmp / "s.json",
        "de_genes": tmp / "d.json",
        "card": tmp / "c.json",
    }
    details, seconds = timed(run, {"h5ad": DEMO_H5AD, "org_db": ORG_DB}, outputs, params)
    report(
        "dataset (demo)",
        details["cells"] / seconds,
        "cells/s",
        f"{details['cells']:,} cells × {details['genes']} genes, {details['perturbations']} perturbations",
    )

    n_cells, n_genes, n_targets, density = (
        (5_000, 500, 20, 0.2) if args.quick else (91_000, 5_045, 105, 0.2)
    )
    started = time.perf_counter()
    synthetic(tmp / "norman_sized.h5ad", n_cells, n_genes, n_targets, density)
    print(f"  (synthetic data written in {time.perf_counter() - started:.0f} s)")
    norman = dataset_params(
        perturbation_column="condition", control_values=["ctrl"], expression="log_normalized"
    )
    (tmp / "out").mkdir()
    seconds, peak_gb = run_stage_in_child(tmp / "norman_sized.h5ad", tmp / "out", norman)
    card = json.loads((tmp / "out" / "card").read_text())
    size = f"{n_cells:,} cells × {n_genes:,} genes, density {density}, {card['perturbations']} perturbations"
    report(
        "dataset (Norman-sized, child process)",
        n_cells / seconds,
        "cells/s",
        size,
        f"wall {seconds:.0f} s, peak RSS {peak_gb:.2f} GB (bound: 8 GB)",
    )

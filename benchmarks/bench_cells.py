"""cells: control cells embedded per second by exact PCA."""

import numpy as np

from dygenept.stages.cells import pca_embed

from _common import parse_args, report, timed

args = parse_args(__doc__)
n_cells, n_genes = (1_000, 500) if args.quick else (5_000, 2_000)
expression = np.log1p(
    np.random.default_rng(0).poisson(0.5, size=(n_cells, n_genes)).astype(np.float32)
)
(scores, components, _), seconds = timed(pca_embed, expression, 50, repeat=3)
report(
    "cells (pca)",
    n_cells / seconds,
    "cells/s",
    f"{n_cells:,} cells × {n_genes:,} genes → {scores.shape[1]} components",
)

"""What every cell encoder shares: its signature, the control cells' expression, a linear readout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np

from ..formats.cell_embedding import CellEmbedding

# (control cells, the config section `cells`, the stage's input files) → (embedding, details)
CellEncoder = Callable[[ad.AnnData, dict, dict[str, Path]], tuple[CellEmbedding, dict]]


def linear_readout(
    embeddings: np.ndarray, expression: np.ndarray, ridge: float
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression of expression on the embedding: (weight (genes, d), bias (genes,)).

    The model's decoder starts here for encoders without an exact inverse (scVI, scGPT), as it starts at
    the PCA inverse for ``pca``.
    """
    z = embeddings.astype(np.float64)
    x = expression.astype(np.float64)
    z_mean, x_mean = z.mean(axis=0), x.mean(axis=0)
    zc, xc = z - z_mean, x - x_mean
    weight = np.linalg.solve(zc.T @ zc + ridge * np.eye(z.shape[1]), zc.T @ xc)  # (d, genes)
    bias = x_mean - z_mean @ weight
    return weight.T.astype(np.float32), bias.astype(np.float32)

"""What every cell encoder shares: its signature, the control cells' expression, a linear readout."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import anndata as ad
import numpy as np

from ..formats.cell_embedding import CellEmbedding

S = TypeVar("S")


@dataclass(frozen=True)
class CellEncoder(Generic[S]):
    """A registered encoder: its settings from the validated ``cells`` section, and
    ``encode(control cells, settings, the stage's input files) -> (embedding, details)``."""

    settings: Callable[[Mapping[str, Any]], S]  # a ``<Encoder>Settings.from_params``
    encode: Callable[[ad.AnnData, S, dict[str, Path]], tuple[CellEmbedding, dict]]


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

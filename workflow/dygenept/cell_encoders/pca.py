"""``pca``: exact PCA of the control cells' log-normalised expression (the embedded default).

Its components and mean are the model's decoder initialisation (the PCA inverse).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np

from ..data.arrays import dense
from ..formats.cell_embedding import CellEmbedding
from ..settings import read_fields

log = logging.getLogger(__name__)


def pca_embed(
    expression: np.ndarray, n_components: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact PCA by SVD with a deterministic sign convention: (scores, components (d, genes), mean)."""
    n_components = min(n_components, expression.shape[0] - 1, expression.shape[1])
    mean = expression.mean(axis=0)
    centred = expression - mean
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    signs = np.sign(vt[np.arange(vt.shape[0]), np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1.0
    vt = vt * signs[:, None]
    u = u * signs[None, :]
    components = vt[:n_components]
    scores = u[:, :n_components] * s[:n_components]
    return scores.astype(np.float32), components.astype(np.float32), mean.astype(np.float32)


@dataclass(frozen=True)
class PcaSettings:
    n_components: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PcaSettings:
        """From the validated ``cells`` section."""
        return read_fields(cls, params["pca"])


def encode(
    controls: ad.AnnData, settings: PcaSettings, inputs: dict[str, Path]
) -> tuple[CellEmbedding, dict]:
    scores, components, mean = pca_embed(dense(controls.X), settings.n_components)
    log.info(
        "PCA of %d control cells × %d genes → %d components",
        controls.n_obs,
        controls.n_vars,
        scores.shape[1],
    )
    embedding = CellEmbedding(
        scores, controls.obs_names.astype(str).tolist(), "pca", components.T.copy(), mean
    )
    return embedding, {"n_components": int(scores.shape[1])}

"""The cells stage: a frozen cell-state embedding of every control cell.

Embedded default encoder ``pca``: PCA fitted on the control cells. It also gives the model a decoder
initialisation (components and mean). scGPT and scVI encoders slot in as further ``CELL_ENCODERS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np

from ..arrays import dense
from ..conditions import CONTROL_KEY
from ..errors import InputError
from ..formats.cell_embedding import CellEmbedding, save_cell_embedding

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


def pca_encoder(controls: ad.AnnData, params: dict) -> CellEmbedding:
    scores, components, mean = pca_embed(dense(controls.X), params["n_components"])
    log.info(
        "PCA of %d control cells × %d genes → %d components",
        controls.n_obs,
        controls.n_vars,
        scores.shape[1],
    )
    return CellEmbedding(
        scores, controls.obs_names.astype(str).tolist(), "pca", components.T.copy(), mean
    )


CELL_ENCODERS: dict[str, Callable[[ad.AnnData, dict], CellEmbedding]] = {"pca": pca_encoder}


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Embed every control cell with the configured cell encoder.

    Reads ``h5ad`` (the canonical data). Writes ``embeddings`` (``formats.cell_embedding``). Params: the
    ``cells`` config section: ``encoder`` (``pca``) and its settings (``n_components``).
    """
    adata = ad.read_h5ad(inputs["h5ad"])
    controls = adata[adata.obs[CONTROL_KEY].values]
    name = params["encoder"]
    if name not in CELL_ENCODERS:
        raise InputError(f"config 'cells.encoder' is '{name}'; known: {sorted(CELL_ENCODERS)}")
    embedding = CELL_ENCODERS[name](controls, params)
    save_cell_embedding(embedding, outputs["embeddings"])
    return {
        "encoder": name,
        "control_cells": len(embedding.cell_ids),
        "dim": int(embedding.embeddings.shape[1]),
    }

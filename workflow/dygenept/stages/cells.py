"""The cells stage: a frozen cell-state embedding of every control cell.

``cells.encoder`` picks one of ``cell_encoders.ENCODERS``: ``pca`` (the embedded default), ``scvi``
or ``scgpt``. All write the same artifact (``formats.cell_embedding``): the embeddings and a linear
decoder back to expression (the PCA inverse, or a ridge readout fitted on the control cells).
"""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad

from ..cell_encoders import ENCODERS
from ..data.conditions import CONTROL_KEY
from ..errors import InputError
from ..formats.cell_embedding import save_cell_embedding

log = logging.getLogger(__name__)


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Embed every control cell with the configured cell encoder.

    Reads ``h5ad`` (the canonical data) and, for ``scgpt``, ``scgpt_weights``, ``scgpt_vocab`` and
    ``scgpt_args`` (the checkpoint's best_model.pt, vocab.json, args.json). Writes ``embeddings``
    (``formats.cell_embedding``). Params: the ``cells`` config section: ``encoder``, ``readout_ridge``
    and the chosen encoder's settings (``pca``, ``scvi`` or ``scgpt``).
    """
    name = params["encoder"]
    if name not in ENCODERS:
        raise InputError(f"config 'cells.encoder' is '{name}'; known: {sorted(ENCODERS)}")
    encoder = ENCODERS[name]
    settings = encoder.settings(params)
    adata = ad.read_h5ad(inputs["h5ad"])
    controls = adata[adata.obs[CONTROL_KEY].values].copy()
    embedding, details = encoder.encode(controls, settings, inputs)
    save_cell_embedding(embedding, outputs["embeddings"])
    return {
        "encoder": name,
        "control_cells": len(embedding.cell_ids),
        "dim": int(embedding.embeddings.shape[1]),
        **details,
    }

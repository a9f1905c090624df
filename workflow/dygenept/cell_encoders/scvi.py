"""``scvi``: scVI (scvi-tools) trained on the control cells' raw counts; the latent means are the states.

scVI models counts (a negative binomial or zero-inflated one), so it needs ``layers['counts']``, which the
dataset stage keeps when the input has raw counts; log-normalised data alone are refused. It is fitted on
the control cells only, like ``pca``: the held-out perturbations' cells never shape the encoder.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import scipy.sparse as sp

from ..data.arrays import dense
from ..devices import resolve_device
from ..errors import InputError, needs_package
from ..formats.cell_embedding import CellEmbedding
from ..settings import read_fields
from .base import linear_readout

log = logging.getLogger(__name__)

COUNTS_LAYER = "counts"
BATCH_KEY = "batch"


def raw_counts(controls: ad.AnnData, source: str) -> sp.csr_matrix:
    """The control cells' counts, checked to be non-negative integers."""
    if COUNTS_LAYER not in controls.layers:
        raise InputError(
            f"{source}: cells.encoder scvi needs raw counts (layers['{COUNTS_LAYER}']), but this data set "
            "has only log-normalised expression (see 'expression' in the data card). Fix: give the raw-count "
            "file (config 'dataset.expression': auto or counts keeps them), or use cells.encoder pca."
        )
    counts = sp.csr_matrix(controls.layers[COUNTS_LAYER], dtype=np.float32)
    values = counts.data
    if values.size and (values.min() < 0 or not np.array_equal(values, np.round(values))):
        raise InputError(
            f"{source}: layers['{COUNTS_LAYER}'] holds non-integer or negative values, not raw counts. "
            "Fix: keep the raw UMI counts in that layer, or use cells.encoder pca."
        )
    return counts


@dataclass(frozen=True)
class ScviSettings:
    n_latent: int
    n_hidden: int
    n_layers: int
    gene_likelihood: str
    max_epochs: int
    batch_size: int
    use_batch: bool
    seed: int
    device: str
    readout_ridge: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ScviSettings:
        """From the validated ``cells`` section (``scvi``, ``readout_ridge``)."""
        return read_fields(cls, params["scvi"], readout_ridge=params["readout_ridge"])


def encode(
    controls: ad.AnnData, settings: ScviSettings, inputs: dict[str, Path]
) -> tuple[CellEmbedding, dict]:
    import torch

    with needs_package("scvi", "config 'cells.encoder: scvi'"):
        import scvi

    counts = raw_counts(controls, str(inputs["h5ad"]))
    device = resolve_device(settings.device, "cells.scvi.device")
    scvi.settings.seed = settings.seed
    data = ad.AnnData(X=counts, obs=controls.obs[[]].copy(), var=controls.var[[]].copy())
    batch_key = None
    if settings.use_batch and BATCH_KEY in controls.obs:
        data.obs[BATCH_KEY] = controls.obs[BATCH_KEY].astype(str).values
        batch_key = BATCH_KEY
    scvi.model.SCVI.setup_anndata(data, batch_key=batch_key)
    model = scvi.model.SCVI(
        data,
        n_latent=settings.n_latent,
        n_hidden=settings.n_hidden,
        n_layers=settings.n_layers,
        gene_likelihood=settings.gene_likelihood,
    )
    log.info(
        "training scVI on %d control cells × %d genes for %d epochs on %s",
        data.n_obs,
        data.n_vars,
        settings.max_epochs,
        device,
    )
    model.train(
        max_epochs=settings.max_epochs,
        batch_size=min(settings.batch_size, data.n_obs),
        accelerator="gpu" if device.startswith("cuda") else "cpu",
        devices=[torch.device(device).index or 0] if device.startswith("cuda") else 1,
        train_size=1.0,
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    latent = model.get_latent_representation(give_mean=True).astype(np.float32)
    final_elbo = float(model.history["elbo_train"].iloc[-1, 0])
    weight, bias = linear_readout(latent, dense(controls.X), settings.readout_ridge)
    embedding = CellEmbedding(latent, controls.obs_names.astype(str).tolist(), "scvi", weight, bias)
    return embedding, {
        "scvi_tools": scvi.__version__,
        "device": device,
        "epochs": settings.max_epochs,
        "final_elbo_train": final_elbo,
        "batch_key": batch_key,
    }

"""The facet-embedding stage: every non-NONE facet text → a frozen text encoder's vector.

Output: a safetensors file with ``embeddings`` (genes, K, D) float16 and ``mask`` (genes, K) uint8
(1 = the gene has that facet), and in its metadata the gene index and facet ids.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..encoders import TextEncoder
from ..formats.facet_tensor import FacetTensor, save_facet_tensor

log = logging.getLogger(__name__)


def assemble(table: pd.DataFrame, vectors: dict[str, np.ndarray], dim: int) -> FacetTensor:
    """Place each facet text's vector at (gene, facet); NONE facets stay zero with mask 0."""
    genes = table.drop_duplicates("entrez_id")[["entrez_id", "symbol"]]
    facet_ids = table.sort_values("facet_index").drop_duplicates("facet")["facet"].tolist()
    row = {entrez: i for i, entrez in enumerate(genes["entrez_id"])}
    embeddings = np.zeros((len(genes), len(facet_ids), dim), dtype=np.float32)
    mask = np.zeros((len(genes), len(facet_ids)), dtype=bool)
    for record in table.itertuples(index=False):
        if not record.is_none:
            embeddings[row[record.entrez_id], record.facet_index] = vectors[record.text]
            mask[row[record.entrez_id], record.facet_index] = True
    return FacetTensor(
        embeddings, mask, genes["entrez_id"].tolist(), genes["symbol"].tolist(), facet_ids
    )


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Embed every non-NONE facet text with the frozen text encoder.

    Reads ``facets`` (the facet table). Writes ``tensor`` (``formats.facet_tensor``). Params: the
    ``facet_embed`` config section: ``encoder`` (package or hub id + revision, pooling, batch size).
    """
    table = pd.read_parquet(inputs["facets"])
    encoder = TextEncoder.from_spec(params["encoder"])
    unique_texts = sorted(set(table.loc[~table["is_none"], "text"]))
    log.info(
        "encoding %d distinct facet texts with %s (D=%d)",
        len(unique_texts),
        encoder.model_dir,
        encoder.dim,
    )
    vectors = dict(zip(unique_texts, encoder.encode(unique_texts)))
    tensor = assemble(table, vectors, encoder.dim)
    model_id = params["encoder"].get("hub_id") or str(encoder.model_dir)
    save_facet_tensor(
        tensor, outputs["tensor"], {"model_id": model_id, "weights_sha256": encoder.weights_sha256}
    )
    return {
        "encoder_model_id": model_id,
        "encoder_revision": params["encoder"].get("revision"),
        "weights_sha256": encoder.weights_sha256,
        "model_dir": str(encoder.model_dir),
        "shape": list(tensor.embeddings.shape),
        "facets_present": int(tensor.mask.sum()),
    }

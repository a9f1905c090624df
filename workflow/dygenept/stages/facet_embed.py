"""The facet-embedding stage: every non-NONE facet text → a frozen text encoder's vector.

Output: a safetensors file with ``embeddings`` (genes, K, D) float16 and ``mask`` (genes, K) uint8
(1 = the gene has that facet), and in its metadata the gene index and facet ids. The vectors are written
batch by batch into one preallocated float16 tensor: 20,000 genes × 8 facets × 768 dimensions is 245 MB,
and no float32 copy of it ever exists. Each text's vector is cached (``keyed_store``) under the encoder,
its settings, the device and the stage's code (``text_encoders.vector_cache``): a gene list grown by one
gene encodes that gene's texts.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..formats.facet_tensor import FacetTensor, save_facet_tensor
from ..io.keyed_store import KeyedStore, context_digest, without_locations
from ..text_encoders import TextEncoder, TextEncoderSettings
from ..text_encoders.vector_cache import VectorSource, cached_vectors

log = logging.getLogger(__name__)


def facet_positions(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str], dict[str, list]]:
    """Genes (entrez_id, symbol) in table order, facet ids by index, and each text's (gene, facet) cells."""
    genes = table.drop_duplicates("entrez_id")[["entrez_id", "symbol"]]
    facet_ids = table.sort_values("facet_index").drop_duplicates("facet")["facet"].tolist()
    row = {entrez: i for i, entrez in enumerate(genes["entrez_id"])}
    present = table.loc[~table["is_none"]]
    cells: dict[str, list[tuple[int, int]]] = {}
    for entrez, facet, text in zip(present["entrez_id"], present["facet_index"], present["text"]):
        cells.setdefault(text, []).append((row[entrez], int(facet)))
    return genes, facet_ids, cells


def embed_table(table: pd.DataFrame, vectors_of: VectorSource, dim: int) -> FacetTensor:
    """Take each distinct facet text's vector once and place it at every (gene, facet) that has it."""
    genes, facet_ids, cells = facet_positions(table)
    embeddings = np.zeros((len(genes), len(facet_ids), dim), dtype=np.float16)
    mask = np.zeros((len(genes), len(facet_ids)), dtype=bool)
    for texts, vectors in vectors_of(list(cells)):
        for text, vector in zip(texts, vectors):
            rows, columns = zip(*cells[text])
            embeddings[rows, columns] = vector
            mask[rows, columns] = True
    return FacetTensor(
        embeddings, mask, genes["entrez_id"].tolist(), genes["symbol"].tolist(), facet_ids
    )


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Embed every non-NONE facet text with the frozen text encoder.

    Reads ``facets`` (the facet table). Writes ``tensor`` (``formats.facet_tensor``). Params: the
    ``facet_embed`` config section: ``encoder`` (path, package or hub id + revision, sha256, pooling,
    normalize, max_length), ``device``, ``precision``, ``tokens_per_batch``, ``cache_dir`` (the
    per-text vector cache); ``code_sha256`` (the stage's code, set by the CLI).
    """
    table = pd.read_parquet(inputs["facets"])
    settings = TextEncoderSettings.from_params(params)
    encoder = TextEncoder.from_settings(settings)
    log.info("encoder %s (D=%d)", encoder.files.source, encoder.dim)
    context = context_digest(
        {
            "params": without_locations(params),
            "weights_sha256": encoder.files.sha256,
            "device": encoder.device,
            "precision": encoder.precision,
        }
    )
    with KeyedStore(Path(params["cache_dir"]) / "facet_embed.sqlite") as store:
        tensor = embed_table(table, cached_vectors(encoder, store, context), encoder.dim)
    model = settings.encoder
    model_id = model.hub_id or model.package or model.path
    save_facet_tensor(
        tensor, outputs["tensor"], {"model_id": model_id, "weights_sha256": encoder.files.sha256}
    )
    report = encoder.report
    if report.truncated:
        log.warning(
            "%d of %d distinct facet texts were cut to %d tokens",
            report.truncated,
            report.texts,
            encoder.max_length,
        )
    return {
        "encoder_model_id": model_id,
        "encoder_revision": model.revision,
        **encoder.describe(),
        "model_dir": str(encoder.files.directory),
        "shape": list(tensor.embeddings.shape),
        "facets_present": int(tensor.mask.sum()),
        "distinct_texts": int(table.loc[~table["is_none"], "text"].nunique()),
        "texts_encoded": report.texts,
        "tokens": report.tokens,
        "padded_tokens": report.padded_tokens,
        "truncated_texts": report.truncated,
        "encode_seconds": round(report.seconds, 3),
    }

"""The facet tensor from the facet table: each distinct facet text's vector once (the per-text cache, then
the encoder), placed at every (gene, facet) that has it; and the same tensor gathered from shards.

A text's vector depends on the text alone (``batching``: each is padded to a length of its own), so the
tensor of a shard of genes holds the same vectors as the whole run's rows for them: gathered in the facet
table's gene order, the shards give the whole run's tensor byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..formats.facet_tensor import FacetTensor
from ..io.keyed_store import KeyedStore
from .encoder import TextEncoder
from .vector_cache import VectorSource, cached_vectors

STORE = "facet_embed.sqlite"  # in config 'facet_embed.cache_dir'


def facet_positions(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str], dict[str, list]]:
    """Genes (entrez_id, symbol) in table order, facet ids by index, and each text's (gene, facet) cells."""
    genes = table.drop_duplicates("entrez_id")[["entrez_id", "symbol"]]
    facet_ids = table.sort_values("facet_index").drop_duplicates("facet")["facet"].tolist()
    row = {entrez: i for i, entrez in enumerate(genes["entrez_id"])}
    present = table.loc[~table["is_none"].astype(bool)]
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


def embed_cached(
    table: pd.DataFrame, encoder: TextEncoder, cache_dir: Path, context: str
) -> FacetTensor:
    """``embed_table`` through the per-text vector cache in ``cache_dir`` (``vector_cache``)."""
    with KeyedStore(Path(cache_dir) / STORE) as store:
        return embed_table(table, cached_vectors(encoder, store, context), encoder.dim)


def encoder_identity(encoder: TextEncoder) -> dict[str, str]:
    """What a facet tensor's metadata says of its encoder."""
    return {"model_id": encoder.files.model_id, "weights_sha256": encoder.files.sha256}


def encoding_details(encoder: TextEncoder, tensor: FacetTensor, table: pd.DataFrame) -> dict:
    """What the provenance record keeps of one encoding: the encoder and what it did."""
    report = encoder.report
    return {
        **encoder.describe(),
        "model_dir": str(encoder.files.directory),
        "shape": list(tensor.embeddings.shape),
        "facets_present": int(tensor.mask.sum()),
        "distinct_texts": int(table.loc[~table["is_none"].astype(bool), "text"].nunique()),
        "texts_encoded": report.texts,
        "tokens": report.tokens,
        "padded_tokens": report.padded_tokens,
        "truncated_texts": report.truncated,
        "encode_seconds": round(report.seconds, 3),
    }


def gather_tensors(parts: list[FacetTensor], table: pd.DataFrame) -> FacetTensor:
    """The shards' tensors as one, in the facet table's gene order (every gene in exactly one shard)."""
    parts = [part for part in parts if part.entrez_ids]
    order = table.drop_duplicates("entrez_id")["entrez_id"].tolist()
    where = {
        entrez: (number, row)
        for number, part in enumerate(parts)
        for row, entrez in enumerate(part.entrez_ids)
    }
    missing = [entrez for entrez in order if entrez not in where]
    facet_ids = parts[0].facet_ids if parts else []
    if missing or len(where) != len(order) or any(p.facet_ids != facet_ids for p in parts):
        raise InputError(
            f"the shards hold {len(where)} genes, the facet table {len(order)} (missing e.g. "
            f"{missing[:5]}), or name other facets: shards of another facet table. Fix: rerun them "
            "(snakemake --forcerun facet_embed_shard)."
        )
    rows = [where[entrez] for entrez in order]
    dim = parts[0].embeddings.shape[2] if parts else 0
    embeddings = np.zeros((len(order), len(facet_ids), dim), dtype=np.float16)
    mask = np.zeros((len(order), len(facet_ids)), dtype=bool)
    for i, (number, row) in enumerate(rows):
        embeddings[i] = parts[number].embeddings[row]
        mask[i] = parts[number].mask[row]
    symbols = [parts[number].symbols[row] for number, row in rows]
    return FacetTensor(embeddings, mask, order, symbols, facet_ids)

"""The facet tensor (``facet_embed/facet_tensor.safetensors``).

``embeddings`` (genes, K, D) float16 and ``mask`` (genes, K) uint8 (1 = the gene has that facet); the
metadata holds the gene index (Entrez ids, symbols), the facet ids and the encoder's identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .array_file import read_arrays, read_metadata, write_arrays


@dataclass(frozen=True)
class FacetTensor:
    embeddings: np.ndarray  # (genes, K, D); float16 as written, float32 as loaded
    mask: np.ndarray  # (genes, K) bool
    entrez_ids: list[str]
    symbols: list[str]
    facet_ids: list[str]

    def row_of(self) -> dict[str, int]:
        return {entrez: i for i, entrez in enumerate(self.entrez_ids)}


def with_genes_of(base: FacetTensor, other: FacetTensor) -> FacetTensor:
    """``base`` and, after its rows, the genes only ``other`` has: a gene in both keeps ``base``'s row."""
    if not other.entrez_ids:  # an empty gene set (a screen of the model's genes alone)
        return base
    if base.facet_ids != other.facet_ids:
        raise ValueError(f"facet ids differ: {base.facet_ids} and {other.facet_ids}")
    known = set(base.entrez_ids)
    extra = [row for row, entrez in enumerate(other.entrez_ids) if entrez not in known]
    return FacetTensor(
        np.concatenate([base.embeddings, other.embeddings[extra]]),
        np.concatenate([base.mask, other.mask[extra]]),
        base.entrez_ids + [other.entrez_ids[row] for row in extra],
        base.symbols + [other.symbols[row] for row in extra],
        base.facet_ids,
    )


def save_facet_tensor(tensor: FacetTensor, path: str | Path, metadata: dict[str, str]) -> None:
    write_arrays(
        path,
        {
            "embeddings": np.asarray(tensor.embeddings, dtype=np.float16),
            "mask": tensor.mask.astype(np.uint8),
        },
        {
            **metadata,
            "entrez_ids": tensor.entrez_ids,
            "symbols": tensor.symbols,
            "facet_ids": tensor.facet_ids,
        },
    )


def facet_tensor_metadata(path: str | Path) -> dict[str, str]:
    """What a facet tensor's metadata says besides its index (its encoder's identity)."""
    metadata = read_metadata(path)
    return {
        key: value
        for key, value in metadata.items()
        if key not in ("entrez_ids", "symbols", "facet_ids")
    }


def load_facet_tensor(path: str | Path) -> FacetTensor:
    arrays, metadata = read_arrays(path)
    return FacetTensor(
        arrays["embeddings"].astype(np.float32),
        arrays["mask"].astype(bool),
        metadata["entrez_ids"],
        metadata["symbols"],
        metadata["facet_ids"],
    )

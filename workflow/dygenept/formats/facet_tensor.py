"""The facet tensor (``facet_embed/facet_tensor.safetensors``).

``embeddings`` (genes, K, D) float16 and ``mask`` (genes, K) uint8 (1 = the gene has that facet); the
metadata holds the gene index (Entrez ids, symbols), the facet ids and the encoder's identity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, safe_open, save_file

from ..artifacts import atomic_path


@dataclass(frozen=True)
class FacetTensor:
    embeddings: np.ndarray  # (genes, K, D); float16 as written, float32 as loaded
    mask: np.ndarray  # (genes, K) bool
    entrez_ids: list[str]
    symbols: list[str]
    facet_ids: list[str]

    def row_of(self) -> dict[str, int]:
        return {entrez: i for i, entrez in enumerate(self.entrez_ids)}


def save_facet_tensor(tensor: FacetTensor, path: str | Path, metadata: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        save_file(
            {
                "embeddings": np.asarray(tensor.embeddings, dtype=np.float16),
                "mask": tensor.mask.astype(np.uint8),
            },
            str(tmp),
            metadata={
                **metadata,
                "entrez_ids": json.dumps(tensor.entrez_ids),
                "symbols": json.dumps(tensor.symbols),
                "facet_ids": json.dumps(tensor.facet_ids),
            },
        )


def load_facet_tensor(path: str | Path) -> FacetTensor:
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata()
    arrays = load_file(str(path))
    return FacetTensor(
        arrays["embeddings"].astype(np.float32),
        arrays["mask"].astype(bool),
        json.loads(metadata["entrez_ids"]),
        json.loads(metadata["symbols"]),
        json.loads(metadata["facet_ids"]),
    )

"""Cell-state embeddings of the control cells (``cells/control_embeddings.safetensors``).

``embeddings`` (control cells, d) and, where the encoder has one, a linear decoder back to expression
(``decoder_weight`` (genes, d), ``decoder_bias`` (genes,)); the metadata holds the cell ids and the encoder.
Every cell encoder writes this one format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .array_file import read_arrays, write_arrays


@dataclass(frozen=True)
class CellEmbedding:
    embeddings: np.ndarray  # (control cells, d)
    cell_ids: list[str]
    encoder: str
    decoder_weight: np.ndarray | None = None  # (genes, d): latent → expression
    decoder_bias: np.ndarray | None = None  # (genes,)


def save_cell_embedding(embedding: CellEmbedding, path: str | Path) -> None:
    tensors = {"embeddings": embedding.embeddings}
    if embedding.decoder_weight is not None:
        tensors["decoder_weight"] = embedding.decoder_weight
        tensors["decoder_bias"] = embedding.decoder_bias
    write_arrays(path, tensors, {"cell_ids": embedding.cell_ids, "encoder": embedding.encoder})


def load_cell_embedding(path: str | Path) -> CellEmbedding:
    arrays, metadata = read_arrays(path)
    return CellEmbedding(
        arrays["embeddings"],
        metadata["cell_ids"],
        metadata["encoder"],
        arrays.get("decoder_weight"),
        arrays.get("decoder_bias"),
    )

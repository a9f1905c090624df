"""Each facet text's vector, a key scheme over the one store (``io.keyed_store``).

The key is ``item_key(context, text)``, the context a digest of the encoder, its settings, the device and
the stage's code; the value is the vector's float16 bytes. A stored vector is handed back only with
``dim`` finite values, and a vector the encoder makes is stored only when finite: a cache never feeds a
NaN or an infinity into the facet tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import numpy as np

from ..io.keyed_store import KeyedStore, item_key
from .encoder import TextEncoder
from .model_dir import EncoderError

VectorSource = Callable[[list[str]], Iterator[tuple[list[str], np.ndarray]]]


def decode_vector(value: bytes, dim: int) -> np.ndarray:
    """A stored float16 vector, refused (``ValueError``) unless it has ``dim`` finite values."""
    vector = np.frombuffer(value, dtype=np.float16)
    if vector.shape != (dim,) or not np.isfinite(vector).all():
        raise ValueError(f"not a vector of {dim} finite float16 values")
    return vector


def finite_float16(texts: list[str], vectors: np.ndarray) -> np.ndarray:
    """The encoder's vectors in float16, or ``EncoderError`` naming a text whose vector is not finite."""
    with np.errstate(over="ignore"):  # an overflow becomes an infinity, named below
        vectors = vectors.astype(np.float16)
    bad = [text for text, vector in zip(texts, vectors) if not np.isfinite(vector).all()]
    if bad:
        raise EncoderError(
            f"facet_embed.encoder: non-finite float16 values in the vectors of {len(bad)} texts, "
            f"e.g. {bad[0][:80]!r}. Fix: set facet_embed.encoder.normalize to true, or "
            "facet_embed.precision to fp32."
        )
    return vectors


def cached_vectors(encoder: TextEncoder, store: KeyedStore, context: str) -> VectorSource:
    """A source of float16 vectors: the cache's first, then the encoder's, each batch committed."""

    def vectors_of(texts: list[str]) -> Iterator[tuple[list[str], np.ndarray]]:
        keys = {text: item_key(context, text) for text in texts}
        stored = store.get_many(keys.values(), partial(decode_vector, dim=encoder.dim))
        hits = [text for text in texts if keys[text] in stored]
        if hits:
            yield hits, np.stack([stored[keys[text]] for text in hits])
        missing = [text for text in texts if keys[text] not in stored]
        for batch, vectors in encoder.encode_unique(missing):
            vectors = finite_float16(batch, vectors)
            store.put_many({keys[text]: vector.tobytes() for text, vector in zip(batch, vectors)})
            yield batch, vectors

    return vectors_of

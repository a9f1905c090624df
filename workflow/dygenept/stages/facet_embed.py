"""The facet-embedding stage: every non-NONE facet text → a frozen text encoder's vector.

Output: a safetensors file with ``embeddings`` (genes, K, D) float16 and ``mask`` (genes, K) uint8
(1 = the gene has that facet), and in its metadata the gene index and facet ids. The vectors are written
batch by batch into one preallocated float16 tensor: 20,000 genes × 10 facets × 768 dimensions is
307 MB, and no float32 copy of it ever exists. Each text's vector is cached (``keyed_store``) under the
encoder, its settings, the device and the stage's code (``text_encoders.vector_cache``): a gene list
grown by one gene encodes that gene's texts. With config ``shards`` > 1, rule facet_embed_shard embeds
each shard of genes and this stage gathers their tensors (``text_encoders.facet_embedding``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..data.shards import part_inputs
from ..errors import InputError
from ..formats.facet_tensor import facet_tensor_metadata, load_facet_tensor, save_facet_tensor
from ..text_encoders import TextEncoder, TextEncoderSettings
from ..text_encoders.facet_embedding import (
    embed_cached,
    encoder_identity,
    encoding_details,
    gather_tensors,
)
from ..text_encoders.vector_cache import vector_context

log = logging.getLogger(__name__)


def gather(parts: list[Path], table: pd.DataFrame, output: Path) -> dict:
    """The shards' tensors as one (every shard embedded with one encoder), in the table's gene order."""
    identities = [facet_tensor_metadata(path) for path in parts]
    if any(identity != identities[0] for identity in identities):
        raise InputError(
            f"the shards were embedded by different encoders ({identities}). Fix: rerun them "
            "(snakemake --forcerun facet_embed_shard)."
        )
    tensor = gather_tensors([load_facet_tensor(path) for path in parts], table)
    save_facet_tensor(tensor, output, identities[0])
    return {**identities[0], "shards": len(parts), "shape": list(tensor.embeddings.shape)}


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Embed every non-NONE facet text with the frozen text encoder, or gather the shards that did.

    Reads ``facets`` (the facet table) and, for a Hub encoder, ``encoder_model`` (the manifest rule
    fetch_models wrote); with config ``shards`` > 1, the shards' tensors ``part_<i>`` instead of an
    encoder. Writes ``tensor`` (``formats.facet_tensor``). Params: the ``facet_embed`` config section:
    ``encoder`` (path, package or hub id + revision, sha256, pooling, normalize, max_length),
    ``device``, ``precision``, ``tokens_per_batch``, ``cache_dir`` (the per-text vector cache);
    ``code_sha256`` (the stage's code, set by the CLI).
    """
    table = pd.read_parquet(inputs["facets"])
    parts = part_inputs(inputs)
    if parts:
        return gather(parts, table, outputs["tensor"])
    encoder = TextEncoder.from_settings(
        TextEncoderSettings.from_params(params), inputs.get("encoder_model")
    )
    log.info("encoder %s (D=%d)", encoder.files.source, encoder.dim)
    context = vector_context(params, encoder)
    tensor = embed_cached(table, encoder, Path(params["cache_dir"]), context)
    save_facet_tensor(tensor, outputs["tensor"], encoder_identity(encoder))
    report = encoder.report
    if report.truncated:
        log.warning(
            "%d of %d distinct facet texts were cut to %d tokens",
            report.truncated,
            report.texts,
            encoder.max_length,
        )
    return encoding_details(encoder, tensor, table)

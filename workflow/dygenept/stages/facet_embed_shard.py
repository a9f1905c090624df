"""The facet_embed_shard stage: one shard of the genes' facet texts → their rows of the facet tensor.

With config ``shards`` > 1 the facet_embed stage's work runs as this stage once per shard (one GPU each on
a cluster), and rule facet_embed gathers the shards. A gene's shard is a hash of its Entrez id
(``data.shards``), and a text's vector depends on the text alone, so the gathered tensor is the one an
unsharded run writes, byte for byte; the per-text cache is shared by the shards and by later runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..data.shards import in_shard
from ..formats.facet_tensor import save_facet_tensor
from ..text_encoders import TextEncoder, TextEncoderSettings
from ..text_encoders.facet_embedding import embed_cached, encoder_identity, encoding_details
from ..text_encoders.vector_cache import vector_context

log = logging.getLogger(__name__)


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Embed the facet texts of one shard of the genes.

    Reads ``facets`` (the facet table) and, for a Hub encoder, ``encoder_model``. Writes ``part`` (a
    facet tensor of the shard's genes, in the table's order). Params: the ``facet_embed`` config
    section, ``shard`` and ``shards``; ``code_sha256`` (set by the CLI).
    """
    table = pd.read_parquet(inputs["facets"])
    genes = in_shard(
        table["entrez_id"].drop_duplicates().tolist(), str, params["shard"], params["shards"]
    )
    part = table[table["entrez_id"].isin(genes)]
    log.info("shard %d of %d: %d genes", params["shard"], params["shards"], len(genes))
    encoder = TextEncoder.from_settings(
        TextEncoderSettings.from_params(params), inputs.get("encoder_model")
    )
    context = vector_context(
        {key: value for key, value in params.items() if key not in ("shard", "shards")}, encoder
    )
    tensor = embed_cached(part, encoder, Path(params["cache_dir"]), context)
    save_facet_tensor(tensor, outputs["part"], encoder_identity(encoder))
    return {**encoding_details(encoder, tensor, part), "shard": params["shard"]}

"""The facets_llm_shard stage: the chat model over one shard of the genes.

With config ``shards`` > 1 and an LLM facet backend, the LLM stage's model runs as this stage once per
shard of genes (``data.shards``; one job, and one model on its GPUs, per shard), and rule facets_llm
gathers the shards' answers and failures, in the genes' order, before its guard. Validated answers go to
the shared answer cache as each batch finishes, so a shard killed mid-way resumes where it stopped, and
a shard rerun alone asks the model only for what it lacks.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..data.shards import in_shard
from ..facet_backends.base import read_gene_texts
from ..facet_backends.llm.generation import ModelInputs, generate
from ..facet_backends.llm.runner import LlmSettings

log = logging.getLogger(__name__)


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Run the selected chat model over one shard of the genes.

    Reads what the LLM stage reads for its model (``gene_text``, ``facets_yaml``, the prompt files,
    ``chat_template`` and ``llm_model`` where given). Writes ``part`` (JSON: the engine, each gene's
    validated answer, the failures with their raw outputs, what the run cost). Params: the LLM stage's
    (``backend``, ``llm``, ``excluded_evidence``), ``shard`` and ``shards``.
    """
    genes = in_shard(
        read_gene_texts(inputs["gene_text"]),
        lambda gene: gene.entrez_id,
        params["shard"],
        params["shards"],
    )
    generated = generate(
        params["backend"],
        genes,
        ModelInputs.read(inputs),
        LlmSettings.from_params(params["llm"]),
    )
    generated.write(outputs["part"])
    result = generated.result
    log.info(
        "shard %d of %d: %d genes: %d from the cache, %d generated, %d failed",
        params["shard"],
        params["shards"],
        len(genes),
        result.from_cache,
        result.generated,
        len(result.failures),
    )
    return {
        "shard": params["shard"],
        "genes": len(genes),
        "from_cache": result.from_cache,
        "generated": result.generated,
        "failed": len(result.failures),
        "generated_tokens": generated.generated_tokens,
    }

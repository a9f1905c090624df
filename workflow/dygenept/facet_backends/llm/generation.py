"""An engine's run over a list of genes, as one job or as one shard of them, and the shards merged.

``generate`` loads the engine only when some gene needs it (a screen whose genes the model's set all has
runs none), runs it through the answer cache (``runner.run_genes``) and says what it did; ``merge`` puts
the shards' runs together in the genes' order, so the LLM stage's records are the ones one job writes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ...formats.facet_spec import FacetSpec, load_facet_specs
from ...io.artifacts import read_json, write_json_atomic
from ...pretrained.local import FetchedModel
from ..base import GeneText
from .cache import AnswerCache
from .engines import make_engine
from .prompts import PromptTemplates, answer_schema, load_templates
from .runner import LlmSettings, RunResult, run_genes


@dataclass(frozen=True)
class ModelInputs:
    """What the LLM stage reads to prompt the model: the facets, the prompt templates, a chat template
    (where config names one) and the fetched model (where rule fetch_models downloaded it)."""

    facets: list[FacetSpec]
    templates: PromptTemplates
    chat_template: str | None
    fetched: FetchedModel | None

    @classmethod
    def read(cls, inputs: Mapping[str, Path]) -> ModelInputs:
        chat_template = inputs.get("chat_template")
        model = inputs.get("llm_model")
        return cls(
            load_facet_specs(inputs["facets_yaml"]),
            load_templates(
                inputs["prompt_system"], inputs["prompt_user"], inputs["prompt_examples"]
            ),
            None if chat_template is None else Path(chat_template).read_text(encoding="utf-8"),
            None if model is None else FetchedModel.read(model),
        )


@dataclass
class Generated:
    """Answers and failures for some genes, and what the run cost (``engine``: None without a run)."""

    engine: dict | None
    result: RunResult
    generated_tokens: int
    seconds: float

    def write(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> Generated:
        stored = read_json(path)
        return cls(
            stored["engine"],
            RunResult(**stored["result"]),
            stored["generated_tokens"],
            stored["seconds"],
        )


def generate(
    backend: str, genes: Sequence[GeneText], model: ModelInputs, settings: LlmSettings
) -> Generated:
    """Every gene's answer from the cache or the engine; no engine at all for no genes."""
    if not genes:
        return Generated(None, RunResult(), 0, 0.0)
    schema = answer_schema(model.facets, settings.max_chars, settings.min_chars)
    engine = make_engine(backend, settings.engine, schema, model.chat_template, model.fetched)
    cache = AnswerCache(settings.cache_dir)
    started = time.perf_counter()
    try:
        result = run_genes(engine, genes, model.facets, model.templates, settings, schema, cache)
    finally:
        cache.close()
    result.answers = in_order(result.answers, genes, model.facets)
    return Generated(
        engine.identity(), result, engine.generated_tokens, time.perf_counter() - started
    )


def in_order(
    answers: dict[str, dict], genes: Sequence[GeneText], facets: Sequence[FacetSpec]
) -> dict[str, dict]:
    """The answers in the genes' order, each in the facets' order, whichever came from the cache or a
    shard's file: the guard lists what it flags in this order, so its report depends on neither."""
    return {
        gene.entrez_id: {facet.id: answers[gene.entrez_id][facet.id] for facet in facets}
        for gene in genes
        if gene.entrez_id in answers
    }


def merge(
    parts: Sequence[Generated], genes: Sequence[GeneText], facets: Sequence[FacetSpec]
) -> Generated:
    """The shards' runs as one run over ``genes``: answers by gene, failures in the genes' order."""
    engines = [part.engine for part in parts if part.engine is not None]
    if any(engine != engines[0] for engine in engines):
        raise ValueError(f"the shards ran different engines: {engines}")
    position = {gene.entrez_id: i for i, gene in enumerate(genes)}
    failures = [failure for part in parts for failure in part.result.failures]
    result = RunResult(
        in_order({e: a for part in parts for e, a in part.result.answers.items()}, genes, facets),
        sorted(failures, key=lambda failure: position[failure["entrez_id"]]),
        sum(part.result.from_cache for part in parts),
        sum(part.result.generated for part in parts),
        sum(part.result.attempts for part in parts),
    )
    return Generated(
        engines[0] if engines else None,
        result,
        sum(part.generated_tokens for part in parts),
        max((part.seconds for part in parts), default=0.0),
    )

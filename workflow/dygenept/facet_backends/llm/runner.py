"""Run an engine over every gene not yet cached: validate each answer, retry an invalid one with the
error shown to the model, cache what validates as each batch finishes, and record what never does.

A gene ends in exactly one of two places: ``RunResult.answers`` (validated, from the cache or from
this run) or ``RunResult.failures`` (with its reason and every raw output). Failures are never cached
and never turned into NONE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...formats.facet_spec import FacetSpec
from ...settings import read_fields
from ..base import GeneText
from ..guard import GroundingSettings
from .cache import AnswerCache, cache_key
from .engines import Engine, EngineError, EngineSettings
from .prompts import PromptTemplates, example_answer, render_messages, render_system, render_user
from .validation import InvalidAnswer, retry_message, shingles, validate_answer


@dataclass(frozen=True)
class LlmSettings:
    """Config ``facets.llm`` as the LLM stage reads it (the prompt files and chat template arrive as inputs)."""

    engine: EngineSettings
    max_chars: int
    min_chars: int
    system_role: bool
    max_attempts: int
    batch_size: int
    max_failure_fraction: float
    cache_dir: str
    grounding: GroundingSettings
    vote_with_go: bool

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LlmSettings:
        """From the validated ``facets.llm`` section."""
        return read_fields(
            cls,
            params,
            engine=EngineSettings.from_params(params),
            grounding=GroundingSettings.from_params(params["grounding"]),
        )


@dataclass
class RunResult:
    answers: dict[str, dict[str, str]] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    from_cache: int = 0
    generated: int = 0
    attempts: int = 0


# The reason of a gene the transport got no answer for (a server down mid-run), not an invalid answer.
NO_ANSWER = "no answer"


def prompt_shingles(templates: PromptTemplates, facets: Sequence[FacetSpec], max_chars: int) -> set:
    """Word 8-grams of the instructions and worked examples: what an answer must not restate."""
    parts = [render_system(templates, facets, max_chars)]
    for example in templates.examples:
        parts.append(render_user(templates, example.symbol, example.name, example.text))
        parts.extend(example_answer(example, facets).values())
    return set().union(*(shingles(part) for part in parts))


def unique_genes(genes: Sequence[GeneText]) -> list[GeneText]:
    seen, kept = set(), []
    for gene in genes:
        if gene.entrez_id not in seen:
            seen.add(gene.entrez_id)
            kept.append(gene)
    return kept


def run_genes(
    engine: Engine,
    genes: Sequence[GeneText],
    facets: Sequence[FacetSpec],
    templates: PromptTemplates,
    settings: LlmSettings,
    schema: dict,
    cache: AnswerCache,
) -> RunResult:
    facet_ids = [f.id for f in facets]
    genes = unique_genes(genes)
    sampling = settings.engine.sampling.to_dict()
    identity = engine.identity()
    forbidden = prompt_shingles(templates, facets, settings.max_chars)
    messages = {
        g.entrez_id: render_messages(templates, facets, g, settings.max_chars, settings.system_role)
        for g in genes
    }
    keys = {
        g.entrez_id: cache_key(identity, messages[g.entrez_id], sampling, schema) for g in genes
    }
    cached = cache.answers(keys.values())
    result = RunResult()
    pending = []
    for gene in genes:
        if keys[gene.entrez_id] in cached:
            result.answers[gene.entrez_id] = cached[keys[gene.entrez_id]]
            result.from_cache += 1
        else:
            pending.append(gene)
    for start in range(0, len(pending), settings.batch_size):
        batch = pending[start : start + settings.batch_size]
        conversations = {g.entrez_id: list(messages[g.entrez_id]) for g in batch}
        raws: dict[str, list[str]] = {g.entrez_id: [] for g in batch}
        reasons: dict[str, str] = {}
        done: list[tuple[str, str, dict[str, str], int]] = []
        live = list(batch)
        for attempt in range(1, settings.max_attempts + 1):
            if not live:
                break
            outputs = engine.complete([conversations[g.entrez_id] for g in live])
            result.attempts += len(live)
            still = []
            for gene, output in zip(live, outputs):
                if isinstance(output, EngineError):
                    # the transport already retried; another model turn would not help
                    reasons[gene.entrez_id] = f"{NO_ANSWER}: {output.reason}"
                    continue
                raws[gene.entrez_id].append(output)
                try:
                    answer = validate_answer(
                        output,
                        facet_ids,
                        settings.max_chars,
                        settings.min_chars,
                        forbidden,
                        gene.text,
                    )
                except InvalidAnswer as error:
                    reasons[gene.entrez_id] = f"invalid after {attempt} attempt(s): {error}"
                    conversations[gene.entrez_id] += [
                        {"role": "assistant", "content": output},
                        {"role": "user", "content": retry_message(error)},
                    ]
                    still.append(gene)
                    continue
                reasons.pop(gene.entrez_id, None)
                done.append((keys[gene.entrez_id], gene.entrez_id, answer, attempt))
            live = still
        cache.keep_answers({key: answer for key, _, answer, _ in done})
        for _, entrez, answer, _ in done:
            result.answers[entrez] = answer
            result.generated += 1
        for gene in batch:
            if gene.entrez_id in reasons:
                result.failures.append(
                    {
                        "entrez_id": gene.entrez_id,
                        "symbol": gene.symbol,
                        "reason": reasons[gene.entrez_id],
                        "raw_outputs": raws[gene.entrez_id],
                    }
                )
    return result

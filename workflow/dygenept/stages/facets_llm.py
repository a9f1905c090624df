"""The LLM facet stage: a chat model rewrites each gene's text into K facet paragraphs or NONE.

Every gene not in the cache goes to the engine config selects (``vllm``, ``openai`` or
``transformers``); each answer is validated, an invalid one retried with the error shown to the model,
and what validates is cached as each batch finishes. Genes that never validate go to the failures
file with their raw outputs; the stage fails when they exceed ``max_failure_fraction``. The guard
scores every facet's grounding in the gene's text and its agreement with GO.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ..errors import InputError
from ..facet_backends import guard
from ..facet_backends.base import read_gene_texts
from ..facet_backends.llm.cache import AnswerCache
from ..facet_backends.llm.engines import make_engine
from ..facet_backends.llm.prompts import answer_schema, load_templates
from ..facet_backends.llm.runner import NO_ANSWER, LlmSettings, run_genes
from ..formats.facet_spec import load_facet_specs
from ..io.artifacts import atomic_path, write_json_atomic

log = logging.getLogger(__name__)


def write_failures(path: str | Path, failures: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for failure in failures:
            handle.write(json.dumps(failure, ensure_ascii=False) + "\n")


# Failures named in the stage's error (all of them are in the failures file).
NAMED_FAILURES = 5


def check_failures(failures: list[dict], genes: int, limit: float, where: Path) -> None:
    if genes and len(failures) / genes > limit:
        named = "; ".join(
            f"{f['symbol']} ({f['entrez_id']}): {f['reason'][:160]}"
            for f in failures[:NAMED_FAILURES]
        )
        more = (
            f" and {len(failures) - NAMED_FAILURES} more" if len(failures) > NAMED_FAILURES else ""
        )
        if all(f["reason"].startswith(NO_ANSWER) for f in failures):
            fix = (
                "the engine gave no answer at all: check that the server (facets.llm.openai.base_url) "
                "or the model is up, then run again (validated genes are cached)"
            )
        else:
            fix = (
                "check the model and prompt, raise facets.llm.max_attempts, or raise "
                "max_failure_fraction"
            )
        raise InputError(
            f"{where}: {len(failures)} of {genes} genes got no valid facets (more than "
            f"max_failure_fraction {limit}): {named}{more}. Fix: {fix}."
        )


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Run the selected chat model over every gene's text.

    Reads ``gene_text``, ``facets_yaml``, ``prompt_system``, ``prompt_user``, ``prompt_examples``,
    ``org_db`` and ``go_db`` (for the guard's GO agreement), and ``chat_template`` where config names
    one (a Jinja file replacing the model's own). Writes ``records`` (JSON: facet ids, each
    gene's validated answer, the failed genes), ``failures`` (JSON lines: gene, reason, raw outputs)
    and ``guard`` (JSON: grounding, GO agreement, and what the vote with GO dropped where asked). Params: the ``facets`` config section
    (``backend``, ``llm``) and ``excluded_evidence``.
    """
    settings = LlmSettings.from_params(params["llm"])
    facets = load_facet_specs(inputs["facets_yaml"])
    templates = load_templates(
        inputs["prompt_system"], inputs["prompt_user"], inputs["prompt_examples"]
    )
    genes = read_gene_texts(inputs["gene_text"])
    schema = answer_schema(facets, settings.max_chars, settings.min_chars)
    chat_template = (
        Path(inputs["chat_template"]).read_text(encoding="utf-8")
        if "chat_template" in inputs
        else None
    )
    engine = make_engine(params["backend"], settings.engine, schema, chat_template)
    cache = AnswerCache(settings.cache_dir)
    started = time.perf_counter()
    try:
        result = run_genes(engine, genes, facets, templates, settings, schema, cache)
    finally:
        cache.close()
    seconds = time.perf_counter() - started
    write_failures(outputs["failures"], result.failures)
    # a copy that survives the failed job (Snakemake removes a failed job's outputs)
    write_failures(Path(settings.cache_dir) / "failures-latest.jsonl", result.failures)
    check_failures(
        result.failures,
        len(genes),
        settings.max_failure_fraction,
        Path(settings.cache_dir) / "failures-latest.jsonl",
    )
    gene_terms, facet_descendants = guard.go_sets(
        inputs["org_db"],
        inputs["go_db"],
        facets,
        [g.entrez_id for g in genes],
        params["excluded_evidence"],
    )
    grounding = settings.grounding
    report = guard.guard_report(
        result.answers, genes, gene_terms, facet_descendants, grounding.threshold
    )
    answers = result.answers
    if grounding.replace_ungrounded:
        answers = guard.drop_flagged(answers, report["grounding"]["flagged_facets"])
    report["grounding"]["replaced_by_none"] = grounding.replace_ungrounded
    if settings.vote_with_go:
        voted = guard.vote(answers, guard.go_roles(answers, gene_terms, facet_descendants))
        report["vote_with_go"] = {
            "facets_dropped": sum(
                answers[entrez][fid] != voted[entrez][fid]
                for entrez in answers
                for fid in answers[entrez]
            )
        }
        answers = voted
    write_json_atomic(outputs["guard"], report)
    write_json_atomic(
        outputs["records"],
        {
            "backend": params["backend"],
            "engine": engine.identity(),
            "facets": [f.id for f in facets],
            "answers": answers,
            "failed": [f["entrez_id"] for f in result.failures],
        },
    )
    log.info(
        "%d genes: %d from the cache, %d generated, %d failed, in %.1f s (%d tokens)",
        len(genes),
        result.from_cache,
        result.generated,
        len(result.failures),
        seconds,
        engine.generated_tokens,
    )
    return {
        "engine": engine.identity(),
        "genes": len(genes),
        "from_cache": result.from_cache,
        "generated": result.generated,
        "failed": len(result.failures),
        "model_calls": result.attempts,
        "generated_tokens": engine.generated_tokens,
        "flagged_facets": report["grounding"]["flagged"],
    }

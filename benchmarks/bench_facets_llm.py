"""facets_llm: genes per second through the openai engine against a chat server on loopback.

The server (tests/fake_llm_server.py) answers at once with a valid answer written from the gene's own
RefSeq sentences, so the figure is DyGenePT's own cost per gene (prompt rendering, cache keys, HTTP with
bounded concurrency, validation, SQLite cache, the grounding guard), the ceiling above a real model's.
A second run over the same genes reads every answer from the cache.
"""

import sys
import tempfile

import pandas as pd

from dygenept.config_defaults import merged, section_defaults
from dygenept.facet_backends import guard
from dygenept.facet_backends.base import NONE_MARKER, GeneText
from dygenept.facet_backends.llm.cache import AnswerCache
from dygenept.facet_backends.llm.engines import make_engine
from dygenept.facet_backends.llm.prompts import answer_schema, load_templates
from dygenept.facet_backends.llm.runner import LlmSettings, run_genes
from dygenept.formats.facet_spec import load_facet_specs

from _common import ROOT, parse_args, report, require, timed

sys.path.insert(0, str(ROOT / "tests"))
from fake_llm_server import FakeChatServer  # noqa: E402

SUMMARIES = (
    ROOT.parent / "shared" / "data" / "gene_text" / "refseq_gene_summaries_human_RefSeq220.tsv.gz"
)
PROMPTS = ROOT / "resources" / "prompts" / "facets"

args = parse_args(__doc__)
require(SUMMARIES)
facets = load_facet_specs(ROOT / "resources" / "facets.yaml")
ids = [f.id for f in facets]
templates = load_templates(PROMPTS / "system.md", PROMPTS / "user.md", PROMPTS / "examples.yaml")
table = pd.read_csv(SUMMARIES, sep="\t", dtype=str).dropna(subset=["summary"])
table = table.iloc[: 200 if args.quick else 2_000]
genes = [GeneText(r.entrez_id, r.symbol, r.full_name, r.summary) for r in table.itertuples()]


def answer(gene: GeneText) -> dict:
    result = dict.fromkeys(ids, NONE_MARKER)
    sentences = [s for s in guard.split_sentences(gene.text) if 20 <= len(s) <= 600]
    for fid, sentence in zip(ids, dict.fromkeys(sentences)):
        result[fid] = sentence
    return result


with (
    FakeChatServer({g.symbol: answer(g) for g in genes}) as server,
    tempfile.TemporaryDirectory() as cache_dir,
):
    overrides = {
        "model": "served-model",
        "cache_dir": cache_dir,
        "openai": {
            "base_url": server.base_url,
            "timeout_seconds": 30,
            "attempts": 3,
            "backoff_seconds": 0.1,
        },
    }
    settings = LlmSettings.from_params(merged(section_defaults("facets")["llm"], overrides))
    schema = answer_schema(facets, settings.max_chars, settings.min_chars)
    engine = make_engine("openai", settings.engine, schema)

    def one_run():
        cache = AnswerCache(cache_dir)
        try:
            return run_genes(engine, genes, facets, templates, settings, schema, cache)
        finally:
            cache.close()

    cold, cold_seconds = timed(one_run)
    warm, warm_seconds = timed(one_run)
    rows, guard_seconds = timed(guard.grounding, cold.answers, genes, settings.grounding.threshold)
assert len(cold.answers) + len(cold.failures) == len(genes) and warm.from_cache == len(cold.answers)
report(
    "facets_llm (openai, loopback server)",
    len(genes) / cold_seconds,
    "genes/s",
    f"{len(genes):,} RefSeq genes, 8 facets, concurrency 8; {len(cold.failures)} failed",
    f"cached rerun {len(genes) / warm_seconds:,.0f} genes/s; grounding guard "
    f"{len(rows) / guard_seconds:,.0f} facets/s",
)

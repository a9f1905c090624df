"""The LLM facet backends: prompt rendering, answer validation, the cache, request building (pure), the
``openai`` engine against a real chat-completions server on loopback with injected faults, the
``transformers`` engine with a tiny model built here, and the hallucination guard."""

from __future__ import annotations

import copy
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
import yaml
from cache_faults import LETTERS, garble_header, overwrite_inside_values
from fake_llm_server import FakeChatServer

from dygenept import cli
from dygenept.errors import InputError
from dygenept.facet_backends import backend_entry, guard
from dygenept.facet_backends.base import NONE_MARKER, FacetSet, GeneText, read_gene_texts
from dygenept.facet_backends.llm.cache import CACHE_FILE, AnswerCache, cache_key
from dygenept.facet_backends.llm.engines import (
    EngineSettings,
    SamplingSettings,
    VllmSettings,
    chat_request,
    make_engine,
    vllm_llm_kwargs,
    vllm_sampling_kwargs,
)
from dygenept.facet_backends.llm.prompts import (
    answer_json,
    answer_schema,
    example_answer,
    load_templates,
    render_messages,
    render_system,
)
from dygenept.facet_backends.llm.runner import LlmSettings, prompt_shingles, run_genes
from dygenept.facet_backends.llm.validation import InvalidAnswer, validate_answer
from dygenept.formats.facet_spec import load_facet_specs
from dygenept.stages import facets as facets_stage
from dygenept.stages import facets_llm

from conftest import ROOT

PROMPTS = ROOT / "resources" / "prompts" / "facets"
SYMBOLS = [
    "TP53", "PKM", "G6PD", "HBB", "KLF1", "SLC2A1",
    "CD19", "ATP1A1", "COL1A1", "RPL11", "SLC7A11", "GATA1",
]  # fmt: skip


def schema_defaults(node: dict) -> object:
    """The defaults config/schema.yaml gives an object, filled in recursively."""
    if node.get("type") == "object" and "properties" in node:
        return {key: schema_defaults(child) for key, child in node["properties"].items()}
    return copy.deepcopy(node.get("default"))


@pytest.fixture(scope="module")
def defaults() -> dict:
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    return schema_defaults(schema["properties"]["facets"]["properties"]["llm"])


@pytest.fixture(scope="module")
def facets():
    return load_facet_specs(ROOT / "resources" / "facets.yaml")


@pytest.fixture(scope="module")
def templates():
    return load_templates(PROMPTS / "system.md", PROMPTS / "user.md", PROMPTS / "examples.yaml")


@pytest.fixture(scope="module")
def genes(shared_data) -> list[GeneText]:
    table = pd.read_csv(
        shared_data / "gene_text" / "refseq_gene_summaries_human_RefSeq220.tsv.gz",
        sep="\t",
        dtype=str,
    )
    table = table[table["symbol"].isin(SYMBOLS)].set_index("symbol").loc[SYMBOLS]
    return [
        GeneText(row.entrez_id, symbol, row.full_name, row.summary)
        for symbol, row in table.iterrows()
    ]


def grounded_answer(gene: GeneText, facet_ids: list[str], source: GeneText | None = None) -> dict:
    """Facets written from sentences of ``source`` (the gene itself unless given): the first two
    sentences under the first two facets, NONE for the rest."""
    sentences = guard.split_sentences((source or gene).text)[:2]
    answer = dict.fromkeys(facet_ids, NONE_MARKER)
    for fid, sentence in zip(facet_ids, sentences):
        answer[fid] = sentence
    return answer


# --- prompt rendering --------------------------------------------------------------------------


def test_system_prompt_names_every_facet_from_facets_yaml(templates, facets):
    system = render_system(templates, facets, 600)
    for facet in facets:
        assert f"- {facet.id}: {facet.name}. {facet.description}" in system
    assert "$" not in system and "at most 600 characters" in system


def test_messages_are_examples_then_the_gene(templates, facets, genes):
    gene = genes[3]
    with_system = render_messages(templates, facets, gene, 600, system_role=True)
    roles = [m["role"] for m in with_system]
    assert roles == ["system"] + ["user", "assistant"] * len(templates.examples) + ["user"]
    assert with_system[-1]["content"] == f"Gene: {gene.symbol} ({gene.name})\nText:\n{gene.text}"
    # each worked answer covers every facet id of facets.yaml, NONE where the example is silent
    tp53 = json.loads(with_system[2]["content"])
    assert list(tp53) == [f.id for f in facets]
    assert tp53["immune_response"] == NONE_MARKER and tp53["cell_cycle"] != NONE_MARKER
    merged = render_messages(templates, facets, gene, 600, system_role=False)
    assert [m["role"] for m in merged] == roles[1:]
    assert merged[0]["content"].startswith(with_system[0]["content"])
    assert merged[1:] == with_system[2:]


def test_example_naming_an_unknown_facet_is_an_input_error(tmp_path, templates, facets, genes):
    examples = yaml.safe_load((PROMPTS / "examples.yaml").read_text())
    examples["examples"][0]["answers"]["apoptosis"] = "A facet that facets.yaml does not have."
    (tmp_path / "examples.yaml").write_text(yaml.safe_dump(examples))
    broken = load_templates(PROMPTS / "system.md", PROMPTS / "user.md", tmp_path / "examples.yaml")
    with pytest.raises(InputError, match=r"TP53 answers facets \['apoptosis'\]"):
        render_messages(broken, facets, genes[0], 600, system_role=True)


def test_schema_lists_every_facet_as_paragraph_or_none(facets):
    schema = answer_schema(facets, 600, 20)
    assert schema["required"] == [f.id for f in facets]
    assert schema["additionalProperties"] is False
    value = schema["properties"]["metabolism"]["anyOf"]
    assert value[0] == {"type": "string", "enum": [NONE_MARKER]}
    assert value[1] == {"type": "string", "minLength": 20, "maxLength": 600}


# --- validation --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def forbidden(templates, facets):
    return prompt_shingles(templates, facets, 600)


def check(raw, facets, forbidden, source="", max_chars=600):
    return validate_answer(raw, [f.id for f in facets], max_chars, 20, forbidden, source)


def test_valid_answer_with_none_variants_normalised(facets, forbidden, genes):
    gene = genes[4]  # KLF1
    answer = grounded_answer(gene, [f.id for f in facets])
    answer["cell_death"], answer["metabolism"], answer["transport"] = "N/A", "", "Not applicable."
    answer["immune_response"] = None
    raw = f"```json\n{json.dumps(answer)}\n```"
    result = check(raw, facets, forbidden, gene.text)
    assert result["transcription"] == guard.split_sentences(gene.text)[0]
    for fid in ("cell_death", "metabolism", "transport", "immune_response", "motility_adhesion"):
        assert result[fid] == NONE_MARKER


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a.pop("transport"), r"missing facets \['transport'\]"),
        (lambda a: a.update(extra="An extra key, not a facet."), r"unknown keys \['extra'\]"),
        (lambda a: a.update(cell_cycle=a["transcription"]), "same paragraph is written for"),
        (lambda a: a.update(transport="x" * 700), "transport has 700 characters"),
        (lambda a: a.update(transport="yes"), "too short"),
        (lambda a: a.update(transport=3), "transport is a int"),
    ],
)
def test_invalid_answers_name_their_problem(facets, forbidden, genes, mutate, message):
    gene = genes[4]
    answer = grounded_answer(gene, [f.id for f in facets])
    mutate(answer)
    with pytest.raises(InvalidAnswer, match=message):
        check(json.dumps(answer), facets, forbidden, gene.text)


def test_truncated_and_non_object_answers_are_invalid(facets, forbidden, genes):
    raw = json.dumps(grounded_answer(genes[4], [f.id for f in facets]))
    with pytest.raises(InvalidAnswer, match="ends mid-way"):
        check(raw[: len(raw) // 2], facets, forbidden)
    with pytest.raises(InvalidAnswer, match="JSON list"):
        check("[1, 2]", facets, forbidden)


def test_restating_the_prompt_is_invalid_but_quoting_the_gene_is_not(
    templates, facets, forbidden, genes
):
    gene = genes[4]  # KLF1: its text shares no 8 words in a row with the prompt
    answer = grounded_answer(gene, [f.id for f in facets])
    answer["transport"] = render_system(templates, facets, 600).split("\n")[0]
    with pytest.raises(InvalidAnswer, match="transport restates the instructions"):
        check(json.dumps(answer), facets, forbidden, gene.text)
    # TP53's own text is a worked example's text: quoting it for TP53 is grounded, not restating
    tp53 = genes[0]
    own = grounded_answer(tp53, [f.id for f in facets])
    assert check(json.dumps(own), facets, forbidden, tp53.text)["transcription"].startswith(
        "This gene encodes a tumor suppressor"
    )
    # the same sentences for another gene restate the example
    with pytest.raises(InvalidAnswer, match="restates"):
        check(json.dumps(own), facets, forbidden, gene.text)


# --- cache keys and request building ----------------------------------------------------------


def test_cache_key_changes_with_every_part_and_only_with_them(templates, facets, genes):
    identity = {"backend": "vllm", "model": "m", "revision": "r1", "engine": "vllm 0.12.0"}
    messages = render_messages(templates, facets, genes[0], 600, False)
    sampling = {"temperature": 0, "seed": 0, "max_tokens": 1536}
    schema = answer_schema(facets, 600, 20)
    key = cache_key(identity, messages, sampling, schema)
    assert key == cache_key(
        dict(reversed(identity.items())), copy.deepcopy(messages), sampling, schema
    )
    assert len(key) == 64
    edited = copy.deepcopy(messages)
    edited[0]["content"] += " "
    variants = [
        cache_key({**identity, "revision": "r2"}, messages, sampling, schema),
        cache_key({**identity, "engine": "vllm 0.13.0"}, messages, sampling, schema),
        cache_key(identity, edited, sampling, schema),
        cache_key(identity, messages, {**sampling, "seed": 1}, schema),
        cache_key(identity, messages, sampling, answer_schema(facets, 500, 20)),
    ]
    assert len({key, *variants}) == 6


def test_vllm_requests_pin_the_model_and_constrain_the_answer(defaults):
    settings = EngineSettings.from_params({**defaults, "revision": "abc123"})
    kwargs = vllm_llm_kwargs(settings.model, "abc123", settings.vllm, 7)
    assert kwargs["model"] == "BioMistral/BioMistral-7B"
    assert kwargs["revision"] == kwargs["tokenizer_revision"] == "abc123"
    assert kwargs["enable_prefix_caching"] is True and kwargs["seed"] == 7
    assert kwargs["tensor_parallel_size"] == 1 and kwargs["max_model_len"] == 8192
    sampling = vllm_sampling_kwargs(settings.sampling)
    assert sampling == {"temperature": 0, "seed": 0, "max_tokens": 1536}
    assert isinstance(settings.vllm, VllmSettings)


def test_vllm_refuses_an_unpinned_model(defaults, facets):
    with pytest.raises(InputError, match="facets.llm.revision"):
        make_engine("vllm", EngineSettings.from_params(defaults), answer_schema(facets, 600, 20))


def test_chat_request_asks_for_the_schema(facets):
    schema = answer_schema(facets, 600, 20)
    sampling = SamplingSettings(temperature=0, seed=3, max_tokens=100)
    body = chat_request("m", [{"role": "user", "content": "x"}], sampling, schema)
    assert body["response_format"]["json_schema"]["schema"] == schema
    assert body["response_format"]["type"] == "json_schema" and body["seed"] == 3


# --- the openai engine against a loopback chat server -------------------------------------------


def openai_settings(defaults: dict, base_url: str, tmp_path: Path, **openai) -> dict:
    settings = copy.deepcopy(defaults)
    settings["model"] = "served-model"
    settings["cache_dir"] = str(tmp_path / "cache")
    settings["openai"].update(
        base_url=base_url, timeout_seconds=0.5, attempts=3, backoff_seconds=0.01, **openai
    )
    settings["batch_size"] = 5
    return settings


def faulty_server(genes, facets) -> FakeChatServer:
    ids = [f.id for f in facets]
    by_symbol = {g.symbol: g for g in genes}
    answers = {g.symbol: grounded_answer(g, ids) for g in genes}
    invented = {"KLF1": grounded_answer(by_symbol["KLF1"], ids, source=by_symbol["CD19"])}
    return FakeChatServer(
        answers,
        queues={
            "TP53": ["429", "429"],
            "PKM": ["slow"],
            "G6PD": ["truncated"],
            "HBB": ["schema_invalid", "duplicate"],
            "SLC2A1": ["restate"],
        },
        # RPL11: every transport attempt fails, so no answer at all
        modes={
            "CD19": "none_variants",
            "COL1A1": "schema_invalid",
            "KLF1": "invented",
            "RPL11": "500",
        },
        invented=invented,
        slow_seconds=1.0,
    )


def run_openai(defaults, server, genes, facets, templates, tmp_path):
    settings = LlmSettings.from_params(openai_settings(defaults, server.base_url, tmp_path))
    schema = answer_schema(facets, settings.max_chars, settings.min_chars)
    engine = make_engine("openai", settings.engine, schema)
    cache = AnswerCache(settings.cache_dir)
    try:
        return run_genes(engine, genes, facets, templates, settings, schema, cache), cache
    finally:
        cache.close()


def test_openai_every_gene_ends_validated_or_failed_with_its_reason(
    defaults, genes, facets, templates, tmp_path
):
    with faulty_server(genes, facets) as server:
        result, cache = run_openai(defaults, server, genes, facets, templates, tmp_path)
    failed = {f["symbol"]: f for f in result.failures}
    answered = {g.symbol for g in genes if g.entrez_id in result.answers}
    assert answered.isdisjoint(failed) and answered | set(failed) == set(SYMBOLS)
    assert len(result.failures) == len(failed) == 2
    assert "no answer" in failed["RPL11"]["reason"] and "HTTP 500" in failed["RPL11"]["reason"]
    assert failed["RPL11"]["raw_outputs"] == []
    assert failed["COL1A1"]["reason"].startswith("invalid after 3 attempt(s): missing facets")
    assert len(failed["COL1A1"]["raw_outputs"]) == 3
    # retries: 429 twice then valid; the slow answer timed out once; each invalid answer got a retry
    assert [b for b, _ in server.requests_for("TP53")] == ["429", "429", "valid"]
    assert [b for b, _ in server.requests_for("PKM")] == ["slow", "valid"]
    assert [b for b, _ in server.requests_for("HBB")] == ["schema_invalid", "duplicate", "valid"]
    last = server.requests_for("HBB")[-1][1]["messages"]
    assert last[-1]["content"].startswith("Your answer was invalid: the same paragraph")
    assert [b for b, _ in server.requests_for("G6PD")] == ["truncated", "valid"]
    assert [b for b, _ in server.requests_for("SLC2A1")] == ["restate", "valid"]
    cd19 = result.answers[next(g.entrez_id for g in genes if g.symbol == "CD19")]
    assert sum(v == NONE_MARKER for v in cd19.values()) == len(facets) - 1
    # only validated answers are cached
    reopened = AnswerCache(tmp_path / "cache")
    assert len(reopened) == len(answered) == result.generated
    reopened.close()
    # the guard flags the invented facets (another gene's text) and nothing else
    flagged = guard.grounding(result.answers, genes, defaults["grounding"]["threshold"])
    assert {(r["symbol"], r["flagged"]) for r in flagged if r["flagged"]} == {("KLF1", True)}
    assert sum(r["flagged"] for r in flagged) == 2


def test_openai_resumes_from_the_cache_and_runs_only_new_or_changed_work(
    defaults, genes, facets, templates, tmp_path
):
    first = genes[:6]
    with faulty_server(genes, facets) as server:
        result, _ = run_openai(defaults, server, first, facets, templates, tmp_path)
        assert result.generated == 6 and result.from_cache == 0
        server.log.clear()
        # same genes: nothing is asked; a longer gene list asks only for the new genes
        again, _ = run_openai(defaults, server, first, facets, templates, tmp_path)
        assert again.from_cache == 6 and server.log == []
        more, _ = run_openai(defaults, server, genes, facets, templates, tmp_path)
        assert more.from_cache == 6
        asked = {symbol for symbol, _, _ in server.log}
        assert asked == set(SYMBOLS[6:])
        # a changed prompt changes every key
        server.log.clear()
        edited = load_templates(
            PROMPTS / "system.md", PROMPTS / "user.md", PROMPTS / "examples.yaml"
        )
        edited = type(edited)(edited.system + "\nBe brief.", edited.user, edited.examples)
        changed, _ = run_openai(defaults, server, first, facets, edited, tmp_path)
        assert changed.from_cache == 0 and {s for s, _, _ in server.log} == set(SYMBOLS[:6])


def test_a_corrupted_or_unreadable_answer_cache_asks_again_for_what_it_lost(
    defaults, genes, facets, templates, tmp_path, caplog
):
    ids = [f.id for f in facets]
    database = tmp_path / "cache" / CACHE_FILE
    with FakeChatServer({g.symbol: grounded_answer(g, ids) for g in genes}) as server:
        clean, _ = run_openai(defaults, server, genes, facets, templates, tmp_path)
        overwrite_inside_values(database, 3, LETTERS)  # still valid JSON: only the checksum tells
        server.log.clear()
        again, _ = run_openai(defaults, server, genes, facets, templates, tmp_path)
        assert (again.from_cache, again.generated, len(server.log)) == (len(genes) - 3, 3, 3)
        assert again.answers == clean.answers
        garble_header(database)
        server.log.clear()
        rebuilt, _ = run_openai(defaults, server, genes, facets, templates, tmp_path)
        assert rebuilt.from_cache == 0 and len(server.log) == len(genes)
        assert rebuilt.answers == clean.answers
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{database}: 3 cached values failed verification (3 × checksum differs)" in warnings[0]
    assert warnings[1].startswith(f"{database}: SQLite cannot read this cache")


def test_openai_sends_the_key_from_the_named_variable(
    defaults, genes, facets, templates, tmp_path, monkeypatch
):
    ids = [f.id for f in facets]
    with FakeChatServer({g.symbol: grounded_answer(g, ids) for g in genes[:1]}) as server:
        settings = EngineSettings.from_params(
            openai_settings(defaults, server.base_url, tmp_path, api_key_env="DYGENEPT_TEST_KEY")
        )
        schema = answer_schema(facets, 600, 20)
        with pytest.raises(InputError, match="DYGENEPT_TEST_KEY"):
            make_engine("openai", settings, schema)
        monkeypatch.setenv("DYGENEPT_TEST_KEY", "sk-test")
        engine = make_engine("openai", settings, schema)
        engine.complete([render_messages(templates, facets, genes[0], 600, False)])
    assert server.log[0][2]["authorization"] == "Bearer sk-test"


# --- the stage, end to end over the loopback server ---------------------------------------------


def write_gene_text(path: Path, genes: list[GeneText]) -> Path:
    pd.DataFrame(
        [
            {
                "entrez_id": g.entrez_id,
                "symbol": g.symbol,
                "name": g.name,
                "text": g.text,
                "sentences": [
                    {"text": s, "source": "refseq", "ref": ""}
                    for s in guard.split_sentences(g.text)
                ],
            }
            for g in genes
        ]
    ).to_parquet(path)
    return path


def stage_io(tmp_path, genes, org_db, go_db):
    inputs = {
        "gene_text": write_gene_text(tmp_path / "gene_text.parquet", genes),
        "facets_yaml": ROOT / "resources" / "facets.yaml",
        "prompt_system": PROMPTS / "system.md",
        "prompt_user": PROMPTS / "user.md",
        "prompt_examples": PROMPTS / "examples.yaml",
        "org_db": org_db,
        "go_db": go_db,
    }
    outputs = {
        name: tmp_path / "out" / file
        for name, file in [
            ("records", "llm_records.json"),
            ("failures", "llm_failures.jsonl"),
            ("guard", "llm_guard.json"),
        ]
    }
    return inputs, outputs


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_dead_openai_server_stops_the_stage_within_seconds_naming_the_url(
    defaults, tmp_path, org_db, go_db, capsys
):
    """The schema's own retry settings (five attempts with backoff, per gene) never come into play:
    one request before any gene finds nobody listening."""
    gene = GeneText("7157", "TP53", "tumor protein p53", "TP53 is a tumour suppressor.")
    inputs, outputs = stage_io(tmp_path, [gene], org_db, go_db)
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    settings = copy.deepcopy(defaults)
    settings["openai"]["base_url"] = base_url
    settings["cache_dir"] = str(tmp_path / "cache")
    params = {"backend": "openai", "llm": settings, "excluded_evidence": ["ND"]}
    argv = ["facets_llm", "--params", json.dumps(params)]
    argv += [arg for name, path in inputs.items() for arg in ("--in", f"{name}={path}")]
    argv += [arg for name, path in outputs.items() for arg in ("--out", f"{name}={path}")]
    started = time.monotonic()
    status = cli.main(argv)
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if line.startswith("dygenept ")]
    assert status == 2 and seconds < 10, seconds
    assert f"config 'facets.llm.openai.base_url' = {base_url}: no server answers" in line
    assert "Connection refused" in line and "Fix: start the server" in line
    assert len(line) < 500 and "Traceback" not in err
    assert not any(path.exists() for path in outputs.values())


def test_the_server_check_is_one_request_before_any_gene(defaults, genes, facets, tmp_path):
    with faulty_server(genes, facets) as server:
        settings = openai_settings(defaults, server.base_url, tmp_path)
        make_engine("openai", EngineSettings.from_params(settings), answer_schema(facets, 600, 0))
        assert server.models_requests == 1 and server.log == []


def test_stage_writes_records_failures_and_guard_then_facets_reads_them(
    defaults, genes, facets, tmp_path, org_db, go_db
):
    inputs, outputs = stage_io(tmp_path, genes, org_db, go_db)
    with faulty_server(genes, facets) as server:
        settings = openai_settings(defaults, server.base_url, tmp_path)
        params = {"backend": "openai", "llm": settings, "excluded_evidence": ["ND"]}
        # two of twelve genes fail: above a 10% limit the stage fails, naming them and why
        settings["max_failure_fraction"] = 0.1
        with pytest.raises(InputError, match=r"2 of 12 genes.*COL1A1 \(1277\): invalid after 3"):
            facets_llm.run(inputs, outputs, params)
        settings["max_failure_fraction"] = 0.2
        details = facets_llm.run(inputs, outputs, params)
    assert details["from_cache"] == 10 and details["failed"] == 2
    failures = [json.loads(line) for line in outputs["failures"].read_text().splitlines()]
    assert sorted(f["symbol"] for f in failures) == ["COL1A1", "RPL11"]
    report = json.loads(outputs["guard"].read_text())
    assert report["grounding"]["flagged"] == 2
    assert {row["symbol"] for row in report["grounding"]["flagged_facets"]} == {"KLF1"}
    agreement = report["go_agreement"]
    assert agreement["genes_scored"] == 10
    tp53 = agreement["per_facet"]["transcription"]
    assert tp53["true_positive"] + tp53["false_positive"] == 10  # every answered gene wrote one
    # the facets stage reads the records through the registry
    backend = records_backend("openai", {"llm_records": outputs["records"]})
    texts = read_gene_texts(inputs["gene_text"])
    table = facets_stage.facet_table(texts, backend.generate(texts, facets), facets)
    assert len(table) == 12 * len(facets)
    rpl11 = table[table["symbol"] == "RPL11"]
    assert rpl11["is_none"].all() and all(list(e) == ["llm_failure"] for e in rpl11["evidence"])
    klf1 = table[(table["symbol"] == "KLF1") & ~table["is_none"]]
    assert len(klf1) == 2  # the invented facets stay (replace_ungrounded is off) but are reported


def test_stage_replaces_ungrounded_facets_when_config_asks(
    defaults, genes, facets, tmp_path, org_db, go_db
):
    inputs, outputs = stage_io(tmp_path, genes[:6], org_db, go_db)
    with faulty_server(genes, facets) as server:
        settings = openai_settings(defaults, server.base_url, tmp_path)
        settings["grounding"]["replace_ungrounded"] = True
        facets_llm.run(
            inputs, outputs, {"backend": "openai", "llm": settings, "excluded_evidence": ["ND"]}
        )
    records = json.loads(outputs["records"].read_text())
    klf1 = next(g.entrez_id for g in genes if g.symbol == "KLF1")
    assert set(records["answers"][klf1].values()) == {NONE_MARKER}
    tp53 = next(g.entrez_id for g in genes if g.symbol == "TP53")
    assert records["answers"][tp53]["transcription"] != NONE_MARKER


def test_stage_vote_with_go_keeps_only_facets_go_also_sees(
    defaults, genes, facets, tmp_path, org_db, go_db
):
    inputs, outputs = stage_io(tmp_path, genes[:6], org_db, go_db)
    with faulty_server(genes, facets) as server:
        settings = openai_settings(defaults, server.base_url, tmp_path)
        params = {"backend": "openai", "llm": settings, "excluded_evidence": ["ND"]}
        facets_llm.run(inputs, outputs, params)
        plain = json.loads(outputs["records"].read_text())["answers"]
        settings["vote_with_go"] = True
        facets_llm.run(inputs, outputs, params)
    voted = json.loads(outputs["records"].read_text())["answers"]
    report = json.loads(outputs["guard"].read_text())
    gene_terms, descendants = guard.go_sets(
        org_db, go_db, facets, [g.entrez_id for g in genes[:6]], ["ND"]
    )
    dropped = 0
    for entrez, answer in plain.items():
        for fid, text in answer.items():
            seen_by_go = bool(gene_terms.get(entrez, set()) & descendants[fid])
            assert voted[entrez][fid] == (text if seen_by_go else NONE_MARKER)
            dropped += text != NONE_MARKER and not seen_by_go
    assert report["vote_with_go"]["facets_dropped"] == dropped > 0
    # TP53 is annotated with transcription regulation in GO: its facet stays
    tp53 = next(g.entrez_id for g in genes if g.symbol == "TP53")
    assert voted[tp53]["transcription"] == plain[tp53]["transcription"] != NONE_MARKER


# --- the guard ---------------------------------------------------------------------------------


def test_go_agreement_by_hand():
    answers = {
        "1": {"a": "text", "b": NONE_MARKER},
        "2": {"a": NONE_MARKER, "b": "text"},
        "3": {"a": "text", "b": "text"},
        "4": {"a": "text", "b": "text"},  # no GO annotation: not scored
    }
    gene_terms = {"1": {"GO:1"}, "2": {"GO:1", "GO:2"}, "3": {"GO:3"}}
    descendants = {"a": {"GO:1"}, "b": {"GO:2"}}
    result = guard.go_agreement(answers, gene_terms, descendants)
    assert result["genes_scored"] == 3
    # a: said for 1, 3; annotated 1, 2 → tp 1, fp 1, fn 1
    assert result["per_facet"]["a"] == {
        "true_positive": 1, "false_positive": 1, "false_negative": 1, "precision": 0.5, "recall": 0.5,
    }  # fmt: skip
    # b: said for 2, 3; annotated 2 → tp 1, fp 1, fn 0
    assert (
        result["per_facet"]["b"]["precision"] == 0.5 and result["per_facet"]["b"]["recall"] == 1.0
    )
    assert result["overall"] == {"precision": 0.5, "recall": round(2 / 3, 4)}


def test_grounding_scores_the_weakest_sentence(genes):
    klf1, cd19 = genes[4], genes[6]
    own = guard.split_sentences(klf1.text)[0]
    assert guard.grounding_score(own, klf1.text, "KLF1")[0] == 1.0
    paraphrase = (
        "KLF1 is a hematopoietic transcription factor that binds the beta hemoglobin promoter."
    )
    assert guard.grounding_score(paraphrase, klf1.text, "KLF1")[0] >= 0.7
    foreign = guard.split_sentences(cd19.text)[1]
    score, sentence = guard.grounding_score(f"{own} {foreign}", klf1.text, "KLF1")
    assert score < 0.5 and sentence == foreign


def test_vote_keeps_a_facet_only_where_both_backends_see_a_role(facets):
    ids = [f.id for f in facets]
    llm = guard.answers_from_facet_sets(
        [FacetSet("1", ("a", "b") + (None,) * (len(ids) - 2)), FacetSet("2", ("c",) * len(ids))],
        facets,
    )
    assert llm["1"][ids[0]] == "a" and llm["1"][ids[2]] == NONE_MARKER
    other = {"1": {ids[0]: "x", ids[1]: NONE_MARKER}}
    voted = guard.vote(llm, other)
    assert voted["1"][ids[0]] == "a" and voted["1"][ids[1]] == NONE_MARKER
    assert set(voted["2"].values()) == {NONE_MARKER}  # the other backend lacks gene 2


def test_a_killed_run_resumes_from_the_batches_it_finished(
    defaults, genes, facets, tmp_path, org_db, go_db
):
    """The stage's CLI in a child process, killed once two batches are cached; the rerun asks only
    for the genes those batches did not hold."""
    inputs, outputs = stage_io(tmp_path, genes, org_db, go_db)
    ids = [f.id for f in facets]
    answers = {g.symbol: grounded_answer(g, ids) for g in genes}
    slow = dict.fromkeys(SYMBOLS, "slow")
    with FakeChatServer(answers, modes=slow, slow_seconds=0.4) as server:
        settings = openai_settings(defaults, server.base_url, tmp_path)
        settings["batch_size"] = 2
        settings["openai"].update(concurrency=1, timeout_seconds=10)
        params = {"backend": "openai", "llm": settings, "excluded_evidence": ["ND"]}
        command = [sys.executable, "-m", "dygenept", "facets_llm", "--params", json.dumps(params)]
        command += [f"--in={name}={path}" for name, path in inputs.items()]
        command += [f"--out={name}={path}" for name, path in outputs.items()]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
        child = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        database = Path(settings["cache_dir"]) / "facets_llm.sqlite"
        cached = 0
        deadline = time.monotonic() + 60
        while cached < 4 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.1)
            try:
                with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
                    cached = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            except sqlite3.OperationalError:  # the child has not created the file or table yet
                continue
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert 4 <= cached < len(SYMBOLS) and not outputs["records"].exists()
        server.modes.clear()
        server.log.clear()
        details = facets_llm.run(inputs, outputs, params)
    assert details["from_cache"] >= cached and details["generated"] == 12 - details["from_cache"]
    asked = [symbol for symbol, _, _ in server.log]
    assert len(asked) == len(set(asked)) == 12 - details["from_cache"]


def test_worked_examples_pass_validation_and_the_guard(templates, facets, defaults):
    """The hand-written answers are what the model is asked for: valid and grounded in their text."""
    for example in templates.examples:
        answer = example_answer(example, facets)
        # validated against the gene's own text (the example's own answer is part of the prompt, so
        # only the other checks apply here)
        checked = validate_answer(
            answer_json(answer), [f.id for f in facets], 600, 20, set(), example.text
        )
        assert checked == answer
        for fid, text in answer.items():
            if text != NONE_MARKER:
                score, sentence = guard.grounding_score(text, example.text, example.symbol)
                assert score >= defaults["grounding"]["threshold"], (example.symbol, fid, sentence)


def records_backend(name: str, inputs: dict):
    """The facets stage's backend for an LLM backend ``name``, as the stage builds it."""
    entry = backend_entry(name)
    return entry.make(inputs, entry.settings({"backend": name}))


def test_records_from_another_facet_list_or_gene_list_are_refused(facets, genes, tmp_path):
    ids = [f.id for f in facets]
    records = {"facets": ids[:-1], "answers": {}, "failed": []}
    (tmp_path / "r.json").write_text(json.dumps(records))
    backend = records_backend("vllm", {"llm_records": tmp_path / "r.json"})
    with pytest.raises(InputError, match="rerun the facets_llm rule"):
        backend.generate(genes[:1], facets)
    (tmp_path / "r.json").write_text(json.dumps({**records, "facets": ids}))
    backend = records_backend("vllm", {"llm_records": tmp_path / "r.json"})
    with pytest.raises(InputError, match="lack gene TP53"):
        backend.generate(genes[:1], facets)
    with pytest.raises(InputError, match="llm_records"):
        records_backend("vllm", {})

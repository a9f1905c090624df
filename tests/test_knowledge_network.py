"""The network text sources against real HTTP servers on loopback (tests/fake_apis.py) that speak MyGene.info,
NCBI E-utilities and UniProt REST, serve real RefSeq text, and inject faults: retries, the per-gene cache,
a SIGKILLed run resuming, the rate limit and Retry-After measured at the server, the failure threshold."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from cache_faults import LETTERS, garble_header, overwrite_inside_values

from dygenept.config_defaults import merged, section_defaults
from dygenept.io.http import FetchError
from dygenept.stages import knowledge
from dygenept.text.sources import cache_key
from dygenept.text.sources.entrez import EntrezSource
from dygenept.text.sources.gene_cache import CACHE_FILE, GeneCache
from dygenept.text.sources.mygene import MyGeneSource

from conftest import ROOT
from fake_apis import FakeApis, load_records

UNKNOWN_GENE = "999999999"  # an Entrez id no source knows


@pytest.fixture(scope="module")
def records(shared_data):
    return load_records(shared_data, 40)


def cached_genes(cache_dir: Path, params: dict, source: str, genes) -> set[str]:
    """The genes whose answers from ``source``, under ``params``' settings, the cache holds."""
    key = cache_key(knowledge.NETWORK_SOURCES[source](params))
    with GeneCache(cache_dir) as cache:
        return set(cache.answers(source, key, genes))


def write_genes(path: Path, records: dict, extra: tuple[str, ...] = ()) -> Path:
    rows = [
        {
            "query": r.symbol,
            "symbol": r.symbol,
            "entrez_id": r.entrez_id,
            "name": r.name,
            "match": "symbol",
        }
        for r in records.values()
    ]
    rows += [
        {
            "query": f"G{gene}",
            "symbol": f"G{gene}",
            "entrez_id": gene,
            "name": "unknown",
            "match": "symbol",
        }
        for gene in extra
    ]
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def stage_params(
    server: FakeApis, cache_dir: Path, sources: list[str], rate: float = 200, **settings
) -> dict:
    overrides = {
        "sources": sources,
        "cache_dir": str(cache_dir),
        "http": {"timeout_seconds": 1.0, "attempts": 4, "backoff_seconds": 0.01},
        "mygene": {"url": server.mygene_url, "batch_size": 10, "requests_per_second": rate},
        "entrez": {
            "url": server.entrez_url,
            "email": "dygenept-tests@example.org",
            "batch_size": 10,
            "requests_per_second": rate,
            "requests_per_second_with_key": rate,
        },
        "uniprot": {
            "url": server.uniprot_url,
            "batch_size": 10,
            "page_size": 4,
            "requests_per_second": rate,
        },
    }
    return merged(section_defaults("knowledge"), merged(overrides, settings))


def outputs(tmp_path: Path) -> dict[str, Path]:
    return {
        "gene_text": tmp_path / "gene_text.parquet",
        "failures": tmp_path / "failures.tsv",
        "report": tmp_path / "knowledge_report.json",
    }


def test_every_gene_is_fetched_or_listed_once_through_every_fault(tmp_path, records):
    genes = write_genes(tmp_path / "genes.tsv", records, extra=(UNKNOWN_GENE,))
    every_fault = ["429", "reset", "truncated_json", "500", "truncated_body", "503", "slow"]
    with FakeApis(records, retry_after="0", slow_seconds=1.5) as server:
        for api in ("mygene", "entrez", "uniprot"):
            server.inject(api, *every_fault)
        poisoned = set(list(records)[30:32])  # both in uniprot's fourth batch of 10
        server.poison("uniprot", poisoned, "500")
        # More attempts than injected faults: however the threads share the faults out, only the poisoned batch fails.
        params = stage_params(
            server,
            tmp_path / "cache",
            ["mygene", "entrez", "uniprot"],
            max_failure_fraction=0.3,
            http={"attempts": len(every_fault) + 1},
        )
        details = knowledge.run({"genes": genes}, outputs(tmp_path), params)
        log = server.requests()
    assert {entry.fault for entry in log} >= set(every_fault)
    all_genes = set(records) | {UNKNOWN_GENE}
    table = pd.read_parquet(tmp_path / "gene_text.parquet")
    assert (
        len(table) == len(all_genes)
        and set(table["entrez_id"]) == all_genes
        and table["entrez_id"].is_unique
    )

    failures = pd.read_csv(tmp_path / "failures.tsv", sep="\t", dtype=str)
    failed_batch = [gene for gene in records if gene in set(failures["entrez_id"])]
    assert (
        set(failures["source"]) == {"uniprot"}
        and poisoned <= set(failed_batch)
        and len(failed_batch) == 10
    )
    assert (
        failures["reason"].str.contains(f"failed after {len(every_fault) + 1} attempts").all()
        and failures["reason"].str.contains("HTTP 500").all()
    )
    assert set(failures["symbol"]) == {records[gene].symbol for gene in failed_batch}
    report = json.loads((tmp_path / "knowledge_report.json").read_text())
    assert details["failures"] == 10 and len(report["failures"]) == 10
    for source in ("mygene", "entrez"):
        assert cached_genes(tmp_path / "cache", params, source, all_genes) == all_genes
        assert (
            report["sources"][source]["fetched"] == len(all_genes)
            and report["sources"][source]["failed"] == 0
        )
    assert cached_genes(tmp_path / "cache", params, "uniprot", all_genes) == all_genes - set(
        failed_batch
    )  # failures are not cached

    by_symbol = table.set_index("symbol")
    tp53 = by_symbol.loc["TP53"]
    refs = {(s["source"], s["ref"]) for s in tp53["sentences"]}
    assert ("NCBI Gene (MyGene.info)", "GeneID:7157") in refs and (
        "UniProtKB/Swiss-Prot",
        "UniProtKB:P04637",
    ) in refs
    assert (
        "During microbial infection, interacts with human papillomavirus E6 protein" in tp53["text"]
    )
    for row in table.itertuples():
        texts = [s["text"].casefold() for s in row.sentences]
        assert len(texts) == len(set(texts)), row.symbol  # no sentence twice, across sources
        assert not any(
            noise in row.text
            for noise in ("PubMed", "[provided by", "(By similarity)", "Isoform 2 of")
        )
    assert by_symbol.loc[f"G{UNKNOWN_GENE}", "sources"].tolist() == ["org.Hs.eg.db"]
    assert f"G{UNKNOWN_GENE}" in report["genes_without_source_text"]


def test_no_text_answers_are_cached_and_failures_are_asked_again(tmp_path, records):
    genes = write_genes(tmp_path / "genes.tsv", records, extra=(UNKNOWN_GENE,))
    without_summary = {gene for gene, record in records.items() if not record.summary}
    failing = next(
        gene for gene, record in records.items() if record.summary and gene not in ("5594", "7157")
    )
    assert without_summary
    with FakeApis(records) as server:
        server.poison("mygene", {failing})
        params = stage_params(server, tmp_path / "cache", ["mygene"], mygene={"batch_size": 1})
        knowledge.run({"genes": genes}, outputs(tmp_path), params)
        first = server.requests()
        assert [entry.fault for entry in first if entry.ids == (failing,)] == [
            "500"
        ] * 4  # every attempt
        with GeneCache(tmp_path / "cache") as cache:
            key = cache_key(MyGeneSource.from_params(params))
            answers = cache.answers("mygene", key, without_summary | {UNKNOWN_GENE})
            assert not cache.answers("mygene", key, [failing])
        assert set(answers) == without_summary | {UNKNOWN_GENE} and all(
            answer == [] for answer in answers.values()
        )
        server.poison("mygene", set())
        knowledge.run({"genes": genes}, outputs(tmp_path), params)
        assert [entry.ids for entry in server.requests()[len(first) :]] == [
            (failing,)
        ]  # nothing else asked again
    assert pd.read_csv(tmp_path / "failures.tsv", sep="\t").empty


def test_a_corrupted_or_unreadable_answer_cache_asks_again_for_what_it_lost(
    tmp_path, records, caplog
):
    genes = write_genes(tmp_path / "genes.tsv", records)
    database = tmp_path / "cache" / CACHE_FILE
    with FakeApis(records) as server:
        params = stage_params(server, tmp_path / "cache", ["mygene"], mygene={"batch_size": 1})

        def run_asking() -> set[str]:
            before = len(server.requests())
            knowledge.run({"genes": genes}, outputs(tmp_path), params)
            assert (tmp_path / "gene_text.parquet").read_bytes() == clean
            return {gene for entry in server.requests()[before:] for gene in entry.ids}

        knowledge.run({"genes": genes}, outputs(tmp_path), params)
        clean = (tmp_path / "gene_text.parquet").read_bytes()
        hit = overwrite_inside_values(database, 5, LETTERS)  # inside a text: still valid JSON
        assert run_asking() == {key.rsplit(":", 1)[1] for key in hit}
        garble_header(database)
        assert run_asking() == set(records)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{database}: 5 cached values failed verification (5 × checksum differs)" in warnings[0]
    assert warnings[1].startswith(f"{database}: SQLite cannot read this cache")


def _cached_count(cache_dir: Path) -> int:
    try:
        with sqlite3.connect(cache_dir / CACHE_FILE, timeout=5) as db:
            return db.execute("SELECT count(*) FROM entries").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_killed_run_resumes_without_refetching_cached_genes(tmp_path, shared_data):
    records = load_records(shared_data, 60, first=100)
    genes = write_genes(tmp_path / "genes.tsv", records)
    with FakeApis(records, latency=0.1) as server:
        params = stage_params(
            server,
            tmp_path / "cache",
            ["mygene"],
            http={"max_workers": 1},
            mygene={"batch_size": 3},
        )
        (tmp_path / "params.json").write_text(json.dumps(params))
        command = [
            sys.executable,
            "-m",
            "dygenept",
            "knowledge",
            "--in",
            f"genes={genes}",
            "--params",
            f"@{tmp_path / 'params.json'}",
        ]
        for name, path in outputs(tmp_path).items():
            command += ["--out", f"{name}={path}"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
        with open(tmp_path / "first.log", "w") as log:
            process = subprocess.Popen(command, env=env, stderr=log)
            deadline = time.monotonic() + 30
            while (
                _cached_count(tmp_path / "cache") < 12
                and process.poll() is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
            process.wait()
        assert process.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()
        assert not (tmp_path / "gene_text.parquet").exists()
        cached = cached_genes(tmp_path / "cache", params, "mygene", records)
        assert 12 <= len(cached) < len(records)
        first = len(server.requests())
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        asked_again = [gene for entry in server.requests()[first:] for gene in entry.ids]
    assert not set(asked_again) & cached
    assert sorted(asked_again) == sorted(set(records) - cached)  # each missing gene once, none lost
    assert set(pd.read_parquet(tmp_path / "gene_text.parquet")["entrez_id"]) == set(records)


def test_the_rate_limit_holds_at_the_server(tmp_path, records):
    genes = write_genes(tmp_path / "genes.tsv", dict(list(records.items())[:12]))
    with FakeApis(records) as server:
        params = stage_params(
            server, tmp_path / "cache", ["uniprot"], rate=5, uniprot={"batch_size": 1}
        )
        knowledge.run({"genes": genes}, outputs(tmp_path), params)
        times = sorted(entry.time for entry in server.requests("uniprot"))
    assert len(times) >= 12
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert 3.0 < rate <= 5.5, rate  # four workers, yet no faster than 5/s
    assert min(b - a for a, b in zip(times, times[1:])) > 0.1  # spaced out, not bursts


def test_retry_after_is_honoured(tmp_path, records):
    genes = write_genes(tmp_path / "genes.tsv", records)
    with FakeApis(records, retry_after="1") as server:
        server.inject("mygene", "429")
        params = stage_params(server, tmp_path / "cache", ["mygene"], mygene={"batch_size": 100})
        knowledge.run({"genes": genes}, outputs(tmp_path), params)
        first, second = server.requests("mygene")
    assert first.fault == "429" and second.fault == "ok"
    assert second.time - first.time >= 0.95  # the backoff alone would be ≤ 0.01 s


def test_too_many_failures_stop_the_stage_naming_genes_and_reasons(tmp_path, records):
    genes = write_genes(tmp_path / "genes.tsv", records)
    failing = list(records)[5:9]  # 4 of 40 genes: 10% > 5%
    with FakeApis(records) as server:
        server.poison("mygene", set(failing))
        params = stage_params(
            server, tmp_path / "cache", ["mygene"], http={"attempts": 2}, mygene={"batch_size": 1}
        )
        with pytest.raises(FetchError) as raised:
            knowledge.run({"genes": genes}, outputs(tmp_path), params)
    message = str(raised.value)
    assert (
        "mygene: 4 of 40 genes failed (10.0%), more than knowledge.max_failure_fraction = 0.05"
        in message
    )
    for gene in failing:
        assert (
            f"{records[gene].symbol} (Entrez {gene}): POST {server.mygene_url}/gene/: failed after 2 attempts"
            in message
        )
    assert "HTTP" in message and "500" in message and "Fix:" in message
    assert not (tmp_path / "gene_text.parquet").exists()
    assert sorted(
        pd.read_csv(tmp_path / "failures.tsv", sep="\t", dtype=str)["entrez_id"]
    ) == sorted(failing)


def test_entrez_rate_follows_the_api_key():
    settings = merged(section_defaults("knowledge"), {"entrez": {"email": "a@example.org"}})
    assert EntrezSource.from_params(settings, environ={}).requests_per_second == 3
    keyed = EntrezSource.from_params(settings, environ={"NCBI_API_KEY": "secret"})
    assert (
        keyed.requests_per_second == 10
        and "secret" not in repr(keyed)
        and "secret" not in json.dumps(keyed.cache_settings())
    )


@pytest.mark.network
def test_real_apis_give_text_for_known_genes(tmp_path):
    genes = tmp_path / "genes.tsv"
    pd.DataFrame(
        [
            {"query": s, "symbol": s, "entrez_id": e, "name": s, "match": "symbol"}
            for e, s in {"7157": "TP53", "10733": "PLK4", "5594": "MAPK1"}.items()
        ]
    ).to_csv(genes, sep="\t", index=False)
    overrides = {
        "sources": ["mygene", "entrez", "uniprot"],
        "cache_dir": str(tmp_path / "cache"),
        "entrez": {"email": os.environ.get("DYGENEPT_ENTREZ_EMAIL", "dygenept-tests@example.org")},
    }
    params = merged(section_defaults("knowledge"), overrides)
    details = knowledge.run({"genes": genes}, outputs(tmp_path), params)
    assert details["failures"] == 0 and details["coverage"] == {
        "mygene": 3,
        "entrez": 3,
        "uniprot": 3,
    }

"""The one store under every cache, on real SQLite files: values verified on read, a bad entry dropped,
logged and computed again, an unreadable file moved aside, older layouts adopted; then the facets and
facet_embed stages (go-rules facets of the demo genes, the packaged MiniLM) on corrupted caches."""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cache_faults import LETTERS, NAN_AND_HUGE, garble_header, overwrite_inside_values

from dygenept.facet_backends.llm.cache import AnswerCache
from dygenept.formats.facet_tensor import load_facet_tensor
from dygenept.io.keyed_store import KeyedStore
from dygenept.stages import facet_embed
from dygenept.stages import facets as facets_stage
from dygenept.text.sources.gene_cache import GeneCache, entry_key
from dygenept.text_encoders.vector_cache import decode_vector, finite_float16

from conftest import ROOT, section_params

FACETS_YAML = ROOT / "resources" / "facets.yaml"
STORE_LOG = "dygenept.io.keyed_store"


def json_values(count: int) -> dict[str, bytes]:
    return {
        f"key{i}": json.dumps({"text": f"gene {i} takes part in the cell cycle"}).encode()
        for i in range(count)
    }


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_value_changed_on_disk_is_dropped_logged_and_missing(tmp_path, caplog):
    path = tmp_path / "store.sqlite"
    values = json_values(50)
    with KeyedStore(path) as store:
        store.put_many(values)
        assert store.get_many([*values, "absent"]) == values
    hit = overwrite_inside_values(path, 5, LETTERS)
    with closing(sqlite3.connect(path)) as db:
        changed = [
            db.execute("SELECT value FROM entries WHERE key = ?", [k]).fetchone()[0] for k in hit
        ]
    assert all(json.loads(value) != json.loads(values[k]) for k, value in zip(hit, changed))
    with KeyedStore(path) as store:  # still valid JSON: only the checksum can tell
        assert store.get_many(values, json.loads) == {
            key: json.loads(value) for key, value in values.items() if key not in hit
        }
        assert len(store) == 45  # dropped, not just hidden
    assert warnings_of(caplog) == [
        f"{path}: 5 cached values failed verification (5 × checksum differs); dropped, they are "
        "computed again"
    ]


def test_a_value_the_scheme_refuses_is_dropped(tmp_path, caplog):
    def decode(value: bytes) -> dict:
        decoded = json.loads(value)
        if "7" in decoded["text"]:
            raise ValueError("names gene 7")
        return decoded

    with KeyedStore(tmp_path / "store.sqlite") as store:
        store.put_many(json_values(10))
        assert sorted(store.get_many(json_values(10), decode)) == [
            f"key{i}" for i in range(10) if i != 7
        ]
        assert len(store) == 9
    assert "1 × names gene 7" in warnings_of(caplog)[0]


def test_an_unreadable_file_is_moved_aside_with_a_warning_and_rebuilt(tmp_path, caplog):
    path = tmp_path / "store.sqlite"
    with KeyedStore(path) as store:
        store.put_many(json_values(3))
    garble_header(path)
    garbage = path.read_bytes()
    with (
        pytest.raises(sqlite3.DatabaseError, match="file is not a database"),
        closing(sqlite3.connect(path)) as db,
    ):
        db.execute("SELECT * FROM entries")
    with KeyedStore(path) as store:
        assert store.get_many(json_values(3)) == {} and len(store) == 0
        store.put_many(json_values(2))
    with KeyedStore(path) as store:
        assert store.get_many(json_values(3)) == json_values(2)
    (aside,) = tmp_path.glob("store.sqlite.unreadable-*")
    assert aside.read_bytes() == garbage
    (warning,) = warnings_of(caplog)
    assert warning.startswith(f"{path}: SQLite cannot read this cache (file is not a database)")
    assert f"moved it aside to {aside}" in warning and "Fix:" in warning


def test_a_page_found_malformed_mid_run_moves_the_file_aside(tmp_path, caplog):
    path = tmp_path / "store.sqlite"
    values = {f"key{i}": bytes(1000) for i in range(200)}  # ~50 pages
    with KeyedStore(path) as store:
        store.put_many(values)
    page = 4096
    data = bytearray(path.read_bytes())
    data[page : 2 * page] = b"\x0dgarbage" * (page // 8)  # the table's root page
    path.write_bytes(data)
    with KeyedStore(path) as store:  # opens: the schema on page 1 is intact
        assert store.get_many(values) == {}  # malformed on reading: moved aside, empty
        store.put_many({"key0": b"again"})
        assert store.get_many(values) == {"key0": b"again"}
    assert len(list(tmp_path.glob("store.sqlite.unreadable-*"))) == 1
    assert "database disk image is malformed" in warnings_of(caplog)[0]


def test_caches_of_the_layouts_before_the_one_store_keep_their_entries(tmp_path):
    """The knowledge and LLM caches keep their answers under the same keys: users' caches stay valid.
    The store's own rows from before checksums are dropped (their keys held the digest of the code that
    wrote them)."""
    with closing(sqlite3.connect(tmp_path / "facet_embed.sqlite")) as db, db:
        db.execute("CREATE TABLE entries (key TEXT PRIMARY KEY, value BLOB)")
        db.execute("INSERT INTO entries VALUES ('k', ?)", [np.ones(4, np.float16).tobytes()])
    with closing(sqlite3.connect(tmp_path / "gene_text.sqlite")) as db, db:
        db.execute(
            "CREATE TABLE answers (source TEXT NOT NULL, settings TEXT NOT NULL, entrez_id TEXT "
            "NOT NULL, answer TEXT NOT NULL, fetched_utc TEXT NOT NULL, PRIMARY KEY (source, "
            "settings, entrez_id))"
        )
        db.execute(
            "INSERT INTO answers VALUES ('mygene', 'abc', '7157', ?, '2025-01-01T00:00:00+00:00')",
            [json.dumps([{"text": "TP53 is a tumour suppressor.", "ref": "GeneID:7157"}])],
        )
    with closing(sqlite3.connect(tmp_path / "facets_llm.sqlite")) as db, db:
        db.execute(
            "CREATE TABLE answers (key TEXT PRIMARY KEY, entrez_id TEXT NOT NULL, "
            "answer TEXT NOT NULL, attempts INTEGER NOT NULL)"
        )
        db.execute("INSERT INTO answers VALUES ('k', '7157', ?, 1)", [json.dumps({"a": "NONE"})])
    with KeyedStore(tmp_path / "facet_embed.sqlite") as store:
        assert len(store) == 0
        store.put_many({"k": b"new"})
        assert store.get_many(["k"]) == {"k": b"new"}
    with GeneCache(tmp_path) as cache:
        assert cache.answers("mygene", "abc", ["7157", "1"]) == {
            "7157": [{"text": "TP53 is a tumour suppressor.", "ref": "GeneID:7157"}]
        }
        assert list(cache.get_many([entry_key("mygene", "abc", "7157")]))
    with AnswerCache(tmp_path) as cache:
        assert cache.answers(["k"]) == {"k": {"a": "NONE"}}
    for name in ("gene_text.sqlite", "facets_llm.sqlite"):
        with closing(sqlite3.connect(tmp_path / name)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "answers" not in tables


def test_a_non_finite_vector_is_never_stored_nor_handed_back():
    assert decode_vector(np.ones(3, np.float16).tobytes(), 3).tolist() == [1.0] * 3
    for bad in (np.array([1, np.nan, 1], np.float16), np.array([1, np.inf, 1], np.float16)):
        with pytest.raises(ValueError, match="3 finite float16 values"):
            decode_vector(bad.tobytes(), 3)
    with pytest.raises(ValueError, match="3 finite"):
        decode_vector(np.ones(4, np.float16).tobytes(), 3)
    with pytest.raises(ValueError, match="non-finite float16 values in the vectors of 1 texts"):
        finite_float16(["fine", "too large"], np.array([[1.0, 2.0], [1.0, 1e6]], np.float32))


@pytest.fixture(scope="module")
def go_rules_facets(tmp_path_factory, demo_gene_text, org_db, go_db) -> Path:
    """The facets stage's table for the demo genes (go-rules over their shipped RefSeq + GO text)."""
    tmp = tmp_path_factory.mktemp("go_rules_facets")
    run_facets(demo_gene_text, org_db, go_db, tmp / "cache", tmp)
    return tmp / "facets.parquet"


def run_facets(gene_text: Path, org_db, go_db, cache: Path, out: Path) -> dict:
    inputs = {"gene_text": gene_text, "facets_yaml": FACETS_YAML, "org_db": org_db, "go_db": go_db}
    outputs = {"facets": out / "facets.parquet", "report": out / "facets_report.json"}
    params = section_params(
        "facets",
        backend="go-rules",
        cache_dir=str(cache),
        excluded_evidence=["ND"],
        code_sha256="code",
    )
    return facets_stage.run(inputs, outputs, params)


def test_facets_from_a_corrupted_cache_are_computed_again(
    demo_gene_text, org_db, go_db, go_rules_facets, tmp_path, caplog
):
    clean = pd.read_parquet(go_rules_facets)
    cache = tmp_path / "cache"
    first = run_facets(demo_gene_text, org_db, go_db, cache, tmp_path)
    genes = first["genes_computed"]
    overwrite_inside_values(cache / "facets.sqlite", 5, LETTERS)
    again = run_facets(demo_gene_text, org_db, go_db, cache, tmp_path)
    assert (genes, again["genes_computed"]) == (clean["entrez_id"].nunique(), 5)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "facets.parquet"), clean)
    garble_header(cache / "facets.sqlite")
    rebuilt = run_facets(demo_gene_text, org_db, go_db, cache, tmp_path)
    assert rebuilt["genes_computed"] == genes
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "facets.parquet"), clean)
    assert any("5 cached values failed verification" in w for w in warnings_of(caplog))
    assert any("SQLite cannot read this cache" in w for w in warnings_of(caplog))


def embed(facets: Path, cache: Path, tensor: Path) -> dict:
    """The stage with the packaged MiniLM, texts cut to 128 tokens: the cache is the subject, not the
    encoder, and a third of the tokens leaves less to encode."""
    params = section_params(
        "facet_embed", encoder={"max_length": 128}, cache_dir=str(cache), code_sha256="code"
    )
    return facet_embed.run({"facets": facets}, {"tensor": tensor}, params)


def test_vectors_overwritten_in_the_cache_are_encoded_again(go_rules_facets, tmp_path, caplog):
    """The issue's fault: bytes overwritten inside 20 cached vectors (the database still sound) gave a
    facet tensor with NaNs and values up to 65,184. Now those 20 texts are encoded again, and the tensor
    equals the clean (cold) run's byte for byte; so it does after garbage over the file's header."""
    cache, database = tmp_path / "cache", tmp_path / "cache" / "facet_embed.sqlite"
    clean = embed(go_rules_facets, cache, tmp_path / "clean.safetensors")
    expected = load_facet_tensor(tmp_path / "clean.safetensors")
    hit = overwrite_inside_values(database, 20, NAN_AND_HUGE)
    with closing(sqlite3.connect(database)) as db:
        corrupted = [
            db.execute("SELECT value FROM entries WHERE key = ?", [key]).fetchone()[0]
            for key in hit
        ]
    assert all(np.isnan(np.frombuffer(value, np.float16)).any() for value in corrupted)
    again = embed(go_rules_facets, cache, tmp_path / "again.safetensors")
    assert (clean["texts_encoded"], again["texts_encoded"]) == (clean["distinct_texts"], 20)
    got = load_facet_tensor(tmp_path / "again.safetensors")
    assert np.array_equal(got.mask, expected.mask)
    assert got.embeddings.tobytes() == expected.embeddings.tobytes()
    assert (
        f"{database}: 20 cached values failed verification (20 × checksum differs); dropped, "
        "they are computed again"
    ) in warnings_of(caplog)

    garble_header(database)
    rebuilt = embed(go_rules_facets, cache, tmp_path / "rebuilt.safetensors")
    assert rebuilt["texts_encoded"] == clean["distinct_texts"]
    got = load_facet_tensor(tmp_path / "rebuilt.safetensors")
    assert got.embeddings.tobytes() == expected.embeddings.tobytes()
    (aside,) = cache.glob("facet_embed.sqlite.unreadable-*")
    assert any(f"moved it aside to {aside}" in warning for warning in warnings_of(caplog))
    assert embed(go_rules_facets, cache, tmp_path / "warm.safetensors")["texts_encoded"] == 0

"""Fetching the annotation databases from a real HTTP server on loopback, and the SQL queries on tiny real
SQLite files built here with GO.db's and org.Hs.eg.db's table layout (answers worked out by hand)."""

import sqlite3
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dygenept.data import annotation_db
from dygenept.errors import InputError
from dygenept.io.artifacts import sha256_file
from dygenept.registry import ANNOTATION_DATABASES
from dygenept.stages.fetch_annotations import (
    AnnotationFetchError,
    check_sqlite,
    fetch_package,
    fetch_with_tarball,
)

NO_SUCH_VERSION = "0.0-nonexistent"
GO_DB, ORG_HS_EG = ANNOTATION_DATABASES["go"], ANNOTATION_DATABASES["org_hs_eg"]

# A five-term GO: 1 ⊃ 2 ⊃ 3 (BP), 4 unrelated (BP), 5 (MF); 9 is obsolete.
TERMS = [
    (1, "GO:0000001", "root process", "BP", "The root."),
    (2, "GO:0000002", "middle process", "BP", "Below the root."),
    (3, "GO:0000003", "leaf process", "BP", None),
    (4, "GO:0000004", "other process", "BP", "Elsewhere."),
    (5, "GO:0000005", "some activity", "MF", "A function."),
]
BP_OFFSPRING = [(1, 2), (1, 3), (2, 3)]


def tiny_go(path):
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE go_term (_id INTEGER PRIMARY KEY, go_id TEXT, term TEXT, ontology TEXT, definition TEXT)"
        )
        for table in ("go_bp_offspring", "go_mf_offspring", "go_cc_offspring"):
            db.execute(f"CREATE TABLE {table} (_id INTEGER, _offspring_id INTEGER)")
        db.execute("CREATE TABLE go_obsolete (go_id TEXT, term TEXT, ontology TEXT)")
        db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        db.executemany("INSERT INTO go_term VALUES (?, ?, ?, ?, ?)", TERMS)
        db.executemany("INSERT INTO go_bp_offspring VALUES (?, ?)", BP_OFFSPRING)
        db.execute("INSERT INTO go_obsolete VALUES ('GO:0000009', 'gone', 'BP')")
        db.executemany(
            "INSERT INTO metadata VALUES (?, ?)",
            [("GOSOURCEDATE", "2022-07-01"), ("DBSCHEMA", "GO_DB")],
        )
    return path


def tiny_org(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE genes (_id INTEGER PRIMARY KEY, gene_id TEXT)")
        db.execute("CREATE TABLE gene_info (_id INTEGER, gene_name TEXT, symbol TEXT)")
        db.execute("CREATE TABLE alias (_id INTEGER, alias_symbol TEXT)")
        for table in ("go_bp", "go_mf", "go_cc"):
            db.execute(
                f"CREATE TABLE {table} (_id INTEGER, go_id TEXT, evidence TEXT, category TEXT)"
            )
        db.executemany("INSERT INTO genes VALUES (?, ?)", [(1, "100"), (2, "200")])
        db.executemany(
            "INSERT INTO gene_info VALUES (?, ?, ?)",
            [(1, "gene one", "ONE"), (2, "gene two", "TWO")],
        )
        db.executemany("INSERT INTO alias VALUES (?, ?)", [(1, "ONE"), (1, "UNO"), (2, "TWO")])
        db.executemany(
            "INSERT INTO go_bp VALUES (?, ?, ?, 'BP')",
            [(1, "GO:0000003", "IDA"), (1, "GO:0000001", "ND"), (2, "GO:0000004", "IEA")],
        )
        db.executemany("INSERT INTO go_mf VALUES (?, ?, ?, 'MF')", [(1, "GO:0000005", "IEA")])
        db.executemany("INSERT INTO go_cc VALUES (?, ?, ?, 'CC')", [(2, "GO:0000006", "ND")])
    return path


# ---- queries ------------------------------------------------------------------------------------------


def test_go_descendants_and_offspring_counts(tmp_path):
    go = tiny_go(tmp_path / "GO.sqlite")
    assert annotation_db.go_descendants(go, ["GO:0000001", "GO:0000003", "GO:0000005"]) == {
        "GO:0000001": {"GO:0000001", "GO:0000002", "GO:0000003"},
        "GO:0000003": {"GO:0000003"},
        "GO:0000005": {"GO:0000005"},  # looked up in go_mf_offspring, where it has none
    }
    assert annotation_db.offspring_counts(go) == {
        "GO:0000001": 2,
        "GO:0000002": 1,
    }  # leaves are absent (read as 0)
    assert annotation_db.obsolete_go_ids(go, ["GO:0000001", "GO:0000009"]) == {"GO:0000009"}
    terms = annotation_db.go_terms(go)
    assert (
        terms["GO:0000003"].definition == ""
        and terms["GO:0000005"].ontology == "MF"
        and len(terms) == 5
    )
    with pytest.raises(KeyError):
        annotation_db.go_descendants(go, ["GO:0000009"])


def test_gene_queries_on_a_tiny_org_db(tmp_path):
    org = tiny_org(tmp_path / "org.Hs.eg.sqlite")
    assert annotation_db.gene_go_annotations(org) == {
        "100": {
            ("GO:0000003", "BP"),
            ("GO:0000005", "MF"),
        },  # the ND annotation is left out by default
        "200": {("GO:0000004", "BP")},
    }
    assert annotation_db.gene_go_annotations(org, ["200"], excluded_evidence=()) == {
        "200": {("GO:0000004", "BP"), ("GO:0000006", "CC")}
    }
    assert annotation_db.gene_go_annotations(org, ["100"], excluded_evidence=("ND", "IEA")) == {
        "100": {("GO:0000003", "BP")}
    }
    assert annotation_db.gene_go_annotations(org, ["999"]) == {}
    assert annotation_db.gene_records(org)["100"] == annotation_db.GeneRecord(
        "100", "ONE", "gene one"
    )
    assert sorted(annotation_db.alias_table(org)) == [
        ("ONE", "100"),
        ("TWO", "200"),
        ("UNO", "100"),
    ]


def test_databases_are_opened_read_only(tmp_path):
    go = tiny_go(tmp_path / "GO.sqlite")
    with annotation_db.connect(go) as db, pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.execute("DELETE FROM go_term")
    assert len(annotation_db.go_terms(go)) == 5


def test_check_sqlite_wants_each_packages_own_tables(tmp_path):
    go = tiny_go(tmp_path / "GO.sqlite")
    check_sqlite(go, GO_DB)
    with pytest.raises(
        AnnotationFetchError,
        match=r"lacks tables \['alias', 'gene_info', 'genes', 'go_bp'\].*org.Hs.eg.sqlite",
    ):
        check_sqlite(go, ORG_HS_EG)
    check_sqlite(tiny_org(tmp_path / "org.sqlite"), ORG_HS_EG)
    (tmp_path / "html.sqlite").write_text("<html>404 Not Found</html>")
    with pytest.raises(AnnotationFetchError, match="not a readable SQLite database"):
        check_sqlite(tmp_path / "html.sqlite", GO_DB)


# ---- fetching -----------------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path):
    """A real HTTP server on 127.0.0.1 (an ephemeral port) serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def tarball(path, members: dict):
    """members: archive name → a file to add, or None for a directory entry."""
    with tarfile.open(path, "w:gz") as archive:
        for name, source in members.items():
            if source is None:
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                archive.add(source, arcname=name)
    return path


def test_fetch_with_tarball_extracts_the_member_byte_for_byte(tmp_path, server):
    root, base = server
    go = tiny_go(tmp_path / "GO.sqlite")
    tarball(
        root / "GO.db_3.16.0.tar.gz",
        {"GO.db/DESCRIPTION": None, "GO.db/inst/extdata/GO.sqlite": go},
    )
    work = tmp_path / "work"
    work.mkdir()
    extracted = fetch_with_tarball(GO_DB, f"{base}/GO.db_3.16.0.tar.gz", work, timeout=10)
    assert extracted == work / "GO.sqlite" and extracted.read_bytes() == go.read_bytes()


def test_fetch_with_tarball_refuses_a_directory_where_the_database_should_be(tmp_path, server):
    root, base = server
    tarball(root / "GO.tar.gz", {"GO.db/inst/extdata/GO.sqlite": None})
    with pytest.raises(AnnotationFetchError, match="GO.db/inst/extdata/GO.sqlite is not a file"):
        fetch_with_tarball(GO_DB, f"{base}/GO.tar.gz", tmp_path, timeout=10)


def test_fetch_with_tarball_missing_member_and_missing_url(tmp_path, server):
    root, base = server
    (tmp_path / "README").write_text("x")
    tarball(root / "other.tar.gz", {"GO.db/README": tmp_path / "README"})
    with pytest.raises(
        AnnotationFetchError,
        match=f"{base}/other.tar.gz has no member GO.db/inst/extdata/GO.sqlite",
    ):
        fetch_with_tarball(GO_DB, f"{base}/other.tar.gz", tmp_path, timeout=10)
    with pytest.raises(InputError, match="HTTP 404"):
        fetch_with_tarball(GO_DB, f"{base}/absent.tar.gz", tmp_path, timeout=10)


def test_fetch_package_falls_back_to_the_tarball_into_a_new_directory(tmp_path, server):
    root, base = server
    tarball(
        root / "GO.db_3.16.0.tar.gz",
        {"GO.db/inst/extdata/GO.sqlite": tiny_go(tmp_path / "GO.sqlite")},
    )
    destination = (
        tmp_path / "cache" / "annotations" / "GO.sqlite"
    )  # its directory does not exist yet
    details = fetch_package(
        GO_DB, destination, apt_version=NO_SUCH_VERSION, tarball_url=f"{base}/GO.db_3.16.0.tar.gz"
    )
    assert details["method"] == "bioconductor-tarball" and details["package"] == "GO.db"
    assert details["metadata"] == {"GOSOURCEDATE": "2022-07-01", "DBSCHEMA": "GO_DB"}
    assert details["sha256"] == sha256_file(destination)
    assert annotation_db.go_descendants(destination, ["GO:0000002"]) == {
        "GO:0000002": {"GO:0000002", "GO:0000003"}
    }
    assert [p.name for p in destination.parent.iterdir()] == ["GO.sqlite"]


def test_fetch_package_keeps_the_old_database_when_the_new_one_is_not_sqlite(tmp_path, server):
    root, base = server
    (tmp_path / "fake.sqlite").write_text("this is not a database")
    tarball(
        root / "GO.db_3.16.0.tar.gz", {"GO.db/inst/extdata/GO.sqlite": tmp_path / "fake.sqlite"}
    )
    (tmp_path / "cache").mkdir()
    destination = tiny_go(tmp_path / "cache" / "GO.sqlite")  # the copy already in the cache
    before = destination.read_bytes()
    with pytest.raises(AnnotationFetchError, match="not a readable SQLite database"):
        fetch_package(
            GO_DB,
            destination,
            apt_version=NO_SUCH_VERSION,
            tarball_url=f"{base}/GO.db_3.16.0.tar.gz",
        )
    assert destination.read_bytes() == before
    assert [p.name for p in destination.parent.iterdir()] == [
        "GO.sqlite"
    ]  # no work directory left behind


def test_fetch_package_without_a_tarball_reports_apt_and_the_fixes(tmp_path):
    with pytest.raises(AnnotationFetchError) as error:
        fetch_package(GO_DB, tmp_path / "GO.sqlite", apt_version=NO_SUCH_VERSION, tarball_url=None)
    message = str(error.value)
    assert (
        message.startswith("could not fetch GO.db: apt:")
        and "annotations.sqlite" in message
        and "GO.db/extdata/" in message
    )
    assert not (tmp_path / "GO.sqlite").exists()


def test_fetch_package_from_a_tarball_without_the_database_names_the_fix_and_leaves_nothing(
    tmp_path, server
):
    root, base = server
    (tmp_path / "README").write_text("no database here")
    tarball(root / "GO.db_3.16.0.tar.gz", {"GO.db/README": tmp_path / "README"})
    (tmp_path / "cache").mkdir()
    with pytest.raises(
        AnnotationFetchError, match="has no member GO.db/inst/extdata/GO.sqlite"
    ) as error:
        fetch_package(
            GO_DB, tmp_path / "cache" / "GO.sqlite", NO_SUCH_VERSION, f"{base}/GO.db_3.16.0.tar.gz"
        )
    assert "annotations.sqlite" in str(error.value)  # the fix: point at an existing copy
    assert list((tmp_path / "cache").iterdir()) == []

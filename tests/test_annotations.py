"""Fetching the annotation databases: the Bioconductor-tarball fallback against a loopback HTTP server."""

import sqlite3
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dygenept.stages.fetch_annotations import (
    GO_DB,
    AnnotationFetchError,
    check_sqlite,
    fetch_package,
    read_metadata,
)


def tiny_go_sqlite(path):
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE go_term (_id INTEGER PRIMARY KEY, go_id TEXT, term TEXT, ontology TEXT, definition TEXT)"
        )
        db.execute("CREATE TABLE go_bp_offspring (_id INTEGER, _offspring_id INTEGER)")
        db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        db.execute("INSERT INTO metadata VALUES ('GOSOURCEDATE', '2022-07-01')")


def write_tarball(path, member_name, member_path):
    with tarfile.open(path, "w:gz") as archive:
        archive.add(member_path, arcname=member_name)


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_tarball_fallback_when_apt_cannot_serve_the_version(tmp_path, served):
    root, base = served
    tiny_go_sqlite(tmp_path / "GO.sqlite")
    write_tarball(
        root / "GO.db_3.16.0.tar.gz", "GO.db/inst/extdata/GO.sqlite", tmp_path / "GO.sqlite"
    )
    destination = tmp_path / "cache" / "GO.sqlite"
    destination.parent.mkdir()
    details = fetch_package(
        GO_DB,
        destination,
        apt_version="0.0-no-such-version",
        tarball_url=f"{base}/GO.db_3.16.0.tar.gz",
    )
    assert details["method"] == "bioconductor-tarball"
    assert read_metadata(destination) == {"GOSOURCEDATE": "2022-07-01"}
    assert sorted(p.name for p in destination.parent.iterdir()) == [
        "GO.sqlite"
    ]  # no temporary files left


def test_tarball_without_the_database_is_refused(tmp_path, served):
    root, base = served
    (tmp_path / "README").write_text("no database here")
    write_tarball(root / "GO.db_3.16.0.tar.gz", "GO.db/README", tmp_path / "README")
    (tmp_path / "cache").mkdir()
    with pytest.raises(
        AnnotationFetchError, match="has no member GO.db/inst/extdata/GO.sqlite"
    ) as error:
        fetch_package(
            GO_DB,
            tmp_path / "cache" / "GO.sqlite",
            "0.0-no-such-version",
            f"{base}/GO.db_3.16.0.tar.gz",
        )
    assert "annotations.sqlite" in str(error.value)  # the fix: point at an existing copy
    assert not (tmp_path / "cache" / "GO.sqlite").exists()


def test_a_file_that_is_not_the_database_is_rejected(tmp_path):
    (tmp_path / "GO.sqlite").write_bytes(b"plain text, not SQLite")
    with pytest.raises(AnnotationFetchError, match="not a readable SQLite database"):
        check_sqlite(tmp_path / "GO.sqlite", GO_DB)
    with sqlite3.connect(tmp_path / "other.sqlite") as db:
        db.execute("CREATE TABLE something (x)")
    with pytest.raises(AnnotationFetchError, match="lacks tables"):
        check_sqlite(tmp_path / "other.sqlite", GO_DB)

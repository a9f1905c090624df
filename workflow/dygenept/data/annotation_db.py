"""Queries of Bioconductor's org.Hs.eg.db and GO.db SQLite databases (read-only).

Fetching the databases is the ``fetch_annotations`` stage's job; every other stage reads them through here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

ONTOLOGIES = ("BP", "MF", "CC")


def table_names(path: Path) -> list[str]:
    with connect(path) as db:
        return [
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view')")
        ]


def connect(path: str | Path) -> sqlite3.Connection:
    """Open read-only: the databases are shared inputs that no stage may change."""
    if not Path(path).is_file():
        raise InputError(
            f"{path}: annotation database not found. Fix: run rule fetch_annotations, or correct config "
            "'annotations.sqlite'."
        )
    return sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)


def read_metadata(path: str | Path) -> dict[str, str]:
    with connect(path) as db:
        return dict(db.execute("SELECT name, value FROM metadata").fetchall())


@dataclass(frozen=True)
class GeneRecord:
    entrez_id: str
    symbol: str
    name: str


def gene_records(org_db: str | Path) -> dict[str, GeneRecord]:
    """Every gene in org.Hs.eg.db, keyed by Entrez id."""
    with connect(org_db) as db:
        rows = db.execute(
            "SELECT g.gene_id, i.symbol, i.gene_name FROM genes g JOIN gene_info i ON g._id = i._id"
        ).fetchall()
    return {entrez: GeneRecord(entrez, symbol, name) for entrez, symbol, name in rows}


def alias_table(org_db: str | Path) -> list[tuple[str, str]]:
    """(alias symbol, Entrez id) pairs, the official symbols included."""
    with connect(org_db) as db:
        return db.execute(
            "SELECT a.alias_symbol, g.gene_id FROM alias a JOIN genes g ON a._id = g._id"
        ).fetchall()


def gene_go_annotations(
    org_db: str | Path,
    entrez_ids: Iterable[str] | None = None,
    excluded_evidence: Iterable[str] = ("ND",),
) -> dict[str, set[tuple[str, str]]]:
    """Direct GO annotations: Entrez id → {(GO id, ontology)}; ``None`` means every gene."""
    excluded = tuple(excluded_evidence)
    clauses, args = [], []
    if excluded:
        clauses.append(f"a.evidence NOT IN ({','.join('?' * len(excluded))})")
        args.extend(excluded)
    wanted = None if entrez_ids is None else set(entrez_ids)
    annotations: dict[str, set[tuple[str, str]]] = {}
    with connect(org_db) as db:
        for ontology in ONTOLOGIES:
            where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
            query = f"SELECT g.gene_id, a.go_id FROM go_{ontology.lower()} a JOIN genes g ON a._id = g._id {where}"
            for entrez, go_id in db.execute(query, args):
                if wanted is None or entrez in wanted:
                    annotations.setdefault(entrez, set()).add((go_id, ontology))
    return annotations


@dataclass(frozen=True)
class GoTerm:
    go_id: str
    term: str
    ontology: str
    definition: str


def go_terms(go_db: str | Path) -> dict[str, GoTerm]:
    with connect(go_db) as db:
        rows = db.execute(
            "SELECT go_id, term, ontology, COALESCE(definition, '') FROM go_term"
        ).fetchall()
    return {
        go_id: GoTerm(go_id, term, ontology, definition)
        for go_id, term, ontology, definition in rows
    }


def go_synonyms(go_db: str | Path) -> dict[str, list[str]]:
    """GO id → its synonyms (exact, broad, narrow and related: GO.db keeps no scope), not secondary ids."""
    synonyms: dict[str, list[str]] = {}
    with connect(go_db) as db:
        rows = db.execute(
            "SELECT t.go_id, s.synonym FROM go_synonym s JOIN go_term t ON s._id = t._id "
            "WHERE s.like_go_id = 0 ORDER BY t.go_id, s.synonym"
        ).fetchall()
    for go_id, synonym in rows:
        synonyms.setdefault(go_id, []).append(synonym)
    return synonyms


def go_descendants(go_db: str | Path, roots: Iterable[str]) -> dict[str, set[str]]:
    """root GO id → the root and all its offspring (is_a, part_of and regulates, as GO.db closes them)."""
    result: dict[str, set[str]] = {}
    with connect(go_db) as db:
        for root in roots:
            ontology_row = db.execute(
                "SELECT ontology FROM go_term WHERE go_id = ?", (root,)
            ).fetchone()
            if ontology_row is None:
                raise KeyError(root)
            table = f"go_{ontology_row[0].lower()}_offspring"
            rows = db.execute(
                f"SELECT c.go_id FROM {table} o JOIN go_term p ON o._id = p._id "
                f"JOIN go_term c ON o._offspring_id = c._id WHERE p.go_id = ?",
                (root,),
            ).fetchall()
            result[root] = {root} | {row[0] for row in rows}
    return result


def obsolete_go_ids(go_db: str | Path, ids: Iterable[str]) -> set[str]:
    ids = list(ids)
    with connect(go_db) as db:
        rows = db.execute(
            f"SELECT go_id FROM go_obsolete WHERE go_id IN ({','.join('?' * len(ids))})", ids
        ).fetchall()
    return {row[0] for row in rows}


def offspring_counts(go_db: str | Path) -> dict[str, int]:
    """GO id → number of descendant terms (0 for leaves): fewer means more specific."""
    counts: dict[str, int] = {}
    with connect(go_db) as db:
        for ontology in ONTOLOGIES:
            rows = db.execute(
                f"SELECT t.go_id, COUNT(*) FROM go_{ontology.lower()}_offspring o "
                "JOIN go_term t ON o._id = t._id GROUP BY t.go_id"
            ).fetchall()
            counts.update(dict(rows))
    return counts

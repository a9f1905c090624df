"""The fetch_string stage: STRING's official human files → one Entrez edge table for the enrich stage.

Downloads (once, resumable, checksum-pinned) ``9606.protein.links.v12.0.txt.gz`` (space-separated
``protein1 protein2 combined_score``, both directions listed), ``9606.protein.info.v12.0.txt.gz``
(``#string_protein_id preferred_name protein_size annotation``, tab-separated) and
``9606.protein.aliases.v12.0.txt.gz`` (``#string_protein_id alias source``, tab-separated). A STRING
protein maps to the Entrez id its aliases give (sources naming Entrez; HGNC's first), else to its preferred
name through org.Hs.eg.db. The links file (~13 M lines for human) is read in chunks and filtered by score
first. The output has one row per gene pair (``gene1_entrez < gene2_entrez``, the best score of the pair),
the columns the ``string_table`` source reads.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from ..data.symbols import SymbolIndex, map_symbol
from ..errors import InputError
from ..io.artifacts import atomic_path
from ..io.http import RetryPolicy, download_first, verify_checksum

log = logging.getLogger(__name__)

FILES = ("links", "info", "aliases")
LINKS_COLUMNS = ["protein1", "protein2", "combined_score"]
CHUNK_ROWS = 2_000_000


def _chunks(path: Path, names: list[str], sep: str):
    """A STRING file in chunks, its header line skipped; a damaged file (truncated gzip, bad rows) is an InputError."""
    try:
        # STRING's annotation texts carry quote characters: read every field literally.
        yield from pd.read_csv(
            path,
            sep=sep,
            names=names,
            header=0,
            dtype=str,
            chunksize=CHUNK_ROWS,
            on_bad_lines="error",
            quoting=csv.QUOTE_NONE,
        )
    except (EOFError, OSError, ValueError, pd.errors.ParserError) as error:
        raise InputError(
            f"{path}: damaged or not a STRING file ({type(error).__name__}: {error}). "
            "Fix: delete it so that it is downloaded again, or check the URL in config 'enrich.string_files'."
        ) from error


def entrez_by_protein(aliases_path: Path) -> dict[str, str]:
    """STRING protein → Entrez id from the aliases file (alias sources naming Entrez; HGNC-derived ones first)."""
    rows = []
    for chunk in _chunks(aliases_path, ["protein", "alias", "source"], "\t"):
        chunk = chunk[
            chunk["source"].str.contains("entrez", case=False, na=False)
            & chunk["alias"].str.fullmatch(r"\d+", na=False)
        ]
        rows.append(chunk)
    table = pd.concat(rows) if rows else pd.DataFrame(columns=["protein", "alias", "source"])
    table = table.assign(rank=~table["source"].str.contains("HGNC", case=False)).sort_values(
        ["protein", "rank", "alias"]
    )
    first = table.drop_duplicates("protein")
    return dict(zip(first["protein"], first["alias"]))


def preferred_names(info_path: Path) -> dict[str, str]:
    names = {}
    for chunk in _chunks(
        info_path, ["protein", "preferred_name", "protein_size", "annotation"], "\t"
    ):
        names.update(zip(chunk["protein"], chunk["preferred_name"]))
    return names


def protein_to_entrez(
    aliases_path: Path, info_path: Path, index: SymbolIndex
) -> tuple[dict[str, str], dict]:
    """Every STRING protein's Entrez id, with how many came from aliases, from names, or stayed unmapped."""
    by_alias = entrez_by_protein(aliases_path)
    names = preferred_names(info_path)
    mapping = dict(by_alias)
    by_name = 0
    for protein, name in names.items():
        if protein not in mapping:
            entrez = map_symbol(name, index, {}).entrez_id
            if entrez:
                mapping[protein], by_name = entrez, by_name + 1
    unmapped = sorted(set(names) - set(mapping))
    return mapping, {
        "proteins": len(names),
        "by_alias": len(by_alias),
        "by_name": by_name,
        "unmapped": len(unmapped),
        "unmapped_examples": [names[p] for p in unmapped[:10]],
    }


def entrez_edges(
    links_path: Path, mapping: dict[str, str], symbols: dict[str, str], min_combined_score: int
) -> pd.DataFrame:
    """One row per Entrez gene pair at or above the score, its best score, with both symbols."""
    kept = []
    for chunk in _chunks(links_path, LINKS_COLUMNS, " "):
        scores = pd.to_numeric(chunk["combined_score"], errors="coerce")
        if scores.isna().any():
            raise InputError(
                f"{links_path}: combined_score is not a number in some rows. Fix: delete the file to download it again."
            )
        chunk = chunk.assign(combined_score=scores.astype("int32"))[scores >= min_combined_score]
        genes1, genes2 = chunk["protein1"].map(mapping), chunk["protein2"].map(mapping)
        pairs = pd.DataFrame(
            {
                "gene1_entrez": genes1,
                "gene2_entrez": genes2,
                "combined_score": chunk["combined_score"],
            }
        ).dropna()
        kept.append(
            pairs[pairs["gene1_entrez"] < pairs["gene2_entrez"]]
        )  # each undirected edge once; no self-loops
    edges = (
        pd.concat(kept, ignore_index=True)
        if kept
        else pd.DataFrame(columns=["gene1_entrez", "gene2_entrez", "combined_score"])
    )
    edges = edges.groupby(["gene1_entrez", "gene2_entrez"], as_index=False)["combined_score"].max()
    edges.insert(0, "gene2_symbol", edges["gene2_entrez"].map(symbols))
    edges.insert(0, "gene1_symbol", edges["gene1_entrez"].map(symbols))
    return edges


def fetch_files(settings: dict, cache_dir: Path) -> dict[str, dict]:
    """Download (or reuse) each STRING file into ``cache_dir``; {file: {path, url, sha256}}."""
    policy = RetryPolicy(attempts=settings["attempts"], timeout_seconds=settings["timeout_seconds"])
    fetched = {}
    for name in FILES:
        source = settings[name]
        path = cache_dir / Path(urlsplit(source["url"]).path).name
        used = source["url"]
        if not path.is_file():
            used = download_first(
                [source["url"]] + ([source["mirror_url"]] if source["mirror_url"] else []),
                path,
                policy,
            )
        sha256 = verify_checksum(
            path, source["checksum"], used, f"enrich.string_files.{name}.checksum"
        )
        fetched[name] = {"path": path, "url": used, "sha256": sha256}
    return fetched


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Download STRING's human files once and convert them to an Entrez edge table.

    Reads ``org_db``. Writes ``edges`` (TSV.gz). Params: ``string_files`` (urls, checksums, cache_dir,
    ``min_combined_score``: the lowest score kept).
    """
    settings = params["string_files"]
    target = Path(outputs["edges"])
    files = fetch_files(settings, target.parent)
    index = SymbolIndex.from_db(inputs["org_db"])
    symbols = {entrez: record.symbol for entrez, record in index.records.items()}
    mapping, mapped = protein_to_entrez(files["aliases"]["path"], files["info"]["path"], index)
    edges = entrez_edges(files["links"]["path"], mapping, symbols, settings["min_combined_score"])
    if edges.empty:
        raise InputError(
            f"{files['links']['path']}: no edge at combined_score ≥ {settings['min_combined_score']} maps to "
            "Entrez ids. Fix: check the files are STRING's human (9606) files."
        )
    with atomic_path(target) as tmp:
        edges.to_csv(tmp, sep="\t", index=False, compression="gzip")
    log.info(
        "STRING: %d gene pairs at combined_score ≥ %d over %d genes; proteins mapped %s",
        len(edges),
        settings["min_combined_score"],
        len(set(edges["gene1_entrez"]) | set(edges["gene2_entrez"])),
        mapped,
    )
    return {
        "edges": len(edges),
        "proteins": mapped,
        "files": {name: {"url": f["url"], "sha256": f["sha256"]} for name, f in files.items()},
    }

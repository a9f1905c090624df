"""The knowledge and neighbour sources by name: the one place the Snakefile and the stages read them from.

Standard library only: the Snakefile imports this module while it parses.
"""

from __future__ import annotations

# knowledge.sources that ask a web service (their answers are cached per gene).
NETWORK_TEXT_SOURCES = ("mygene", "entrez", "uniprot")
# The file-backed source of each stage; its config section needs a 'path' when selected.
FILE_SOURCES = {"knowledge": "refseq_tsv", "enrich": "string_table"}
# Per-source settings sections of the knowledge and enrich configs: only the selected ones reach a stage.
SOURCE_SECTIONS = {
    "knowledge": ("refseq_tsv", *NETWORK_TEXT_SOURCES),
    "enrich": ("string_table", "string_files"),
}
# The ``Sentence.source`` each knowledge source writes.
SOURCE_LABELS = {
    "go": "GO",
    "refseq_tsv": "RefSeq",
    "mygene": "NCBI Gene (MyGene.info)",
    "entrez": "NCBI Gene (E-utilities)",
    "uniprot": "UniProtKB/Swiss-Prot",
}
# Sentences that describe a gene's function in prose (not its name line or GO term list).
PROSE_LABELS = frozenset(SOURCE_LABELS.values()) - {SOURCE_LABELS["go"]}


def selected_sources(stage: str, settings: dict) -> list[str]:
    """The sources a stage's config section selects: knowledge lists them, enrich names one."""
    return list(settings["sources"]) if stage == "knowledge" else [settings["neighbours"]]


def lowest_string_score(threshold: int, fallback: int | None) -> int:
    """The lowest STRING combined score the enrich stage may use: its threshold, or the fallback below it."""
    return threshold if fallback is None else min(threshold, fallback)

"""Per-gene answers of the network text sources, kept on disk so that a killed run redoes only missing genes.

A key scheme over the one store (``io.keyed_store``), in ``<cache_dir>/gene_text.sqlite``: one entry per
(source, query settings, Entrez id), its value the raw texts the source gave for that gene as JSON, ``[]``
when it has none. Each batch's answers commit as they arrive; a committed entry survives SIGKILL. A failed
fetch writes nothing, so the next run asks again. The settings key is the sha256 of the canonical JSON of
what shapes the answer (URL, fields, query), so a changed query never reads an old answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...io.artifacts import canonical_json, sha256_text
from ...io.keyed_store import FormerTable, KeyedStore

CACHE_FILE = "gene_text.sqlite"
# The table this cache kept before the one store; its answers move over with the same keys.
_FORMER = FormerTable(
    "answers",
    "SELECT source || ':' || settings || ':' || entrez_id, CAST(answer AS BLOB) FROM answers",
)

Answer = list[dict[str, str]]  # the raw texts of one gene, each ``RawText`` as a dict
_RAW_TEXT_FIELDS = {"text", "ref"}


def settings_key(settings: dict[str, Any]) -> str:
    return sha256_text(canonical_json(settings))[:16]


def entry_key(source: str, settings: str, entrez_id: str) -> str:
    return f"{source}:{settings}:{entrez_id}"


def decode_answer(value: bytes) -> Answer:
    answer = json.loads(value)
    if not isinstance(answer, list) or any(
        not isinstance(text, dict) or set(text) != _RAW_TEXT_FIELDS for text in answer
    ):
        raise ValueError("not a list of texts with their references")
    return answer


class GeneCache(KeyedStore):
    """Answers keyed by (source, settings key, Entrez id); safe to share between threads."""

    def __init__(self, directory: str | Path):
        super().__init__(Path(directory) / CACHE_FILE, former=_FORMER)

    def answers(self, source: str, settings: str, entrez_ids: Iterable[str]) -> dict[str, Answer]:
        keys = {entry_key(source, settings, gene): gene for gene in entrez_ids}
        found = self.get_many(keys, decode_answer)
        return {keys[key]: answer for key, answer in found.items()}

    def keep_answers(self, source: str, settings: str, answers: dict[str, Answer]) -> None:
        """Store one batch's answers in one transaction."""
        self.put_many(
            {
                entry_key(source, settings, gene): json.dumps(answer, ensure_ascii=False).encode()
                for gene, answer in answers.items()
            }
        )

"""One validated answer per gene, a key scheme over the one store (``io.keyed_store``).

The key is the sha256 of the canonical JSON of {backend, model id + revision, engine version, rendered
messages, sampling parameters (seed included), answer schema}: a changed prompt, facet list, model or
setting changes every key, and a new gene list finds the genes it shares with an old one. Only
validated answers are stored; each batch is committed as it finishes, so a killed run resumes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ...io.artifacts import canonical_json, sha256_text
from ...io.keyed_store import FormerTable, KeyedStore

CACHE_FILE = "facets_llm.sqlite"
# The table this cache kept before the one store; its answers move over with the same keys.
_FORMER = FormerTable("answers", "SELECT key, CAST(answer AS BLOB) FROM answers")

Answer = dict[str, str]  # facet id → paragraph or NONE


def cache_key(identity: dict, messages: list[dict[str, str]], sampling: dict, schema: dict) -> str:
    """``identity``: backend, model, revision and engine version, as the engine reports them."""
    return sha256_text(
        canonical_json({**identity, "messages": messages, "sampling": sampling, "schema": schema})
    )


def decode_answer(value: bytes) -> Answer:
    answer = json.loads(value)
    if not isinstance(answer, dict) or not all(isinstance(text, str) for text in answer.values()):
        raise ValueError("not a facet answer")
    return answer


class AnswerCache(KeyedStore):
    """``key → validated answer`` in ``<cache_dir>/facets_llm.sqlite``; safe to reopen after a kill."""

    def __init__(self, cache_dir: str | Path):
        super().__init__(Path(cache_dir) / CACHE_FILE, former=_FORMER)

    def answers(self, keys: Iterable[str]) -> dict[str, Answer]:
        return self.get_many(keys, decode_answer)

    def keep_answers(self, answers: dict[str, Answer]) -> None:
        """One batch's validated answers, committed together."""
        self.put_many({key: json.dumps(answer).encode() for key, answer in answers.items()})

"""Network sources of gene function text, and the one loop that fetches them through the cache.

A source turns a batch of Entrez ids into raw texts per gene (``fetch``), through the shared
``HttpClient`` (retries, rate limit per host). ``fetch_texts`` asks only for genes the ``GeneCache``
lacks, runs batches on a bounded thread pool, stores each batch's answers as it arrives (a gene the
source knows nothing about is stored as ``[]``), and returns every other gene as a ``Failure`` with its
reason: failures are not cached, so the next run asks again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

from ...io.http import FetchError, HttpClient, RetryPolicy
from ...settings import read_fields
from .gene_cache import GeneCache, settings_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawText:
    """A source's text for one gene, before cleaning; ``ref`` names the record (``GeneID:7157``, ``UniProtKB:P04637``)."""

    text: str
    ref: str


@dataclass(frozen=True)
class HttpSettings:
    """Config ``knowledge.http``: shared by every network source."""

    timeout_seconds: float
    attempts: int
    backoff_seconds: float
    max_workers: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> HttpSettings:
        """From the validated ``knowledge`` section."""
        return read_fields(cls, params["http"])

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.attempts,
            backoff_seconds=self.backoff_seconds,
            timeout_seconds=self.timeout_seconds,
        )


def base_url(url: str) -> str:
    """A source's configured URL without a trailing slash (paths are appended with one)."""
    return url.rstrip("/")


class TextSource(Protocol):
    name: ClassVar[str]  # the config key
    label: ClassVar[str]  # what ``Sentence.source`` says
    url: str
    batch_size: int
    requests_per_second: float

    def cache_settings(self) -> dict[str, Any]:
        """What shapes an answer (URL, fields, query): part of the cache key."""

    def fetch(self, client: HttpClient, entrez_ids: list[str]) -> dict[str, list[RawText]]:
        """Texts of the genes in one batch; genes left out have none. Raises ``FetchError``."""


@dataclass(frozen=True)
class Failure:
    source: str
    entrez_id: str
    symbol: str
    reason: str


@dataclass
class SourceResult:
    answers: dict[str, list[RawText]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    from_cache: int = 0
    fetched: int = 0
    seconds: float = 0.0


def batches(items: list[str], size: int) -> list[list[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def cache_key(source: TextSource) -> str:
    return settings_key({"source": source.name, **source.cache_settings()})


def fetch_texts(
    source: TextSource,
    symbols: dict[str, str],
    cache: GeneCache,
    client: HttpClient,
    max_workers: int,
) -> SourceResult:
    """Every gene of ``symbols`` (Entrez id → symbol) answered from the cache, the source, or listed as failed."""
    started = time.perf_counter()
    key = cache_key(source)
    cached = cache.answers(source.name, key, symbols)
    result = SourceResult(
        answers={gene: [RawText(**text) for text in texts] for gene, texts in cached.items()},
        from_cache=len(cached),
    )
    missing = [gene for gene in symbols if gene not in cached]
    todo = batches(missing, source.batch_size)
    log.info(
        "%s: %d genes cached, %d to fetch in %d batches",
        source.name,
        len(cached),
        len(missing),
        len(todo),
    )
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=source.name) as pool:
        futures = {pool.submit(source.fetch, client, batch): batch for batch in todo}
        for done, future in enumerate(as_completed(futures), start=1):
            batch = futures[future]
            try:
                found = future.result()
            except FetchError as error:
                log.warning("%s: batch of %d genes failed: %s", source.name, len(batch), error)
                result.failures += [
                    Failure(source.name, gene, symbols[gene], str(error)) for gene in batch
                ]
                continue
            answers = {gene: found.get(gene, []) for gene in batch}
            cache.keep_answers(
                source.name,
                key,
                {gene: [asdict(text) for text in texts] for gene, texts in answers.items()},
            )
            result.answers.update(answers)
            result.fetched += len(batch)
            if done % 10 == 0 or done == len(todo):
                log.info("%s: %d/%d batches done", source.name, done, len(todo))
    result.seconds = time.perf_counter() - started
    return result

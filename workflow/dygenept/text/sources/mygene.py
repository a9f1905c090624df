"""NCBI Gene summaries through MyGene.info, with the official ``mygene`` client.

``MyGeneInfo.getgenes(ids, fields=...)`` POSTs ``ids="7157","672"&fields=summary,name,symbol,alias`` as a
form to ``{url}/gene`` and gets back a JSON list, one object per id (``{"query": "7157", "_id": "7157",
"summary": ...}``, or ``{"query": ..., "notfound": true}``). The client's own pause between batches is
switched off (our rate limiter paces requests), its httpx client gets a timeout (it has none by default),
and its HTTP cache stays off (``GeneCache`` keeps answers). Retries come from ``HttpClient.call``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
import mygene

from ...io.http import HttpClient, TransientError
from ...registry import SOURCE_LABELS
from ...settings import read_fields
from . import HttpSettings, RawText, base_url

FIELDS = "summary,name,symbol,alias"


@dataclass(frozen=True)
class MyGeneSource:
    name: ClassVar[str] = "mygene"
    label: ClassVar[str] = SOURCE_LABELS["mygene"]
    url: str
    batch_size: int
    requests_per_second: float
    timeout_seconds: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> MyGeneSource:
        """From the validated ``knowledge`` section (``mygene``; ``http`` for the time-out)."""
        section = params["mygene"]
        return read_fields(
            cls,
            section,
            url=base_url(section["url"]),
            timeout_seconds=HttpSettings.from_params(params).timeout_seconds,
        )

    def cache_settings(self) -> dict[str, Any]:
        return {"url": self.url, "fields": FIELDS}

    def _client(self) -> mygene.MyGeneInfo:
        client = mygene.MyGeneInfo()
        client.url = self.url
        client.delay = 0
        client.step = self.batch_size
        client.http_client = httpx.Client(timeout=httpx.Timeout(self.timeout_seconds))
        client.http_client_setup = True
        return client

    def fetch(self, client: HttpClient, entrez_ids: list[str]) -> dict[str, list[RawText]]:
        gene_client = self._client()

        def attempt() -> list[dict[str, Any]]:
            try:
                hits = gene_client.getgenes(entrez_ids, fields=FIELDS, verbose=False)
            except httpx.TransportError as error:  # time-out, reset, body cut short
                raise TransientError(f"{type(error).__name__}: {error}") from error
            if not isinstance(hits, list):
                raise TransientError(f"expected a JSON list, got {type(hits).__name__}")
            return hits

        try:
            hits = client.call(f"POST {self.url}/gene/", self.url, attempt)
        finally:
            gene_client.http_client.close()
        found: dict[str, list[RawText]] = {}
        for hit in hits:
            summary = hit.get("summary")
            if summary and not hit.get("notfound"):
                found.setdefault(str(hit["query"]), []).append(
                    RawText(summary, f"GeneID:{hit.get('_id', hit['query'])}")
                )
        return found

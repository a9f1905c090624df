"""NCBI Gene summaries from the E-utilities: ``efetch.fcgi?db=gene&id=...&retmode=xml``, parsed by ``Bio.Entrez``.

``Bio.Entrez.efetch`` hard-codes NCBI's address and retries and paces on its own (``max_tries``,
``sleep_between_tries``, a module-global 0.37 s gap), so the request is built here the way Biopython
builds it (``db``, ``id`` joined by commas, ``retmode``, ``tool``, ``email``, ``api_key``; POST from 200
ids on) and sent through ``HttpClient``; the Entrezgene-Set XML is parsed with ``Bio.Entrez.read``
against Biopython's bundled DTDs. Each ``Entrezgene`` gives ``Entrezgene_summary`` for its
``Entrezgene_track-info/Gene-track/Gene-track_geneid``. NCBI allows 3 requests/s, 10 with an API key
(``NCBI_API_KEY`` in the environment; never part of the cache key or the logs).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from xml.parsers.expat import ExpatError

import requests
from Bio import Entrez

from ...io.http import HttpClient, TransientError
from ...registry import SOURCE_LABELS
from ...settings import read_fields
from . import RawText, base_url

log = logging.getLogger(__name__)

API_KEY_VARIABLE = "NCBI_API_KEY"
POST_FROM_IDS = 200  # Biopython's (and NCBI's) switch from GET to POST


@dataclass(frozen=True)
class EntrezSource:
    name: ClassVar[str] = "entrez"
    label: ClassVar[str] = SOURCE_LABELS["entrez"]
    url: str
    email: str | None
    batch_size: int
    requests_per_second: float
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> EntrezSource:
        """From the validated ``knowledge`` section; the API key, if any, from ``environ``."""
        section = params["entrez"]
        api_key = (environ if environ is not None else os.environ).get(API_KEY_VARIABLE) or None
        if not section["email"]:
            log.warning(
                "config 'knowledge.entrez.email' is empty: NCBI asks every E-utilities user for a contact email"
            )
        return read_fields(
            cls,
            section,
            url=base_url(section["url"]),
            requests_per_second=section[
                "requests_per_second_with_key" if api_key else "requests_per_second"
            ],
            api_key=api_key,
        )

    def cache_settings(self) -> dict[str, Any]:
        return {"url": self.url, "db": "gene", "retmode": "xml", "field": "Entrezgene_summary"}

    def fetch(self, client: HttpClient, entrez_ids: list[str]) -> dict[str, list[RawText]]:
        query = {
            "db": "gene",
            "id": ",".join(entrez_ids),
            "retmode": "xml",
            "tool": "dygenept",
            "email": self.email,
            "api_key": self.api_key,
        }
        query = {name: value for name, value in query.items() if value}
        post = len(entrez_ids) >= POST_FROM_IDS
        records = client.request(
            "POST" if post else "GET",
            f"{self.url}/efetch.fcgi",
            parse_entrezgene_set,
            query=None if post else query,
            data=query if post else None,
        )
        found: dict[str, list[RawText]] = {}
        for record in records:
            gene_id = str(record["Entrezgene_track-info"]["Gene-track"]["Gene-track_geneid"])
            summary = str(record.get("Entrezgene_summary", "")).strip()
            if summary:
                found.setdefault(gene_id, []).append(RawText(summary, f"GeneID:{gene_id}"))
        return found


def parse_entrezgene_set(response: requests.Response) -> list[dict[str, Any]]:
    """The Entrezgene records of an efetch answer; a cut-off or malformed body is worth another attempt."""
    try:
        records = Entrez.read(io.BytesIO(response.content), validate=False)
    except (
        ValueError,
        RuntimeError,
        ExpatError,
    ) as error:  # Bio.Entrez.Parser's errors derive from ValueError
        raise TransientError(
            f"unreadable Entrezgene XML ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(records, list):
        raise TransientError(f"expected an Entrezgene-Set, got {type(records).__name__}")
    return records

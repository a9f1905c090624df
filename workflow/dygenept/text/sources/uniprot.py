"""UniProtKB/Swiss-Prot function comments from the UniProt REST API.

``GET {url}/uniprotkb/search?query=(organism_id:9606) AND (reviewed:true) AND (xref:geneid-7157 OR ...)
&fields=accession,gene_primary,xref_geneid,cc_function&format=json&size=500``; further pages follow the
``Link: <...>; rel="next"`` header (cursor pagination). Each entry's ``comments`` of ``commentType``
``FUNCTION`` give ``texts[].value``; the entry belongs to the requested genes among its
``uniProtKBCrossReferences`` with ``database`` ``GeneID``. Isoform-specific comments (``molecule`` set)
are left out, as the RefSeq cleaning leaves out isoform notes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import requests

from ...io.http import HttpClient, TransientError
from ...registry import SOURCE_LABELS
from ...settings import read_fields
from . import RawText, base_url

FIELDS = "accession,gene_primary,xref_geneid,cc_function"
HUMAN = 9606


@dataclass(frozen=True)
class UniProtSource:
    name: ClassVar[str] = "uniprot"
    label: ClassVar[str] = SOURCE_LABELS["uniprot"]
    url: str
    batch_size: int
    page_size: int
    requests_per_second: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> UniProtSource:
        """From the validated ``knowledge`` section."""
        section = params["uniprot"]
        return read_fields(cls, section, url=base_url(section["url"]))

    def cache_settings(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "query": search_query(["{id}"]),
            "fields": FIELDS,
            "comment": "FUNCTION",
        }

    def fetch(self, client: HttpClient, entrez_ids: list[str]) -> dict[str, list[RawText]]:
        wanted = set(entrez_ids)
        url: str | None = f"{self.url}/uniprotkb/search"
        query: dict[str, Any] | None = {
            "query": search_query(entrez_ids),
            "fields": FIELDS,
            "format": "json",
            "size": self.page_size,
        }
        entries: dict[str, dict[str, Any]] = {}
        while url:
            results, url = client.request("GET", url, read_page, query=query)
            query = None  # the next link carries the query and its cursor
            entries.update((entry["primaryAccession"], entry) for entry in results)
        found: dict[str, list[RawText]] = {}
        for accession in sorted(entries):
            entry = entries[accession]
            texts = function_texts(entry)
            for gene in gene_ids(entry) & wanted:
                found.setdefault(gene, []).extend(
                    RawText(text, f"UniProtKB:{accession}") for text in texts
                )
        return found


def search_query(entrez_ids: list[str]) -> str:
    genes = " OR ".join(f"xref:geneid-{gene}" for gene in entrez_ids)
    return f"(organism_id:{HUMAN}) AND (reviewed:true) AND ({genes})"


def read_page(response: requests.Response) -> tuple[list[dict[str, Any]], str | None]:
    """(the page's entries, the next page's URL or None); a body that is not the search JSON is retried."""
    body = response.json()
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise TransientError("UniProt search answer has no 'results' list")
    return body["results"], response.links.get("next", {}).get("url")


def gene_ids(entry: dict[str, Any]) -> set[str]:
    return {
        str(xref["id"])
        for xref in entry.get("uniProtKBCrossReferences", [])
        if xref.get("database") == "GeneID"
    }


def function_texts(entry: dict[str, Any]) -> list[str]:
    return [
        text["value"]
        for comment in entry.get("comments", [])
        if comment.get("commentType") == "FUNCTION" and not comment.get("molecule")
        for text in comment.get("texts", [])
        if text.get("value")
    ]

"""A real HTTP server on loopback that speaks the three gene-text APIs the knowledge stage calls.

- MyGene.info: ``POST /v3/gene/`` with the form ``ids="7157","672"&fields=...`` → a JSON list, one hit per id
  (``{"query", "_id", "_version", "symbol", "name", "alias", "summary"}`` or ``{"query", "notfound": true}``).
- NCBI E-utilities: ``GET|POST /entrez/eutils/efetch.fcgi?db=gene&id=...&retmode=xml`` → an Entrezgene-Set
  XML document (the DOCTYPE and element names of NCBI's answer).
- UniProt REST: ``GET /uniprotkb/search?query=...&fields=...&format=json&size=N`` → ``{"results": [...]}``
  with ``Link: <...cursor=...>; rel="next"`` while more pages remain, and ``X-Total-Results``.

Records come from real text: the NCBI RefSeq gene summaries in ``../shared/data`` (MyGene and E-utilities
serve them with NCBI's ``[provided by RefSeq, <date>]`` suffix), real UniProt accessions from
org.Hs.eg.db, and UniProt-shaped function comments: a few written in UniProt's style by hand, the rest
the summary's first sentences with UniProt's evidence tags (``(PubMed:...)``, ``(By similarity)``).

Faults, injected on demand per API (a queue, one per request) or for good for requests naming given genes:
``429`` / ``503`` (with ``Retry-After``), ``500``, ``slow`` (answers after the client's timeout),
``truncated_json`` (a valid HTTP answer whose body is cut in half), ``truncated_body`` (Content-Length
promised, half sent, connection closed), ``reset`` (the connection is reset without an answer).
Every request is logged with its arrival time, API, the gene ids it asked for, and the fault served.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import gzip
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.sax.saxutils import escape

import pandas as pd

FAULTS = ("429", "500", "503", "slow", "truncated_json", "truncated_body", "reset")
ENTREZGENE_DOCTYPE = (
    '<!DOCTYPE Entrezgene-Set PUBLIC "-//NLM//DTD NCBI-Entrezgene, 21st January 2005//EN" '
    '"https://www.ncbi.nlm.nih.gov/data_specs/dtd/NCBI_Entrezgene.dtd">'
)

# UniProt-style function comments (as the JSON's comments[].texts[].value carries them), by symbol.
UNIPROT_STYLE = {
    "TP53": [
        "Multifunctional transcription factor that induces cell cycle arrest, DNA repair or apoptosis upon binding "
        "to its target DNA sequence (PubMed:11025664, PubMed:12524540, PubMed:12810724). Acts as a tumor suppressor in "
        "many tumor types; induces growth arrest or apoptosis depending on the physiological circumstances and cell "
        "type (PubMed:11025664). Negatively regulates cell division by controlling expression of a set of genes "
        "required for this process (PubMed:12524540).",
        "(Microbial infection) Interacts with human papillomavirus E6 protein, which targets it for degradation "
        "(PubMed:8380212).",
    ],
    "MAPK1": [
        "Serine/threonine kinase which acts as an essential component of the MAP kinase signal transduction pathway "
        "(PubMed:19565474, PubMed:35216969). MAPK1/ERK2 and MAPK3/ERK1 are the 2 MAPKs which play an important role "
        "in the MAPK/ERK cascade (By similarity). Phosphorylates EIF4EBP1 (Probable)."
    ],
    "ACE2": [
        "Essential counter-regulatory carboxypeptidase of the renin-angiotensin hormone system (PubMed:10969042).",
        "(Microbial infection) Acts as a receptor for human coronavirus SARS-CoV and SARS-CoV-2 (PubMed:14647384, "
        "PubMed:32142651).",
    ],
}


@dataclass(frozen=True)
class GeneRecord:
    entrez_id: str
    symbol: str
    name: str
    summary: str  # NCBI Gene summary, as MyGene.info and E-utilities return it
    accession: (
        str | None
    )  # a real UniProt accession of the gene (org.Hs.eg.db), None: not in Swiss-Prot
    functions: tuple[str, ...]  # UniProt FUNCTION comment texts


@dataclass(frozen=True)
class Logged:
    time: float
    api: str
    method: str
    ids: tuple[str, ...]
    fault: str


def load_records(shared_data: Path, n: int, first: int = 0) -> dict[str, GeneRecord]:
    """``n`` genes with a RefSeq summary, in Entrez id order, starting at row ``first``; every fifth has no
    Swiss-Prot entry and every seventh no summary, as real genes sometimes do."""
    table = pd.read_csv(
        shared_data / "gene_text" / "refseq_gene_summaries_human_RefSeq220.tsv.gz",
        sep="\t",
        dtype=str,
        keep_default_na=False,
    )
    table = (
        table[table["summary"] != ""]
        .assign(order=lambda t: t["entrez_id"].astype(int))
        .sort_values("order")
    )
    wanted = set(UNIPROT_STYLE)
    chosen = pd.concat(
        [
            table[table["symbol"].isin(wanted)],
            table[~table["symbol"].isin(wanted)].iloc[first : first + n],
        ]
    )
    chosen = chosen.iloc[:n]
    with gzip.open(
        shared_data / "go" / "human_entrez_uniprot_orgHsEgDb_2022-09.tsv.gz", "rt"
    ) as handle:
        accessions = pd.read_csv(handle, sep="\t", dtype=str)
    # Swiss-Prot accessions look like P04637 / Q9BYF1 / O15111; prefer those over TrEMBL ones.
    accessions = accessions[accessions["uniprot_acc"].str.fullmatch(r"[OPQ][0-9][A-Z0-9]{3}[0-9]")]
    accession_of = accessions.groupby("entrez_id")["uniprot_acc"].first().to_dict()
    records = {}
    for index, row in enumerate(chosen.itertuples(index=False)):
        summary = "" if index % 7 == 6 else f"{row.summary} [provided by RefSeq, Jul 2008]"
        accession = None if index % 5 == 4 else accession_of.get(row.entrez_id)
        functions = tuple(
            UNIPROT_STYLE.get(row.symbol, [uniprot_style(row.summary, int(row.entrez_id))])
        )
        records[row.entrez_id] = GeneRecord(
            row.entrez_id, row.symbol, row.full_name, summary, accession, functions
        )
    return records


def uniprot_style(summary: str, seed: int) -> str:
    """The summary's first two sentences with the evidence tags UniProt's function comments carry."""
    sentences = re.split(r"(?<=\.)\s+(?=[A-Z])", summary.strip())
    tagged = [
        f"{sentences[0].rstrip('.')} (PubMed:{10_000_000 + seed % 9_000_000}, PubMed:{20_000_000 + seed % 7_000_000})."
    ]
    if len(sentences) > 1:
        tagged.append(f"{sentences[1].rstrip('.')} (By similarity).")
    return " ".join(tagged)


class FakeApis:
    """The server; use as a context manager. ``latency`` delays every answer (seconds)."""

    def __init__(
        self,
        records: dict[str, GeneRecord],
        latency: float = 0.0,
        retry_after: str = "1",
        slow_seconds: float = 2.0,
    ):
        self.records, self.latency, self.retry_after, self.slow_seconds = (
            records,
            latency,
            retry_after,
            slow_seconds,
        )
        self.log: list[Logged] = []
        self._queues: dict[str, collections.deque[str]] = collections.defaultdict(collections.deque)
        self._poisoned: dict[str, tuple[set[str], str]] = {}
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.mygene_url = f"{self.base}/v3"
        self.entrez_url = f"{self.base}/entrez/eutils"
        self.uniprot_url = self.base

    # --- what tests call -------------------------------------------------------------------------------
    def inject(self, api: str, *faults: str) -> None:
        """Serve ``faults`` to the next requests to ``api`` (mygene, entrez, uniprot), one each."""
        assert all(fault in FAULTS for fault in faults), faults
        with self._lock:
            self._queues[api].extend(faults)

    def poison(self, api: str, entrez_ids: set[str], fault: str = "500") -> None:
        """Every request to ``api`` naming one of ``entrez_ids`` gets ``fault``."""
        with self._lock:
            self._poisoned[api] = (set(entrez_ids), fault)

    def requests(self, api: str | None = None) -> list[Logged]:
        with self._lock:
            return [entry for entry in self.log if api is None or entry.api == api]

    def ids_asked(self, api: str, served_only: bool = True) -> list[str]:
        """Gene ids of every request to ``api`` (only those answered without a fault, by default)."""
        return [
            gene
            for entry in self.requests(api)
            if not served_only or entry.fault == "ok"
            for gene in entry.ids
        ]

    def __enter__(self) -> FakeApis:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- the APIs --------------------------------------------------------------------------------------
    def mygene(self, form: dict[str, list[str]]) -> tuple[str, bytes, dict[str, str]]:
        ids = [
            part.strip().strip('"') for part in form.get("ids", [""])[0].split(",") if part.strip()
        ]
        fields = set(form.get("fields", ["summary,name,symbol,alias"])[0].split(","))
        hits = []
        for gene in ids:
            record = self.records.get(gene)
            if record is None:
                hits.append({"query": gene, "notfound": True})
                continue
            hit = {
                "query": gene,
                "_id": gene,
                "_version": 1,
                "symbol": record.symbol,
                "name": record.name,
                "alias": [f"{record.symbol}-AS"],
                "summary": record.summary,
            }
            hits.append(
                {
                    key: value
                    for key, value in hit.items()
                    if key in {"query", "_id", "_version"} | fields and value
                }
            )
        return "application/json", json.dumps(hits).encode(), {}

    def efetch(self, query: dict[str, list[str]]) -> tuple[str, bytes, dict[str, str]]:
        if query.get("db") != ["gene"] or query.get("retmode") != ["xml"]:
            return "text/plain", b"", {"status": "400"}
        ids = [part.strip() for part in query.get("id", [""])[0].split(",") if part.strip()]
        parts = ['<?xml version="1.0" ?>', ENTREZGENE_DOCTYPE, "<Entrezgene-Set>"]
        for gene in ids:
            record = self.records.get(gene)
            if record is None:
                continue
            parts.append(
                "<Entrezgene>\n  <Entrezgene_track-info>\n    <Gene-track>\n"
                f"      <Gene-track_geneid>{gene}</Gene-track_geneid>\n"
                '      <Gene-track_status value="live">0</Gene-track_status>\n'
                "    </Gene-track>\n  </Entrezgene_track-info>\n"
                '  <Entrezgene_type value="protein-coding">6</Entrezgene_type>\n'
                "  <Entrezgene_gene>\n    <Gene-ref>\n"
                f"      <Gene-ref_locus>{escape(record.symbol)}</Gene-ref_locus>\n"
                f"      <Gene-ref_desc>{escape(record.name)}</Gene-ref_desc>\n"
                "    </Gene-ref>\n  </Entrezgene_gene>\n"
                + (
                    f"  <Entrezgene_summary>{escape(record.summary)}</Entrezgene_summary>\n"
                    if record.summary
                    else ""
                )
                + "</Entrezgene>"
            )
        parts.append("</Entrezgene-Set>\n")
        return "text/xml", "\n".join(parts).encode(), {}

    def uniprot_entry(self, record: GeneRecord) -> dict:
        entry = {
            "entryType": "UniProtKB reviewed (Swiss-Prot)",
            "primaryAccession": record.accession,
            "genes": [{"geneName": {"value": record.symbol}}],
            "uniProtKBCrossReferences": [
                {"database": "GeneID", "id": record.entrez_id, "properties": []}
            ],
        }
        comments = [
            {
                "commentType": "FUNCTION",
                "texts": [
                    {
                        "evidences": [
                            {"evidenceCode": "ECO:0000269", "source": "PubMed", "id": "11025664"}
                        ],
                        "value": text,
                    }
                ],
            }
            for text in record.functions
        ]
        comments.append(
            {
                "commentType": "FUNCTION",
                "molecule": "Isoform 2",
                "texts": [{"value": f"Isoform 2 of {record.symbol} lacks the catalytic domain."}],
            }
        )
        entry["comments"] = comments
        return entry

    def uniprot(self, query: dict[str, list[str]]) -> tuple[str, bytes, dict[str, str]]:
        text = query.get("query", [""])[0]
        if (
            "(organism_id:9606)" not in text
            or "(reviewed:true)" not in text
            or query.get("format") != ["json"]
        ):
            return (
                "application/json",
                json.dumps({"messages": ["bad query"]}).encode(),
                {"status": "400"},
            )
        ids = re.findall(r"xref:geneid-(\d+)", text)
        entries = [
            self.uniprot_entry(self.records[gene])
            for gene in ids
            if gene in self.records and self.records[gene].accession
        ]
        size = int(query.get("size", ["25"])[0])
        offset = (
            int(base64.urlsafe_b64decode(query["cursor"][0]).decode()) if "cursor" in query else 0
        )
        headers = {"X-Total-Results": str(len(entries))}
        if offset + size < len(entries):
            following = {key: values[0] for key, values in query.items()}
            following["cursor"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
            headers["Link"] = f'<{self.base}/uniprotkb/search?{urlencode(following)}>; rel="next"'
        return (
            "application/json",
            json.dumps({"results": entries[offset : offset + size]}).encode(),
            headers,
        )

    # --- plumbing -------------------------------------------------------------------------------------
    def _fault_for(self, api: str, ids: list[str]) -> str:
        with self._lock:
            poisoned, fault = self._poisoned.get(api, (set(), "ok"))
            if poisoned & set(ids):
                return fault
            return self._queues[api].popleft() if self._queues[api] else "ok"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._serve(parse_qs(urlsplit(self.path).query))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                self._serve({**parse_qs(urlsplit(self.path).query), **parse_qs(body)})

            def _serve(self, form: dict[str, list[str]]) -> None:
                arrived = time.monotonic()
                path = urlsplit(self.path).path
                if path.rstrip("/") == "/v3/gene" and self.command == "POST":
                    api, answer = "mygene", server.mygene
                    ids = [
                        part.strip().strip('"')
                        for part in form.get("ids", [""])[0].split(",")
                        if part.strip()
                    ]
                elif path == "/entrez/eutils/efetch.fcgi":
                    api, answer = "entrez", server.efetch
                    ids = [part for part in form.get("id", [""])[0].split(",") if part]
                elif path == "/uniprotkb/search" and self.command == "GET":
                    api, answer = "uniprot", server.uniprot
                    ids = (
                        re.findall(r"xref:geneid-(\d+)", form.get("query", [""])[0])
                        if "cursor" not in form
                        else []
                    )
                else:
                    self._send(404, "text/plain", b"not found", {})
                    return
                fault = server._fault_for(api, ids)
                with server._lock:
                    server.log.append(Logged(arrived, api, self.command, tuple(ids), fault))
                time.sleep(server.latency)
                # The client may have given up (a timeout): then there is nothing left to send to.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._answer(fault, *answer(form))

            def _answer(
                self, fault: str, content_type: str, body: bytes, headers: dict[str, str]
            ) -> None:
                status = int(headers.pop("status", 200))
                if fault == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault in ("429", "503"):
                    self._send(
                        int(fault), "text/plain", b"slow down", {"Retry-After": server.retry_after}
                    )
                    return
                if fault == "500":
                    self._send(500, "text/plain", b"internal error", {})
                    return
                if fault == "slow":
                    time.sleep(server.slow_seconds)
                if fault == "truncated_json":
                    body = body[: len(body) // 2]
                if fault == "truncated_body":
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._send(status, content_type, body, headers)

            def _send(
                self, status: int, content_type: str, body: bytes, headers: dict[str, str]
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler

"""The facets stage: each gene's text → K facet paragraphs, or the NONE marker where it has no role.

A backend turns ``GeneText`` records into ``FacetSet``s. The embedded default backend is ``go-rules``
(``facet_backends/go_rules.py``); LLM backends (vLLM, OpenAI-compatible servers) implement the same
``FacetBackend`` protocol and register in ``BACKENDS``.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import pandas as pd
import yaml

from .errors import InputError
from .artifacts import atomic_path
from .facet_backends import BACKENDS

log = logging.getLogger(__name__)

NONE_MARKER = "NONE"
_GO_ID = re.compile(r"^GO:\d{7}$")


@dataclass(frozen=True)
class FacetSpec:
    id: str
    name: str
    description: str
    go_roots: tuple[str, ...]


@dataclass(frozen=True)
class GeneText:
    entrez_id: str
    symbol: str
    name: str
    text: str
    sentences: tuple[dict, ...] = ()


@dataclass(frozen=True)
class FacetSet:
    """One gene's facets, in the order of the facet specs; ``None`` stands for the NONE marker."""

    entrez_id: str
    texts: tuple[str | None, ...]
    evidence: tuple[tuple[str, ...], ...] = field(default=())


class FacetBackend(Protocol):
    name: str

    def generate(self, genes: Sequence[GeneText], facets: Sequence[FacetSpec]) -> list[FacetSet]: ...


class FacetSpecError(InputError):
    pass


def load_facet_specs(path: str | Path) -> list[FacetSpec]:
    """Read and check ``facets.yaml``: unique ids, a name, well-formed GO roots."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle) or {}
    except OSError as error:
        raise FacetSpecError(f"{path}: cannot read the facet spec ({error.strerror}). Fix: config 'facets.spec'.") from error
    except yaml.YAMLError as error:
        raise FacetSpecError(f"{path}: not valid YAML ({error}). Fix: compare with the shipped resources/facets.yaml.") from error
    entries = document.get("facets") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise FacetSpecError(f"{path}: expected a non-empty list under 'facets'. Fix: see the shipped resources/facets.yaml.")
    specs, seen = [], set()
    for position, entry in enumerate(entries):
        where = f"{path}: facets[{position}]"
        missing = [key for key in ("id", "name", "description", "go_roots") if not isinstance(entry, dict) or not entry.get(key)]
        if missing:
            raise FacetSpecError(f"{where} lacks {missing}. Fix: give every facet an id, name, description and go_roots.")
        if entry["id"] in seen:
            raise FacetSpecError(f"{where}: duplicate id '{entry['id']}'. Fix: facet ids must be unique.")
        bad = [root for root in entry["go_roots"] if not _GO_ID.match(str(root))]
        if bad:
            raise FacetSpecError(f"{where} ('{entry['id']}'): malformed GO ids {bad}. Fix: write them as GO:0000000.")
        seen.add(entry["id"])
        specs.append(FacetSpec(entry["id"], entry["name"], entry["description"], tuple(entry["go_roots"])))
    return specs


def make_backend(name: str, inputs: dict[str, Path], params: dict) -> FacetBackend:
    if name not in BACKENDS:
        raise InputError(f"config 'facets.backend' is '{name}'; known backends: {sorted(BACKENDS)}")
    return importlib.import_module(f"dygenept.facet_backends.{BACKENDS[name]}").make(inputs, params)


def read_gene_texts(path: str | Path) -> list[GeneText]:
    table = pd.read_parquet(path)
    return [
        GeneText(row.entrez_id, row.symbol, row.name, row.text, tuple(row.sentences))
        for row in table.itertuples(index=False)
    ]


def facet_table(genes: Sequence[GeneText], facet_sets: Sequence[FacetSet], facets: Sequence[FacetSpec]) -> pd.DataFrame:
    by_gene = {facet_set.entrez_id: facet_set for facet_set in facet_sets}
    rows = []
    for gene in genes:
        facet_set = by_gene[gene.entrez_id]
        if len(facet_set.texts) != len(facets):
            raise ValueError(f"backend gave {len(facet_set.texts)} facets for {gene.symbol}; expected {len(facets)}")
        for position, (spec, text) in enumerate(zip(facets, facet_set.texts)):
            evidence = facet_set.evidence[position] if facet_set.evidence else ()
            rows.append({
                "entrez_id": gene.entrez_id,
                "symbol": gene.symbol,
                "facet": spec.id,
                "facet_index": position,
                "is_none": text is None,
                "text": NONE_MARKER if text is None else text,
                "evidence": list(evidence),
            })
    return pd.DataFrame(rows)


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    facets = load_facet_specs(inputs["facets_yaml"])
    genes = read_gene_texts(inputs["gene_text"])
    backend = make_backend(params["backend"], inputs, params)
    facet_sets = backend.generate(genes, facets)
    table = facet_table(genes, facet_sets, facets)
    with atomic_path(outputs["facets"]) as tmp:
        table.to_parquet(tmp, index=False)
    coverage = (1 - table.groupby("facet", sort=False)["is_none"].mean()).round(3)
    log.info("facet coverage (share of genes with a role): %s", coverage.to_dict())
    return {"backend": backend.name, "genes": len(genes), "facets": [f.id for f in facets], "coverage": coverage.to_dict()}

"""The facet backend for every LLM engine: it reads the validated records the LLM stage wrote.

The model runs in its own rule (``facets_llm``: GPU, its own conda env); the facets stage then reads
its ``records`` file here. A gene the model failed on is written with every facet NONE and the
evidence ``llm_failure`` on each, so it stays visible in the facet table (and in the LLM stage's
failures file with its reason).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...formats.facet_spec import FacetSpec
from ...io.artifacts import read_json
from ...settings import read_fields
from ..base import NONE_MARKER, FacetSet, GeneText

FAILURE_EVIDENCE = "llm_failure"


@dataclass
class LlmRecordsBackend:
    records: dict
    name: str

    def generate(self, genes: Sequence[GeneText], facets: Sequence[FacetSpec]) -> list[FacetSet]:
        ids = [f.id for f in facets]
        if self.records["facets"] != ids:
            raise InputError(
                f"the LLM records name facets {self.records['facets']}, facets.yaml {ids}. "
                "Fix: rerun the facets_llm rule."
            )
        answers, failed = self.records["answers"], set(self.records["failed"])
        result = []
        for gene in genes:
            if gene.entrez_id in answers:
                texts = tuple(
                    None
                    if answers[gene.entrez_id][fid] == NONE_MARKER
                    else answers[gene.entrez_id][fid]
                    for fid in ids
                )
                result.append(FacetSet(gene.entrez_id, texts))
            elif gene.entrez_id in failed:
                result.append(
                    FacetSet(gene.entrez_id, (None,) * len(ids), ((FAILURE_EVIDENCE,),) * len(ids))
                )
            else:
                raise InputError(
                    f"the LLM records lack gene {gene.symbol} ({gene.entrez_id}). "
                    "Fix: rerun the facets_llm rule on the same gene text."
                )
        return result


@dataclass(frozen=True)
class LlmRecordsSettings:
    backend: str  # the LLM backend whose records these are

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LlmRecordsSettings:
        """From the validated ``facets`` section."""
        return read_fields(cls, params)


def make(inputs: dict[str, Path], settings: LlmRecordsSettings) -> LlmRecordsBackend:
    if "llm_records" not in inputs:
        raise InputError(
            f"backend {settings.backend} reads the LLM stage's records (--in llm_records=...)."
        )
    return LlmRecordsBackend(read_json(inputs["llm_records"]), settings.backend)

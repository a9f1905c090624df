"""Facet backends: each module here has a frozen ``<Backend>Settings`` (``from_params`` of the validated
``facets`` section) and ``make(inputs, settings) -> FacetBackend``; ``BACKENDS`` maps the names
``registry.FACET_BACKENDS`` gives to them.

This table imports every backend module, so that the facet stage's code (its import closure) covers all
of them; a backend keeps heavy third-party imports inside its functions.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..registry import FACET_BACKENDS
from . import extractive, go_rules
from .base import BackendEntry
from .llm import records as llm_records

_LLM_RECORDS = BackendEntry(llm_records.LlmRecordsSettings.from_params, llm_records.make)
# The LLM backends run in the facets_llm rule; the facets stage reads their validated records.
BACKENDS: dict[str, BackendEntry[Any]] = {
    "go-rules": BackendEntry(go_rules.GoRulesSettings.from_params, go_rules.make),
    "extractive": BackendEntry(extractive.ExtractiveSettings.from_params, extractive.make),
    **{name: _LLM_RECORDS for name, backend in FACET_BACKENDS.items() if backend.llm},
}


def backend_entry(name: str) -> BackendEntry[Any]:
    if name not in BACKENDS:
        raise InputError(f"config 'facets.backend' is '{name}'; known backends: {sorted(BACKENDS)}")
    return BACKENDS[name]

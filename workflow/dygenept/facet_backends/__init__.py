"""Facet backends: each module here exposes ``make(inputs, params) -> FacetBackend``; ``BACKENDS`` maps the
names ``registry.FACET_BACKENDS`` gives to them.

This table imports every backend module, so that the facet stage's code (its import closure) covers all
of them; a backend keeps heavy third-party imports inside its functions.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from ..errors import InputError
from ..registry import FACET_BACKENDS
from . import extractive, go_rules
from .base import FacetBackend
from .llm import records as llm_records

# The LLM backends run in the facets_llm rule; the facets stage reads their validated records.
BACKENDS: dict[str, ModuleType] = {
    "go-rules": go_rules,
    "extractive": extractive,
    **{name: llm_records for name, backend in FACET_BACKENDS.items() if backend.llm},
}


def make_backend(name: str, inputs: dict[str, Path], params: dict) -> FacetBackend:
    if name not in BACKENDS:
        raise InputError(f"config 'facets.backend' is '{name}'; known backends: {sorted(BACKENDS)}")
    return BACKENDS[name].make(inputs, params)

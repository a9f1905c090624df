"""Facet backends: each module here exposes ``make(inputs, params) -> FacetBackend``.

This registry stays free of heavy imports: the Snakefile reads it to make the backend's source a rule input.
"""

from pathlib import Path

BACKENDS = {"go-rules": "go_rules"}


def backend_source(name: str) -> Path:
    if name not in BACKENDS:
        raise KeyError(f"unknown facet backend '{name}'; known: {sorted(BACKENDS)}")
    return Path(__file__).parent / f"{BACKENDS[name]}.py"

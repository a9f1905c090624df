"""A config section's defaults, read from the JSON schema (``config/schema.yaml``): the one place they live.

The Snakefile fills them in when it validates the config; tests, benchmarks and by-hand runs build a
stage's params from the same schema with ``section_defaults``, so no default is written twice.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


def load_schema(path: str | Path = SCHEMA) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{key: value for key, value in node.items() if key != "$ref"}}


def defaults_of(node: dict[str, Any], schema: dict[str, Any]) -> Any:
    """The value a node takes when the config leaves it out: its default, with nested defaults filled in."""
    node = _resolve(node, schema)
    properties = node.get("properties")
    value = copy.deepcopy(node.get("default", {} if properties else None))
    if isinstance(value, dict) and properties:
        for name, child in properties.items():
            if name in value:
                continue
            filled = defaults_of(child, schema)
            if filled is not None or "default" in _resolve(child, schema):
                value[name] = filled
    return value


def section_defaults(section: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every default of one top-level config section (``knowledge``, ``enrich``, ...)."""
    schema = schema or load_schema()
    return defaults_of(schema["properties"][section], schema)


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, nested dictionaries key by key (as Snakemake merges configs)."""
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def dataset_stage_params(**overrides) -> dict[str, Any]:
    """The dataset stage's params as its rule builds them (the section, with the genes' symbol
    overrides), from the schema's defaults and then ``overrides``."""
    return merged({**section_defaults("dataset"), "symbol_overrides": {}}, overrides)

"""A config that breaks ``config/schema.yaml``, said in a few lines: the file that sets the key, the key,
what the schema expects there, and the closest valid key or value ("did you mean").

Snakemake's own validation names the key but prints the schema around it (15 to 2,000 lines). The
Snakefile validates as before and, when that fails, raises ``config_error``'s message instead.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

# The workflow's own config file, read before any --configfile (config/config.yaml).
DEFAULT_CONFIG = "config/config.yaml"
SHOWN_CHOICES = 8


def _at(mapping: Any, path: Sequence[Any]) -> bool:
    """Whether ``mapping`` sets the key at ``path`` (a list of keys)."""
    for key in path:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return False
        mapping = mapping[key]
    return True


def config_sources(
    configfiles: Sequence[str | Path], overrides: Mapping[str, Any]
) -> list[tuple[str, Any]]:
    """(label, content) of each source of the config, lowest precedence first: the workflow's config
    file, then each --configfile in order, then the --config values."""
    sources = []
    for path in [DEFAULT_CONFIG, *configfiles]:
        relative = os.path.relpath(path)
        label = str(path) if relative.startswith("..") else relative
        try:
            with open(path, encoding="utf-8") as handle:
                sources.append((label, yaml.safe_load(handle) or {}))
        except (OSError, yaml.YAMLError):
            continue
    if overrides:
        sources.append(("--config", dict(overrides)))
    return sources


def where_set(path: Sequence[Any], sources: list[tuple[str, Any]]) -> str:
    """The source that decides the key at ``path``: the last that sets it (or its nearest parent)."""
    for depth in range(len(path), 0, -1):
        for label, content in reversed(sources):
            if _at(content, path[:depth]):
                return label
    return sources[-1][0] if sources else "the config"


def _key(path: Sequence[Any]) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _closest(word: str, choices: Sequence[str]) -> str | None:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return found[0] if found else None


def _listed(choices: Sequence[str]) -> str:
    shown = ", ".join(map(str, list(choices)[:SHOWN_CHOICES]))
    return shown + (", ..." if len(choices) > SHOWN_CHOICES else "")


def explain(error: jsonschema.ValidationError, sources: list[tuple[str, Any]]) -> list[str]:
    """Lines that say where the config breaks the schema and how to fix it."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        name = unknown[0] if unknown else "?"
        key = [*path, name]
        guess = _closest(str(name), allowed)
        lines = [f"{where_set(key, sources)}: config key '{_key(key)}' is not a setting."]
        if guess:
            lines.append(f"Did you mean '{_key([*path, guess])}'?")
        under = f"the keys of '{_key(path)}'" if path else "the top-level keys"
        lines.append(f"Fix: use one of {under}: {_listed(allowed)}.")
        return lines
    key = _key(path)
    where = where_set(path, sources)
    found = f"is {_short(error.instance)}"
    if error.validator == "enum":
        choices = [str(choice) for choice in error.validator_value]
        lines = [f"{where}: config key '{key}' {found}; expected one of: {_listed(choices)}."]
        guess = _closest(str(error.instance), choices)
        if guess:
            lines.append(f"Did you mean '{guess}'?")
        return [*lines, f"Fix: set {key} to one of those values."]
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return [
            f"{where}: config key '{key}' {found}; expected a value of type {expected}.",
            f"Fix: give {key} a value of type {expected} (config/schema.yaml describes it).",
        ]
    if error.validator == "required":
        return [
            f"{where}: {error.message} (under '{key}').",
            "Fix: add it (config/schema.yaml describes it).",
        ]
    rule = f"{error.validator}: {_short(error.validator_value)}"
    return [
        f"{where}: config key '{key}' {found}; the schema asks for {rule}.",
        f"Fix: change {key} (config/schema.yaml describes it).",
    ]


def config_error(
    config: Mapping[str, Any],
    schema_path: str | Path,
    configfiles: Sequence[str | Path] = (),
    overrides: Mapping[str, Any] | None = None,
) -> str:
    """The message for a config that does not validate (an empty string when it does)."""
    with open(schema_path, encoding="utf-8") as handle:
        schema = yaml.safe_load(handle)
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(config)))
    if error is None:
        return ""
    return "\n".join(explain(error, config_sources(configfiles, overrides or {})))

"""The facet spec (``resources/facets.yaml``): the K facets, each a name, a description and its GO roots."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import InputError

_GO_ID = re.compile(r"^GO:\d{7}$")


@dataclass(frozen=True)
class FacetSpec:
    id: str
    name: str
    description: str
    go_roots: tuple[str, ...]


class FacetSpecError(InputError):
    pass


def load_facet_specs(path: str | Path) -> list[FacetSpec]:
    """Read and check ``facets.yaml``: unique ids, a name, well-formed GO roots."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle) or {}
    except OSError as error:
        raise FacetSpecError(
            f"{path}: cannot read the facet spec ({error.strerror}). Fix: config 'facets.spec'."
        ) from error
    except yaml.YAMLError as error:
        raise FacetSpecError(
            f"{path}: not valid YAML ({error}). Fix: compare with the shipped resources/facets.yaml."
        ) from error
    entries = document.get("facets") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise FacetSpecError(
            f"{path}: expected a non-empty list under 'facets'. Fix: see the shipped resources/facets.yaml."
        )
    specs, seen = [], set()
    for position, entry in enumerate(entries):
        where = f"{path}: facets[{position}]"
        missing = [
            key
            for key in ("id", "name", "description", "go_roots")
            if not isinstance(entry, dict) or not entry.get(key)
        ]
        if missing:
            raise FacetSpecError(
                f"{where} lacks {missing}. Fix: give every facet an id, name, description and go_roots."
            )
        if entry["id"] in seen:
            raise FacetSpecError(
                f"{where}: duplicate id '{entry['id']}'. Fix: facet ids must be unique."
            )
        bad = [root for root in entry["go_roots"] if not _GO_ID.match(str(root))]
        if bad:
            raise FacetSpecError(
                f"{where} ('{entry['id']}'): malformed GO ids {bad}. Fix: write them as GO:0000000."
            )
        seen.add(entry["id"])
        specs.append(
            FacetSpec(entry["id"], entry["name"], entry["description"], tuple(entry["go_roots"]))
        )
    return specs

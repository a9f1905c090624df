"""What every ``<Thing>Settings.from_params`` shares: a frozen dataclass's fields, read from a validated
config section by their names.

A stage builds its settings once from the params its rule gives it; libraries take the dataclasses and
never read a params dict (``tests/test_settings.py``). The schema has filled every default before a stage
runs, so settings classes have none, and a field the section lacks is a bug (``KeyError``). Values are
kept as the config spells them (an integer stays an integer), so whatever a settings object writes into
a cache key reads as the config did. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def read_fields(cls: type[T], params: Mapping[str, Any], **given: Any) -> T:
    """``cls`` (a dataclass) with every field not in ``given`` read from ``params`` under its own name.

    ``given`` holds what the section does not spell as the field: a nested section's settings, a tuple
    for a list, a key of the enclosing section."""
    names = [field.name for field in fields(cls)]  # type: ignore[arg-type]
    return cls(**{name: params[name] for name in names if name not in given}, **given)

"""A fetched model, opened from its manifest (rule fetch_models).

Compute stages never download: they read the directory the manifest names, after checking that every
file is still there at its fetched size (and load it under ``pretrained.offline.hubs_offline``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..io.artifacts import read_json


@dataclass(frozen=True)
class FetchedModel:
    name: str
    key: str  # its config section
    model_id: str  # the Hub id or URL it came from
    revision: str | None  # the commit (Hub models)
    directory: Path
    weights_sha256: str

    @classmethod
    def read(cls, manifest: str | Path) -> FetchedModel:
        """The model a manifest describes, its files checked against the sizes fetched."""
        record = read_json(manifest)
        directory = Path(record["directory"])
        gone = [
            path
            for path, size in record["files"].items()
            if not (directory / path).is_file() or (directory / path).stat().st_size != size
        ]
        if gone:
            raise InputError(
                f"{directory}: {', '.join(gone[:5])} missing or changed since rule fetch_models fetched "
                f"config '{record['key']}' ({record['model_id']}). Fix: run "
                f"`snakemake --forcerun fetch_models --until fetch_models` where the network is "
                f"reachable, or delete {manifest}."
            )
        return cls(
            record["name"],
            record["key"],
            record["model_id"],
            record["revision"],
            directory,
            record["weights_sha256"],
        )

"""Atomic artifact writing and the provenance record written beside every artifact."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import tempfile
import threading
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

PROVENANCE_SUFFIX = ".provenance.json"
_TRACKED_PACKAGES = (
    "dygenept",
    "numpy",
    "pandas",
    "anndata",
    "scanpy",
    "torch",
    "transformers",
    "entmax",
    "safetensors",
    "pyarrow",
    "snakemake",
)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (reading it means setting it: set it straight back, one thread at a time)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``path`` only on success.

    A crash mid-write leaves the previous artifact (or nothing) in place, never a truncated file. The
    artifact takes the mode a plain ``open`` would give it (0666 less the umask: group members read a
    shared results folder where the umask lets them), not mkstemp's private 0600. An OSError (a full
    disk, a file where a folder must be, a folder that cannot be written) names ``path``.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise _naming(error, target) from error
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.chmod(0o666 & ~current_umask())
        yield tmp
        os.replace(tmp, target)
    except OSError as error:
        # the artifact, not its temporary twin (the CLI turns a full disk and the like into a SetupError)
        raise _naming(
            error, target if error.filename in (None, str(tmp)) else error.filename
        ) from error
    finally:
        if tmp.exists():
            tmp.unlink()


def _naming(error: OSError, path: str | Path) -> OSError:
    """The same OSError, naming ``path``."""
    return type(error)(error.errno, error.strerror, str(path))


def write_atomic(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | Path, value: Any) -> Path:
    return write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def package_versions(names: tuple[str, ...] = _TRACKED_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def provenance_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + PROVENANCE_SUFFIX)


def build_provenance(
    stage: str,
    inputs: dict[str, str | Path],
    params: dict[str, Any],
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record kept beside an artifact: what went in, with which settings and software."""
    return {
        "stage": stage,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "inputs": {
            name: {"path": str(path), "sha256": sha256_file(path)}
            for name, path in sorted(inputs.items())
            if Path(path).is_file()
        },
        "params": params,
        "params_sha256": sha256_text(canonical_json(params)),
        "details": details or {},
        "versions": package_versions(),
        "host": {"platform": platform.platform(), "machine": platform.machine()},
    }


def write_provenance(artifact: str | Path, record: dict[str, Any]) -> Path:
    return write_json_atomic(provenance_path(artifact), record)

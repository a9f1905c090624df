"""The errors a user fixes, each with a message that names the file (or package, or server) and the fix.

``InputError``: bad input (a file, a field, a config value). ``SetupError``: the machine rather than the
input — an optional package that is not installed, a full disk, a folder that cannot be written, a
server that does not answer. The CLI prints either without a traceback and exits with code 2.
Standard library only: the Snakefile and every module may import it.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import os
import sys
from collections.abc import Iterator
from pathlib import Path


class UserError(Exception):
    """A problem the user can fix; its message says what is wrong and how to fix it."""


class InputError(UserError, ValueError):
    """Raised for input a user can correct; the CLI prints its message without a traceback."""


class SetupError(UserError):
    """Raised for a problem of the environment a stage runs in (package, disk, folder, server)."""


# Packages the base install leaves out, each with the conda env (envs/) of the stage that imports it;
# tests/test_envs.py checks that the env carries it.
OPTIONAL_PACKAGES = {
    "vllm": "envs/facets_llm.yaml",
    "scvi": "envs/cell_encoders.yaml",
}


@contextlib.contextmanager
def needs_package(module: str, needed_for: str) -> Iterator[None]:
    """Around the import of an optional package: a missing (or broken) one stops with the env that has it.

    ``needed_for`` names the setting that asked for it, e.g. "config 'facets.backend: vllm'".
    """
    env = OPTIONAL_PACKAGES[module]
    try:
        yield
    except ImportError as error:
        raise SetupError(
            f"{needed_for} needs the Python package '{module}', which {sys.executable} cannot import "
            f"({error}). Fix: run Snakemake with --use-conda, so that this stage runs in its env "
            f"{env}, which has it; or install '{module}' here at the version {env} pins."
        ) from error


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no name for this uid: the number says enough
        return f"uid {os.getuid()}"


def _first_file_on_the_way(path: Path) -> Path | None:
    """The first component of ``path`` that exists but is not a folder (a file where a folder must be)."""
    for step in [*reversed(path.parents), path.parent]:
        if step.exists() and not step.is_dir():
            return step
    return None


def write_problem(error: OSError, fallback: str | Path = ".") -> SetupError | None:
    """The SetupError for an OSError met while writing (the file it names, else ``fallback``), or None
    when it is none of these: a full disk or quota, a file where a folder must be, no permission, a
    read-only file system."""
    code = error.errno
    path = Path(error.filename or fallback)
    if code in (errno.ENOSPC, errno.EDQUOT):
        what = (
            "no space left on the device" if code == errno.ENOSPC else "the disk quota is exceeded"
        )
        return SetupError(
            f"{path}: {what}. Fix: free space on that disk, or point config "
            "'outdir' (or the cache folder in question) at a disk with room, then run again."
        )
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocker = _first_file_on_the_way(path)
        if blocker is not None:
            return SetupError(
                f"{path}: {blocker} is a file where a folder must be. Fix: move or delete that file, "
                "or point config 'outdir' somewhere else."
            )
        return None
    if code in (errno.EACCES, errno.EPERM):
        folder = next((step for step in path.parents if step.exists()), Path("."))
        return SetupError(
            f"{path}: permission denied for user {_user()}, who cannot write in {folder}. Fix: make "
            f"{folder} writable for that user (chmod, chown or group rights), or point config 'outdir' "
            "at a folder you can write."
        )
    if code == errno.EROFS:
        return SetupError(
            f"{path}: the file system is read-only. Fix: point config 'outdir' (or the cache folder in "
            "question) at a writable disk."
        )
    return None

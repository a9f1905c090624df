"""The fetch_annotations stage: Bioconductor's org.Hs.eg.db and GO.db SQLite databases, fetched once.

They are fetched once from Debian's packages (``apt-get download`` + ``dpkg -x``: no R, no root
needed once apt's lists are current), or, where apt is missing, from the Bioconductor source
tarballs of the same versions, which hold the same SQLite files.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ..data.annotation_db import read_metadata, table_names
from ..errors import InputError
from ..io.artifacts import atomic_path, sha256_file
from ..io.http import RetryPolicy, download
from ..registry import ANNOTATION_DATABASES, AnnotationDatabase

log = logging.getLogger(__name__)


def debian_member(package: AnnotationDatabase) -> str:
    """Where the SQLite file sits in the Debian package."""
    return f"usr/lib/R/site-library/{package.bioc_name}/extdata/{package.sqlite_name}"


def tarball_member(package: AnnotationDatabase) -> str:
    """Where the SQLite file sits in the Bioconductor source tarball."""
    return f"{package.bioc_name}/inst/extdata/{package.sqlite_name}"


class AnnotationFetchError(InputError):
    pass


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    log.info("running: %s", " ".join(command))
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def fetch_with_apt(package: AnnotationDatabase, version: str | None, workdir: Path) -> Path:
    """``apt-get download`` the package (refreshing apt's lists once if it is unknown) and unpack it."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise AnnotationFetchError("apt-get/dpkg not found")
    spec = f"{package.debian_name}={version}" if version else package.debian_name
    result = _run(["apt-get", "download", spec], workdir)
    if result.returncode != 0 and os.geteuid() == 0:
        log.info(
            "apt-get download failed (%s); refreshing apt lists once", result.stderr.strip()[-200:]
        )
        _run(["apt-get", "update"], workdir)
        result = _run(["apt-get", "download", spec], workdir)
    if result.returncode != 0:
        raise AnnotationFetchError(
            f"apt-get download {spec} failed: {result.stderr.strip()[-500:]}"
        )
    debs = sorted(workdir.glob(f"{package.debian_name}_*.deb"))
    if not debs:
        raise AnnotationFetchError(f"apt-get download {spec} produced no .deb in {workdir}")
    unpack_dir = workdir / "unpacked"
    result = _run(["dpkg-deb", "-x", str(debs[0]), str(unpack_dir)], workdir)
    if result.returncode != 0:
        raise AnnotationFetchError(f"dpkg-deb -x {debs[0].name} failed: {result.stderr.strip()}")
    sqlite_path = unpack_dir / debian_member(package)
    if not sqlite_path.is_file():
        raise AnnotationFetchError(f"{debs[0].name} has no {debian_member(package)}")
    log.info("unpacked %s (sha256 %s)", debs[0].name, sha256_file(debs[0]))
    return sqlite_path


def fetch_with_tarball(
    package: AnnotationDatabase, url: str, workdir: Path, timeout: float = 120.0
) -> Path:
    """Download a Bioconductor source tarball and extract the SQLite file from it."""
    tarball = workdir / Path(url).name
    log.info("downloading %s", url)
    download(url, tarball, policy=RetryPolicy(timeout_seconds=timeout))
    with tarfile.open(tarball, "r:gz") as archive:
        try:
            member = archive.getmember(tarball_member(package))
        except KeyError as error:
            raise AnnotationFetchError(f"{url} has no member {tarball_member(package)}") from error
        source = archive.extractfile(member)
        if source is None:
            raise AnnotationFetchError(f"{url}: {tarball_member(package)} is not a file")
        sqlite_path = workdir / package.sqlite_name
        with source, open(sqlite_path, "wb") as out:
            shutil.copyfileobj(source, out, length=1 << 20)
    return sqlite_path


def fetch_package(
    package: AnnotationDatabase, destination: Path, apt_version: str | None, tarball_url: str | None
) -> dict:
    """Fetch one database to ``destination`` (atomically), trying apt first, then the tarball."""
    errors = []
    destination.parent.mkdir(
        parents=True, exist_ok=True
    )  # the work directory sits beside the destination
    with tempfile.TemporaryDirectory(dir=destination.parent) as tmp:
        workdir = Path(tmp).resolve()
        sqlite_path = None
        method = None
        try:
            sqlite_path, method = fetch_with_apt(package, apt_version, workdir), "apt"
        except AnnotationFetchError as error:
            errors.append(f"apt: {error}")
        if sqlite_path is None and tarball_url:
            try:
                sqlite_path, method = (
                    fetch_with_tarball(package, tarball_url, workdir),
                    "bioconductor-tarball",
                )
            except (OSError, InputError, tarfile.TarError) as error:
                errors.append(f"tarball {tarball_url}: {error}")
        if sqlite_path is None:
            raise AnnotationFetchError(
                f"could not fetch {package.bioc_name}: "
                + "; ".join(errors)
                + ". Fix: install apt (Debian/Ubuntu), check the tarball URL in config "
                "'annotations.tarball_urls', or point 'annotations.sqlite' at an existing "
                f"{package.sqlite_name} (e.g. from an R library: <lib>/{package.bioc_name}/extdata/)."
            )
        check_sqlite(sqlite_path, package)
        with atomic_path(destination) as tmp_target:
            shutil.move(str(sqlite_path), tmp_target)
    return {
        "package": package.bioc_name,
        "method": method,
        "sha256": sha256_file(destination),
        "metadata": read_metadata(destination),
    }


def check_sqlite(path: Path, package: AnnotationDatabase) -> None:
    try:
        tables = set(table_names(path))
    except sqlite3.DatabaseError as error:
        raise AnnotationFetchError(f"{path} is not a readable SQLite database ({error})") from error
    missing = package.tables - tables
    if missing:
        raise AnnotationFetchError(
            f"{path} lacks tables {sorted(missing)}; is it really {package.sqlite_name}?"
        )


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Fetch each database named in ``outputs`` (keys of ``registry.ANNOTATION_DATABASES``).

    Reads nothing. Writes ``org_hs_eg`` and/or ``go`` (SQLite). Params: ``apt_versions`` and
    ``tarball_urls`` (the ``annotations`` config section).
    """
    details = {}
    for key, destination in outputs.items():
        package = ANNOTATION_DATABASES[key]
        details[key] = fetch_package(
            package,
            Path(destination),
            apt_version=params["apt_versions"][key],
            tarball_url=params["tarball_urls"][key],
        )
    return details

"""The fetch_dataset stage: download a published Perturb-seq file once, verified, into the dataset cache.

Sources: ``gears`` (the GEARS dataverse zip; the h5ad is the archive member ``<name>/perturb_processed.h5ad``)
and ``scperturb`` (a Zenodo h5ad, used as it is). Downloads stream to disk, resume where the server allows
Range requests, retry with backoff (``http.download``), fall back to a mirror URL, and are checked against
the pinned checksum (``md5:<hex>`` as Zenodo publishes, or ``sha256:<hex>``) before anything is unpacked.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import zipfile
from pathlib import Path

from ..errors import InputError
from ..io.artifacts import atomic_path
from ..io.http import RetryPolicy, download_first, verify_checksum

log = logging.getLogger(__name__)

DOWNLOAD_SUFFIX = ".download"
CHECKSUM_FIELD = "dataset.download.checksum"


def extract_member(archive: Path, member: str, destination: Path) -> None:
    """Copy one member of a zip or tar archive to ``destination`` (atomically)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            names = bundle.namelist()
            if member not in names:
                _missing_member(archive, member, names)
            with (
                bundle.open(member) as source,
                atomic_path(destination) as tmp,
                open(tmp, "wb") as out,
            ):
                shutil.copyfileobj(source, out, 1 << 20)
        return
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as bundle:
            names = bundle.getnames()
            if member not in names:
                _missing_member(archive, member, names)
            source = bundle.extractfile(member)
            with source, atomic_path(destination) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
        return
    raise InputError(
        f"{archive}: not a zip or tar archive, yet config 'dataset.download.member' is set. Fix: clear it."
    )


def _missing_member(archive: Path, member: str, names: list[str]) -> None:
    h5ads = [name for name in names if name.endswith(".h5ad")]
    raise InputError(
        f"{archive}: no member '{member}' (config 'dataset.download.member'). h5ad members: {h5ads or 'none'}. "
        "Fix: set dataset.download.member to one of them."
    )


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Download the configured data set once, verify it, and unpack the h5ad.

    Reads nothing. Writes ``h5ad``. Params: ``source``, ``name`` and ``download`` (url, mirror_url, checksum,
    member, attempts, timeout_seconds) of the ``dataset`` config section.
    """
    settings = params["download"]
    if not settings["url"]:
        raise InputError(
            f"config 'dataset.source' is {params['source']} but 'dataset.download.url' is empty. Fix: give the URL."
        )
    target = Path(outputs["h5ad"])
    downloaded = target.with_name(target.name + DOWNLOAD_SUFFIX)
    policy = RetryPolicy(attempts=settings["attempts"], timeout_seconds=settings["timeout_seconds"])
    urls = [settings["url"]] + ([settings["mirror_url"]] if settings["mirror_url"] else [])
    used = settings["url"]
    if not downloaded.exists():  # a verified download from a crashed run is reused
        used = download_first(urls, downloaded, policy)
    sha256 = verify_checksum(downloaded, settings["checksum"], used, CHECKSUM_FIELD)
    if settings["member"]:
        extract_member(downloaded, settings["member"], target)
        downloaded.unlink()
    else:
        with atomic_path(target) as tmp:
            downloaded.replace(tmp)
    log.info("%s → %s (%.1f MB)", used, target, target.stat().st_size / 1e6)
    return {
        "url": used,
        "download_sha256": sha256,
        "checksum_pinned": settings["checksum"],
        "member": settings["member"],
    }

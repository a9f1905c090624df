"""Download one configured model once into a local directory, verified, and describe it in a manifest.

A Hub model goes to ``<models.dir>/hub/<repo id>/<commit>/``: its configuration, tokenizer and weight files
(safetensors where the repository has them, else PyTorch ``.bin``), each checked against the hash the Hub
lists for it, resumed after a broken transfer. A null revision resolves to the commit the default branch
points at, once: the lock file keeps it for later runs. The weights' sha256 is compared with the config's
pin (else the lock's) and recorded for the user to pin where there is none. A directory that was verified
complete before is checked against its record (``<commit>.verified.json``) without asking the Hub, so a
pinned model fetches offline once it is there.

A checkpoint with a URL (scGPT's) is a fixed list of files under that URL, downloaded into its directory.
Every failure is a ``ModelFetchError`` that names the model, its config key and the fix.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError
from ..io.artifacts import read_json, sha256_file, write_json_atomic
from ..io.http import DownloadError, FetchError, RetryPolicy, download
from ..io.hub import REPO_NOT_FOUND, REVISION_NOT_FOUND, HubClient, HubError, RemoteFile
from ..settings import read_fields
from . import lock as model_lock
from .weights import weight_files, weights_sha256

log = logging.getLogger(__name__)

DEFAULT_BRANCH = "main"
# Top-level files a model directory needs besides its weights: configs, tokenizers, chat templates.
SUPPORT_PATTERNS = ("*.json", "*.txt", "*.model", "*.jinja", "*.tiktoken", "1_Pooling/*")
SAFETENSORS, PYTORCH_BINS = "*.safetensors", "pytorch_model*.bin"
VERIFIED_SUFFIX = ".verified.json"


class ModelFetchError(InputError):
    pass


@dataclass(frozen=True)
class ModelFetchSettings:
    """One model's fetch_models job (``pretrained.roles.fetch_settings`` builds the params)."""

    name: str  # facet_encoder, llm, scgpt
    key: str  # its config section, e.g. facets.llm
    local_key: str  # the key that names a local directory instead
    source: Literal["hub", "url"]
    repo_id: str | None
    revision: str | None
    url: str | None
    files: tuple[str, ...]  # url: the files under it
    weights: str | None  # url: the weight file among them
    sha256: str | None
    directory: Path
    lock: Path
    endpoint: str
    attempts: int
    timeout_seconds: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ModelFetchSettings:
        return read_fields(
            cls,
            params,
            files=tuple(params["files"]),
            directory=Path(params["directory"]),
            lock=Path(params["lock"]),
        )

    @property
    def model_id(self) -> str:
        return self.repo_id or self.url  # type: ignore[return-value]

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.attempts, timeout_seconds=self.timeout_seconds)

    def error(self, what: str, fix: str) -> ModelFetchError:
        return ModelFetchError(f"config '{self.key}' ({self.model_id}): {what}. Fix: {fix}")

    def unreachable(self, where: str, error: Exception) -> ModelFetchError:
        return self.error(
            f"could not be fetched from {where} ({error})",
            "run fetch_models where the network is reachable (a workstation or the cluster's login "
            "node: `snakemake --until fetch_models`) and keep its directory beside the run, or "
            f"download the model yourself and name its directory in '{self.local_key}'",
        )


@dataclass(frozen=True)
class Manifest:
    """What a compute stage reads to open a fetched model (``pretrained.local.FetchedModel``): the same
    model gives the same bytes, however its revision was found."""

    name: str
    key: str
    model_id: str
    revision: str | None  # the commit (Hub models)
    directory: str
    files: dict[str, int]  # path in the directory → size in bytes
    weights: list[str]
    weights_sha256: str
    weights_sha256_pinned: bool

    def write(self, path: Path) -> None:
        write_json_atomic(path, vars(self))


@dataclass(frozen=True)
class Fetched:
    manifest: Manifest
    revision_from: str  # config, lock, url, or "resolved <branch>"


def select_files(paths: list[str]) -> list[str]:
    """The files of a repository a model directory needs: configs and tokenizer files at the top level
    (and a sentence-transformers pooling config), and one copy of the weights: safetensors where the
    repository has them, else PyTorch ``.bin`` (no TensorFlow, Flax, ONNX or other copies)."""

    def top(pattern: str) -> list[str]:
        return [p for p in paths if fnmatch.fnmatch(p, pattern) and "/" not in p]

    weights = top(SAFETENSORS) or top(PYTORCH_BINS)
    support = {
        p
        for p in paths
        for pattern in SUPPORT_PATTERNS
        if fnmatch.fnmatch(p, pattern) and ("/" not in p or pattern.startswith("1_Pooling"))
    }
    return sorted(support | set(weights))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _record_path(directory: Path) -> Path:
    return directory.with_name(directory.name + VERIFIED_SUFFIX)


def verified_before(directory: Path, commit: str) -> dict[str, RemoteFile] | None:
    """The files of a directory fetched and verified before, when they are all still as they were."""
    record = _record_path(directory)
    if not record.is_file():
        return None
    files = {path: RemoteFile(**entry) for path, entry in read_json(record)["files"].items()}
    for path, remote in files.items():
        local = directory / path
        if not local.is_file() or remote.verify(local) is not None:
            log.warning("%s: %s changed since it was verified; fetching again", commit, path)
            return None
    return files


def resolve_revision(settings: ModelFetchSettings) -> tuple[str | None, str]:
    """(the revision to fetch, where it comes from): the config's, else the lock's, else None."""
    if settings.revision:
        return settings.revision, "config"
    locked = model_lock.read_lock(settings.lock).get(settings.model_id)
    if locked is not None:
        log.info("%s", model_lock.describe(settings.model_id, locked, settings.lock))
        return locked.revision, "lock"
    return None, f"resolved {DEFAULT_BRANCH}"


def hub_files(
    settings: ModelFetchSettings, client: HubClient, revision: str | None
) -> tuple[str, dict[str, RemoteFile]]:
    """(commit, the files to fetch) from the Hub, its refusals turned into the project's errors."""
    asked = revision or DEFAULT_BRANCH
    try:
        remote = client.revision(settings.repo_id, asked)
    except HubError as error:
        if error.code == REVISION_NOT_FOUND:
            raise settings.error(
                f"the Hub has no revision {asked!r}",
                f"set '{settings.key}.revision' to a commit from the model's 'Files and versions' "
                "history, or to null for the current one",
            ) from error
        if error.code == REPO_NOT_FOUND or error.status in (401, 403, 404):
            raise settings.error(
                f"the Hub at {settings.endpoint} has no such repository, or it is gated (HTTP "
                f"{error.status})",
                "check the id; for a gated model accept its licence on the Hub and export "
                "HF_TOKEN=<your token>",
            ) from error
        raise settings.unreachable(settings.endpoint, error) from error
    except FetchError as error:
        raise settings.unreachable(settings.endpoint, error) from error
    chosen = select_files(sorted(remote.files))
    if not any(fnmatch.fnmatch(p, SAFETENSORS) or fnmatch.fnmatch(p, PYTORCH_BINS) for p in chosen):
        raise settings.error(
            f"commit {remote.commit} has no PyTorch weights (files: {sorted(remote.files)[:20]})",
            f"choose a repository or revision with safetensors or pytorch_model.bin weights, "
            f"or name a local directory in '{settings.local_key}'",
        )
    return remote.commit, {path: remote.files[path] for path in chosen}


def download_hub_files(
    settings: ModelFetchSettings,
    client: HubClient,
    commit: str,
    files: dict[str, RemoteFile],
    directory: Path,
) -> None:
    for path, remote in files.items():
        local = directory / path
        if local.is_file():
            if remote.verify(local) is None:
                continue
            local.unlink()
        log.info("%s@%s: %s (%.1f MB)", settings.repo_id, commit[:12], path, remote.size / 1e6)
        try:
            client.download(settings.repo_id, commit, remote, local)
        except DownloadError as error:
            raise settings.unreachable(
                client.file_url(settings.repo_id, commit, path), error
            ) from (error)
    write_json_atomic(
        _record_path(directory), {"files": {path: vars(remote) for path, remote in files.items()}}
    )


def check_weights(
    settings: ModelFetchSettings, digest: str, expected: str | None, where: str
) -> None:
    if expected and digest != expected:
        pin = f"'{settings.key}.sha256'" if settings.sha256 else f"the lock file {settings.lock}"
        raise settings.error(
            f"the weights {where} have sha256 {digest}, not {expected} as {pin} pins",
            f"if the model changed on purpose, set '{settings.key}.sha256' to {digest} (and delete "
            f"its lock entry); otherwise set the revision the pin belongs to",
        )
    if not expected:
        log.warning(
            "%s: weights sha256 %s is not pinned; set config '%s.sha256' to it",
            settings.model_id,
            digest,
            settings.key,
        )


def fetch_hub_model(settings: ModelFetchSettings) -> Fetched:
    """Download (or find, verified) the model's files at its revision; lock a resolved revision."""
    revision, revision_from = resolve_revision(settings)
    base = settings.directory / "hub" / settings.repo_id
    files = verified_before(base / revision, revision) if revision else None
    if files is not None:
        commit = revision
        log.info(
            "%s@%s: verified before, %d files; nothing to fetch",
            settings.repo_id,
            commit,
            len(files),
        )
    else:
        client = HubClient(settings.endpoint, settings.policy)
        commit, files = hub_files(settings, client, revision)
        download_hub_files(settings, client, commit, files, base / commit)
    directory = base / commit
    weights = weight_files(directory, settings.local_key)
    verified = {path: remote.sha256 for path, remote in files.items() if remote.sha256}
    digest = weights_sha256(weights, verified)
    locked = model_lock.read_lock(settings.lock).get(settings.model_id)
    expected = settings.sha256 or (
        locked.weights_sha256 if locked and locked.revision == commit else None
    )
    check_weights(settings, digest, expected, f"of {settings.repo_id} at commit {commit}")
    resolved = revision_from.startswith("resolved")
    if not (locked and locked.revision == commit and locked.weights_sha256 == digest):
        model_lock.record(
            settings.lock,
            settings.model_id,
            model_lock.LockEntry(
                settings.key,
                commit,
                DEFAULT_BRANCH if resolved else None,
                _now() if resolved else None,
                digest,
            ),
        )
    if resolved:
        log.info(
            "%s: revision null resolved to commit %s, kept in %s; pin it as config '%s.revision'",
            settings.repo_id,
            commit,
            settings.lock,
            settings.key,
        )
    manifest = Manifest(
        settings.name,
        settings.key,
        settings.model_id,
        commit,
        str(directory),
        {path: remote.size for path, remote in sorted(files.items())},
        [str(path.relative_to(directory)) for path in weights],
        digest,
        bool(settings.sha256),
    )
    return Fetched(manifest, revision_from)


def fetch_url_model(settings: ModelFetchSettings) -> Fetched:
    """The checkpoint's files from under its URL into its directory; the weights checked against the pin
    (else the lock's hash). Files already there are kept."""
    directory = settings.directory
    for name in settings.files:
        target = directory / name
        if target.is_file():
            continue
        url = f"{settings.url.rstrip('/')}/{name}"
        try:
            download(url, target, policy=settings.policy)
        except DownloadError as error:
            raise settings.unreachable(url, error) from error
    weights = directory / settings.weights
    digest = sha256_file(weights)
    locked = model_lock.read_lock(settings.lock).get(settings.model_id)
    expected = settings.sha256 or (locked.weights_sha256 if locked else None)
    try:
        check_weights(settings, digest, expected, str(weights))
    except ModelFetchError:
        weights.unlink()
        raise
    if not (locked and locked.weights_sha256 == digest):
        model_lock.record(
            settings.lock,
            settings.model_id,
            model_lock.LockEntry(settings.key, None, None, _now(), digest),
        )
    manifest = Manifest(
        settings.name,
        settings.key,
        settings.model_id,
        None,
        str(directory),
        {name: (directory / name).stat().st_size for name in settings.files},
        [settings.weights],
        digest,
        bool(settings.sha256),
    )
    return Fetched(manifest, "url")


def fetch_model(settings: ModelFetchSettings) -> Fetched:
    if settings.source == "hub":
        return fetch_hub_model(settings)
    return fetch_url_model(settings)

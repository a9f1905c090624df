"""The Hugging Face Hub's file API, spoken through the project's HTTP layer (``io.http``).

Two calls are all a model download needs, the same ones ``huggingface_hub`` makes:

- ``GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true``: the commit a revision (a branch,
  a tag or a commit) points at (``sha``), and the repository's files (``siblings``), each with its size
  and either its git blob id (``blobId``, the sha1 of ``"blob <size>\\0" + content``) or, for files kept
  in Git LFS (the weights), the sha256 of its content (``lfs.sha256``);
- ``GET {endpoint}/{repo}/resolve/{commit}/{path}``: the file, resumable with ``Range`` (redirects to a
  CDN are followed).

Every file is checked against the hash the Hub lists for it, so a download is either the commit's file
or an error. A token (environment variable ``HF_TOKEN``, for gated models) is sent to the Hub only.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import requests

from .http import (
    RETRY_STATUS,
    DownloadError,
    FetchError,
    HttpClient,
    RetryPolicy,
    TransientError,
    download,
    retry_after_seconds,
)

TOKEN_VARIABLE = "HF_TOKEN"
# Hub error codes (header X-Error-Code) that say what a 404 means.
REPO_NOT_FOUND, REVISION_NOT_FOUND = "RepoNotFound", "RevisionNotFound"


class HubError(FetchError):
    """The Hub answered, and the answer was no: ``status`` and the Hub's ``code`` say why."""

    def __init__(self, message: str, status: int, code: str | None):
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class RemoteFile:
    """A file of a repository at one commit, as the Hub lists it."""

    path: str
    size: int
    sha256: str | None  # Git LFS files (the weights): the sha256 of the content
    blob_id: str | None  # other files: the git blob id

    def verify(self, local: Path) -> str | None:
        """None when ``local`` is this file, else what differs."""
        size = local.stat().st_size
        if size != self.size:
            return f"{size} bytes where the Hub lists {self.size}"
        if self.sha256 is not None:
            found = sha256_of(local)
            return None if found == self.sha256 else f"sha256 {found}, the Hub's {self.sha256}"
        if self.blob_id is not None:
            found = git_blob_id(local)
            return None if found == self.blob_id else f"git blob {found}, the Hub's {self.blob_id}"
        return None


@dataclass(frozen=True)
class RepoRevision:
    repo_id: str
    commit: str
    files: dict[str, RemoteFile]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_id(path: Path) -> str:
    """git's object id of a file: sha1 of ``"blob <size>\\0"`` and the content."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_revision(repo_id: str, body: dict) -> RepoRevision:
    """The commit and files of a ``/api/models/{repo}/revision/{rev}?blobs=true`` answer."""
    try:
        commit = body["sha"]
        siblings = body["siblings"]
    except (KeyError, TypeError) as error:
        raise TransientError(f"answer without sha/siblings ({error!r})") from error
    files = {}
    for sibling in siblings:
        lfs = sibling.get("lfs") or {}
        files[sibling["rfilename"]] = RemoteFile(
            sibling["rfilename"],
            int(lfs.get("size", sibling.get("size") or 0)),
            lfs.get("sha256"),
            None if lfs else sibling.get("blobId"),
        )
    return RepoRevision(repo_id, commit, files)


class HubClient:
    """Revision look-ups and file downloads, with the HTTP layer's retries, back-off and resume."""

    def __init__(self, endpoint: str, policy: RetryPolicy):
        self.endpoint = endpoint.rstrip("/")
        self.policy = policy
        self.session = requests.Session()
        token = os.environ.get(TOKEN_VARIABLE)
        if token:
            # requests drops it on a redirect to another host (the CDN)
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.client = HttpClient(policy, session=self.session)

    def revision(self, repo_id: str, revision: str) -> RepoRevision:
        """The commit ``revision`` points at and the repository's files there."""
        url = f"{self.endpoint}/api/models/{repo_id}/revision/{quote(revision, safe='')}"

        def attempt() -> RepoRevision:
            response = self.session.get(
                url, params={"blobs": "true"}, timeout=self.policy.timeout_seconds
            )
            if response.status_code in RETRY_STATUS:
                raise TransientError(
                    f"HTTP {response.status_code}",
                    retry_after_seconds(response.headers.get("Retry-After")),
                )
            if response.status_code >= 400:
                code = response.headers.get("X-Error-Code")
                raise HubError(
                    f"GET {url}: HTTP {response.status_code} ({code or response.text[:200]!r})",
                    response.status_code,
                    code,
                )
            return parse_revision(repo_id, response.json())

        return self.client.call(f"GET {url}", url, attempt)

    def file_url(self, repo_id: str, commit: str, path: str) -> str:
        return f"{self.endpoint}/{repo_id}/resolve/{commit}/{quote(path)}"

    def download(self, repo_id: str, commit: str, remote: RemoteFile, destination: Path) -> Path:
        """``remote`` into ``destination``, resumed from ``<destination>.part``, checked against the Hub's
        hash; a file that fails the check is removed (``DownloadError``)."""
        url = self.file_url(repo_id, commit, remote.path)
        download(url, destination, policy=self.policy, session=self.session)
        problem = remote.verify(destination)
        if problem:
            destination.unlink()
            raise DownloadError(f"{url}: {problem}; the download was removed.")
        return destination

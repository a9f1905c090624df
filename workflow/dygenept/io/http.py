"""One HTTP layer for every network source: timeouts, retries with backoff and jitter, ``Retry-After``,
a rate limit per host, and resumable, checksummed downloads that never leave a partial file under the
final name.

``HttpClient`` serves the text sources: one ``requests.Session`` shared by worker threads, each request
retried on 408/425/429/5xx, time-outs, dropped or reset connections and truncated or invalid bodies, each
attempt (a retry too) waiting its turn at its host's ``RateLimiter``. ``HttpClient.call`` gives the same
retries and rate limit to a third-party client's request (the ``mygene`` client speaks httpx).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from .. import __version__
from ..errors import InputError
from .artifacts import atomic_path, sha256_file

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
PART_SUFFIX = ".part"


class DownloadError(InputError):
    pass


class FetchError(InputError):
    """A request that failed for good: HTTP 4xx, or every attempt failed."""


class TransientError(Exception):
    """A failure worth another attempt (a retryable status, a truncated or unparsable body)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    timeout_seconds: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with full jitter; a server's Retry-After wins when it asks for longer."""
        backoff = random.uniform(
            0, min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        )
        return max(backoff, retry_after or 0.0)


def retry_after_seconds(value: str | None) -> float | None:
    """Parse ``Retry-After``: delta-seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):  # a malformed header is no reason to fail the request
        return None
    return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _stream_to(
    response: requests.Response, part: Path, append: bool, total: int | None, label: str
) -> None:
    written = part.stat().st_size if append else 0
    next_report = written + (1 << 24)
    with open(part, "ab" if append else "wb") as out:
        for chunk in response.iter_content(chunk_size=1 << 16):
            out.write(chunk)
            written += len(chunk)
            if written >= next_report:
                share = f" ({100 * written / total:.0f}%)" if total else ""
                log.info("%s: %.1f MB%s", label, written / 1e6, share)
                next_report = written + (1 << 24)
    if total is not None and written < total:
        raise requests.ConnectionError(f"stream ended at {written} of {total} bytes")


def download(
    url: str,
    destination: str | Path,
    sha256: str | None = None,
    policy: RetryPolicy = RetryPolicy(),
    session: requests.Session | None = None,
) -> Path:
    """Download ``url`` to ``destination``; resume from ``<destination>.part`` where the server allows Range.

    Transient failures (connection errors, time-outs, 408/425/429/5xx) are retried; the file appears under its
    final name only complete and, when ``sha256`` is given, verified.
    """
    destination = Path(destination)
    part = destination.with_name(destination.name + PART_SUFFIX)
    destination.parent.mkdir(parents=True, exist_ok=True)
    session = session or requests.Session()
    last_error = ""
    for attempt in range(1, policy.attempts + 1):
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        retry_after = None
        try:
            with session.get(
                url, headers=headers, stream=True, timeout=policy.timeout_seconds
            ) as response:
                if response.status_code in RETRY_STATUS:
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                    raise requests.HTTPError(f"HTTP {response.status_code}")
                if (
                    response.status_code == 416
                ):  # asked past the end: the .part is complete or stale
                    part.unlink(missing_ok=True)
                    raise requests.HTTPError("HTTP 416 on resume; restarting")
                response.raise_for_status()
                resumed = response.status_code == 206
                length = response.headers.get("Content-Length")
                total = (int(length) + (offset if resumed else 0)) if length else None
                _stream_to(response, part, append=resumed, total=total, label=destination.name)
            break
        except requests.HTTPError as error:
            status = getattr(error.response, "status_code", None)
            if status is not None and status not in RETRY_STATUS and status != 416:
                raise DownloadError(
                    f"{url}: HTTP {status}. Fix: check the URL in config (or a mirror)."
                ) from error
            last_error = str(error)
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as error:
            last_error = str(error)
        if attempt < policy.attempts:
            wait = policy.delay(attempt, retry_after)
            log.warning(
                "%s: attempt %d/%d failed (%s); retrying in %.1f s",
                url,
                attempt,
                policy.attempts,
                last_error,
                wait,
            )
            time.sleep(wait)
    else:
        raise DownloadError(
            f"{url}: failed after {policy.attempts} attempts ({last_error}). Fix: check the network or use a mirror URL."
        )
    if sha256:
        digest = sha256_file(part)
        if digest != sha256:
            part.unlink()
            raise DownloadError(
                f"{url}: sha256 {digest} differs from the pinned {sha256}; the download was removed. "
                "Fix: retry, or update the pin in config if the file changed upstream on purpose."
            )
    with atomic_path(destination) as tmp:
        part.replace(tmp)
    return destination


CHECKSUM_ALGORITHMS = ("md5", "sha256")


def parse_checksum(checksum: str, field: str) -> tuple[str, str]:
    """``md5:<hex>`` or ``sha256:<hex>`` → (algorithm, digest); ``field`` names the config key in the error."""
    algorithm, sep, digest = checksum.partition(":")
    if not sep or algorithm not in CHECKSUM_ALGORITHMS or not digest:
        raise InputError(
            f"config '{field}' is '{checksum}'. Fix: write it as md5:<hex> or sha256:<hex>."
        )
    return algorithm, digest.lower()


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: Path, checksum: str | None, url: str, field: str) -> str:
    """Check ``path`` against the pin in config ``field``; a mismatch deletes it. Returns the sha256 (for provenance)."""
    sha256 = file_digest(path, "sha256")
    if not checksum:
        log.warning(
            "%s: no checksum pinned; its sha256 is %s. Pin it as %s: sha256:%s",
            url,
            sha256,
            field,
            sha256,
        )
        return sha256
    algorithm, expected = parse_checksum(checksum, field)
    found = sha256 if algorithm == "sha256" else file_digest(path, algorithm)
    if found != expected:
        path.unlink()
        raise DownloadError(
            f"{url}: {algorithm} {found} differs from the pinned {expected} (config '{field}'); the download was "
            "removed. Fix: retry; if the file changed upstream on purpose, update the pin."
        )
    return sha256


def download_first(urls: list[str], destination: Path, policy: RetryPolicy = RetryPolicy()) -> str:
    """Download from the first URL that works (a mirror after the main one); returns the URL used."""
    errors = []
    for url in urls:
        try:
            download(url, destination, policy=policy)
            return url
        except DownloadError as error:
            log.warning("%s", error)
            errors.append(str(error))
    raise DownloadError(
        "no URL worked:\n  "
        + "\n  ".join(errors)
        + "\nFix: check the network, or set a mirror URL."
    )


T = TypeVar("T")


class RateLimiter:
    """At most ``per_second`` calls a second, spaced evenly, whichever thread calls; ``pause`` holds
    every caller back (a server's ``Retry-After`` applies to the host, not only to the thread that read it)."""

    def __init__(self, per_second: float):
        if per_second <= 0:
            raise ValueError(f"rate must be positive, got {per_second}")
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until this caller's slot; return the seconds waited."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)
        return slot - now

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


def retry_verdict(error: BaseException) -> tuple[bool, float | None]:
    """(worth another attempt?, the server's Retry-After in seconds) for an exception from a request.

    Works for requests and httpx alike: both put the failed response on ``error.response``.
    """
    if isinstance(error, TransientError):
        return True, error.retry_after
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        return status in RETRY_STATUS, retry_after_seconds(response.headers.get("Retry-After"))
    transient = (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
        json.JSONDecodeError,
        ConnectionError,
        TimeoutError,
    )
    return isinstance(error, transient), None


class HttpClient:
    """Requests with timeouts, retries and a rate limit per host, safe to share between threads."""

    def __init__(
        self,
        policy: RetryPolicy = RetryPolicy(),
        user_agent: str = f"dygenept/{__version__}",
        pool_size: int = 8,
        session: requests.Session | None = None,
    ):
        self.policy = policy
        self.session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = user_agent
        self._limiters: dict[str, RateLimiter] = {}

    def set_rate(self, url: str, per_second: float) -> None:
        """Limit requests to ``url``'s host (the slower limit wins when sources share a host)."""
        host = urlsplit(url).netloc
        current = self._limiters.get(host)
        if current is None or current.interval < 1.0 / per_second:
            self._limiters[host] = RateLimiter(per_second)

    def call(self, label: str, url: str, attempt: Callable[[], T]) -> T:
        """``attempt()`` until it succeeds, retrying what ``retry_verdict`` calls transient.

        Raises ``FetchError`` naming ``label`` on a permanent failure or when the attempts run out.
        """
        limiter = self._limiters.get(urlsplit(url).netloc)
        last_error = ""
        for number in range(1, self.policy.attempts + 1):
            if limiter is not None:
                limiter.wait()
            try:
                return attempt()
            except FetchError:
                raise
            except Exception as error:  # noqa: BLE001 - sorted into transient and permanent just below
                transient, retry_after = retry_verdict(error)
                first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
                last_error = (
                    f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
                )
                if not transient:
                    if getattr(error, "response", None) is None and not isinstance(
                        error, requests.RequestException
                    ):
                        raise  # not a failed request but a bug: let it show
                    raise FetchError(f"{label}: {last_error}") from error
            if number < self.policy.attempts:
                wait = self.policy.delay(number, retry_after)
                if retry_after and limiter is not None:
                    limiter.pause(retry_after)
                log.warning(
                    "%s: attempt %d/%d failed (%s); retrying in %.2f s",
                    label,
                    number,
                    self.policy.attempts,
                    last_error,
                    wait,
                )
                time.sleep(wait)
        raise FetchError(f"{label}: failed after {self.policy.attempts} attempts ({last_error})")

    def request(
        self,
        method: str,
        url: str,
        parse: Callable[[requests.Response], T],
        query: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> T:
        """One request, retried; ``parse(response)`` runs inside the attempt, so an invalid body is retried too.

        ``query`` is the URL's query string (``requests``' ``params``), ``data`` a form body."""

        def attempt() -> T:
            response = self.session.request(
                method,
                url,
                params=query,
                data=data,
                json=json,
                headers=headers,
                timeout=self.policy.timeout_seconds,
            )
            if response.status_code in RETRY_STATUS:
                raise TransientError(
                    f"HTTP {response.status_code}",
                    retry_after_seconds(response.headers.get("Retry-After")),
                )
            if response.status_code >= 400:
                raise FetchError(
                    f"{method} {url}: HTTP {response.status_code} ({response.text[:200]!r})"
                )
            return parse(response)

        return self.call(f"{method} {url}", url, attempt)

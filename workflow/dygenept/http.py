"""One HTTP layer for every network source: timeouts, retries with backoff and jitter, ``Retry-After``,
and resumable, checksummed downloads that never leave a partial file under the final name."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from .artifacts import atomic_path, sha256_file
from .errors import InputError

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
PART_SUFFIX = ".part"


class DownloadError(InputError):
    pass


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    timeout_seconds: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with full jitter; a server's Retry-After wins when it asks for longer."""
        backoff = random.uniform(0, min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1)))
        return max(backoff, retry_after or 0.0)


def retry_after_seconds(value: str | None) -> float | None:
    """Parse ``Retry-After``: delta-seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    parsed = email.utils.parsedate_to_datetime(value)
    return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _stream_to(response: requests.Response, part: Path, append: bool, total: int | None, label: str) -> None:
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


def download(url: str, destination: str | Path, sha256: str | None = None, policy: RetryPolicy = RetryPolicy(),
             session: requests.Session | None = None) -> Path:
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
            with session.get(url, headers=headers, stream=True, timeout=policy.timeout_seconds) as response:
                if response.status_code in RETRY_STATUS:
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                    raise requests.HTTPError(f"HTTP {response.status_code}")
                if response.status_code == 416:  # asked past the end: the .part is complete or stale
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
                raise DownloadError(f"{url}: HTTP {status}. Fix: check the URL in config (or a mirror).") from error
            last_error = str(error)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
            last_error = str(error)
        if attempt < policy.attempts:
            wait = policy.delay(attempt, retry_after)
            log.warning("%s: attempt %d/%d failed (%s); retrying in %.1f s", url, attempt, policy.attempts, last_error, wait)
            time.sleep(wait)
    else:
        raise DownloadError(f"{url}: failed after {policy.attempts} attempts ({last_error}). Fix: check the network or use a mirror URL.")
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

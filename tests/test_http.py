"""The download layer against a real HTTP server on loopback that injects faults."""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dygenept.io.http import (
    DownloadError,
    FetchError,
    HttpClient,
    RateLimiter,
    RetryPolicy,
    download,
    retry_after_seconds,
)

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
FAST = RetryPolicy(attempts=4, backoff_seconds=0.01, max_backoff_seconds=0.05, timeout_seconds=5)


class FaultyServer:
    """Serves PAYLOAD at /file; ``faults`` is a list consumed one per request: 'ok', '503', '404',
    'truncate' (send half the body and hang up). Range requests are honoured when ``ranges`` is set."""

    def __init__(self, faults: list[str], ranges: bool = True, retry_after: str = "0"):
        self.faults, self.ranges, self.retry_after = list(faults), ranges, retry_after
        self.requests: list[tuple[float, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((time.monotonic(), self.headers.get("Range")))
                fault = server.faults.pop(0) if server.faults else "ok"
                if fault in ("503", "404"):
                    self.send_response(int(fault))
                    if fault == "503":
                        self.send_header("Retry-After", server.retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                if server.ranges and self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    self.send_response(206)
                    self.send_header(
                        "Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
                    )
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_plain_download_verifies_checksum(tmp_path):
    with FaultyServer(["ok"]) as server:
        path = download(server.url, tmp_path / "f.bin", sha256=sha(PAYLOAD), policy=FAST)
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "f.bin.part").exists()


def test_truncated_transfer_resumes_with_range(tmp_path):
    with FaultyServer(["truncate", "ok"]) as server:
        download(server.url, tmp_path / "f.bin", sha256=sha(PAYLOAD), policy=FAST)
        ranges = [r for _, r in server.requests]
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert ranges[0] is None and ranges[1] == f"bytes={len(PAYLOAD) // 2}-"


def test_server_without_ranges_restarts_from_zero(tmp_path):
    with FaultyServer(["truncate", "ok"], ranges=False) as server:
        download(server.url, tmp_path / "f.bin", sha256=sha(PAYLOAD), policy=FAST)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_503_waits_for_retry_after(tmp_path):
    with FaultyServer(["503", "ok"], retry_after="1") as server:
        download(server.url, tmp_path / "f.bin", policy=FAST)
        (first, _), (second, _) = server.requests
    assert second - first >= 0.95


def test_404_fails_at_once_naming_the_url(tmp_path):
    with FaultyServer(["404"]) as server:
        with pytest.raises(DownloadError, match="HTTP 404"):
            download(server.url, tmp_path / "f.bin", policy=FAST)
        assert len(server.requests) == 1
    assert not (tmp_path / "f.bin").exists()


def test_checksum_mismatch_leaves_nothing_behind(tmp_path):
    with (
        FaultyServer(["ok"]) as server,
        pytest.raises(DownloadError, match="differs from the pinned"),
    ):
        download(server.url, tmp_path / "f.bin", sha256="0" * 64, policy=FAST)
    assert list(tmp_path.iterdir()) == []


def test_gives_up_after_the_attempts(tmp_path):
    with FaultyServer(["503"] * 10) as server:
        with pytest.raises(DownloadError, match="after 4 attempts"):
            download(server.url, tmp_path / "f.bin", policy=FAST)
        assert len(server.requests) == 4


def test_retry_after_parsing():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert 0 <= retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") < 1
    assert retry_after_seconds("soon") is None


def test_client_retries_a_503_and_a_cut_body_then_parses(tmp_path):
    with FaultyServer(["503", "truncate", "ok"], ranges=False) as server:
        body = HttpClient(FAST).request("GET", server.url, parse=lambda response: response.content)
        assert len(server.requests) == 3
    assert body == PAYLOAD


def test_client_retries_what_parse_rejects_and_gives_up_naming_the_url():
    calls = []

    def parse(response):
        calls.append(1)
        return response.json()  # the payload is not JSON: a transient error, retried

    with (
        FaultyServer(["ok"] * 10) as server,
        pytest.raises(FetchError, match=r"GET .*/file: failed after 4 attempts \(JSONDecodeError"),
    ):
        HttpClient(FAST).request("GET", server.url, parse=parse)
    assert len(calls) == 4


def test_client_fails_at_once_on_404():
    with FaultyServer(["404"]) as server:
        with pytest.raises(FetchError, match="HTTP 404"):
            HttpClient(FAST).request("GET", server.url, parse=lambda response: response)
        assert len(server.requests) == 1


def test_rate_limiter_spaces_calls_across_threads_and_pauses_for_all():
    limiter = RateLimiter(20)
    times = []
    lock = threading.Lock()

    def call():
        limiter.wait()
        with lock:
            times.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times.sort()
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.045
    limiter.pause(0.3)
    start = time.monotonic()
    limiter.wait()
    assert time.monotonic() - start >= 0.28

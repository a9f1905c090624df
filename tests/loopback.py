"""A real HTTP file server on 127.0.0.1 for download tests: Range requests, a request log, injected faults."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves ``files`` ({"/path": bytes}). ``faults`` ({"/path": [fault, ...]}) are consumed one per request:
    "404", "503" (with Retry-After: 0), "truncate" (half the body, then hang up). Use as a context manager."""

    def __init__(self, files: dict[str, bytes], faults: dict[str, list[str]] | None = None):
        self.files = files
        self.faults = {path: list(items) for path, items in (faults or {}).items()}
        self.requests: list[tuple[float, str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.requests.append((time.monotonic(), self.path, self.headers.get("Range")))
                pending = owner.faults.get(self.path) or []
                fault = pending.pop(0) if pending else "ok"
                body = owner.files.get(self.path)
                if body is None or fault in ("404", "503"):
                    self.send_response(404 if body is None or fault == "404" else 503)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = (
                    int(self.headers["Range"].split("=")[1].rstrip("-"))
                    if self.headers.get("Range")
                    else 0
                )
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if fault == "truncate":
                    self.wfile.write(body[start : start + (len(body) - start) // 2])
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(body[start:])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

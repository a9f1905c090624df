"""Real HTTP servers on 127.0.0.1 for download tests: Range requests, a request log, injected faults.

``FileServer`` serves plain files; ``HubServer`` serves model repositories through the Hugging Face Hub's
file API, as ``huggingface_hub`` and plain HTTP clients use it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

# Faults, consumed one per request of a path: "404", "503" (with Retry-After: 0), "truncate" (half the
# body, then hang up), "corrupt" (the whole body with its last byte changed).
FAULTS = ("404", "503", "truncate", "corrupt")


def send_body(
    handler: BaseHTTPRequestHandler,
    body: bytes,
    fault: str,
    headers: dict[str, str] | None = None,
    head: bool = False,
) -> None:
    """Answer with ``body`` (from the Range start, if asked), or with the fault's failure."""
    if fault in ("404", "503"):
        send_status(handler, int(fault))
        return
    start = (
        int(handler.headers["Range"].split("=")[1].split("-")[0])
        if handler.headers.get("Range")
        else 0
    )
    handler.send_response(206 if start else 200)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Accept-Ranges", "bytes")
    if start:
        handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
    handler.send_header("Content-Length", str(len(body) - start))
    handler.end_headers()
    if head:
        return
    if fault == "truncate":
        handler.wfile.write(body[start : start + (len(body) - start) // 2])
        handler.wfile.flush()
        handler.connection.close()
        return
    if fault == "corrupt":
        body = body[:-1] + bytes([body[-1] ^ 0xFF])
    handler.wfile.write(body[start:])


def send_status(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str] | None = None
) -> None:
    handler.send_response(status)
    handler.send_header("Retry-After", "0")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


class _Server:
    """A threaded server on a free port of 127.0.0.1 and its request log; a context manager."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], faults: dict[str, list[str]] | None):
        self.faults = {path: list(items) for path, items in (faults or {}).items()}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def next_fault(self, path: str) -> str:
        pending = self.faults.get(path) or []
        return pending.pop(0) if pending else "ok"

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class FileServer(_Server):
    """Serves ``files`` ({"/path": bytes}); ``faults`` ({"/path": [fault, ...]}, see ``FAULTS``)."""

    def __init__(self, files: dict[str, bytes], faults: dict[str, list[str]] | None = None):
        self.files = files
        self.requests: list[tuple[float, str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.requests.append((time.monotonic(), self.path, self.headers.get("Range")))
                fault = owner.next_fault(self.path)
                body = owner.files.get(self.path)
                if body is None:
                    send_status(self, 404)
                    return
                send_body(self, body, fault)

        super().__init__(Handler, faults)


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(f"blob {len(content)}\0".encode() + content).hexdigest()


class HubServer(_Server):
    """Model repositories as the Hugging Face Hub serves them:

    - ``GET /api/models/{repo}/revision/{rev}[?blobs=true]``: ``{"id", "sha", "siblings"}``, each sibling
      with ``rfilename`` (and with blobs: ``size``, ``blobId``, ``lfs: {sha256, size, pointerSize}``);
    - ``GET /api/models/{repo}/tree/{rev}``: ``[{"type", "path", "size", "oid", "lfs"}]`` (what
      ``huggingface_hub.snapshot_download`` lists);
    - ``HEAD|GET /{repo}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``, ``ETag`` (the sha256 of
      an LFS file, else its git blob id), ``X-Linked-Etag`` / ``X-Linked-Size`` for LFS files, and Range;
    - 404 with ``X-Error-Code`` ``RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``; 401
      ``GatedRepo`` without the ``token`` where one is set.

    ``push(repo, files)`` adds a commit and moves ``main`` to it. Files matching ``lfs`` are Git LFS files.
    ``faults`` are keyed by the request path without its query (``/api/models/...``, ``/org/m/resolve/...``).
    """

    def __init__(
        self,
        faults: dict[str, list[str]] | None = None,
        token: str | None = None,
        lfs: tuple[str, ...] = ("*.safetensors", "*.bin", "*.pt"),
    ):
        self.commits: dict[str, dict[str, dict[str, bytes]]] = {}  # repo → commit → files
        self.refs: dict[str, dict[str, str]] = {}  # repo → branch → commit
        self.lfs = lfs
        self.token = token
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.answer(self, head=False)

            def do_HEAD(self):
                owner.answer(self, head=True)

        super().__init__(Handler, faults)

    def push(self, repo: str, files: dict[str, bytes]) -> str:
        listing = "".join(f"{path} {git_blob_id(files[path])}\n" for path in sorted(files))
        commit = hashlib.sha1(f"{repo}\n{len(self.commits.get(repo, {}))}\n{listing}".encode())
        sha = commit.hexdigest()
        self.commits.setdefault(repo, {})[sha] = dict(files)
        self.refs.setdefault(repo, {})["main"] = sha
        return sha

    def is_lfs(self, path: str) -> bool:
        return any(fnmatch.fnmatch(path, pattern) for pattern in self.lfs)

    def entry(self, path: str, content: bytes) -> dict:
        lfs = {
            "sha256": hashlib.sha256(content).hexdigest(),
            "size": len(content),
            "pointerSize": 134,
        }
        return {
            "size": len(content),
            "blobId": git_blob_id(content),
            **({"lfs": lfs} if self.is_lfs(path) else {}),
        }

    def commit_of(self, repo: str, revision: str) -> str | None:
        commits = self.commits[repo]
        return revision if revision in commits else self.refs[repo].get(revision)

    def answer(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        split = urlsplit(handler.path)
        path, query = unquote(split.path), split.query
        self.requests.append((handler.command, path, handler.headers.get("Range")))
        fault = self.next_fault(path)
        if fault in ("404", "503"):
            send_status(handler, int(fault))
            return
        if self.token and handler.headers.get("Authorization") != f"Bearer {self.token}":
            send_status(handler, 401, {"X-Error-Code": "GatedRepo"})
            return
        if path.startswith("/api/models/"):
            rest = path.removeprefix("/api/models/")
            kind = "/revision/" if "/revision/" in rest else "/tree/"
            repo, _, revision = rest.partition(kind)
            resolved = self.resolve(handler, repo, revision)
            if resolved is None:
                return
            files = self.commits[repo][resolved]
            if kind == "/tree/":
                body = [
                    {
                        "type": "file",
                        "path": name,
                        "size": len(content),
                        "oid": git_blob_id(content),
                        **(
                            {
                                "lfs": {
                                    "oid": hashlib.sha256(content).hexdigest(),
                                    "size": len(content),
                                    "pointerSize": 134,
                                }
                            }
                            if self.is_lfs(name)
                            else {}
                        ),
                    }
                    for name, content in sorted(files.items())
                ]
            else:
                blobs = "blobs=true" in query
                body = {
                    "id": repo,
                    "modelId": repo,
                    "sha": resolved,
                    "siblings": [
                        {"rfilename": name, **(self.entry(name, content) if blobs else {})}
                        for name, content in sorted(files.items())
                    ],
                }
            data = json.dumps(body).encode()
            send_body(handler, data, "ok", {"Content-Type": "application/json"}, head)
            return
        repo, _, rest = path.lstrip("/").partition("/resolve/")
        revision, _, name = rest.partition("/")
        resolved = self.resolve(handler, repo, revision)
        if resolved is None:
            return
        content = self.commits[repo][resolved].get(name)
        if content is None:
            send_status(handler, 404, {"X-Error-Code": "EntryNotFound"})
            return
        entry = self.entry(name, content)
        etag = entry["lfs"]["sha256"] if "lfs" in entry else entry["blobId"]
        headers = {"X-Repo-Commit": resolved, "ETag": f'"{etag}"'}
        if "lfs" in entry:
            headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(content))}
        send_body(handler, content, fault, headers, head)

    def resolve(self, handler: BaseHTTPRequestHandler, repo: str, revision: str) -> str | None:
        if repo not in self.commits:
            send_status(handler, 404, {"X-Error-Code": "RepoNotFound"})
            return None
        resolved = self.commit_of(repo, revision)
        if resolved is None:
            send_status(handler, 404, {"X-Error-Code": "RevisionNotFound"})
        return resolved

"""A real HTTP server on 127.0.0.1 that speaks OpenAI's chat-completions protocol for the facet prompt.

``POST /v1/chat/completions`` with ``{"model", "messages", "response_format", ...}`` → ``{"id", "object":
"chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": ...},
"finish_reason": "stop" | "length"}], "usage": {...}}``. The gene is the last ``Gene: SYMBOL (name)`` line
of the user turns, so a retry turn (which names no gene) is answered for the same gene.

The answer for a gene comes from ``answers`` (facet id → paragraph; the test writes them from the gene's
real text). Behaviours, per symbol: a queue consumed one per request (then "valid"), or a mode kept for
good:
- ``valid``; ``schema_invalid`` (a facet missing, an unknown key); ``truncated`` (the JSON cut in half,
  finish_reason "length"); ``duplicate`` (one paragraph under two facets); ``none_variants`` (NONE written
  as "N/A", "", "Not applicable", "none"); ``restate`` (a paragraph copied from the system prompt);
  ``invented`` (schema-valid, but the paragraphs are sentences of another gene's text);
- ``429`` / ``500`` (with ``Retry-After: 0``); ``slow`` (answers after ``slow_seconds``).
``GET /v1/models`` lists one model (the engine's check that a server listens).
Every request is logged: (symbol, behaviour, the request body).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GENE_LINE = re.compile(r"^Gene: (\S+) \(", re.M)


class FakeChatServer:
    def __init__(
        self,
        answers: dict[str, dict[str, str]],
        queues: dict[str, list[str]] | None = None,
        modes: dict[str, str] | None = None,
        invented: dict[str, dict[str, str]] | None = None,
        slow_seconds: float = 1.5,
    ):
        self.answers = answers
        self.queues = {symbol: list(items) for symbol, items in (queues or {}).items()}
        self.modes = dict(modes or {})
        self.invented = invented or {}
        self.slow_seconds = slow_seconds
        self.log: list[tuple[str, str, dict]] = []
        self.models_requests = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body["authorization"] = self.headers.get("Authorization")
                owner.answer(self, body)

            def do_GET(self):  # GET /v1/models: what the engine asks once before any gene
                owner.models_requests += 1
                payload = json.dumps(
                    {"object": "list", "data": [{"id": "fake", "object": "model"}]}
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def behaviour(self, symbol: str) -> str:
        with self.lock:
            queue = self.queues.get(symbol) or []
            return queue.pop(0) if queue else self.modes.get(symbol, "valid")

    def content(self, symbol: str, behaviour: str, system: str) -> tuple[str, str]:
        answer = dict(self.answers[symbol])
        ids = list(answer)
        finish = "stop"
        if behaviour == "schema_invalid":
            answer.pop(ids[0])
            answer["summary"] = "An extra key the schema does not allow."
        elif behaviour == "duplicate":
            answer[ids[1]] = answer[ids[0]]
        elif behaviour == "none_variants":
            for fid, variant in zip(ids[1:], ["N/A", "", "Not applicable", "none", "None."]):
                answer[fid] = variant
        elif behaviour == "restate":
            answer[ids[-1]] = system.split("\n")[0]
        elif behaviour == "invented":
            answer = dict(self.invented[symbol])
        text = json.dumps(answer)
        if behaviour == "truncated":
            text, finish = text[: len(text) // 2], "length"
        return text, finish

    def answer(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        symbol = GENE_LINE.findall("\n".join(users))[-1]
        behaviour = self.behaviour(symbol)
        with self.lock:
            self.log.append((symbol, behaviour, body))
        if behaviour in ("429", "500"):
            handler.send_response(int(behaviour))
            handler.send_header("Retry-After", "0")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if behaviour == "slow":
            time.sleep(self.slow_seconds)
        system = body["messages"][0]["content"]
        content, finish = self.content(symbol, behaviour, system)
        payload = json.dumps(
            {
                "id": f"chatcmpl-{len(self.log)}",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": finish,
                    }
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": len(content.split())},
            }
        ).encode()
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and hung up
            pass

    def requests_for(self, symbol: str) -> list[tuple[str, dict]]:
        return [(behaviour, body) for s, behaviour, body in self.log if s == symbol]

    def __enter__(self) -> FakeChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

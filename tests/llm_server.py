"""A real OpenAI-compatible chat-completions server on loopback, for the HTTP LLM adapter's tests.

``POST /v1/chat/completions`` answers like a perfect judge: it finds the passages the judge rendered in
the last user message and their relevance (``rel=0.8`` markers, :func:`llm_fakes.grade_of`), and
answers yes/no with ``logprobs.content[0].top_logprobs`` when ``logprobs`` is asked (and the server
``supports_logprobs``), ``[id] grade`` lines for a graded prompt, or ``[2] > [1]`` for a listwise one.
``usage`` carries word counts as token counts.

Faults for the next requests (:meth:`ChatServer.inject`): ``http_500``, ``http_429`` (``Retry-After: 0``),
``http_400``, ``malformed_json``, ``no_choices``, ``garbage`` (a valid completion whose content is
nonsense), ``no_logprobs`` (a valid completion without logprobs), ``slow`` (sleeps ``slow_seconds``).
Every request body is kept in ``requests``; ``max_in_flight`` is the peak of concurrent requests.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from llm_fakes import PASSAGE, grade_of


class ChatServer:
    def __init__(
        self, *, supports_logprobs: bool = True, api_key: str | None = None, delay: float = 0.0
    ) -> None:
        self.supports_logprobs = supports_logprobs
        self.api_key = api_key
        self.delay = delay
        self.slow_seconds = 2.0
        self.faults: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, headers, payload = server._answer(self.path, dict(self.headers), raw)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def inject(self, *faults: str) -> None:
        with self._lock:
            self.faults.extend(faults)

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- answering ---------------------------------------------------------------------------------

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Any]:
        if path != "/v1/chat/completions":
            return 404, {}, {"error": {"message": f"no route {path}"}}
        lowered = {k.lower(): v for k, v in headers.items()}
        if self.api_key is not None and lowered.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, {"error": {"message": "invalid api key"}}
        body = json.loads(raw)
        with self._lock:
            self.requests.append(body)
            fault = self.faults.popleft() if self.faults else None
        if self.delay:
            time.sleep(self.delay)
        if fault == "slow":
            time.sleep(self.slow_seconds)
        if fault == "http_500":
            return 500, {}, {"error": {"message": "internal error"}}
        if fault == "http_429":
            return 429, {"retry-after": "0"}, {"error": {"message": "rate limited"}}
        if fault == "http_400":
            return 400, {}, {"error": {"message": "bad request"}}
        if fault == "malformed_json":
            return 200, {}, b'{"choices": [{"message": {"content": "[1] > '
        if fault == "no_choices":
            return 200, {}, {"object": "chat.completion", "choices": []}
        user = body["messages"][-1]["content"]
        passages = [(int(i), t) for i, t in PASSAGE.findall(user)]
        want_logprobs = bool(body.get("logprobs")) and self.supports_logprobs and fault != "no_logprobs"
        logprobs = None
        if fault == "garbage":
            text = "As an AI language model, I cannot rank passages. ¯\\_(ツ)_/¯"
        elif body.get("logprobs") or "yes or no" in user:
            p = min(max(grade_of(passages[0][1]), 1e-4), 1 - 1e-4) if passages else 0.5
            text = "Yes" if p >= 0.5 else "No"
            if want_logprobs:
                alts = [("Yes", math.log(p)), ("No", math.log(1 - p)), ("The", -9.0)]
                alts.sort(key=lambda a: -a[1])
                top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alts]
                logprobs = {
                    "content": [{"token": text, "logprob": max(a[1] for a in alts), "top_logprobs": top}]
                }
        elif "grade" in user[-400:]:
            text = "\n".join(f"[{i}] {round(grade_of(t) * 3)}" for i, t in passages)
        else:
            ranked = sorted(passages, key=lambda p: -grade_of(p[1]))
            text = "Here is the ranking: " + " > ".join(f"[{i}]" for i, _ in ranked)
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        if logprobs is not None:
            choice["logprobs"] = logprobs
        return (
            200,
            {},
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [choice],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(re.findall(r"\S+", text)),
                    "total_tokens": prompt_tokens + len(text.split()),
                },
            },
        )

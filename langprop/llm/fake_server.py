"""A small OpenAI-protocol HTTP server for tests: recorded answers, scripted failures, request counts.

It speaks ``POST /v1/chat/completions`` and ``GET /v1/models`` over real HTTP (stdlib ``http.server``
in a background thread), so the real ``openai`` SDK is exercised end to end. It can be told to fail
the next requests (HTTP status, a hang longer than the client's timeout, a dropped connection), to
ignore or reject ``n``, and to delay answers (to observe concurrency).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAIServer", "AnswerFn"]

AnswerFn = Callable[[list[dict[str, str]], int, int], str]  # (messages, choice index, serial) -> text


def _default_answer(messages: list[dict[str, str]], index: int, serial: int) -> str:
    return f"```python\ndef answer():\n    return {serial}\n```"


def _words(text: str) -> int:
    return len(text.split())


class FakeOpenAIServer:
    """Context manager; ``base_url`` ends with ``/v1``. Counters are safe to read from tests."""

    def __init__(
        self,
        answer: AnswerFn | None = None,
        *,
        n_mode: str = "honor",  # "honor" | "ignore" (always one choice) | "reject" (HTTP 400 for n > 1)
        delay_s: float = 0.0,  # before every answer
        hang_s: float = 5.0,  # how long a "timeout" fault keeps the client waiting
        model: str = "fake-model",
    ) -> None:
        if n_mode not in ("honor", "ignore", "reject"):
            raise ValueError(f"n_mode: {n_mode!r}")
        self.answer = answer or _default_answer
        self.n_mode = n_mode
        self.delay_s = delay_s
        self.hang_s = hang_s
        self.model = model
        self.requests: list[dict[str, Any]] = []  # every chat request body received, faults included
        self.max_active = 0
        self._active = 0
        self._serial = 0
        self._faults: deque[int | str | None] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control --------------------------------------------------------------------------------
    def fail_next(self, *faults: int | str | None) -> None:
        """Queue faults for the next chat requests: an HTTP status (429, 500...), "timeout", "drop",
        "garbage" (HTTP 200, body not JSON) or "empty" (HTTP 200, no choices); None for a normal answer."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1  # buffer the response: headers and body leave in one send (no Nagle stalls)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with server._lock:
                    server.requests.append(body)
                    fault = server._faults.popleft() if server._faults else None
                    server._active += 1
                    server.max_active = max(server.max_active, server._active)
                try:
                    server._handle(self, body, fault)
                finally:
                    with server._lock:
                        server._active -= 1

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    self.close_connection = True

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def _handle(self, handler: Any, body: dict[str, Any], fault: int | str | None) -> None:
        if fault == "drop":
            handler.close_connection = True
            handler.connection.shutdown(2)  # no response at all
            return
        if fault == "timeout":
            time.sleep(self.hang_s)
            handler._send(500, {"error": {"message": "too late"}})
            return
        if fault in ("garbage", "empty"):  # HTTP 200 that is not a usable completion
            data = b"this is not json" if fault == "garbage" else b'{"error": {"message": "overloaded"}}'
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        if isinstance(fault, int):
            headers = {"Retry-After": "0"} if fault == 429 else None
            handler._send(fault, {"error": {"message": f"injected HTTP {fault}", "type": "injected"}}, headers)
            return
        n = int(body.get("n") or 1)
        if n > 1 and self.n_mode == "reject":
            handler._send(400, {"error": {"message": "n > 1 is not supported", "param": "n"}})
            return
        if self.n_mode == "ignore":
            n = 1
        if self.delay_s:
            time.sleep(self.delay_s)
        messages = body.get("messages") or []
        texts = []
        for i in range(n):
            with self._lock:
                serial = self._serial
                self._serial += 1
            texts.append(self.answer(messages, i, serial))
        payload = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                for i, t in enumerate(texts)
            ],
            "usage": {
                "prompt_tokens": sum(_words(m.get("content") or "") for m in messages),
                "completion_tokens": sum(_words(t) for t in texts),
                "total_tokens": 0,
            },
        }
        payload["usage"]["total_tokens"] = payload["usage"]["prompt_tokens"] + payload["usage"]["completion_tokens"]
        handler._send(200, payload)

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""A scripted OpenAI-compatible server for tests: ``/v1/chat/completions`` and (unless
``chat_only``) ``/v1/completions`` on 127.0.0.1, answered by the ``scripted`` backend.

It can be told to answer 429 (with ``Retry-After``) to given request numbers, or to sleep
before answering, and it records each request's number, path, requests in flight on arrival
and ``Authorization`` header. Runs in a thread of the test process; :meth:`stop` shuts it down.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipelines.generate.backends import SamplingConfig
from pipelines.generate.backends.scripted_backend import ScriptedBackend


class ScriptedOpenAIServer:
    """Args: script: ``ScriptedBackend`` arguments (responses, by_prompt); chat_only: 404 on
    ``/v1/completions``; status_for: {request number (0-based): HTTP status}; sleep_s: seconds
    to wait before every answer; sleep_for: {request number: seconds} on top."""

    def __init__(self, script: dict, *, chat_only: bool = False, status_for: dict[int, int] | None = None,
                 sleep_s: float = 0.0, sleep_for: dict[int, float] | None = None, retry_after: str = "0.05"):
        self.backend = ScriptedBackend(**script)
        self.chat_only, self.status_for, self.sleep_s = chat_only, dict(status_for or {}), sleep_s
        self.sleep_for, self.retry_after = dict(sleep_for or {}), retry_after
        self.requests: list[dict] = []
        self.in_flight = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def first_status_arrival(self, status: int) -> int | None:
        return next((r["n"] for r in self.requests if r["status"] == status), None)

    def _handler(self):
        srv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code: int, obj: dict, headers: dict | None = None) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with srv._lock:
                    n = len(srv.requests)
                    srv.in_flight += 1
                    rec = {"n": n, "path": self.path, "in_flight": srv.in_flight,
                           "authorization": self.headers.get("Authorization"), "status": 200}
                    srv.requests.append(rec)
                try:
                    time.sleep(srv.sleep_s + srv.sleep_for.get(n, 0.0))
                    status = srv.status_for.get(n, 200)
                    if self.path.endswith("/completions") and not self.path.endswith("/chat/completions") \
                            and srv.chat_only:
                        status = 404
                    rec["status"] = status
                    if status != 200:
                        return self._send(status, {"error": {"message": f"scripted {status}", "code": status}},
                                          {"Retry-After": srv.retry_after} if status == 429 else None)
                    s = SamplingConfig(max_tokens=int(req.get("max_tokens") or 64), seed=int(req.get("seed") or 0),
                                       temperature=float(req.get("temperature", 0.7)),
                                       top_p=float(req.get("top_p") or 1.0), stop=tuple(req.get("stop") or ()))
                    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
                    if self.path.endswith("/chat/completions"):
                        msgs = req["messages"]
                        # one user message is answered as its text (a prompt sent through chat)
                        o = (srv.backend.complete([msgs[0]["content"]], s)[0] if len(msgs) == 1
                             else srv.backend.chat([msgs], s)[0])
                        return self._send(200, {"id": f"c{n}", "object": "chat.completion", "created": 0,
                                                "model": req["model"], "usage": usage, "choices": [
                                                    {"index": 0, "finish_reason": o.finish_reason,
                                                     "message": {"role": "assistant", "content": o.text}}]})
                    o = srv.backend.complete([req["prompt"]], s)[0]
                    return self._send(200, {"id": f"t{n}", "object": "text_completion", "created": 0,
                                            "model": req["model"], "usage": usage, "choices": [
                                                {"index": 0, "text": o.text, "finish_reason": o.finish_reason,
                                                 "logprobs": None}]})
                finally:
                    with srv._lock:
                        srv.in_flight -= 1

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})

        return H

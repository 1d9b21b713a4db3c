"""A Slack incoming webhook on 127.0.0.1: records what it is sent, answers as scripted."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LocalSlack:
    """Answers the scripted `statuses` in turn, then `always` (if set) or 200; keeps the payloads
    it took. Its URL looks like a real webhook's, secret path included, so tests can grep logs for it."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.always: int | None = None
        self.payloads: list[dict[str, Any]] = []
        self.attempts = 0
        slack = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                slack.attempts += 1
                status = slack.always or (slack.statuses.pop(0) if slack.statuses else 200)
                if status == 200:
                    slack.payloads.append(json.loads(body))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/services/T000/B000/secret-token-xyz"
        threading.Thread(target=self.server.serve_forever, name="local-slack", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

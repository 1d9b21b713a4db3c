"""Serving the console: werkzeug's threaded WSGI server, logging paths only."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _RequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path only: the first request's query string holds the access token.
        self.log("info", '"%s %s" %s', self.command, urlsplit(self.path).path, code)


def start_server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """werkzeug's threaded WSGI server for the app, bound (port 0: a free one), not yet serving."""
    return make_server(host, port, app, threaded=True, request_handler=_RequestHandler)

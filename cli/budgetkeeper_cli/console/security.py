"""The console's safety: a random access token on every request (in the URL once, then in an
HttpOnly SameSite=Strict cookie), a CSRF token on every POST, `read_only` refusing every POST, and a
Content-Security-Policy that allows no script at all."""

from __future__ import annotations

import hmac
from urllib.parse import urlencode

from flask import Flask, Response, redirect, request

COOKIE = "budgetkeeper_console"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def console_url(host: str, port: int, token: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?{urlencode({'token': token})}"


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _refused(message: str) -> Response:
    return Response(f"403 refused: {message}\n", status=403, mimetype="text/plain")


def guard(app: Flask, *, token: str, csrf: str, read_only: bool) -> None:
    """Ask the token of every request and the CSRF token of every POST; harden every answer."""

    @app.before_request
    def authenticate() -> Response | None:
        given = request.args.get("token")
        if not _same(given if given is not None else request.cookies.get(COOKIE), token):
            return _refused("no valid access token: open the URL `budgetkeeper console` printed")
        if request.method == "POST":
            if read_only:
                return _refused("the console runs with --read-only: nothing can be changed from it")
            if not _same(request.form.get("csrf"), csrf):
                return _refused("the form's CSRF token is missing or wrong: reload the page and try again")
        elif given is not None:  # the token leaves the address bar for a cookie
            kept = [(name, value) for name, value in request.args.items(multi=True) if name != "token"]
            response = redirect(request.path + (f"?{urlencode(kept)}" if kept else ""))
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
            return response
        return None

    @app.after_request
    def harden(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

"""The job dashboard: one page, served by every adapter at ``/v1/toolkit/dashboard/``.

This module is the framework-neutral half: which file answers which path, with which
content type, ``ETag``, ``Cache-Control`` and security headers. An adapter mounts the paths
that :meth:`Dashboard.handles` accepts (``/v1/toolkit/dashboard`` and everything under it)
and sends back the :class:`~jobstatus.Reply` of :meth:`Dashboard.respond`.

What it guarantees:

- The files ship inside the package (``index.html``, ``dashboard.js``, ``dashboard.css``,
  ``icon.svg``); nothing is built, and the page fetches nothing from another origin.
- The page (``/v1/toolkit/dashboard/``) is revalidated on every visit (``no-cache`` with an
  ``ETag``); the other files are named after a hash of their bytes
  (``dashboard.3f9a1c2b4d5e6f70.js``), so they are cached for a year as ``immutable``, and a
  new release is picked up by the next visit of the page.
- ``/v1/toolkit/dashboard`` redirects (308) to ``dashboard/``, a relative location: the page's
  API URLs are computed from its own address, so it works under any mount prefix.
- Every answer, errors included, carries a strict Content Security Policy (scripts, styles,
  images and requests from the page's own origin only, no inline script or style, no
  framing, Trusted Types required so that no script can write markup), ``nosniff``,
  ``Referrer-Policy: no-referrer`` and ``X-Frame-Options: DENY``.
- The page is public (it holds no data); every job it shows comes from the API routes, which
  check the ``x-api-key`` the page sends.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jobstatus._freshness import etag, parse_if_none_match
from jobstatus.service import JOB_CANCEL_PATH, Reply, StatusService, dump_json

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "DASHBOARD_PATH",
    "DASHBOARD_ROUTES",
    "SECURITY_HEADERS",
    "Asset",
    "Dashboard",
]

#: Where the page lives, relative to the service's routes (mount prefix excluded).
DASHBOARD_PATH = "/v1/toolkit/dashboard/"
_BARE = DASHBOARD_PATH.rstrip("/")
#: The paths an adapter that routes by pattern mounts, where ``{name}`` is one path segment.
#: Each request's path, with ``{name}`` filled in, goes to :meth:`Dashboard.respond`.
DASHBOARD_ROUTES = (_BARE, DASHBOARD_PATH, DASHBOARD_PATH + "{name}")

#: The page's Content Security Policy. Its own origin for everything, nothing inline, no
#: framing, no plugins, no ``<base>``, no form posting anywhere, and Trusted Types so that
#: markup cannot be written from strings.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)

#: Sent with every answer of the dashboard's paths.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)

_PAGE_CACHE = "no-cache"
_ASSET_CACHE = "public, max-age=31536000, immutable"
# file in the package → content type; the page references the others by their hashed names
_FILES = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
_PLACEHOLDERS = {"dashboard.js": "__JS__", "dashboard.css": "__CSS__", "icon.svg": "__ICON__"}


@dataclass(frozen=True)
class Asset:
    """One file of the dashboard as it is served."""

    #: Its name in URLs, relative to the page (``""`` for the page itself).
    name: str
    body: bytes
    content_type: str
    #: A hash of ``body``; the ``ETag`` is this, quoted (a strong tag).
    version: str
    cache_control: str

    @property
    def etag(self) -> str:
        return etag(self.version)

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (
            ("Content-Type", self.content_type),
            ("ETag", self.etag),
            ("Cache-Control", self.cache_control),
            *SECURITY_HEADERS,
        )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(name: str) -> bytes:
    return (resources.files(__name__) / name).read_bytes()


def _hashed_name(name: str, body: bytes) -> str:
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}.{_digest(body)[:16]}{dot}{suffix}"


class Dashboard:
    """The dashboard's files as HTTP answers.

    Args:
        allow_cancel: show a "Cancel job" button (the service mounts the cancel route).
        max_wait: the longest ``?wait=`` the service accepts, in seconds; the page's long-polls
            stay within it.
    """

    def __init__(self, *, allow_cancel: bool = False, max_wait: float = 30.0) -> None:
        self.allow_cancel = allow_cancel
        self.max_wait = max_wait
        assets: dict[str, Asset] = {}
        page = _read("index.html").decode("utf-8")
        for name, content_type in _FILES.items():
            body = _read(name)
            served = _hashed_name(name, body)
            assets[served] = Asset(served, body, content_type, _digest(body)[:32], _ASSET_CACHE)
            page = page.replace(_PLACEHOLDERS[name], html.escape(served))
        page = page.replace("__ALLOW_CANCEL__", "true" if allow_cancel else "false")
        page = page.replace("__MAX_WAIT__", html.escape(f"{max_wait:g}"))
        body = page.encode("utf-8")
        assets[""] = Asset("", body, "text/html; charset=utf-8", _digest(body)[:32], _PAGE_CACHE)
        #: URL name → file; ``""`` is the page.
        self.assets: dict[str, Asset] = assets

    @classmethod
    def for_service(cls, service: StatusService) -> Dashboard:
        """The dashboard of a :class:`~jobstatus.StatusService`: a cancel button when the
        service mounts the cancel route, long-polls within its ``max_wait``."""
        return cls(allow_cancel=JOB_CANCEL_PATH in service.routes, max_wait=service.max_wait)

    def __repr__(self) -> str:
        return f"Dashboard(allow_cancel={self.allow_cancel}, max_wait={self.max_wait:g})"

    @staticmethod
    def handles(path: str) -> bool:
        """True for the paths the dashboard answers (mount prefix excluded)."""
        return path == _BARE or path.startswith(DASHBOARD_PATH)

    def respond(self, method: str, path: str, if_none_match: str | None = None) -> Reply:
        """The answer to ``method path``: the file (200), a 304 when ``If-None-Match`` names
        its tag, the redirect of the bare path, a JSON 404 for an unknown name, a JSON 405 for
        a method other than GET and HEAD. A HEAD answer has the GET answer's headers and no
        body."""
        if method not in ("GET", "HEAD"):
            return _json(405, {"message": "Method not allowed"}, (("Allow", "GET, HEAD"),))
        if path == _BARE:
            return Reply(308, b"", (("Location", "dashboard/"), *SECURITY_HEADERS))
        asset = self.assets.get(path[len(DASHBOARD_PATH) :]) if self.handles(path) else None
        if asset is None:
            return _json(404, {"message": f"Not found: {path}"})
        condition = parse_if_none_match(if_none_match)
        if condition is not None and condition.matches(asset.version):
            return Reply(304, b"", asset.headers()[1:])
        return Reply(200, b"" if method == "HEAD" else asset.body, asset.headers())


def _json(status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    return Reply(
        status, dump_json(body), (("Content-Type", "application/json"), *headers, *SECURITY_HEADERS)
    )

"""Webhook URLs: which ones a job may name, and how an answer shows one.

A job's ``webhook_url`` is checked when the job is submitted, before anything is written: an
``http`` or ``https`` URL of at most :data:`MAX_URL_LENGTH` ASCII characters, with a host, a
valid port and no ``user:password@`` part. Where it may connect is decided later, at each
attempt, on the address the host resolves to (:mod:`jobstatus.webhooks.policy`).

The store keeps the whole URL; answers show it through :func:`redact_url`, which hides the
``userinfo``, every query value and the fragment -- the places a receiver's token usually sits.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

__all__ = ["MAX_URL_LENGTH", "check_webhook_url", "redact_url"]

#: The longest ``webhook_url`` accepted, in characters.
MAX_URL_LENGTH = 2048
_SCHEMES = ("http", "https")
_HIDDEN = "***"


def check_webhook_url(url: object) -> str:
    """Return ``url`` if a job may name it as its webhook; :class:`ValueError` saying why not.

    The message shows the URL redacted (:func:`redact_url`), never a credential it held.
    """
    if not isinstance(url, str):
        raise ValueError(f"webhook_url must be a string, not {type(url).__name__}")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(
            f"webhook_url is {len(url)} characters long; at most {MAX_URL_LENGTH} are accepted"
        )
    if not url.isascii() or not url.isprintable() or " " in url:
        raise ValueError(
            "webhook_url must be ASCII without spaces or control characters "
            "(percent-encode the path, write the host in punycode)"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bad port or bracketed host
        raise ValueError(f"webhook_url is not a valid URL: {exc}") from None
    shown = redact_url(url)
    if parts.scheme.lower() not in _SCHEMES:
        raise ValueError(f"webhook_url must be an http:// or https:// URL, got {shown!r}")
    if "@" in parts.netloc:
        raise ValueError(
            "webhook_url must not hold credentials (user:password@): receivers verify the "
            "signature instead"
        )
    if not parts.hostname:
        raise ValueError(f"webhook_url has no host: {shown!r}")
    if port == 0:
        raise ValueError(f"webhook_url has port 0: {shown!r}")
    return url


def redact_url(url: str) -> str:
    """``url`` with its ``userinfo``, query values and fragment replaced by ``***``:
    ``https://***@example.com/hook?token=***&v=***``. Text that does not parse as a URL is
    hidden whole."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _HIDDEN
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{_HIDDEN}@{netloc.rpartition('@')[2]}"
    query = "&".join(_redact_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    fragment = _HIDDEN if parts.fragment else ""
    return SplitResult(parts.scheme, netloc, parts.path, query, fragment).geturl()


def _redact_pair(pair: str) -> str:
    key, equals, value = pair.partition("=")
    if not equals:
        return _HIDDEN if key else key  # a bare value may itself be the token
    return f"{key}={_HIDDEN}" if value else pair

"""What an adapter hands the service and gets back: :class:`Request` in, :class:`Reply` out.

Framework-neutral: an adapter copies the method, the path (without any mount prefix), the raw
query string, the body and two headers into a :class:`Request`, and sends back a
:class:`Reply` -- status, headers, and a body that is bytes or, for a long answer, an iterable
of chunks to stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from jobstatus.errors import InvalidRequest
from jobstatus.record import dump_compact

__all__ = [
    "JSON_HEADERS",
    "MAX_QUERY_FIELDS",
    "Reply",
    "Request",
    "StreamedReply",
    "dump_json",
    "parse_query",
]

#: The headers of every JSON answer.
JSON_HEADERS = (("Content-Type", "application/json"),)
#: A query string with more fields than this is refused with a 400.
MAX_QUERY_FIELDS = 32


def dump_json(body: Any) -> bytes:
    """JSON as Flask's ``jsonify`` sends it: compact, ASCII, one trailing newline."""
    return (dump_compact(body) + "\n").encode("ascii")


class Request:
    """One HTTP request as the service sees it.

    ``path`` is the route's path as the service names it (no mount prefix), ``query`` the raw
    query string (percent-encoded, as the server received it), ``api_key`` the ``x-api-key``
    header, ``if_none_match`` the ``If-None-Match`` header (None when absent; several
    headers joined with commas) and ``authorization`` the ``Authorization`` header (a per-job
    token as ``Bearer <token>``).
    """

    __slots__ = ("api_key", "authorization", "body", "if_none_match", "method", "path", "query")

    def __init__(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        api_key: str | None = None,
        query: str = "",
        if_none_match: str | None = None,
        authorization: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.api_key = api_key
        self.query = query
        self.if_none_match = if_none_match
        self.authorization = authorization

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path!r}, query={self.query!r})"


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status code, JSON body bytes, headers. A ``304`` has an empty body and
    no ``Content-Type``; a :class:`StreamedReply` has more body to come."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = JSON_HEADERS

    @classmethod
    def json(cls, status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> Reply:
        return cls(status, dump_json(body), JSON_HEADERS + tuple(headers))

    @classmethod
    def method_not_allowed(cls, allow: str = "POST") -> Reply:
        """The JSON 405 every adapter sends for a method the route does not answer."""
        return cls.json(405, {"message": "Method not allowed"}, [("Allow", allow)])

    def chunks(self) -> Iterator[bytes]:
        """The whole body, in pieces."""
        if self.body:
            yield self.body

    def parsed(self) -> Any:
        """The body as Python objects (for tests and for hosts that re-serialise)."""
        return json.loads(b"".join(self.chunks()))


@dataclass(frozen=True)
class StreamedReply(Reply):
    """A reply whose body goes on after ``body`` with the chunks of ``stream``, to send as
    they come (a long listing; read it once). Adapters send it without a Content-Length."""

    stream: Iterable[bytes] = ()

    def chunks(self) -> Iterator[bytes]:
        """``body``, then every chunk of ``stream``."""
        if self.body:
            yield self.body
        yield from self.stream


def parse_query(query: str) -> dict[str, str]:
    """A raw query string as a dict; :class:`InvalidRequest` for a field given twice, more
    than :data:`MAX_QUERY_FIELDS` fields, or a value that is not UTF-8 once unescaped."""
    if not query:
        return {}
    try:
        pairs = parse_qsl(
            query,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_QUERY_FIELDS,
        )
    except UnicodeDecodeError:
        raise InvalidRequest("the query string is not UTF-8") from None
    except ValueError:
        raise InvalidRequest(f"the query string has more than {MAX_QUERY_FIELDS} fields") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise InvalidRequest(f"{name} is given twice")
        fields[name] = value
    return fields

"""The list route's cursors: opaque, signed, valid across processes and restarts.

A cursor holds where the next page starts -- the ``(updated_at, job_id)`` of the last job
listed -- and the query it pages through (the window's start as an absolute time, the status
filter), so that every page of a walk answers the same query. It is URL-safe base64 of a
small JSON array, a dot, and an HMAC-SHA256 tag of it (128 bits): a client can read a cursor
but not forge or alter one; any change is a 400.

The signing key is derived from configuration, never drawn at random, so every process of a
deployment -- and the same deployment after a restart -- accepts the others' cursors:
``StatusService(cursor_secret=…)`` when given, else the service's API keys (changing the keys
then ends the walks in progress, which a client starts again), else -- authentication off --
a key that is not secret, and a cursor is then only as safe as the open endpoint it pages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

from jobstatus.errors import InvalidRequest
from jobstatus.record import dump_compact

__all__ = ["MAX_CURSOR_LENGTH", "CursorSigner", "Position"]

#: A longer cursor is refused with a 400 before anything else is looked at.
MAX_CURSOR_LENGTH = 2048
_VERSION = 1
_TAG_BYTES = 16
_CONTEXT = b"jobstatus list cursor v1"


@dataclass(frozen=True)
class Position:
    """Where a page starts and what the walk lists."""

    updated_at: float
    job_id: str
    since: float
    statuses: tuple[str, ...] | None


class CursorSigner:
    """Signs and checks cursors with one key."""

    def __init__(self, key: bytes) -> None:
        self._key = hmac.new(_CONTEXT, key, hashlib.sha256).digest()

    @classmethod
    def from_configuration(
        cls, cursor_secret: str | bytes | None, api_keys: Iterable[bytes] | None
    ) -> CursorSigner:
        """The signer of a service: its ``cursor_secret``, else its keys (UTF-8 bytes; see
        the module)."""
        if cursor_secret is not None:
            secret = (
                cursor_secret.encode("utf-8") if isinstance(cursor_secret, str) else cursor_secret
            )
            if not secret:
                raise ValueError("cursor_secret must not be empty")
            return cls(b"secret\0" + secret)
        material = b"keys"
        for key in sorted(api_keys or ()):
            material += b"\0" + len(key).to_bytes(4, "big") + key
        return cls(material)

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def dump(self, position: Position) -> str:
        payload = dump_compact(
            [
                _VERSION,
                position.updated_at,
                position.job_id,
                position.since,
                None if position.statuses is None else list(position.statuses),
            ]
        ).encode("ascii")
        return f"{_b64(payload)}.{_b64(self._tag(payload))}"

    def load(self, cursor: str) -> Position:
        """The position a cursor holds; :class:`InvalidRequest` for anything not signed here."""
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise InvalidRequest("cursor is not one this service gave")
        body, dot, tag = cursor.partition(".")
        try:
            payload, given = _unb64(body), _unb64(tag)
        except ValueError:
            raise InvalidRequest("cursor is not one this service gave") from None
        if not dot or not hmac.compare_digest(given, self._tag(payload)):
            raise InvalidRequest("cursor is not one this service gave")
        try:
            version, updated_at, job_id, since, statuses = json.loads(payload)
            position = Position(
                float(updated_at),
                job_id,
                float(since),
                None if statuses is None else tuple(statuses),
            )
        except (ValueError, TypeError):
            raise InvalidRequest("cursor is not one this service gave") from None
        checks = (
            version == _VERSION,
            isinstance(job_id, str),
            math.isfinite(position.updated_at) and math.isfinite(position.since),
            position.statuses is None or all(isinstance(s, str) for s in position.statuses),
        )
        if not all(checks):
            raise InvalidRequest("cursor is not one this service gave")
        return position


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Decode what :func:`_b64` wrote, and only that: one text per byte string."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc
    if _b64(data) != text:  # stray characters, padding, non-zero spare bits
        raise ValueError("not base64")
    return data

"""The job record: what a store keeps and what the status endpoint returns.

A record's *document* is exactly the upstream job file::

    {"job_status": "done", "job_id": "<id>", "queue_id": 140368864456064,
     "process_id": 123456, "response": {...}}

Beside them a document may carry ``created_at``, ``started_at``, ``ended_at``, ``progress``,
``expires_at``, ``cancel_requested_at`` and ``owner`` (:mod:`jobstatus.lifecycle`), each written
only when set: a record without them writes exactly the upstream document. Unknown top-level
keys are kept in :attr:`JobRecord.extra` and written back unchanged, and a document that lacks
one of the upstream keys is written back without it, so any document a third-party writer
stored survives a round trip. ``updated_at`` and ``version`` are storage metadata, never part of
the document.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Any

from jobstatus.errors import InvalidRequest
from jobstatus.lifecycle import (
    LIFECYCLE_KEYS,
    Progress,
    checked_lifecycle,
    dump_lifecycle,
    read_lifecycle,
)

__all__ = ["FINAL_STATES", "MAX_JOB_ID_BYTES", "JobRecord", "JobState", "check_job_id"]


class JobState(str, enum.Enum):
    """The states the upstream queue writes. Other non-empty strings are kept as they are."""

    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


#: States a job never leaves, not even for another final state, unless a write is forced.
FINAL_STATES = frozenset({JobState.DONE.value, JobState.FAILED.value, JobState.CANCELLED.value})

#: The longest job id, in UTF-8 bytes, that every store accepts. 250 rather than 255 so that
#: ``<job_id>.json`` still fits a 255-byte file name: a record any store accepts can be migrated
#: to any other.
MAX_JOB_ID_BYTES = 250

_UPSTREAM_KEYS = ("job_status", "job_id", "queue_id", "process_id", "response")
_OPTIONAL_KEYS = frozenset(_UPSTREAM_KEYS[2:])
_LIFECYCLE_KEY_SET = frozenset(LIFECYCLE_KEYS)
_UNSAFE_ID = re.compile(r"[\x00-\x1f\x7f/\\]|\.\.")
# An escaped NUL in JSON text: an odd number of backslashes before "u0000".
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
#: Compact ASCII JSON, as Flask's ``jsonify`` writes it: the form of every answer.
dump_compact = json.JSONEncoder(separators=(",", ":")).encode


def check_job_id(job_id: object) -> str:
    """Return ``job_id`` if every store can keep it safely; raise :class:`InvalidRequest` if not.

    Refused: non-strings, the empty string, ``/``, ``\\``, ``..``, NUL and other control
    characters, and ids over :data:`MAX_JOB_ID_BYTES` bytes -- whatever the service's id pattern
    allows, an id never names a path outside the store.
    """
    if not isinstance(job_id, str) or not job_id:
        raise InvalidRequest("job_id must be a non-empty string")
    # The `in` tests and isprintable() (no control characters) clear a usual id at C speed.
    usual = "/" not in job_id and "\\" not in job_id and ".." not in job_id and job_id.isprintable()
    if job_id == "." or (not usual and _UNSAFE_ID.search(job_id)):
        raise InvalidRequest("job_id must not contain '/', '\\', '..' or control characters")
    try:
        size = len(job_id.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidRequest("job_id is not valid Unicode") from None
    if size > MAX_JOB_ID_BYTES:
        raise InvalidRequest(f"job_id is longer than {MAX_JOB_ID_BYTES} bytes")
    return job_id


@dataclass(frozen=True)
class JobRecord:
    """One job's status document plus the time it was last written.

    ``job_status`` is a :class:`JobState` value or any other non-empty string.
    ``updated_at`` is seconds since the epoch, set by the store on every write.
    """

    job_id: str
    job_status: str
    queue_id: Any = None
    process_id: Any = None
    response: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    updated_at: float | None = field(default=None, compare=False)
    #: Upstream keys the source document did not have; kept out of :meth:`to_dict` while None.
    absent: frozenset[str] = field(default=frozenset(), repr=False)
    _: KW_ONLY
    #: When the job was submitted, started, ended (aware datetimes, UTC, milliseconds).
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    #: How far a running job is.
    progress: Progress | None = None
    #: After this moment the record reads as absent everywhere, until purged.
    expires_at: datetime | None = None
    #: When a client asked a running job to stop.
    cancel_requested_at: datetime | None = None
    #: Whose job this is (keys bound to an owner see only their owner's jobs).
    owner: str | None = None
    #: The stored document's version, set by the store on every record it returns. It changes
    #: whenever the stored document changes. Storage metadata, like ``updated_at``.
    version: str | None = field(default=None, compare=False)
    _compact: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.job_status, JobState):
            object.__setattr__(self, "job_status", self.job_status.value)
        extra = self.extra
        if extra:
            clash = set(extra).intersection(_UPSTREAM_KEYS)
            if clash:
                raise ValueError(f"extra must not hold upstream keys: {sorted(clash)}")
        for name in LIFECYCLE_KEYS:
            value = getattr(self, name)
            if value is not None:
                if name in extra:
                    raise ValueError(f"{name} is set both as an attribute and in extra")
                object.__setattr__(self, name, checked_lifecycle(name, value))

    @property
    def is_final(self) -> bool:
        """True once the job is ``done``, ``failed`` or ``cancelled``."""
        return self.job_status in FINAL_STATES

    def is_expired(self, now: float) -> bool:
        """True when ``expires_at`` is set and not later than ``now`` (seconds since the epoch)."""
        expires = self.expires_at
        return expires is not None and expires.timestamp() <= now

    def to_dict(self) -> dict[str, Any]:
        """The document, in the upstream key order, unknown keys last."""
        doc: dict[str, Any] = {
            "job_status": self.job_status,
            "job_id": self.job_id,
            "queue_id": self.queue_id,
            "process_id": self.process_id,
            "response": self.response,
        }
        for key in self.absent:
            if doc.get(key, 0) is None:
                del doc[key]
        for name in LIFECYCLE_KEYS:
            value = getattr(self, name)
            if value is not None:
                doc[name] = dump_lifecycle(name, value)
        doc.update(self.extra)
        return doc

    def compact_json(self) -> str:
        """The document as compact ASCII JSON, the way it appears inside an answer; computed
        once per record (records are immutable values: don't mutate what they hold)."""
        compact = self._compact
        if compact is None:
            compact = dump_compact(self.to_dict())
            object.__setattr__(self, "_compact", compact)
        return compact

    def to_json(self) -> str:
        """The document as JSON text (``indent=2``, as the upstream service writes its files).

        Raises :class:`InvalidRequest` for a document some store could not keep exactly: one
        that is not JSON (NaN, infinities, non-JSON types), or has a NUL character or a lone
        surrogate in a string. Every backend refuses the same documents, so a record any store
        accepts can move to any other.
        """
        try:
            text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)
            text.encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"the job document is not storable JSON: {exc}") from exc
        if "\\u0000" in text and _ESCAPED_NUL.search(text):
            raise InvalidRequest("the job document contains a NUL character")
        return text

    @classmethod
    def from_dict(
        cls,
        doc: Mapping[str, Any],
        *,
        updated_at: float | None = None,
        version: str | None = None,
    ) -> JobRecord:
        """Read a document; raise :class:`InvalidRequest` unless it has string ``job_id`` and
        ``job_status``."""
        if not isinstance(doc, Mapping):
            raise InvalidRequest("a job document must be a JSON object")
        job_id, job_status = doc.get("job_id"), doc.get("job_status")
        if not isinstance(job_id, str) or not job_id:
            raise InvalidRequest("a job document needs a non-empty string 'job_id'")
        if not isinstance(job_status, str) or not job_status:
            raise InvalidRequest("a job document needs a non-empty string 'job_status'")
        extra = {k: v for k, v in doc.items() if k not in _UPSTREAM_KEYS}
        lifecycle: dict[str, Any] = {}
        if extra and not _LIFECYCLE_KEY_SET.isdisjoint(extra):
            for name in _LIFECYCLE_KEY_SET.intersection(extra):
                try:
                    lifecycle[name] = read_lifecycle(name, extra[name])
                except (ValueError, TypeError):
                    continue  # not ours to read: kept in extra exactly as stored
                del extra[name]
        return cls(
            job_id=job_id,
            job_status=job_status,
            queue_id=doc.get("queue_id"),
            process_id=doc.get("process_id"),
            response=doc.get("response"),
            extra=extra,
            updated_at=updated_at,
            absent=_OPTIONAL_KEYS.difference(doc),
            version=version,
            **lifecycle,
        )

    @classmethod
    def from_json(
        cls, text: str | bytes, *, updated_at: float | None = None, version: str | None = None
    ) -> JobRecord:
        """Parse JSON text written by :meth:`to_json` or by the upstream service."""
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InvalidRequest(f"the job document is not valid JSON: {exc}") from exc
        return cls.from_dict(doc, updated_at=updated_at, version=version)

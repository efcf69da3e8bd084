"""The request schemas of the endpoints and the one function that checks a request body.

Validation is jsonschema's; the body is read as JSON whatever its Content-Type.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema

from jobstatus.errors import InvalidRequest

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "JOBS_STATUS_SCHEMA",
    "JOB_STATUS_SCHEMA",
    "UUID_PATTERN",
    "RequestValidator",
    "accepts_job_status",
    "accepts_jobs_status",
    "parse_json_body",
]

#: The body of ``POST /v1/toolkit/job/status``, as ``spec/job_status.md`` gives it.
JOB_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"job_id": {"type": "string"}},
    "required": ["job_id"],
}

#: The body of ``POST /v1/toolkit/jobs/status``; an empty body means ``{}``.
JOBS_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"since_seconds": {"type": "number", "minimum": 0}},
}

#: A UUID in its canonical text form, any case; the default job id pattern.
UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

DEFAULT_MAX_BODY_BYTES = 64 * 1024


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decode = json.JSONDecoder(parse_constant=_refuse_constant).decode


def parse_json_body(body: bytes, *, max_bytes: int, allow_empty: bool = False) -> Any:
    """Decode a request body; every way it can be malformed is an :class:`InvalidRequest`."""
    if len(body) > max_bytes:
        raise InvalidRequest(f"body is larger than {max_bytes} bytes")
    if not body.strip():
        if allow_empty:
            return {}
        raise InvalidRequest("missing JSON body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return _decode(text)
    except ValueError as exc:
        raise InvalidRequest(f"body is not valid JSON ({exc})") from None
    except RecursionError:
        raise InvalidRequest("body is nested too deeply") from None


class RequestValidator:
    """Checks one endpoint's body against its JSON schema, compiled once.

    ``accepts`` is an optional shortcut: a cheap predicate that is true only for payloads the
    schema accepts (the tests prove it against jsonschema). When it says yes, jsonschema is not
    asked; when it says no, jsonschema decides and names the fault.
    """

    def __init__(
        self, schema: dict[str, Any], accepts: Callable[[Any], bool] | None = None
    ) -> None:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
        self.schema = schema
        self._validator = validator_class(schema)
        self._accepts = accepts

    def __call__(self, payload: Any) -> dict[str, Any]:
        """Return ``payload`` if it is valid; raise :class:`InvalidRequest` naming the fault."""
        if self._accepts is not None and self._accepts(payload):
            result: dict[str, Any] = payload
            return result
        if not self._validator.is_valid(payload):
            error = jsonschema.exceptions.best_match(self._validator.iter_errors(payload))
            where = "".join(f"[{p!r}]" for p in error.absolute_path)
            raise InvalidRequest(f"{error.message} at body{where}" if where else error.message)
        checked: dict[str, Any] = payload
        return checked


def accepts_job_status(payload: Any) -> bool:
    """True for exactly the payloads :data:`JOB_STATUS_SCHEMA` accepts."""
    return type(payload) is dict and type(payload.get("job_id")) is str


def accepts_jobs_status(payload: Any) -> bool:
    """True only for payloads :data:`JOBS_STATUS_SCHEMA` accepts."""
    if type(payload) is not dict:
        return False
    since = payload.get("since_seconds", 0)
    return type(since) in (int, float) and since >= 0

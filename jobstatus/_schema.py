"""The request schemas of the endpoints and the one function that checks a request body.

Validation is jsonschema's; the body is read as JSON whatever its Content-Type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import jsonschema

from jobstatus.errors import InvalidRequest

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "JOBS_STATUS_SCHEMA",
    "JOB_STATUS_SCHEMA",
    "MAX_NESTING_DEPTH",
    "UUID_PATTERN",
    "RequestValidator",
    "accepts_job_status",
    "accepts_jobs_status",
    "parse_json_body",
]

#: The body of ``POST /v1/toolkit/job/status``, as the upstream service documents it.
JOB_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"job_id": {"type": "string"}},
    "required": ["job_id"],
}

#: States separated by commas, none of them blank.
STATES_PATTERN = r"^[^,]*\S[^,]*(?:,[^,]*\S[^,]*)*$"

#: The body of ``POST /v1/toolkit/jobs/status``; an empty body means ``{}``. ``status`` (an
#: addition to the upstream route) keeps the jobs in one of the states: a state, several
#: separated by commas, or a list of states.
JOBS_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "since_seconds": {"type": "number", "minimum": 0},
        "status": {
            "anyOf": [
                {"type": "string", "pattern": STATES_PATTERN},
                {"type": "array", "items": {"type": "string", "pattern": r"\S"}, "minItems": 1},
            ]
        },
    },
}

#: A UUID in its canonical text form, any case; the default job id pattern.
UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

DEFAULT_MAX_BODY_BYTES = 64 * 1024

#: The deepest nesting of arrays and objects a request body may have. The request schemas are
#: flat; the limit keeps every later step (jsonschema's messages, echoing ``id``) far from
#: Python's recursion limit, so the answer to a deep body is always the same 400, whatever the
#: stack depth the host app calls the service at.
MAX_NESTING_DEPTH = 64


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decode = json.JSONDecoder(parse_constant=_refuse_constant).decode


def parse_json_body(body: bytes, *, max_bytes: int, allow_empty: bool = False) -> Any:
    """Decode a request body; every way it can be malformed is an :class:`InvalidRequest`."""
    if len(body) > max_bytes:
        raise InvalidRequest(f"body is larger than {max_bytes} bytes")
    if not body or body.isspace():  # (no copy of the body, as strip() would make)
        if allow_empty:
            return {}
        raise InvalidRequest("missing JSON body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    # Counting brackets is cheap; only a body with many of them is scanned. The scan runs before
    # the parser so that the answer never depends on where the parser's recursion gives up.
    if text.count("[") + text.count("{") > MAX_NESTING_DEPTH and _nests_deeper_than(
        text, MAX_NESTING_DEPTH
    ):
        raise InvalidRequest("body is nested too deeply")
    try:
        return _decode(text)
    except ValueError as exc:
        raise InvalidRequest(f"body is not valid JSON ({exc})") from None
    except RecursionError:
        raise InvalidRequest("body is nested too deeply") from None


# A JSON string (possibly unterminated), or one bracket.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.S)


def _nests_deeper_than(text: str, limit: int) -> bool:
    """True when arrays and objects open more than ``limit`` levels deep, outside strings."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token == "[" or token == "{":
            depth += 1
            if depth > limit:
                return True
        elif token == "]" or token == "}":
            depth -= 1
    return False


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
    if type(payload) is not dict or "status" in payload:
        return False
    since = payload.get("since_seconds", 0)
    return type(since) in (int, float) and since >= 0

"""The errors of jobstatus. Each HTTP-facing one carries its status code and renders its body.

The bodies are the endpoint's documented answers (the docs' "The endpoint" page lists them);
:meth:`JobStatusError.body` gives them.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

__all__ = [
    "ConfigurationError",
    "Conflict",
    "Forbidden",
    "JobCancelled",
    "InvalidRequest",
    "JobNotFound",
    "JobStatusError",
    "QueueFull",
    "StorageError",
    "Unauthorized",
    "missing_extra",
    "redact",
]

# user:password@ in a URL or DSN; key=value pairs that name a secret, and quoted "key": value
# pairs (JSON, a dict's repr). Not an unquoted "key: value": that is prose, such as MySQL's
# own "(using password: YES)", which holds no secret.
_URL_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")
_SECRET_PARAM = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|secret|secret_key|aws_secret_access_key|token|api_key|"
    r"session_token|account_key|sas_token)\b(?:\s*=\s*|['\"]\s*:\s*))"
    r"(?P<quote>['\"]?)[^\s&'\",;})]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Hide passwords and secret parameters in ``text`` (a URL, a DSN, an error message)."""
    text = _URL_PASSWORD.sub(r"\g<scheme>\g<user>:***@", text)
    return _SECRET_PARAM.sub(r"\g<key>\g<quote>***", text)


class JobStatusError(Exception):
    """Base of every error jobstatus raises on purpose."""

    status: ClassVar[int] = 500

    def body(self) -> dict[str, Any]:
        """The JSON body of the HTTP answer for this error."""
        return {"message": str(self)}


class InvalidRequest(JobStatusError):
    """400: the request (or a record handed to a store) is malformed."""

    status = 400

    def body(self) -> dict[str, Any]:
        return {"message": f"Invalid payload: {self}"}


class Unauthorized(JobStatusError):
    """401: the ``x-api-key`` header is missing or matches no configured key."""

    status = 401

    def __init__(self, message: str = "Unauthorized") -> None:
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return {"message": "Unauthorized"}


class Forbidden(JobStatusError):
    """403: the key is good but lacks the scope the route needs (checked before the store)."""

    status = 403

    def __init__(self, scope: str) -> None:
        super().__init__(f"the key lacks the {scope!r} scope")
        self.scope = scope

    def body(self) -> dict[str, Any]:
        return {"message": "Forbidden"}


class JobNotFound(JobStatusError, KeyError):
    """404: no record has this job id."""

    status = 404

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id

    def __str__(self) -> str:
        return f"Job not found: {self.job_id!r}"

    def body(self) -> dict[str, Any]:
        return {"error": "Job not found", "job_id": self.job_id}


class Conflict(JobStatusError):
    """409: a conditional write found the job changed (``put(..., expect_version=…)``)."""

    status = 409

    def __init__(self, job_id: str, reason: str = "the job was changed by another writer") -> None:
        super().__init__(f"{reason}: {job_id!r}")
        self.job_id = job_id
        self.reason = reason

    def body(self) -> dict[str, Any]:
        return {"error": "Job changed", "job_id": self.job_id}


class JobCancelled(Exception):
    """Raised inside a tracked run (``run.check_cancelled()``) once a client asked the job to
    stop; the run then records ``cancelled``."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} was cancelled")
        self.job_id = job_id

    def __reduce__(self) -> tuple[type[JobCancelled], tuple[str]]:
        # Keeps job_id across pickling (process pools, task queues' result backends).
        return type(self), (self.job_id,)


class QueueFull(JobStatusError):
    """429: the host's queue is full; the body is the upstream queue-overflow answer."""

    status = 429

    def __init__(
        self,
        max_queue_length: int,
        *,
        queue_length: int | None = None,
        id: Any = None,
        job_id: str | None = None,
        pid: int | None = None,
        queue_id: int | None = None,
        build_number: str | None = None,
    ) -> None:
        super().__init__(f"MAX_QUEUE_LENGTH ({max_queue_length}) reached")
        self.fields: dict[str, Any] = {
            "code": 429,
            "id": id,
            "job_id": job_id,
            "message": str(self),
            "pid": pid,
            "queue_id": queue_id,
            "queue_length": max_queue_length if queue_length is None else queue_length,
            "build_number": build_number,
        }

    def body(self) -> dict[str, Any]:
        return dict(self.fields)


class StorageError(JobStatusError):
    """500: the store failed. The message names the failure and never carries a credential."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    def body(self) -> dict[str, Any]:
        return {"error": f"Failed to retrieve job status: {self}", "code": 500}


class ConfigurationError(ValueError):
    """A store URL, option or missing extra that makes the configuration unusable."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def missing_extra(extra: str, cause: ImportError) -> ConfigurationError:
    """The error for a backend, adapter or command whose optional dependency is not installed:
    it names the missing module and the ``pip install "jobstatus[extra]"`` line."""
    return ConfigurationError(
        f"{cause.name or 'a dependency'} is not installed; "
        f'install it with: pip install "jobstatus[{extra}]"'
    )

"""What the outage and fork tests stage with: a loopback HTTP client that gives up instead of
hanging (:func:`ask`), the SQL servers they use, and the clean-up of their tables."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass

from tests.conftest import service_unavailable

KEY = "fault-test-key"
JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
STATUS = "/v1/toolkit/job/status"
ERROR_PREFIX = "Failed to retrieve job status: "

#: A client gives up on a request after this long: such a request counts as hung. The stores'
#: own timeouts in these tests (connect 3 s, read 5 s) are well within it.
REQUEST_TIMEOUT = 20.0

#: name → (URL with a ``{port}`` to fill in, the server's port, its name in messages)
SQL_SERVERS = {
    "postgresql": ("postgresql+psycopg://postgres@127.0.0.1:{port}/test", 5432, "PostgreSQL"),
    "mariadb": ("mysql+pymysql://root@127.0.0.1:{port}/test", 3306, "MariaDB"),
}


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    status: int | None  # None: no answer (the request failed or hung)
    body: bytes
    problem: str | None = None


def ask(port: int, job_id: str) -> Outcome:
    """POST ``{"job_id": job_id}`` to the status route on 127.0.0.1:``port``, on a connection of
    its own; a failure or a request hung past :data:`REQUEST_TIMEOUT` is an outcome too."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("POST", STATUS, json.dumps({"job_id": job_id}), {"x-api-key": KEY})
        response = conn.getresponse()
        return Outcome(started, time.monotonic(), response.status, response.read())
    except OSError as exc:
        return Outcome(started, time.monotonic(), None, b"", f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def require_port(port: int, what: str) -> None:
    """Skip (or fail, when services are required) unless something listens on ``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
    except OSError:
        service_unavailable(f"{what} is not running on 127.0.0.1:{port}")


def drop_table(url: str, table: str) -> None:
    """Drop the SQL store's ``table`` at ``url``, if it is there."""
    from jobstatus import open_store
    from jobstatus.backends.sql import SQLStore

    with open_store(url, table_name=table) as store:
        assert isinstance(store, SQLStore)
        with store.engine.begin() as conn:
            store.table.drop(conn, checkfirst=True)

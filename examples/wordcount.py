"""The long job both example host apps run, a word count, with no web framework in sight.

:class:`WordCounts` is what a host needs around a queue of long jobs: a
:class:`~jobstatus.JobTracker` recording each job queued → running → done (or failed) the way
the upstream service's queue does, one worker thread running the jobs in order, and the
:class:`~jobstatus.StatusService` answering the status endpoints from the same store.
:meth:`WordCounts.submit` answers ``POST /v1/demo/wordcount`` as a :class:`~jobstatus.Reply`,
so each app only carries the request in and the reply out, as jobstatus's adapters do, and
both apps give the same answers:

- 202: the upstream "accepted" body, in the upstream order, then ``poll`` saying how to poll
  the job's status; the ``Location`` header names the job's own status route,
  ``GET /v1/toolkit/jobs/<job_id>`` (poll it with ``If-None-Match`` and ``?wait=``: see the
  docs' "Polling" page);
- 400 ``{"message": "Invalid payload: …"}`` for a body that is not a JSON object with a string
  ``text`` (whatever its Content-Type);
- 401 ``{"message": "Unauthorized"}`` without a valid ``x-api-key``;
- 429, the upstream queue-overflow body, when ``max_queue_length`` jobs wait.
"""

from __future__ import annotations

import hmac
import os
import queue
import threading
import time
from contextlib import suppress
from typing import Any

from jobstatus import JobStatusError, JobTracker, Reply, StatusService, Store, Unauthorized
from jobstatus._schema import DEFAULT_MAX_BODY_BYTES, RequestValidator, parse_json_body
from jobstatus.config import build_number_from_env
from jobstatus.service import JOB_PATH

SUBMIT_PATH = "/v1/demo/wordcount"
#: The job's request body: the text to count and the client's optional request ``id``.
SUBMIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "id": {}},
    "required": ["text"],
}


class WordCounts:
    """The word-count jobs of one host process and the status service that reports them."""

    def __init__(
        self,
        store: Store,
        api_keys: list[str] | None,
        *,
        seconds: float = 1.0,
        max_queue_length: int = 0,
    ) -> None:
        build_number = build_number_from_env()
        self.tracker = JobTracker(
            store, build_number=build_number, max_queue_length=max_queue_length
        )
        #: Answers the status endpoints; mount it with the framework's adapter.
        self.service = StatusService(
            store,
            api_keys=api_keys,
            build_number=build_number,
            queue_id=self.tracker.queue_id,
            queue_length=lambda: self.tracker.queue_length,
        )
        self.seconds = seconds
        self._keys = None if api_keys is None else [key.encode() for key in api_keys]
        self._validate = RequestValidator(SUBMIT_SCHEMA)
        self._jobs: queue.Queue[tuple[str, str]] = queue.Queue()
        threading.Thread(target=self._work, daemon=True).start()

    def submit(self, body: bytes, api_key: str | None) -> Reply:
        """Answer ``POST /v1/demo/wordcount``: queue the job (202) or say why not."""
        try:
            self._authenticate(api_key)
            payload = self._validate(parse_json_body(body, max_bytes=DEFAULT_MAX_BODY_BYTES))
            job_id = self.tracker.submit(endpoint=SUBMIT_PATH, id=payload.get("id"))
        except JobStatusError as error:  # Unauthorized, InvalidRequest, QueueFull
            return Reply.json(error.status, error.body())
        self._jobs.put((job_id, payload["text"]))
        accepted = {
            "code": 202,
            "id": payload.get("id"),
            "job_id": job_id,
            "message": "processing",
            "pid": os.getpid(),
            "queue_id": self.tracker.queue_id,
            "max_queue_length": self.tracker.max_queue_length or "unlimited",
            "queue_length": self.tracker.queue_length,
            "build_number": self.tracker.build_number,
            "poll": {"method": "GET", "path": JOB_PATH.format(job_id=job_id)},
        }
        return Reply.json(202, accepted, [("Location", JOB_PATH.format(job_id=job_id))])

    def _authenticate(self, api_key: str | None) -> None:
        if self._keys is None:
            return
        given = (api_key or "").encode()
        matched = False
        for key in self._keys:  # every key, always: the timing says nothing about which
            matched |= hmac.compare_digest(given, key)
        if not matched:
            raise Unauthorized()

    def _work(self) -> None:
        while True:
            job_id, text = self._jobs.get()
            # A job that raises is recorded "failed" by the tracker; the worker goes on.
            with suppress(Exception), self.tracker.run(job_id) as run:
                time.sleep(self.seconds)  # the "long" part of the job
                run.result = {"words": len(text.split())}

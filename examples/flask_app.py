"""A Flask host app: it accepts a long job, runs it in the background, and serves its status.

Run it (from the repository root)::

    API_KEY=secret python examples/flask_app.py

then submit a job and poll its status::

    curl -X POST -H "x-api-key: secret" -H "Content-Type: application/json" \\
         -d '{"text": "to be or not to be"}' http://127.0.0.1:8080/v1/demo/wordcount
    curl -X POST -H "x-api-key: secret" -H "Content-Type: application/json" \\
         -d '{"job_id": "<the job_id above>"}' http://127.0.0.1:8080/v1/toolkit/job/status

``JOBSTATUS_STORE`` names the store (``memory://`` by default; a folder keeps the upstream
layout), ``API_KEY`` the key, ``PORT`` the port, ``MAX_QUEUE_LENGTH`` the queue bound (0: none).
Jobs run one at a time on a worker thread; a :class:`jobstatus.tracker.JobTracker` records each
one queued → running → done (or failed) in the store, as the upstream service's queue does.
"""

from __future__ import annotations

import hmac
import os
import queue
import threading
import time
from contextlib import suppress
from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from jobstatus import QueueFull, StatusService, Store, open_store
from jobstatus.adapters.flask import make_blueprint
from jobstatus.config import api_keys_from_env, build_number_from_env
from jobstatus.tracker import JobTracker

SUBMIT_PATH = "/v1/demo/wordcount"


class WordCounter:
    """One worker thread running the submitted word counts in order; a JobTracker records
    each one queued → running → done (or failed) in the store."""

    def __init__(self, tracker: JobTracker, *, seconds: float = 1.0) -> None:
        self.tracker, self.seconds = tracker, seconds
        self.jobs: queue.Queue[tuple[str, str]] = queue.Queue()
        threading.Thread(target=self._work, daemon=True).start()

    def submit(self, text: str, request_id: Any) -> dict[str, Any]:
        """Queue a job; return the upstream 202 body. Raises QueueFull when the queue is full."""
        job_id = self.tracker.submit(endpoint=SUBMIT_PATH, id=request_id)
        self.jobs.put((job_id, text))
        return {
            "code": 202,
            "id": request_id,
            "job_id": job_id,
            "message": "processing",
            "pid": os.getpid(),
            "queue_id": self.tracker.queue_id,
            "max_queue_length": self.tracker.max_queue_length or "unlimited",
            "queue_length": self.tracker.queue_length,
            "build_number": self.tracker.build_number,
        }

    def _work(self) -> None:
        while True:
            job_id, text = self.jobs.get()
            # A job that raises is recorded "failed" by the tracker; the worker goes on.
            with suppress(Exception), self.tracker.run(job_id) as run:
                time.sleep(self.seconds)  # the "long" part of the job
                run.result = {"words": len(text.split())}


def create_app(
    store: Store, api_keys: list[str] | None, *, seconds: float = 1.0, max_queue_length: int = 0
) -> Flask:
    """The host app: its own job endpoint plus the status endpoints of jobstatus."""
    build_number = build_number_from_env()
    tracker = JobTracker(store, build_number=build_number, max_queue_length=max_queue_length)
    counter = WordCounter(tracker, seconds=seconds)
    service = StatusService(
        store,
        api_keys=api_keys,
        build_number=build_number,
        queue_id=tracker.queue_id,
        queue_length=lambda: tracker.queue_length,
    )
    app = Flask(__name__)
    app.register_blueprint(make_blueprint(service))

    @app.post(SUBMIT_PATH)
    def wordcount() -> ResponseReturnValue:
        key = request.headers.get("x-api-key", "").encode()
        if api_keys is not None and not any(hmac.compare_digest(key, k.encode()) for k in api_keys):
            return jsonify(message="Unauthorized"), 401
        payload = request.get_json(force=True, silent=True)
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            return jsonify(message="Invalid payload: 'text' must be a string"), 400
        try:
            return jsonify(counter.submit(payload["text"], payload.get("id"))), 202
        except QueueFull as full:
            return jsonify(full.body()), 429

    return app


if __name__ == "__main__":
    store = open_store(os.environ.get("JOBSTATUS_STORE", "memory://"))
    app = create_app(
        store, api_keys_from_env(), max_queue_length=int(os.environ.get("MAX_QUEUE_LENGTH", "0"))
    )
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))

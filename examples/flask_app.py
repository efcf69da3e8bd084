"""A Flask host app: it accepts a long job, runs it in the background, and serves its status.

Install Flask and run it (from the repository root; it listens on 127.0.0.1:8081, ``PORT``
changes that)::

    pip install -e ".[flask]"
    API_KEY=secret python examples/flask_app.py

then, in a second terminal, submit a job and poll its status with the ``job_id`` the 202
answer gives (its ``Location`` header and its ``poll`` key name the job's status route)::

    curl -i -X POST -H "x-api-key: secret" -d '{"text": "to be or not to be"}' \\
         http://127.0.0.1:8081/v1/demo/wordcount
    curl -H "x-api-key: secret" \\
         http://127.0.0.1:8081/v1/toolkit/jobs/<the job_id above>

``JOBSTATUS_STORE`` names the store (``memory://`` by default; a folder keeps the upstream
layout), ``API_KEY`` the key, ``MAX_QUEUE_LENGTH`` the queue bound (0: none). The job itself,
and every answer of ``POST /v1/demo/wordcount``, is in ``examples/wordcount.py``, shared with
the FastAPI example; this file only mounts it and the status blueprint in Flask.
"""

from __future__ import annotations

import os

from flask import Flask, Response, request
from wordcount import SUBMIT_PATH, WordCounts

from jobstatus import Reply, Store, open_store
from jobstatus.adapters.flask import make_blueprint
from jobstatus.config import api_keys_from_env

PORT = 8081


def create_app(
    store: Store, api_keys: list[str] | None, *, seconds: float = 1.0, max_queue_length: int = 0
) -> Flask:
    """The host app: its own job endpoint plus the status endpoints of jobstatus."""
    counts = WordCounts(store, api_keys, seconds=seconds, max_queue_length=max_queue_length)
    app = Flask(__name__)
    app.register_blueprint(make_blueprint(counts.service))

    @app.post(SUBMIT_PATH)
    def wordcount() -> Response:
        return _response(counts.submit(request.get_data(), request.headers.get("x-api-key")))

    return app


def _response(reply: Reply) -> Response:
    return Response(reply.body, status=reply.status, headers=list(reply.headers))


if __name__ == "__main__":
    create_app(
        open_store(os.environ.get("JOBSTATUS_STORE", "memory://")),
        api_keys_from_env(),
        max_queue_length=int(os.environ.get("MAX_QUEUE_LENGTH", "0")),
    ).run(host="127.0.0.1", port=int(os.environ.get("PORT", PORT)))

"""A FastAPI host app: it accepts a long job, runs it in the background, and serves its status.

Install FastAPI and uvicorn and run it (from the repository root; it listens on
127.0.0.1:8082, ``PORT`` changes that)::

    pip install -e ".[fastapi]"
    API_KEY=secret python examples/fastapi_app.py

or, with uvicorn's own options, ``API_KEY=secret uvicorn --app-dir examples fastapi_app:app
--port 8082``. Then, in a second terminal, submit a job and poll its status with the
``job_id`` the 202 answer gives (its ``Location`` header and its ``poll`` key name the job's
status route), or try both from http://127.0.0.1:8082/docs::

    curl -i -X POST -H "x-api-key: secret" -d '{"text": "to be or not to be"}' \\
         http://127.0.0.1:8082/v1/demo/wordcount
    curl -H "x-api-key: secret" \\
         http://127.0.0.1:8082/v1/toolkit/jobs/<the job_id above>

``JOBSTATUS_STORE`` names the store (``memory://`` by default; a folder keeps the upstream
layout), ``API_KEY`` the key, ``MAX_QUEUE_LENGTH`` the queue bound (0: none). With
``memory://`` run a single worker: each process has its own memory. The job itself, and every
answer of ``POST /v1/demo/wordcount``, is in ``examples/wordcount.py``, shared with the Flask
example; this file only mounts it and the status router in FastAPI.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from wordcount import SUBMIT_PATH, SUBMIT_SCHEMA, WordCounts

from jobstatus import Store, open_store
from jobstatus.adapters.fastapi import API_KEY_HEADER, make_router
from jobstatus.config import api_keys_from_env

PORT = 8082


def create_app(
    store: Store, api_keys: list[str] | None, *, seconds: float = 1.0, max_queue_length: int = 0
) -> FastAPI:
    """The host app: its own job endpoint plus the status endpoints of jobstatus."""
    counts = WordCounts(store, api_keys, seconds=seconds, max_queue_length=max_queue_length)
    app = FastAPI(title="Word counts, a jobstatus demo")
    app.include_router(make_router(counts.service))

    # The body is read raw, as the status routes read theirs: a malformed one is the same 400
    # in both example apps, never FastAPI's 422. The schema is still shown in /docs.
    @app.post(
        SUBMIT_PATH,
        status_code=202,
        response_class=Response,
        operation_id="submitWordCount",
        summary="Count the words of a text, as a long job",
        dependencies=[Security(API_KEY_HEADER)],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": SUBMIT_SCHEMA}},
            }
        },
    )
    async def wordcount(request: Request) -> Response:
        body, key = await request.body(), request.headers.get("x-api-key")
        reply = await run_in_threadpool(counts.submit, body, key)  # the store is synchronous
        return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))

    return app


app = create_app(
    open_store(os.environ.get("JOBSTATUS_STORE", "memory://")),
    api_keys_from_env(),
    max_queue_length=int(os.environ.get("MAX_QUEUE_LENGTH", "0")),
)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", PORT)))

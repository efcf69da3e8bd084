"""A FastAPI app that hands its jobs to Celery; clients poll the upstream status endpoint and see
the job's progress while a Celery worker runs it.

Install and run it (from the repository root, Redis on 127.0.0.1:6379; the web app listens on
127.0.0.1:8083, ``PORT`` changes that)::

    pip install -e ".[celery,fastapi]" redis
    export JOBSTATUS_STORE=/tmp/jobstatus-celery-demo API_KEY=secret
    celery --workdir examples -A celery_app worker -l INFO &
    python examples/celery_app.py

then submit a job, poll its status (``progress`` grows, then ``done``), or cancel it::

    curl -X POST -H "x-api-key: secret" -H "Content-Type: application/json" \\
         -d '{"text": "to be or not to be"}' http://127.0.0.1:8083/v1/demo/wordcount
    curl -X POST -H "x-api-key: secret" -H "Content-Type: application/json" \\
         -d '{"job_id": "<the job_id above>"}' http://127.0.0.1:8083/v1/toolkit/job/status
    curl -X POST -H "x-api-key: secret" -H "Content-Type: application/json" \\
         -d '{"job_id": "<the job_id above>"}' http://127.0.0.1:8083/v1/toolkit/job/cancel

The web app and the worker import this module, so both record: the web app ``queued``, the
worker ``running``, its progress and the end. They must share the store (``JOBSTATUS_STORE``: a
folder, SQLite, PostgreSQL... not ``memory://``). ``CELERY_BROKER_URL`` names the broker
(Redis by default), ``WORDCOUNT_SECONDS`` how long a job takes.
"""

from __future__ import annotations

import hmac
import os
import time
from typing import Any

from celery import Celery
from fastapi import FastAPI, Security
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from jobstatus import StatusService, open_store
from jobstatus.adapters.fastapi import API_KEY_HEADER, make_router
from jobstatus.config import api_keys_from_env, build_number_from_env, store_url_from_env
from jobstatus.integrations.celery import check_cancelled, progress, record_tasks

SUBMIT_PATH = "/v1/demo/wordcount"
PORT = 8083

store = open_store(store_url_from_env())
app = Celery("wordcount", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(task_default_queue=os.environ.get("WORDCOUNT_QUEUE", "wordcount"))
recorder = record_tasks(app, store, progress_interval=0.5, build_number=build_number_from_env())


@app.task(name="demo.wordcount")  # type: ignore[untyped-decorator]  # Celery has no hints
def wordcount(text: str, seconds: float | None = None) -> dict[str, int]:
    """Count the words, slowly: one progress report per word, stopping once cancelled."""
    words = text.split()
    pause = float(os.environ.get("WORDCOUNT_SECONDS", "5")) if seconds is None else seconds
    for n, _ in enumerate(words, 1):
        progress(current=n, total=len(words), message=f"word {n} of {len(words)}")
        check_cancelled()
        time.sleep(pause / len(words))
    return {"words": len(words)}


class WordCount(BaseModel):
    """The job's request body."""

    text: str
    id: Any = None
    seconds: float | None = None


def create_api(api_keys: list[str] | None) -> FastAPI:
    """The host app: its job endpoint, which sends the job to Celery, and the status and cancel
    endpoints of jobstatus (the cancel revokes the Celery task)."""
    build_number = build_number_from_env()
    service = StatusService(
        store, api_keys=api_keys, build_number=build_number, allow_cancel=recorder.tracker
    )
    api = FastAPI(title="Word counts on Celery, a jobstatus demo")
    api.include_router(make_router(service))

    @api.post(SUBMIT_PATH, status_code=202)
    def submit(job: WordCount, api_key: str | None = Security(API_KEY_HEADER)) -> JSONResponse:
        key = (api_key or "").encode()
        if api_keys is not None and not any(hmac.compare_digest(key, k.encode()) for k in api_keys):
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        if not job.text.split():
            return JSONResponse({"message": "Invalid payload: text has no words"}, status_code=400)
        result = wordcount.delay(job.text, job.seconds)
        body = {
            "code": 202,
            "id": job.id,
            "job_id": result.id,
            "message": "processing",
            "pid": os.getpid(),
            "queue_id": recorder.tracker.queue_id,
            "build_number": build_number,
        }
        return JSONResponse(body, status_code=202)

    return api


api = create_api(api_keys_from_env())

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(api, host="127.0.0.1", port=int(os.environ.get("PORT", PORT)))

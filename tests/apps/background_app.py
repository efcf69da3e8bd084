"""A FastAPI app whose route hands a tracked job to ``BackgroundTasks`` through ``CallLater``
(the annotations are real objects here: FastAPI reads them to inject ``BackgroundTasks``)."""

from fastapi import BackgroundTasks, FastAPI

from jobstatus import JobTracker
from jobstatus.executor import CallLater


def count_words(text: str) -> dict[str, int]:
    return {"words": len(text.split())}


def make_app(tracker: JobTracker) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/count", status_code=202)
    def count(text: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        job_id = tracker.submit_to(CallLater(background_tasks.add_task), count_words, text)
        return {"job_id": job_id, "job_status": tracker.store.get(job_id).job_status}

    return app

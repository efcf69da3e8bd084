"""Record the jobs of the task queue a host already runs, without changing its tasks.

- :mod:`jobstatus.integrations.celery`: ``record_tasks(app, store)`` (Celery's signals);
- :mod:`jobstatus.integrations.rq`: ``record_jobs(queue, store)`` (RQ's job class and
  callbacks);
- :mod:`jobstatus.integrations.dramatiq`: ``JobStatusMiddleware(store)``.

Each module imports its queue library when it is imported; install it with the extra of the
same name (``pip install "jobstatus[celery]"``). This package imports none of them.

Inside a task of any of them -- or a function run by ``tracker.submit_to`` or inside
``tracker.run`` -- :func:`progress` reports how far it is and :func:`check_cancelled` stops it
once a client asked it to.
"""

from jobstatus.integrations.recorder import QueueRecorder, check_cancelled, progress

__all__ = ["QueueRecorder", "check_cancelled", "progress"]

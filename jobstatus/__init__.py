"""jobstatus: store the status of background jobs and serve it over HTTP from any web app."""

from jobstatus.backends import open_store
from jobstatus.envelope import build_envelope
from jobstatus.errors import (
    ConfigurationError,
    Conflict,
    InvalidRequest,
    JobCancelled,
    JobNotFound,
    JobStatusError,
    QueueFull,
    StorageError,
    Unauthorized,
)
from jobstatus.lifecycle import Progress
from jobstatus.record import JobRecord, JobState
from jobstatus.service import Reply, StatusService
from jobstatus.store import ABSENT, Store
from jobstatus.tracker import JobTracker
from jobstatus.webhooks import Webhooks

__all__ = [
    "ABSENT",
    "ConfigurationError",
    "Conflict",
    "InvalidRequest",
    "JobCancelled",
    "JobNotFound",
    "JobRecord",
    "JobState",
    "JobStatusError",
    "JobTracker",
    "Progress",
    "QueueFull",
    "Reply",
    "StatusService",
    "StorageError",
    "Store",
    "Unauthorized",
    "Webhooks",
    "build_envelope",
    "open_store",
]

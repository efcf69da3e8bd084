"""jobstatus: store the status of background jobs and serve it over HTTP from any web app."""

from jobstatus.backends import open_store
from jobstatus.envelope import build_envelope
from jobstatus.errors import (
    ConfigurationError,
    InvalidRequest,
    JobNotFound,
    JobStatusError,
    QueueFull,
    StorageError,
    Unauthorized,
)
from jobstatus.record import JobRecord, JobState
from jobstatus.service import Reply, StatusService
from jobstatus.store import Store
from jobstatus.tracker import JobTracker

__all__ = [
    "ConfigurationError",
    "InvalidRequest",
    "JobNotFound",
    "JobRecord",
    "JobState",
    "JobStatusError",
    "JobTracker",
    "QueueFull",
    "Reply",
    "StatusService",
    "StorageError",
    "Store",
    "Unauthorized",
    "build_envelope",
    "open_store",
]

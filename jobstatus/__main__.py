"""``python -m jobstatus``: the command line."""

from jobstatus.cli import entry_point

entry_point()

"""The version of jobstatus, written here only: the build reads it (pyproject's
``[tool.hatch.version]``), and so does ``importlib.metadata.version("jobstatus")``."""

__version__ = "0.1.0"

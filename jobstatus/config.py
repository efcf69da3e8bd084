"""Configuration from the environment (docs/operations.rst lists every variable).

``JOBSTATUS_STORE`` names the store; without it the upstream ``LOCAL_STORAGE_PATH`` is a
filesystem store; without either, ``./jobstatus-data``. ``JOBSTATUS_API_KEYS`` (comma-separated)
or ``API_KEY`` give the accepted keys; ``JOBSTATUS_BUILD_NUMBER`` the build number.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["DEFAULT_STORE", "api_keys_from_env", "build_number_from_env", "store_url_from_env"]

DEFAULT_STORE = "./jobstatus-data"


def store_url_from_env(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get("JOBSTATUS_STORE") or environ.get("LOCAL_STORAGE_PATH") or DEFAULT_STORE


def api_keys_from_env(environ: Mapping[str, str] = os.environ) -> list[str] | None:
    """The configured keys, or None when neither variable is set."""
    listed = environ.get("JOBSTATUS_API_KEYS")
    if listed is not None:
        return [key.strip() for key in listed.split(",") if key.strip()]
    single = environ.get("API_KEY")
    return [single] if single else None


def build_number_from_env(environ: Mapping[str, str] = os.environ) -> str | None:
    return environ.get("JOBSTATUS_BUILD_NUMBER") or None

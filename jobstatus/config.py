"""Configuration from the environment (docs/operations.rst lists every variable).

``JOBSTATUS_STORE`` names the store; without it the upstream ``LOCAL_STORAGE_PATH`` is a
filesystem store; without either, ``./jobstatus-data``. ``JOBSTATUS_API_KEYS`` (comma-separated)
or ``API_KEY`` give the accepted keys; ``JOBSTATUS_BUILD_NUMBER`` the build number;
``JOBSTATUS_JOB_ID_PATTERN`` the job ids the status endpoint serves and the command line writes
(a UUID by default); ``JOBSTATUS_WEBHOOK_SECRETS`` (comma-separated) the secrets that sign
``jobstatus deliver``'s webhooks and ``JOBSTATUS_WEBHOOK_ALLOW`` (comma-separated) the
non-public hosts, addresses and networks it may deliver to.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from jobstatus._schema import UUID_PATTERN
from jobstatus.errors import ConfigurationError

__all__ = [
    "DEFAULT_STORE",
    "JOB_ID_PATTERN_VARIABLE",
    "WEBHOOK_ALLOW_VARIABLE",
    "WEBHOOK_SECRETS_VARIABLE",
    "api_keys_from_env",
    "build_number_from_env",
    "job_id_pattern_from_env",
    "store_url_from_env",
    "webhook_allow_from_env",
    "webhook_secrets_from_env",
]

DEFAULT_STORE = "./jobstatus-data"
#: The variable that holds the job id pattern, a regular expression every job id must match
#: whole.
JOB_ID_PATTERN_VARIABLE = "JOBSTATUS_JOB_ID_PATTERN"
#: The variable that holds the webhook signing secrets, comma-separated (``whsec_…``).
WEBHOOK_SECRETS_VARIABLE = "JOBSTATUS_WEBHOOK_SECRETS"
#: The variable that lists the hosts, addresses and networks webhooks may reach although they
#: are not public, comma-separated.
WEBHOOK_ALLOW_VARIABLE = "JOBSTATUS_WEBHOOK_ALLOW"


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


def job_id_pattern_from_env(environ: Mapping[str, str] = os.environ) -> str:
    """``$JOBSTATUS_JOB_ID_PATTERN`` (a regular expression a job id must match whole), else
    :data:`~jobstatus._schema.UUID_PATTERN`; raises :class:`~jobstatus.ConfigurationError` for
    one that is not a regular expression."""
    pattern = environ.get(JOB_ID_PATTERN_VARIABLE) or UUID_PATTERN
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigurationError(
            f"{JOB_ID_PATTERN_VARIABLE} is not a regular expression: {exc}"
        ) from exc
    return pattern


def webhook_secrets_from_env(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The webhook secrets of ``$JOBSTATUS_WEBHOOK_SECRETS``; a
    :class:`~jobstatus.ConfigurationError` when it is unset or empty."""
    secrets = _comma_list(environ.get(WEBHOOK_SECRETS_VARIABLE))
    if not secrets:
        raise ConfigurationError(
            f"{WEBHOOK_SECRETS_VARIABLE} is not set: give the webhook signing secrets "
            "(whsec_..., comma-separated)"
        )
    return secrets


def webhook_allow_from_env(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The entries of ``$JOBSTATUS_WEBHOOK_ALLOW`` (none when unset)."""
    return _comma_list(environ.get(WEBHOOK_ALLOW_VARIABLE))


def _comma_list(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]

"""The ``timeout`` every network store takes: how long a store call may wait on the network."""

from __future__ import annotations

import math

from jobstatus.errors import ConfigurationError

__all__ = ["DEFAULT_TIMEOUT", "check_timeout"]

#: Seconds a network store's call waits on its server (a connect, an answer) before it fails
#: with a :class:`~jobstatus.StorageError`: the ``timeout`` option's default.
DEFAULT_TIMEOUT = 5.0


def check_timeout(value: object, name: str = "timeout") -> float:
    """``value`` (a number, or its text from a URL's query) as seconds: positive and finite.

    Raises :class:`~jobstatus.ConfigurationError` (a ``ValueError``) naming the option.
    """
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} takes a number of seconds, got {value!r}")
    try:
        seconds = float(value)  # type: ignore[arg-type]  # anything float() takes
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} takes a number of seconds, got {value!r}") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ConfigurationError(
            f"{name} must be a positive, finite number of seconds, got {value!r}"
        )
    return seconds

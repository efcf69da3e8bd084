"""Store URLs and the registry of backends: ``open_store(url, **options)``.

Built-in schemes are imported only when used, so the core never imports a driver. Third-party
backends register a scheme through the entry-point group ``jobstatus.backends``; the entry point
names a factory ``(url: str, **options) -> Store``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, NamedTuple

from jobstatus.backends import _timeout
from jobstatus.errors import ConfigurationError, redact
from jobstatus.errors import missing_extra as missing_extra  # re-exported for the backends
from jobstatus.store import Store

__all__ = ["DEFAULT_TIMEOUT", "ENTRY_POINT_GROUP", "known_schemes", "open_store"]

ENTRY_POINT_GROUP = "jobstatus.backends"

#: Seconds a call of a network store (PostgreSQL, MariaDB/MySQL, S3, Redis) may wait on its
#: server before it fails with a :class:`~jobstatus.StorageError`, unless the store's
#: ``timeout`` option says otherwise.
DEFAULT_TIMEOUT = _timeout.DEFAULT_TIMEOUT

StoreFactory = Callable[..., Store]


class _Builtin(NamedTuple):
    target: str  # "module:factory"
    extra: str | None  # the pip extra that brings its dependencies


_SQL = _Builtin("jobstatus.backends.sql:open_sql_store", "sql")
_OBJECTS = _Builtin("jobstatus.backends.objectstore:open_object_store", "s3")
_REDIS = _Builtin("jobstatus.backends.redis:open_redis_store", "redis")

_BUILTIN: dict[str, _Builtin] = {
    "memory": _Builtin("jobstatus.backends.memory:open_memory_store", None),
    "file": _Builtin("jobstatus.backends.filesystem:open_filesystem_store", None),
    "sqlite": _SQL,
    "postgresql": _SQL,
    "postgres": _SQL,
    "mysql": _SQL,
    "mariadb": _SQL,
    "s3": _OBJECTS,
    "s3a": _OBJECTS,
    "gs": _Builtin(_OBJECTS.target, "gcs"),
    "gcs": _Builtin(_OBJECTS.target, "gcs"),
    "az": _Builtin(_OBJECTS.target, "azure"),
    "abfs": _Builtin(_OBJECTS.target, "azure"),
    "abfss": _Builtin(_OBJECTS.target, "azure"),
    "fsspec": _Builtin(_OBJECTS.target, "fsspec"),
    "redis": _REDIS,  # and redis+sentinel://
    "rediss": _REDIS,
    "unix": _REDIS,
}


def _scheme(url: str) -> str:
    """``postgresql+psycopg://…`` → ``postgresql``; ``fsspec+memory://`` → ``fsspec``;
    a plain path → ``file``."""
    if "://" not in url:
        return "file"
    return url.split("://", 1)[0].split("+", 1)[0].lower()


def _plugins() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_schemes() -> list[str]:
    """Every scheme ``open_store`` accepts: the built-in ones and those of installed plug-ins."""
    return sorted(set(_BUILTIN) | set(_plugins()))


def open_store(url: str, **options: Any) -> Store:
    """Open the store a URL names. Keyword options go to the backend.

    Raises :class:`~jobstatus.ConfigurationError` for an unknown scheme (listing the known
    ones) and for a backend whose extra is not installed (naming the ``pip install`` line).
    """
    if not url:
        raise ConfigurationError("empty store URL")
    scheme = _scheme(url)
    builtin = _BUILTIN.get(scheme)
    if builtin is None:
        plugin = _plugins().get(scheme)
        if plugin is None:
            raise ConfigurationError(
                f"unknown store scheme {scheme!r} in {redact(url)!r}; "
                f"known schemes: {', '.join(known_schemes())}"
            )
        factory: StoreFactory = plugin.load()
        return factory(url, **options)
    module_name, _, attr = builtin.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if builtin.extra is None or not exc.name or exc.name.startswith("jobstatus"):
            raise
        raise missing_extra(builtin.extra, exc) from exc
    factory = getattr(module, attr)
    return factory(url, **options)

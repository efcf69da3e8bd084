"""Serve the endpoints under gunicorn: each worker opens its own store after the fork."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from jobstatus.backends import missing_extra
from jobstatus.errors import ConfigurationError
from jobstatus.schema import UUID_PATTERN

__all__ = ["serve"]


def serve(
    *,
    store_url: str,
    api_keys: Sequence[str] | None,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 2,
    build_number: str | None = None,
    upstream_wire: bool = False,
    job_id_pattern: str = UUID_PATTERN,
    extra_options: dict[str, Any] | None = None,
) -> None:
    """Run gunicorn in the foreground until it is stopped. ``job_id_pattern`` is the
    :class:`~jobstatus.StatusService`'s: the job ids it serves (a UUID by default)."""
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError as exc:
        raise missing_extra("serve", exc) from exc

    from jobstatus.adapters.wsgi import make_app
    from jobstatus.backends import open_store
    from jobstatus.service import StatusService

    if workers < 1:
        raise ConfigurationError("--workers must be at least 1")
    open_store(store_url).close()  # fail fast, in the master, on a bad URL or a missing extra

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings = {
                "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "workers": workers,
                "accesslog": "-",
                **(extra_options or {}),
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> Callable[..., Any]:
            store = open_store(store_url)
            service = StatusService(
                store,
                api_keys=api_keys,
                build_number=build_number,
                upstream_wire=upstream_wire,
                job_id_pattern=job_id_pattern,
            )
            return make_app(service)

    _Server().run()

"""Store URLs: ``s3://bucket/prefix?option=value`` into an fsspec filesystem and its root.

Query parameters become fsspec *storage options*; keyword options win over them, option by
option. On S3, ``timeout`` is the store's own (see :func:`open_filesystem`). Nothing here sends
a request: a filesystem is made, not connected.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

import fsspec

from jobstatus.backends import missing_extra
from jobstatus.backends._timeout import DEFAULT_TIMEOUT, check_timeout
from jobstatus.errors import ConfigurationError

__all__ = ["NUMERIC_OPTIONS", "open_filesystem", "parse_store_url", "secret_values"]

#: Query parameters turned into numbers (by the last part of a dotted name); every other
#: value stays a string, but ``true`` and ``false`` become booleans.
NUMERIC_OPTIONS: Mapping[str, Callable[[str], float]] = {
    "max_concurrency": int,
    "default_block_size": int,
    "block_size": int,
    "max_pool_connections": int,
    "max_attempts": int,
    "total_max_attempts": int,
    "max_paths": int,
    "connect_timeout": float,
    "read_timeout": float,
    "timeout": float,
    "requests_timeout": float,
    "listings_expiry_time": float,
}

# Defaults under the query string and the keyword options: each store gets its own filesystem
# (closing it closes nobody else's connections) and fsspec keeps no directory listings.
_DEFAULT_OPTIONS: Mapping[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}

# The pip extra and the package behind each fsspec protocol.
_EXTRAS = {
    "s3": ("s3", "s3fs"),
    "s3a": ("s3", "s3fs"),
    "gs": ("gcs", "gcsfs"),
    "gcs": ("gcs", "gcsfs"),
    "az": ("azure", "adlfs"),
    "abfs": ("azure", "adlfs"),
    "abfss": ("azure", "adlfs"),
    "adl": ("azure", "adlfs"),
}
#: Protocols whose first path segment is a bucket (or container), which must be named.
BUCKET_PROTOCOLS = frozenset(_EXTRAS)
#: Protocols whose requests the store sends itself, bounded by its ``timeout``.
TIMED_PROTOCOLS = frozenset({"s3", "s3a"})

_SECRET_OPTIONS = frozenset(
    {
        "secret",
        "token",
        "password",
        "aws_secret_access_key",
        "aws_session_token",
        "account_key",
        "sas_token",
        "client_secret",
        "connection_string",
        "credential",
    }
)


def parse_store_url(url: str) -> tuple[str, dict[str, Any]]:
    """Split a store URL into the fsspec URL and the storage options of its query string.

    ``fsspec+memory://b/p`` → ``memory://b/p``. Query values are percent-decoded (``+`` stays
    a plus, as AWS secret keys need); ``true``/``false`` become booleans, the options of
    :data:`NUMERIC_OPTIONS` numbers; a dotted name fills a nested option
    (``client_kwargs.region_name=eu-west-1``).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"not an object-store URL: {url!r}")
    scheme = scheme.lower()
    if scheme == "fsspec" or scheme.startswith("fsspec+"):
        protocol = scheme.partition("+")[2]
        if not protocol:
            raise ConfigurationError("an fsspec URL names its protocol: fsspec+memory://bucket/p")
    else:
        protocol = scheme
    path, _, query = rest.partition("?")
    options: dict[str, Any] = {}
    for pair in filter(None, query.split("&")):
        name, has_value, raw = pair.partition("=")
        name = unquote(name)
        if not name or not has_value:
            raise ConfigurationError(f"a query parameter needs a name and a value: {name!r}")
        _set_option(options, name.split("."), _option_value(name, unquote(raw)))
    return f"{protocol}://{path}", options


def _option_value(name: str, raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    convert = NUMERIC_OPTIONS.get(name.rsplit(".", 1)[-1])
    if convert is None:
        return raw
    try:
        return convert(raw)
    except ValueError:
        raise ConfigurationError(f"the option {name!r} takes a number, got {raw!r}") from None


def _set_option(options: dict[str, Any], names: list[str], value: Any) -> None:
    *parents, last = names
    for name in parents:
        options = options.setdefault(name, {})
        if not isinstance(options, dict):
            raise ConfigurationError(f"the option {name!r} is given both as a value and a group")
    if last in options:
        raise ConfigurationError(f"the option {'.'.join(names)!r} is given twice")
    options[last] = value


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` wins, option by option, inside nested groups too."""
    merged = dict(base)
    for name, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = _merged(merged[name], value)
        else:
            merged[name] = value
    return merged


def secret_values(options: Mapping[str, Any]) -> set[str]:
    """The values of the options that hold secrets, at any depth: scrubbed from messages."""
    found = set()
    for name, value in options.items():
        if isinstance(value, Mapping):
            found |= secret_values(value)
        elif name.lower() in _SECRET_OPTIONS and isinstance(value, str):
            found.add(value)
    return found


def open_filesystem(url: str, options: Mapping[str, Any]) -> tuple[Any, str, float]:
    """The fsspec filesystem and root folder a store URL names, and the store's timeout;
    ``options`` win over its query.

    On S3, ``timeout`` (:data:`~jobstatus.backends.DEFAULT_TIMEOUT` when not given) is taken
    out of the storage options: it becomes botocore's ``connect_timeout`` and
    ``read_timeout`` unless ``config_kwargs`` gives them, and bounds each request of the
    store. Elsewhere it is a storage option like any other (the filesystem's own, if it has
    one), and the timeout returned is the default.

    Raises :class:`~jobstatus.ConfigurationError` for a bad URL or option, an unknown protocol,
    a missing package (naming its extra) and a bucket protocol without a bucket.
    """
    target, query_options = parse_store_url(url)
    protocol = target.partition("://")[0]
    storage_options = _merged(_merged(_DEFAULT_OPTIONS, query_options), options)
    timeout = DEFAULT_TIMEOUT
    if protocol in TIMED_PROTOCOLS:
        timeout = check_timeout(storage_options.pop("timeout", DEFAULT_TIMEOUT))
        config = storage_options.get("config_kwargs") or {}
        storage_options["config_kwargs"] = {
            "connect_timeout": timeout,
            "read_timeout": timeout,
            **config,
        }
    extra, package = _EXTRAS.get(protocol, ("fsspec", None))
    try:
        if package is not None:  # fsspec knows some of these protocols only once installed
            importlib.import_module(package)
        fs, root = fsspec.url_to_fs(target, **storage_options)
    except ImportError as exc:
        raise missing_extra(extra, ImportError(str(exc), name=package or exc.name)) from exc
    except ValueError as exc:
        raise ConfigurationError(f"cannot open {protocol}:// with fsspec: {exc}") from exc
    except TypeError as exc:
        raise ConfigurationError(f"bad storage option for {protocol}://: {exc}") from exc
    if protocol in BUCKET_PROTOCOLS and not str(root).strip("/"):
        raise ConfigurationError(f"name a bucket: {protocol}://bucket/prefix")
    return fs, str(root), timeout

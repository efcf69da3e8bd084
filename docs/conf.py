"""Sphinx configuration of the jobstatus docs.

Build with ``nox -s docs`` (doctests, then HTML, both with ``-W -n``). No network: intersphinx
is off, so references to the standard library and to third-party types cannot resolve; the
ones our signatures use are listed in ``nitpick_ignore`` below, every other reference must
resolve.
"""

from __future__ import annotations

import re
import sys
from contextlib import suppress
from pathlib import Path
from types import FunctionType
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # build from a checkout without installing it
sys.path.insert(0, str(DOCS / "_ext"))

project = "jobstatus"
author = "The jobstatus team"
copyright = "the jobstatus team"
try:
    from importlib.metadata import version as _version

    release = _version("jobstatus")
except Exception:  # not installed: read it from the checkout
    _text = (ROOT / "jobstatus" / "_version.py").read_text()
    _match = re.search(r'^__version__ = "([^"]+)"', _text, re.M)
    release = _match[1] if _match else "unknown"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
]
# The CLI reference directive (``.. jobstatus-cli::``), rendered from jobstatus.cli.build_parser().
if (DOCS / "_ext" / "cli_reference.py").exists():
    extensions.append("cli_reference")
# The state diagram (``.. job-state-diagram::``), drawn from jobstatus.JobState with matplotlib.
extensions.append("state_diagram")
# The dashboard's screenshots (``.. dashboard-screenshot::``): taken with headless Chromium when
# it and selenium are installed, else the committed ones in _ext/dashboard/.
extensions.append("dashboard_screenshots")

exclude_patterns = ["_build"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_theme = "furo"
html_title = f"jobstatus {release}"

nitpicky = True
default_role = "py:obj"

autodoc_member_order = "bysource"
autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "imported-members": True,  # with __all__ in every module: exactly its public names
    "show-inheritance": True,
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# Signatures name the alias rather than spelling out its private sentinel type.
autodoc_type_aliases = {"ExpectedVersion": "jobstatus.store.ExpectedVersion"}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Examples run as in an interactive session, where ``__name__`` is "__main__" (Flask(__name__)
# needs a module name it can find).
# Starlette's test client warns that it will move to httpx2; not the docs' concern.
doctest_global_setup = f"""
import warnings
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
__name__ = "__main__"
PLUGIN_EXAMPLE = {str(DOCS / "plugin_example")!r}
"""

# -- references that cannot resolve without intersphinx ----------------------------------------
# The docs are built offline, so there is no inventory to link the standard library (builtins and
# typing are resolved by Sphinx itself) or third-party types to. These are the ones our
# signatures and docstrings use; every reference to jobstatus itself must resolve.
_STDLIB_MODULES = [
    "_thread", "argparse", "collections", "concurrent", "contextvars", "datetime", "enum", "http",
    "ipaddress", "os", "pathlib", "queue", "random", "socket", "ssl", "threading", "types",
    "urllib",
]  # fmt: skip
_THIRD_PARTY_MODULES = [
    "celery", "dramatiq", "fastapi", "flask", "fsspec", "hypothesis", "prometheus_client", "redis",
    "rq", "sqlalchemy", "st", "starlette",
]  # fmt: skip
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(_STDLIB_MODULES + _THIRD_PARTY_MODULES)})\..*"),
    # Private names that public signatures spell out (the sentinel type behind ABSENT in
    # ExpectedVersion's "alias of", the protocol Heartbeat.add takes): not documented, not linked.
    (r"py:.*", r"jobstatus(\.\w+)*\._\w+.*"),
]


def _resolve_short_names(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a docstring's short reference (``:class:`InvalidRequest``` written inside
    jobstatus.record) to the one jobstatus object of that name: ``jobstatus.X`` first, else the
    only documented name ending in ``.X``. Ambiguous or unknown names still warn."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    domain = env.get_domain("py")
    objects = {name: entry for name, entry in domain.objects.items() if not entry.aliased}
    matches = (
        [f"jobstatus.{target}"]
        if f"jobstatus.{target}" in objects
        else [name for name in objects if name.endswith(f".{target}")]
    )
    if len(matches) != 1:
        return None
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], matches[0], node, contnode
    )


# -- every public name is documented -------------------------------------------------------------
# A name in the ``__all__`` of a public jobstatus module (no part of its dotted name starts with an
# underscore) must have an entry in the API reference, under that module or wherever the same
# object is documented (``jobstatus.X`` for the names the package re-exports). A missing one is a
# warning, so an error under ``-W``.


def _public_names() -> dict[str, object]:
    """``module.name`` → object, for every name in the ``__all__`` of a jobstatus module."""
    import importlib
    import pkgutil

    import jobstatus as package

    names: dict[str, object] = {}
    modules = [package.__name__] + [
        info.name
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}.")
        # __main__ runs the command; a _private module's names are its package's business
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            names[f"{module_name}.{name}"] = getattr(module, name)
    return names


def _check_public_names_documented(app: Any, env: Any) -> None:
    from sphinx.util import logging

    if "api" not in env.found_docs:
        return
    documented = set(env.get_domain("py").objects)
    public = _public_names()
    where: dict[int, set[str]] = {}
    for full_name, obj in public.items():
        where.setdefault(id(obj), set()).add(full_name)
    for full_name, obj in public.items():
        qualname = getattr(obj, "__qualname__", None)
        module = getattr(obj, "__module__", None)
        candidates = {full_name}
        if isinstance(obj, (type, FunctionType)):  # the same object under another public name
            candidates |= where[id(obj)]
            if module and qualname:
                candidates.add(f"{module}.{qualname}")
        if not candidates & documented:
            logging.getLogger(__name__).warning(
                "public name %s is not in the API reference (docs/api.rst)",
                full_name,
                location="api",
            )


# -- one description per object ----------------------------------------------------------------
# A page may document part of the API where it is explained (store-sql documents the SQL
# backend's functions). The API reference then leaves those objects out rather than describing
# them twice, which Sphinx refuses: its automodule members are skipped, and its explicit
# ``.. autodata::`` / ``.. autoclass::`` blocks are dropped before the page is parsed.
_AUTODOC_LINE = re.compile(
    r"^\.\. (?:auto(?:function|class|exception|data|attribute|method|decorator)"
    r"|py:(?:function|class|exception|data|attribute|method))::\s+([\w.]+)",
    re.MULTILINE,
)
_documented_elsewhere: dict[str, object] = {}  # full name -> the object, for pages but api.rst


def _import_object(full_name: str) -> object:
    import importlib

    parts = full_name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(full_name)


def _scan_other_pages(app: Any) -> None:
    _documented_elsewhere.clear()
    for page in sorted(Path(app.srcdir).glob("*.rst")):
        if page.name == "api.rst":
            continue
        for full_name in _AUTODOC_LINE.findall(page.read_text(encoding="utf-8")):
            with suppress(ImportError, AttributeError):  # that page's own build reports it
                _documented_elsewhere[full_name] = _import_object(full_name)


def _skip_documented_elsewhere(
    app: Any, what: str, name: str, obj: object, skip: bool, options: Any
) -> bool | None:
    if app.env.docname != "api":
        return None
    for full_name, documented in _documented_elsewhere.items():
        if documented is obj and full_name.rsplit(".", 1)[-1] == name:
            return True
    return None


def _drop_explicit_duplicates(app: Any, docname: str, source: list[str]) -> None:
    if docname != "api":
        return
    for full_name in _documented_elsewhere:
        source[0] = re.sub(
            rf"^\.\. auto\w+:: {re.escape(full_name)}\n(?:[ \t]+\S.*\n)*",
            "",
            source[0],
            flags=re.MULTILINE,
        )


# -- signatures show what a caller passes -----------------------------------------------------
# A dataclass's generated __init__ lists its private fields too (Run's store, lock, held-back
# progress); the reference shows the public parameters only.


def _public_signature(
    app: Any,
    what: str,
    name: str,
    obj: object,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    if what != "class" or not signature or "_" not in signature:
        return None
    import inspect

    from sphinx.util.inspect import stringify_signature

    try:
        full = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    public = [p for p in full.parameters.values() if not p.name.startswith("_")]
    if len(public) == len(full.parameters):
        return None
    shown = full.replace(parameters=public)
    return stringify_signature(shown, show_return_annotation=False), return_annotation


def setup(app: Any) -> None:
    app.connect("autodoc-process-signature", _public_signature)
    app.connect("env-check-consistency", _check_public_names_documented)
    app.connect("missing-reference", _resolve_short_names)
    app.connect("builder-inited", _scan_other_pages)
    app.connect("autodoc-skip-member", _skip_documented_elsewhere)
    app.connect("source-read", _drop_explicit_duplicates)

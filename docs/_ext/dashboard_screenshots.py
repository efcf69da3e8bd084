"""``.. dashboard-screenshot:: light|dark|narrow``: the job dashboard as a browser shows it.

When Chromium, chromedriver and selenium are installed, the build takes the pictures itself:
it serves the dashboard of a memory store holding a dozen sample jobs (jobstatus's own WSGI app
on werkzeug's server, 127.0.0.1, a free port), opens it in headless Chromium, signs in with the
key form as a user would and saves three PNGs into ``docs/_build/generated/``:

- ``light``: the list at 1280 px, light colours;
- ``dark``: the job view of a running job over the list, dark colours;
- ``narrow``: the list at 320 px, where every job is a card.

They are taken once per change of the dashboard's files (a stamp of their hash sits beside
them), so the doctest and HTML builds share one run. Without Chromium the build uses the PNGs
committed in ``docs/_ext/dashboard/``, made the same way by running this file::

    python docs/_ext/dashboard_screenshots.py docs/_ext/dashboard

A browser that is installed but fails is a build warning (an error under ``-W``), not a silent
fallback.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
OUTPUT_DIR = Path("_build") / "generated"
FALLBACK_DIR = Path("_ext") / "dashboard"
KEY = "docs-screenshot-key"
#: name → (width, height, dark, open a job view)
SHOTS: dict[str, tuple[int, int, bool, bool]] = {
    "light": (1280, 760, False, False),
    "dark": (1280, 760, True, True),
    "narrow": (320, 1400, False, False),
}
ALT = {
    "light": "The dashboard in light colours: counts per state, filters, and a table of jobs "
    "with state badges, progress bars and times.",
    "dark": "The dashboard in dark colours with a finished job's view open: every key of its "
    "document, the response as collapsible JSON, and the copy buttons.",
    "narrow": "The dashboard 320 pixels wide: every job is a card.",
}

log = logging.getLogger(__name__)


def sample_store() -> tuple[Any, str]:
    """A memory store with the jobs the pictures show (fixed ids, times relative to now), and
    the id of the job whose view the dark picture opens."""
    from jobstatus import JobRecord, Progress, open_store

    store = open_store("memory://")
    now = datetime.now(timezone.utc).replace(microsecond=0)

    def ago(minutes: float) -> datetime:
        return now - timedelta(minutes=minutes)

    def job_id(n: int) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"jobstatus-docs-{n}"))

    jobs = [  # oldest write first: the page lists the newest first
        ("done", 58, 57, 41, Progress(100, "12 of 12 chunks", 12, 12), {"words": 8_412}),
        ("failed", 52, 50, 47, Progress(37, "decoding chunk 5", 5, 12), "audio stream ended early"),
        ("done", 44, 44, 39, Progress(100, "done", 6, 6), {"words": 3_120}),
        ("cancelled", 40, 39, 33, Progress(61, "asked to stop", 7, 12), None),
        ("done", 31, 30, 21, Progress(100, "9 of 9 chunks", 9, 9), {"words": 6_077}),
        ("done", 25, 25, 19, Progress(100, "4 of 4 chunks", 4, 4), {"words": 2_250}),
        ("running", 16, 15, None, Progress(23, "transcribing chunk 3 of 12", 3, 12), None),
        ("running", 12, 11, None, Progress(64, "transcribing chunk 8 of 12", 8, 12), None),
        ("queued", 6, None, None, None, None),
        ("running", 9, 8, None, Progress(88, "aligning words", 22, 25), None),
        ("queued", 3, None, None, None, None),
        ("submitted", 1, None, None, None, None),
    ]
    for n, (status, created, started, ended, progress, result) in enumerate(jobs):
        response = None
        if status in ("done", "failed"):
            code = 200 if status == "done" else 500
            response = {"code": code, "message": "success" if code == 200 else result}
            if status == "done":
                response["response"] = {"language": "en", **result}  # type: ignore[dict-item]
        store.put(
            JobRecord(
                job_id=job_id(n),
                job_status=status,
                response=response,
                created_at=ago(created),
                started_at=None if started is None else ago(started),
                ended_at=None if ended is None else ago(ended),
                progress=progress,
            )
        )
    return store, job_id(5)


def _browser_helpers() -> Any:
    """``tests/browser.py`` (the browser and server helpers the tests use), by its path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_jobstatus_browser", ROOT / "tests" / "browser.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def take(folder: Path) -> None:
    """Take every picture into ``folder`` (Chromium and selenium must be installed)."""
    sys.path.insert(0, str(ROOT))
    from selenium.webdriver.support.wait import WebDriverWait

    from jobstatus import StatusService
    from jobstatus.adapters.wsgi import make_app

    helpers = _browser_helpers()

    store, shown_id = sample_store()
    service = StatusService(store, api_keys=[KEY], allow_cancel=True)
    server = helpers.WSGIServer(make_app(service, dashboard=True))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for name, (width, height, dark, job_view) in SHOTS.items():
            with helpers.open_browser(width=width, height=height, dark=dark) as driver:
                wait = WebDriverWait(driver, 20, poll_frequency=0.05)
                driver.get(server.url + "/v1/toolkit/dashboard/")
                wait.until(lambda d: d.find_element("id", "key-input").is_displayed())
                driver.find_element("id", "key-input").send_keys(KEY + "\n")
                wait.until(
                    lambda d: d.execute_script(
                        "return document.querySelectorAll('#rows tr').length === 12"
                        " && document.querySelectorAll('#counts button').length > 1"
                    )
                )
                driver.execute_script("document.activeElement.blur()")
                if job_view:
                    driver.execute_script(f"location.hash = 'job={shown_id}'")
                    wait.until(lambda d: d.find_elements("css selector", "#job-doc dt"))
                    driver.execute_script("document.activeElement.blur()")
                    helpers.set_viewport(driver, width, height)
                    driver.save_screenshot(str(folder / f"{name}.png"))
                else:
                    helpers.screenshot(
                        driver, folder / f"{name}.png", width=width, max_height=height
                    )
    finally:
        server.close()


def _stamp() -> str:
    """A hash of what the pictures depend on: the dashboard's files and this extension."""
    digest = hashlib.sha256()
    sources = [*sorted((ROOT / "jobstatus" / "dashboard").iterdir()), Path(__file__)]
    for path in sources:
        if path.is_file() and path.suffix != ".pyc":
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _can_take() -> bool:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return _browser_helpers().chromium() is not None


def prepare(app: Sphinx) -> None:
    """Put the three pictures in ``_build/generated/``: taken now, or the committed ones."""
    srcdir = Path(app.srcdir)
    folder = srcdir / OUTPUT_DIR
    stamp_file = folder / "dashboard.stamp"
    stamp = _stamp()
    if all((folder / f"dashboard-{n}.png").exists() for n in SHOTS) and (
        stamp_file.exists() and stamp_file.read_text() == stamp
    ):
        return
    folder.mkdir(parents=True, exist_ok=True)
    if _can_take():
        shots = folder / "dashboard-shots"
        try:
            take(shots)
        except Exception as exc:
            log.warning(
                "dashboard screenshots: Chromium failed (%s); using the committed ones", exc
            )
            shots = srcdir / FALLBACK_DIR
        else:
            stamp_file.write_text(stamp)
    else:
        log.info("dashboard screenshots: no Chromium/selenium; using the committed pictures")
        shots = srcdir / FALLBACK_DIR
    for name in SHOTS:
        shutil.copyfile(shots / f"{name}.png", folder / f"dashboard-{name}.png")


class DashboardScreenshot(SphinxDirective):
    """A figure of the dashboard; the argument names the picture, the content is the caption."""

    required_arguments = 1
    has_content = True
    option_spec: ClassVar[dict[str, Any]] = {"width": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        if name not in SHOTS:
            raise self.error(f"unknown dashboard screenshot {name!r}; one of {sorted(SHOTS)}")
        image = nodes.image(uri=f"/{OUTPUT_DIR.as_posix()}/dashboard-{name}.png", alt=ALT[name])
        if "width" in self.options:
            image["width"] = self.options["width"]
        figure = nodes.figure("", image)
        figure["classes"].append("dashboard-screenshot")
        if self.content:
            parent = nodes.Element()
            self.state.nested_parse(self.content, self.content_offset, parent)
            first = parent.children[0] if parent.children else None
            if not isinstance(first, nodes.paragraph):
                raise self.error("the screenshot's content must be its caption, a paragraph")
            figure += nodes.caption(first.rawsource, "", *first.children)
        self.set_source_info(figure)
        return [figure]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("dashboard-screenshot", DashboardScreenshot)
    app.connect("builder-inited", prepare)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":  # python docs/_ext/dashboard_screenshots.py FOLDER
    target = Path(sys.argv[1] if len(sys.argv) > 1 else DOCS / FALLBACK_DIR)
    take(target)
    print("\n".join(str(target / f"{name}.png") for name in SHOTS))

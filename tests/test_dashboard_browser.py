"""The dashboard in a real browser: headless Chromium driven by Selenium, against the real
service served from a thread on 127.0.0.1 by each adapter (werkzeug for WSGI and Flask, uvicorn
for FastAPI), each mounted under a prefix.

Every scenario ends with :meth:`Page.assert_clean`: no console error, no Content Security
Policy violation, no alert, and no request to another origin. Waits poll the DOM
(WebDriverWait); nothing sleeps for a fixed time except where a test shows that *nothing*
happens during a period.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from jobstatus import JobRecord, JobTracker, Progress, StatusService, open_store
from jobstatus.store import Store
from tests import browser
from tests.conftest import service_unavailable

pytestmark = [pytest.mark.services, pytest.mark.extras]

ROOT = Path(__file__).resolve().parents[1]
KEY = "dashboard-test-key"
PAGE = "/v1/toolkit/dashboard/"
PREFIXES = {"wsgi": "/ops", "flask": "/api", "fastapi": "/status"}
ANY_ID = r"[^/]{1,250}"  # the XSS payloads are ids too
LIVE_DEADLINE = 1.0  # seconds from a write to the page showing it
HEAVY = 30.0  # the longest wait for a page holding megabytes of job data


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    if browser.chromium() is None:
        service_unavailable(
            "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        service_unavailable("selenium is not installed (pip install selenium)")
    with browser.open_browser() as driver:
        yield driver


@pytest.fixture
def store() -> Iterator[Store]:
    with open_store("memory://") as store:
        yield store


@pytest.fixture
def tracker(store: Store) -> JobTracker:
    return JobTracker(store, progress_interval=0)


def serve(adapter: str, service: StatusService) -> browser.WSGIServer | browser.ASGIServer:
    """``service`` with its dashboard, mounted under the adapter's prefix, on a real server."""
    prefix = PREFIXES[adapter]
    if adapter == "wsgi":
        from werkzeug.middleware.dispatcher import DispatcherMiddleware
        from werkzeug.wrappers import Response

        from jobstatus.adapters.wsgi import make_app

        host = DispatcherMiddleware(
            Response("host app", 404), {prefix: make_app(service, dashboard=True)}
        )
        return browser.WSGIServer(host, prefix)
    if adapter == "flask":
        flask = pytest.importorskip("flask")
        from jobstatus.adapters.flask import make_blueprint

        app = flask.Flask(__name__)
        app.register_blueprint(make_blueprint(service, dashboard=True), url_prefix=prefix)
        return browser.WSGIServer(app, prefix)
    fastapi = pytest.importorskip("fastapi")
    from jobstatus.adapters.fastapi import make_router

    app = fastapi.FastAPI()
    app.include_router(make_router(service, dashboard=True), prefix=prefix)
    return browser.ASGIServer(app, prefix)


@dataclass
class Page:
    """The dashboard open in the browser, with the server behind it."""

    driver: Any
    server: Any

    # -- reading the page -----------------------------------------------------------------
    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def wait(self, condition: Callable[[], Any], timeout: float = 10.0, message: str = "") -> Any:
        from selenium.webdriver.support.wait import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.02).until(
            lambda _driver: condition(), message
        )

    def text(self, element_id: str) -> str:
        return str(
            self.driver.execute_script(
                f"return document.getElementById('{element_id}').textContent"
            )
        )

    def rows(self) -> list[dict[str, Any]]:
        """The table's rows as the page shows them (DOM text, not rendered text)."""
        return list(
            self.driver.execute_script(
                """return [...document.querySelectorAll('#rows tr')].map((tr) => ({
                    id: tr.querySelector('.job-id').textContent,
                    state: tr.querySelector('.badge').textContent,
                    percent: tr.querySelector('progress').hasAttribute('value')
                        ? tr.querySelector('progress').value : null,
                    pct: tr.querySelector('.pct').textContent,
                    message: tr.querySelector('.msg').textContent,
                    created: tr.children[3].textContent,
                    duration: tr.children[6].textContent,
                }))"""
            )
        )

    def row(self, job_id: str) -> dict[str, Any] | None:
        return next((r for r in self.rows() if r["id"] == job_id), None)

    def visible(self, element_id: str) -> bool:
        return bool(
            self.driver.execute_script(
                f"return !document.getElementById('{element_id}').closest('[hidden]')"
            )
        )

    # -- acting --------------------------------------------------------------------------
    def open(self) -> Page:
        browser.browser_log(self.driver)  # start from an empty log
        self.driver.get(self.server.url + PAGE)
        self.wait(lambda: self.visible("key-view") or self.visible("jobs-view"))
        return self

    def sign_in(self, key: str = KEY) -> Page:
        field = self.find("#key-input")
        field.send_keys(key)
        self.find("#key-form button[type=submit]").click()
        return self

    def rows_when(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """The rows, once ``predicate`` holds for them."""
        seen: list[list[dict[str, Any]]] = []

        def check() -> bool:
            rows = self.rows()
            seen[:] = [rows]
            return predicate(rows)

        self.wait(check, timeout)
        return seen[0]

    def wait_rows(self, count: int) -> list[dict[str, Any]]:
        return self.rows_when(lambda rows: len(rows) == count)

    def press_chip(self, state: str) -> None:
        """Click a state's chip ("" for all). The chips are redrawn whenever the counts are
        read again, so a click that finds a redrawn chip is tried again on the new one."""
        from selenium.common.exceptions import StaleElementReferenceException

        def click() -> bool:
            try:
                self.find(f'#counts button[data-state="{state}"]').click()
            except StaleElementReferenceException:
                return False
            return True

        self.wait(click)

    def chip_pressed(self, state: str) -> bool:
        return bool(
            self.driver.execute_script(
                'return document.querySelector(`#counts button[data-state="${arguments[0]}"]`)'
                ".getAttribute('aria-pressed') === 'true'",
                state,
            )
        )

    def counts(self) -> dict[str, int]:
        """State → count, as the chips show them (read at once: they are redrawn live)."""
        return dict(
            self.driver.execute_script(
                """return Object.fromEntries([...document.querySelectorAll('#counts button')]
                    .map((b) => [b.dataset.state || 'all',
                                 Number(b.querySelector('.count').textContent)]))"""
            )
        )

    # -- what every scenario ends with ---------------------------------------------------
    def assert_clean(
        self, *, allowed_statuses: tuple[int, ...] = (), network_down: bool = False
    ) -> None:
        """No CSP violation, no dialog, no console error; network errors only of the statuses
        the scenario provoked."""
        assert browser.violations(self.driver) == []
        assert browser.dialogs(self.driver) == []
        for entry in browser.browser_log(self.driver):
            if entry["level"] != "SEVERE":
                continue
            message = entry["message"]
            if entry.get("source") == "network":
                if network_down and "Failed to load resource: net::ERR_" in message:
                    continue  # the browser reports each request the dead server failed
                if any(f"status of {status}" in message for status in allowed_statuses):
                    continue
            raise AssertionError(f"console error: {entry}")
        origin = self.server.url.split("/", 3)[:3]
        entries = self.driver.execute_script(
            "return performance.getEntriesByType('resource').map((e) => e.name)"
        )
        assert all(name.split("/", 3)[:3] == origin for name in entries), entries


@pytest.fixture
def make_page(driver: Any) -> Iterator[Callable[..., Page]]:
    """``make_page(service, adapter="wsgi")``: the service on a real server, its page open."""
    with ExitStack() as stack:

        def make(service: StatusService, adapter: str = "wsgi") -> Page:
            server = serve(adapter, service)
            stack.callback(server.close)
            return Page(driver, server).open()

        yield make
        driver.get("about:blank")


def service_on(store: Store, **options: Any) -> StatusService:
    return StatusService(store, api_keys=[KEY], **options)


def signed_in(make_page: Callable[..., Page], service: StatusService, rows: int) -> Page:
    """The page of ``service`` on WSGI, signed in, showing ``rows`` rows."""
    page = make_page(service).sign_in()
    page.wait_rows(rows)
    return page


def submit_many(tracker: JobTracker, count: int) -> list[str]:
    return [tracker.submit(endpoint="/v1/media/transcribe") for _ in range(count)]


# -- the key -----------------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ["wsgi", "flask", "fastapi"])
def test_enter_the_key_and_see_the_jobs_on_every_adapter(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker, adapter: str
) -> None:
    ids = submit_many(tracker, 3)
    with tracker.run(ids[0]) as run:
        run.progress(percent=40, message="step 2 of 5")
    page = make_page(service_on(store), adapter)
    assert page.visible("key-view")
    assert not page.visible("jobs-view")
    page.sign_in()
    rows = page.wait_rows(3)
    assert [r["id"] for r in rows] == [ids[0], ids[2], ids[1]]  # newest write first
    assert rows[0]["state"] == "done"
    assert rows[0]["percent"] == 40
    assert rows[0]["message"] == "step 2 of 5"
    assert {r["state"] for r in rows[1:]} == {"queued"}
    page.wait(
        lambda: (
            page.counts()
            == {
                "all": 3,
                "queued": 2,
                "submitted": 0,
                "running": 0,
                "done": 1,
                "failed": 0,
                "cancelled": 0,
            }
        )
    )
    # the key stays in this tab's sessionStorage and out of every URL
    assert (
        page.driver.execute_script("return sessionStorage.getItem('jobstatus.dashboard.key')")
        == KEY
    )
    assert KEY not in page.driver.current_url
    assert not any(KEY in url for url in page.server.requests.take())
    page.assert_clean()


def test_the_page_is_the_same_on_every_adapter(
    make_page: Callable[..., Page], store: Store
) -> None:
    service = service_on(store)
    pages = {}
    for adapter in ("wsgi", "flask", "fastapi"):
        page = make_page(service, adapter)
        pages[adapter] = page.driver.execute_script("return document.documentElement.outerHTML")
        page.assert_clean()
    assert pages["wsgi"] == pages["flask"] == pages["fastapi"]


def test_a_wrong_key_shows_the_401_state(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker
) -> None:
    submit_many(tracker, 2)
    page = make_page(service_on(store))
    page.sign_in("not-the-key")
    page.wait(lambda: "401" in page.text("key-error"))
    assert "Enter a valid key" in page.text("key-error")
    assert page.visible("key-view")
    assert not page.visible("jobs-view")
    assert (
        page.driver.execute_script("return sessionStorage.getItem('jobstatus.dashboard.key')")
        is None
    )
    assert page.rows() == []
    page.sign_in()  # the right key then works
    page.wait_rows(2)
    page.assert_clean(allowed_statuses=(401,))


def test_forget_key_clears_it_and_shows_the_form(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker
) -> None:
    submit_many(tracker, 1)
    page = signed_in(make_page, service_on(store), rows=1)
    page.find("#forget").click()
    page.wait(lambda: page.visible("key-view"))
    assert (
        page.driver.execute_script("return sessionStorage.getItem('jobstatus.dashboard.key')")
        is None
    )
    assert page.rows() == []
    page.assert_clean()


# -- listing ------------------------------------------------------------------------------------


def test_filter_by_state(make_page: Callable[..., Page], store: Store, tracker: JobTracker) -> None:
    ids = submit_many(tracker, 5)
    for job_id in ids[:2]:
        with tracker.run(job_id):
            pass
    with pytest.raises(RuntimeError), tracker.run(ids[2]):
        raise RuntimeError("boom")
    page = signed_in(make_page, service_on(store), rows=5)
    page.press_chip("done")
    rows = page.rows_when(lambda rows: {r["state"] for r in rows} == {"done"})
    assert sorted(r["id"] for r in rows) == sorted(ids[:2])
    assert page.chip_pressed("done")
    page.press_chip("failed")  # a second state adds to the filter
    page.wait(lambda: sorted(r["state"] for r in page.rows()) == ["done", "done", "failed"])
    page.press_chip("")  # "all" clears it
    page.wait_rows(5)
    page.assert_clean()


def test_search_by_id_prefix(make_page: Callable[..., Page], store: Store) -> None:
    for job_id in ("alpha-1", "alpha-2", "beta-1"):
        store.put(JobRecord(job_id=job_id, job_status="queued"))
    page = signed_in(make_page, service_on(store, job_id_pattern=ANY_ID), rows=3)
    page.find("#search").send_keys("alpha")
    page.wait(lambda: sorted(r["id"] for r in page.rows()) == ["alpha-1", "alpha-2"])
    page.find("#search").send_keys("-2")
    page.wait(lambda: [r["id"] for r in page.rows()] == ["alpha-2"])
    page.find("#search").send_keys("x")
    page.wait(lambda: page.visible("empty") and page.rows() == [])
    assert "No job id starts with" in page.text("empty-title")
    page.assert_clean(allowed_statuses=(404,))


def test_page_through_250_jobs(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker
) -> None:
    ids = submit_many(tracker, 250)
    page = make_page(service_on(store)).sign_in()
    seen: list[str] = []
    for expected in (100, 100, 50):
        rows = page.rows_when(
            lambda rows, n=expected, old=tuple(seen): len(rows) == n and rows[0]["id"] not in old
        )
        seen += [r["id"] for r in rows]
        if expected == 50:
            assert page.find("#older").get_attribute("disabled") is not None
        else:
            page.find("#older").click()
    assert seen == list(reversed(ids))  # newest first, each job exactly once
    assert "Jobs 201\u2013250 of 250" in page.text("list-summary")
    page.find("#newer").click()
    rows = page.rows_when(lambda rows: bool(rows) and rows[0]["id"] == seen[100])
    assert [r["id"] for r in rows] == seen[100:200]
    page.assert_clean()


def test_empty_state_says_what_to_do(make_page: Callable[..., Page], store: Store) -> None:
    page = make_page(service_on(store)).sign_in()
    page.wait(lambda: page.visible("empty"))
    assert page.text("empty-title") == "No jobs were updated in the last hour."
    assert "Widen the time window" in page.text("empty-hint")
    page.assert_clean()


# -- live -------------------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ["wsgi", "fastapi"])
def test_progress_moves_and_the_row_turns_done_within_a_second(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker, adapter: str
) -> None:
    job_id = tracker.submit(endpoint="/v1/media/transcribe")
    submit_many(tracker, 5)  # other jobs on the page
    with ExitStack() as stack:
        run = stack.enter_context(tracker.run(job_id))
        run.progress(percent=10, message="step 1")
        page = make_page(service_on(store), adapter).sign_in()
        page.wait(lambda: (page.row(job_id) or {}).get("percent") == 10)
        page.server.requests.take()
        for percent in (35, 60, 85):
            run.progress(percent=percent, message=f"at {percent}")
            page.wait(
                lambda p=percent: (page.row(job_id) or {}).get("message") == f"at {p}",
                timeout=LIVE_DEADLINE,
                message=f"{percent}% not shown within {LIVE_DEADLINE} s",
            )
            assert page.row(job_id)["percent"] == percent
    # the block ended: the job is done
    page.wait(
        lambda: (page.row(job_id) or {}).get("state") == "done",
        timeout=LIVE_DEADLINE,
        message=f"done not shown within {LIVE_DEADLINE} s",
    )
    page.wait(lambda: page.counts().get("done") == 1)
    assert (
        page.driver.execute_script("return performance.getEntriesByType('navigation').length") == 1
    )
    page.assert_clean()


def test_new_jobs_appear_without_a_reload(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker
) -> None:
    page = make_page(service_on(store)).sign_in()
    page.wait(lambda: page.visible("empty"))
    job_id = tracker.submit(endpoint="/v1/media/transcribe")
    page.wait(lambda: [r["id"] for r in page.rows()] == [job_id], timeout=5)
    assert (
        page.driver.execute_script("return performance.getEntriesByType('navigation').length") == 1
    )
    page.assert_clean()


def test_a_hidden_tab_stops_polling(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker
) -> None:
    job_id = tracker.submit(endpoint="/v1/media/transcribe")
    with tracker.run(job_id) as run:
        run.progress(percent=5)
        page = signed_in(make_page, service_on(store), rows=1)
        first = page.driver.current_window_handle
        page.driver.switch_to.new_window("tab")  # the dashboard's tab is hidden now
        page.server.requests.take()
        time.sleep(5)  # two and a half probe periods: a polling page would have asked
        asked = [p for p in page.server.requests.take() if p.startswith(PREFIXES["wsgi"] + "/v1/")]
        assert asked == []
        page.driver.close()
        page.driver.switch_to.window(first)
        page.wait(lambda: any("/v1/toolkit/jobs" in p for p in page.server.requests.paths))
        run.progress(percent=50, message="back")
        page.wait(lambda: (page.row(job_id) or {}).get("message") == "back", timeout=LIVE_DEADLINE)
    page.assert_clean()


# -- the job view and cancel ----------------------------------------------------------------------


def test_the_job_view_shows_every_key(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker
) -> None:
    job_id = tracker.submit(endpoint="/v1/media/transcribe")
    with tracker.run(job_id) as run:
        run.progress(percent=100, message="finished")
        run.result = {"words": 3, "segments": [{"start": 0.0, "text": "hello"}]}
    page = signed_in(make_page, service_on(store), rows=1)
    page.find("#rows .job-id").click()
    page.wait(lambda: page.visible("job-view") and page.find_all("#job-doc dt"))
    document = store.get(job_id).to_dict()
    keys = [dt.text for dt in page.find_all("#job-doc dt")]
    assert keys == list(document)
    assert page.text("job-title-id") == job_id
    response = page.find("#job-doc details.json")
    assert response.get_attribute("open") is not None
    assert "hello" in response.get_attribute("textContent")
    assert "segments" in response.text  # shown: open three levels deep
    response.find_element("css selector", "summary").click()  # collapsible
    page.wait(lambda: response.get_attribute("open") is None)
    assert page.find("#cancel-job").get_attribute("hidden") is not None  # no cancel route
    # keyboard: Escape closes it and gives focus back to the row's link
    from selenium.webdriver.common.keys import Keys

    page.find("#job-close").send_keys(Keys.ESCAPE)
    page.wait(
        lambda: not page.driver.execute_script("return document.getElementById('job-view').open")
    )
    assert page.driver.switch_to.active_element.get_attribute("class") == "job-id mono"
    page.assert_clean()


def test_copy_id_and_curl(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker
) -> None:
    job_id = tracker.submit(endpoint="/v1/media/transcribe")
    page = signed_in(make_page, service_on(store), rows=1)
    page.find("#rows .job-id").click()
    page.wait(lambda: page.find_all("#job-doc dt"))
    page.find("#copy-curl").click()
    copied = page.wait(
        lambda: (
            page.driver.execute_script(
                "return document.getElementById('copy-fallback').hidden"
                " ? null : document.getElementById('copy-text').value"
            )
            or (page.text("job-note").startswith("Command copied") and "clipboard")
        )
    )
    if copied != "clipboard":  # headless Chromium may refuse the clipboard: the fallback box
        assert copied.startswith('curl -sS -H "x-api-key: $JOBSTATUS_API_KEY" ')
        assert copied.endswith(f"{PREFIXES['wsgi']}/v1/toolkit/jobs/{job_id}'")
        assert KEY not in copied
    page.find("#copy-id").click()
    page.wait(
        lambda: (
            "Id copied" in page.text("job-note")
            or page.driver.execute_script("return document.getElementById('copy-text').value")
            == job_id
        )
    )
    page.assert_clean()


def test_cancel_from_the_page(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker
) -> None:
    queued = tracker.submit(endpoint="/v1/media/transcribe")
    running = tracker.submit(endpoint="/v1/media/transcribe")
    with tracker.run(running) as run:
        run.progress(percent=20)
        page = signed_in(make_page, service_on(store, allow_cancel=tracker), rows=2)
        for job_id, note in (
            (queued, "The job is cancelled."),
            (running, "The job was asked to stop."),
        ):
            page.driver.execute_script(
                f"location.hash = 'job=' + encodeURIComponent({json.dumps(job_id)})"
            )
            button = page.wait(lambda: (b := page.find("#cancel-job")).is_displayed() and b)
            button.click()
            assert page.text("cancel-job") == "Press again to cancel"
            assert store.get(job_id).cancel_requested_at is None  # one click asks nothing
            button.click()
            page.wait(lambda n=note: page.text("job-note") == n)
            page.find("#job-close").click()
            page.wait(
                lambda: (
                    not page.driver.execute_script(
                        "return document.getElementById('job-view').open"
                    )
                )
            )
        page.wait(lambda: (page.row(queued) or {}).get("state") == "cancelled")
        assert store.get(running).cancel_requested_at is not None
    page.assert_clean()


# -- jobstatus serve --dashboard ------------------------------------------------------------------


class _Command:
    """``jobstatus serve --dashboard`` as a subprocess, on a free port, until closed."""

    def __init__(self, store_url: str, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTATUS_")}
        environ.update(PYTHONPATH=str(ROOT), API_KEY=KEY)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobstatus",
                "serve",
                "--dashboard",
                "--store",
                store_url,
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=environ,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        self.requests = browser._Counter()  # (not counted: another process)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + PAGE) as answer:
                    self.headers = dict(answer.headers)
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("jobstatus serve --dashboard did not start") from None
                time.sleep(0.1)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@pytest.mark.slow
def test_jobstatus_serve_dashboard(driver: Any, tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    store_url = (tmp_path / "jobs").as_uri()
    with open_store(store_url) as store:
        tracker = JobTracker(store, progress_interval=0)
        job_id = tracker.submit(endpoint="/v1/media/transcribe")
        command = _Command(store_url, tmp_path)
        try:
            assert "frame-ancestors 'none'" in command.headers["Content-Security-Policy"]
            page = Page(driver, command).open().sign_in()
            page.wait_rows(1)
            with tracker.run(job_id) as run:  # another process writes: the page follows
                page.wait(lambda: (page.row(job_id) or {}).get("state") == "running", timeout=5)
                run.progress(percent=70, message="from another process")
                page.wait(lambda: (page.row(job_id) or {}).get("percent") == 70, timeout=5)
            page.wait(lambda: (page.row(job_id) or {}).get("state") == "done", timeout=5)
            page.assert_clean()
        finally:
            command.close()
            driver.get("about:blank")


# -- errors -------------------------------------------------------------------------------------


class _FailingStore:
    """A store whose reads fail, as a database that went away."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.failing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def list(self, *args: Any, **kwargs: Any) -> Any:
        if self.failing:
            raise OSError("the database went away")
        return self._store.list(*args, **kwargs)


def test_a_server_error_says_what_to_do_and_recovers(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker
) -> None:
    submit_many(tracker, 2)
    flaky = _FailingStore(store)
    flaky.failing = True
    page = make_page(service_on(flaky)).sign_in()  # type: ignore[arg-type]
    page.wait(lambda: "500" in page.text("notice-text"))
    assert "Trying again shortly" in page.text("notice-text")
    flaky.failing = False
    page.find("#notice-action").click()  # "Try now"
    page.wait_rows(2)
    assert not page.visible("notice")
    page.assert_clean(allowed_statuses=(500,))


def test_network_down_says_what_to_do(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker
) -> None:
    submit_many(tracker, 1)
    page = signed_in(make_page, service_on(store), rows=1)
    page.server.close()
    page.wait(lambda: "Cannot reach the service" in page.text("notice-text"), timeout=15)
    assert page.rows()  # what was shown stays
    page.assert_clean(network_down=True)


# -- hostile data ---------------------------------------------------------------------------------


class _Sentinel:
    """A server on another origin that counts what reaches it."""

    def __init__(self) -> None:
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_hostile_values_render_inert(make_page: Callable[..., Page], store: Store) -> None:
    sentinel = _Sentinel()
    leak = f'<img src="{sentinel.url}/leak.png">'
    ids = [  # (an id holds no "/": every store refuses one)
        '"><img src=x onerror=alert(1)>',
        "<script>alert(2)<",
        "<iframe srcdoc=<script>alert(8)<>",
        "\u202egnp.exe-id",
        "<b onmouseover=alert(3)>bold",
    ]
    huge = "<script>alert(4)</script>" + "x" * 1_000_000
    messages = [
        "<script>alert(5)</script>",
        f'"><svg onload=alert(6)><a href="{sentinel.url}/link">x</a>',
        "\u202eevil\u202c then normal",
        f"<style>@import url({sentinel.url}/css);</style>",
        huge,
    ]
    for job_id, message in zip(ids, messages, strict=False):
        store.put(
            JobRecord(
                job_id=job_id,
                job_status="running",
                response={"html": message, "<key onclick=alert(7)>": leak, "big": huge},
                progress=Progress(percent=50, message=message),
            )
        )
    try:
        page = make_page(service_on(store, job_id_pattern=ANY_ID)).sign_in()
        # (megabytes of text go through the page and the driver: generous deadlines under load)
        rows = page.rows_when(lambda rows: len(rows) == 5, timeout=HEAVY)
        by_id = {r["id"]: r for r in rows}
        assert set(by_id) == set(ids)  # DOM text equals the payload
        for job_id, message in zip(ids, messages, strict=False):
            shown = by_id[job_id]["message"]
            assert shown == (message if len(message) <= 300 else message[:300] + "…")
        assert page.find_all("#rows img, #rows script, #rows svg, #rows style, #rows b") == []
        # the job view of the 1 MB one shows every string whole, as text
        page.driver.execute_script(
            f"location.hash = 'job=' + encodeURIComponent({json.dumps(ids[4])})"
        )
        page.wait(lambda: len(page.find_all("#job-doc dt")) >= 4, timeout=HEAVY)
        texts = page.driver.execute_script(
            "return [...document.querySelectorAll('#job-doc .j-string')].map((e) => e.textContent)"
        )
        assert huge in texts
        assert leak in texts
        assert page.text("job-title-id") == ids[4]
        assert (
            page.find_all("#job-view img, #job-view script, #job-view svg, #job-view style") == []
        )
        page.find("#job-close").click()
        # still usable: a filter works after all that
        page.press_chip("running")
        page.wait(lambda: page.chip_pressed("running"))
        page.rows_when(lambda rows: len(rows) == 5, timeout=HEAVY)
        assert sentinel.hits == []
        page.assert_clean()
    finally:
        sentinel.close()


# -- layout ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(320, 640), (3840, 2160)])
def test_readable_at_320_px_and_4k(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker, width: int, height: int
) -> None:
    job_id = tracker.submit(endpoint="/v1/media/transcribe")
    with tracker.run(job_id) as run:
        run.progress(percent=30, message="a progress message long enough to wrap on a phone screen")
        page = signed_in(make_page, service_on(store), rows=1)
        browser.set_viewport(page.driver, width, height)
        overflow = page.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        size = page.driver.execute_script(
            "return parseFloat(getComputedStyle(document.querySelector('#rows .job-id')).fontSize)"
        )
        assert size >= 13  # readable, not shrunk to fit
        browser.set_viewport(page.driver, 1280, 900)
    page.assert_clean()


def test_dark_mode_follows_the_system(make_page: Callable[..., Page], store: Store) -> None:
    page = make_page(service_on(store))

    def background() -> list[int]:
        colour = page.driver.execute_script(
            "return getComputedStyle(document.body).backgroundColor"
        )
        return [int(c) for c in colour[colour.index("(") + 1 : -1].split(",")[:3]]

    assert sum(background()) > 600  # light
    page.driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    page.wait(lambda: sum(background()) < 100)
    page.driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "light"}]},
    )
    page.assert_clean()


def test_every_control_has_a_label(
    make_page: Callable[..., Page], store: Store, tracker: JobTracker
) -> None:
    submit_many(tracker, 1)
    page = signed_in(make_page, service_on(store), rows=1)
    unlabelled = page.driver.execute_script(
        """return [...document.querySelectorAll('input, select, textarea, button')]
            .filter((e) => !e.closest('[hidden]'))
            .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                     && !e.textContent.trim())
            .map((e) => e.outerHTML)"""
    )
    assert unlabelled == []
    page.assert_clean()

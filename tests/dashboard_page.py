"""The dashboard under test: a real browser (headless Chromium driven by Selenium) on the real
service, served from a thread on 127.0.0.1 by each adapter (werkzeug for WSGI and Flask,
uvicorn for FastAPI), each mounted under a prefix. Its fixtures ``driver`` and ``make_page``
are registered for every test module by conftest.py.

Every scenario ends with :meth:`Page.assert_clean`: no console error, no Content Security
Policy violation, no alert, and no request to another origin. Waits poll the DOM
(WebDriverWait); nothing sleeps for a fixed time except where a test shows that *nothing*
happens during a period.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobstatus import JobTracker, StatusService
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

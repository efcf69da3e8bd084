"""The dashboard in a real browser, part two: the job view (copy, cancel), ``jobstatus serve
--dashboard``, the error states (5xx, network down) and hostile job data rendered inert."""

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
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from jobstatus import JobRecord, JobTracker, Progress, open_store
from jobstatus.store import Store
from tests import browser
from tests.dashboard_page import (
    ANY_ID,
    HEAVY,
    KEY,
    PAGE,
    PREFIXES,
    ROOT,
    Page,
    service_on,
    signed_in,
    submit_many,
)

pytestmark = [pytest.mark.services, pytest.mark.extras]


@pytest.fixture
def store() -> Iterator[Store]:
    with open_store("memory://") as store:
        yield store


@pytest.fixture
def tracker(store: Store) -> JobTracker:
    return JobTracker(store, progress_interval=0)


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

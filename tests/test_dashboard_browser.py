"""The dashboard in a real browser, part one: the key, the list (filters, search, paging,
empty state), live updates and a hidden tab, and the layout (320 px, 4K, dark, labels). The
browser, servers and :class:`~tests.dashboard_page.Page` are tests/dashboard_page.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from jobstatus import JobRecord, JobTracker, open_store
from jobstatus.store import Store
from tests import browser
from tests.dashboard_page import (
    ANY_ID,
    KEY,
    LIVE_DEADLINE,
    PREFIXES,
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

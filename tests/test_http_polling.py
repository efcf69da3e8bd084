"""The HTTP conformance suite, polling part: ``GET /v1/toolkit/jobs/{job_id}`` (ETag, 304,
Retry-After, ``?wait=``), the POST route's ``"wait"``, and ``GET /v1/toolkit/jobs`` (pages,
cursors) -- every case on every adapter of ``tests/clients.py``.

Waits are driven by conditions, not by sleeping: a request that must be held runs in a thread,
the test waits until the watcher counts its waiter, then changes the job.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from jobstatus import JobRecord, Progress, StatusService
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.backends.memory import MemoryStore
from jobstatus.envelope import ENVELOPE_KEYS
from jobstatus.store import Store
from jobstatus.testing.suite import UPSTREAM_EXAMPLE
from tests.clients import ADAPTERS, Answer, Client

KEY = "poll-key"
JOB_ID = UPSTREAM_EXAMPLE["job_id"]
RUNNING = "0b8e1c7e-2d3f-4a5b-8c9d-0e1f2a3b4c5d"
UNKNOWN = "00000000-0000-4000-8000-000000000000"
STATUS = "/v1/toolkit/job/status"
LISTING = "/v1/toolkit/jobs/status"
JOBS = "/v1/toolkit/jobs"
ADAPTER_PARAMS = [pytest.param(name, marks=marks, id=name) for name, (_, marks) in ADAPTERS.items()]
RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with FileSystemStore(tmp_path) as store:
        store.put(JobRecord.from_dict(UPSTREAM_EXAMPLE))
        store.put(JobRecord(job_id=RUNNING, job_status="running"))
        yield store


@pytest.fixture(params=ADAPTER_PARAMS)
def adapter(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def make_service(store: Store, **options: Any) -> StatusService:
    options.setdefault("api_keys", [KEY])
    return StatusService(store, build_number="1.0.0", queue_id=7, **options)


@pytest.fixture
def service(store: Store) -> StatusService:
    return make_service(store)


@pytest.fixture
def client(adapter: str, service: StatusService) -> Client:
    return ADAPTERS[adapter][0](service)


def get(client: Client, path: str, key: str | None = KEY, **headers: str) -> Answer:
    if key is not None:
        headers["x-api-key"] = key
    return client("GET", path, b"", {k.replace("_", "-"): v for k, v in headers.items()})


def post(client: Client, path: str, body: dict[str, Any], key: str | None = KEY) -> Answer:
    return client("POST", path, json.dumps(body).encode(), {"x-api-key": key} if key else {})


def job(job_id: str) -> str:
    return f"{JOBS}/{job_id}"


def status_of(answer: Answer) -> int:
    return answer.status


def comparable(answer: Answer) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()
    for varying in ("pid", "run_time", "total_time", "endpoint"):
        body.pop(varying, None)
    return body


# -- GET one job ----------------------------------------------------------------------------


def test_get_is_the_post_envelope_with_an_etag(client: Client, store: Store) -> None:
    answer = get(client, job(JOB_ID))
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert tuple(body) == ENVELOPE_KEYS
    assert body["endpoint"] == job(JOB_ID)  # the path asked
    assert body["response"] == UPSTREAM_EXAMPLE
    assert comparable(answer) == comparable(post(client, STATUS, {"job_id": JOB_ID}))
    assert answer.headers["etag"] == f'"{store.get(JOB_ID).version}"'  # strong
    assert answer.headers["cache-control"] == "no-cache"
    assert "retry-after" not in answer.headers  # the job is final


@pytest.mark.parametrize(
    "condition",
    ['"{v}"', 'W/"{v}"', '"other", "{v}"', '"a,b" , W/"{v}" ,', "*", ' "{v}" '],
    ids=["strong", "weak", "list", "quoted-comma", "star", "spaces"],
)
def test_if_none_match_that_matches_is_a_bodiless_304(
    client: Client, store: Store, condition: str
) -> None:
    version = store.get(RUNNING).version
    assert version is not None
    answer = get(client, job(RUNNING), if_none_match=condition.format(v=version))
    assert answer.status == 304
    assert answer.body == b""
    assert "content-type" not in answer.headers
    assert answer.headers["etag"] == f'"{version}"'
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["retry-after"] == "2"  # running, no progress: the default


@pytest.mark.parametrize(
    "condition", ['"nope"', 'W/"nope"', "nope", '"unterminated', "", ",", '"a" junk']
)
def test_if_none_match_that_does_not_match_or_parse_is_a_200(
    client: Client, condition: str
) -> None:
    answer = get(client, job(RUNNING), if_none_match=condition)
    assert answer.status == 200
    assert answer.json()["response"]["job_status"] == "running"


def test_a_changed_job_no_longer_matches(client: Client, store: Store) -> None:
    old = store.get(RUNNING).version
    store.put(JobRecord(job_id=RUNNING, job_status="done"))
    answer = get(client, job(RUNNING), if_none_match=f'"{old}"')
    assert answer.status == 200
    assert answer.json()["response"]["job_status"] == "done"
    assert "retry-after" not in answer.headers


def test_a_write_by_another_store_is_seen_at_once(client: Client, tmp_path: Path) -> None:
    """The known-version shortcut never answers 304 for a superseded version."""
    etag = get(client, job(RUNNING)).headers["etag"]
    assert get(client, job(RUNNING), if_none_match=etag).status == 304
    with FileSystemStore(tmp_path) as other:  # another writer (same folder, other object)
        other.put(JobRecord(job_id=RUNNING, job_status="running", response={"step": 2}))
    answer = get(client, job(RUNNING), if_none_match=etag)
    assert answer.status == 200
    assert answer.json()["response"]["response"] == {"step": 2}


def test_get_errors_in_the_spec_shapes(client: Client, store: Store) -> None:
    assert get(client, job(UNKNOWN)).json() == {"error": "Job not found", "job_id": UNKNOWN}
    assert get(client, job(UNKNOWN)).status == 404
    for key in (None, "wrong"):
        answer = get(client, job("not-a-uuid"), key=key)  # authentication comes first
        assert (answer.status, answer.json()) == (401, {"message": "Unauthorized"})
    bad = get(client, job("not-a-uuid"))
    assert (bad.status, bad.json()) == (400, {"message": "Invalid payload: job_id must be a UUID"})
    assert isinstance(store, FileSystemStore)
    (store.jobs_dir / f"{UNKNOWN}.json").write_text('{"job_status": "run')
    broken = get(client, job(UNKNOWN))
    assert broken.status == 500
    assert broken.json()["error"].startswith("Failed to retrieve job status: ")


def test_routes_answer_only_their_method(client: Client) -> None:
    wrong = get(client, LISTING)  # the list route's 405, never a lookup of job "status"
    assert (wrong.status, wrong.json()) == (405, {"message": "Method not allowed"})
    assert wrong.headers["allow"] == "POST"
    for path in (job(JOB_ID), JOBS):
        answer = post(client, path, {"job_id": JOB_ID})
        assert (answer.status, answer.headers["allow"]) == (405, "GET")


def test_jobs_status_is_never_a_job_even_when_any_id_is_allowed(adapter: str, store: Store) -> None:
    store.put(JobRecord(job_id="status", job_status="done"))
    client = ADAPTERS[adapter][0](make_service(store, job_id_pattern=r"(?s).*"))
    assert get(client, LISTING).status == 405
    assert get(client, job("status2")).status == 404


# -- Retry-After ----------------------------------------------------------------------------


def started_ago(seconds: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("percent", "elapsed", "expected"),
    [(50, 10, 10), (90, 90, 10), (10, 100, 30), (99.9, 50, 1), (100, 5, 1)],
    ids=["half", "ninety", "clamped-high", "clamped-low", "complete"],
)
def test_retry_after_follows_the_progress_rate(
    client: Client, store: Store, percent: float, elapsed: float, expected: int
) -> None:
    started = started_ago(elapsed)
    store.put(
        JobRecord(
            job_id=RUNNING,
            job_status="running",
            started_at=started,
            progress=Progress(percent=percent),
        )
    )
    for answer in (get(client, job(RUNNING)), post(client, STATUS, {"job_id": RUNNING})):
        assert answer.status == 200
        got = int(answer.headers["retry-after"])
        # The job's elapsed time grew while the test ran: the estimate lies between the one at
        # ``elapsed`` and the one at the elapsed time now (remaining = elapsed * rest / done).
        now = (datetime.now(timezone.utc) - started).total_seconds()
        latest = min(max(math.ceil(now * (100 - percent) / percent), 1), 30)
        assert expected <= got <= max(expected, latest)


def test_retry_after_default_and_bounds_are_options(adapter: str, store: Store) -> None:
    queued = "1b8e1c7e-2d3f-4a5b-8c9d-0e1f2a3b4c5d"
    store.put(JobRecord(job_id=queued, job_status="queued"))
    client = ADAPTERS[adapter][0](make_service(store, retry_after=7))
    assert post(client, STATUS, {"job_id": queued}).headers["retry-after"] == "7"
    store.put(
        JobRecord(
            job_id=RUNNING,
            job_status="running",
            started_at=started_ago(1000),
            progress=Progress(current=1, total=100),
        )
    )
    capped = ADAPTERS[adapter][0](make_service(store, retry_after_bounds=(3, 60)))
    assert get(capped, job(RUNNING)).headers["retry-after"] == "60"


def test_no_retry_after_on_final_jobs_and_errors(client: Client, store: Store) -> None:
    for state in ("done", "failed", "cancelled"):
        store.put(JobRecord(job_id=RUNNING, job_status=state), force=True)
        assert "retry-after" not in get(client, job(RUNNING)).headers
        assert "retry-after" not in post(client, STATUS, {"job_id": RUNNING}).headers
    assert "retry-after" not in get(client, job(UNKNOWN)).headers


def test_the_post_route_without_wait_keeps_its_headers(client: Client) -> None:
    answer = post(client, STATUS, {"job_id": JOB_ID})
    assert "etag" not in answer.headers
    assert "cache-control" not in answer.headers


# -- waiting --------------------------------------------------------------------------------


class Held:
    """A request sent from a thread; :meth:`answer` joins it."""

    def __init__(self, call: Callable[[], Answer]) -> None:
        self._answer: list[Answer] = []
        self._thread = threading.Thread(target=lambda: self._answer.append(call()), daemon=True)
        self._thread.start()

    def answer(self, timeout: float = 30) -> Answer:
        self._thread.join(timeout)
        assert self._answer, "no answer"
        return self._answer[0]

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()


def until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Wait for a condition the code under test makes true (bounded; not a speed check)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.002)


def held_get(client: Client, service: StatusService, etag: str, wait: float = 20) -> Held:
    before = service.watcher.waiting
    held = Held(lambda: get(client, f"{job(RUNNING)}?wait={wait}", if_none_match=etag))
    until(lambda: service.watcher.waiting > before or held.done, "the request waits")
    assert not held.done, held.answer()
    return held


def test_a_waiting_get_answers_the_change(
    client: Client, service: StatusService, store: Store
) -> None:
    etag = get(client, job(RUNNING)).headers["etag"]
    held = held_get(client, service, etag)
    store.put(JobRecord(job_id=RUNNING, job_status="done", response={"ok": 1}))
    answer = held.answer()
    assert answer.status == 200
    assert answer.json()["response"]["response"] == {"ok": 1}
    assert answer.headers["etag"] != etag
    until(lambda: service.watcher.waiting == 0, "the waiter is released")


def test_a_waiting_get_answers_404_when_the_job_goes(
    client: Client, service: StatusService, store: Store
) -> None:
    held = held_get(client, service, get(client, job(RUNNING)).headers["etag"])
    store.delete(RUNNING)
    answer = held.answer()
    assert (answer.status, answer.json()) == (404, {"error": "Job not found", "job_id": RUNNING})


def test_a_wait_that_runs_out_is_a_304(client: Client, service: StatusService) -> None:
    etag = get(client, job(RUNNING)).headers["etag"]
    answer = get(client, f"{job(RUNNING)}?wait=0.05", if_none_match=etag)
    assert (answer.status, answer.body, answer.headers["etag"]) == (304, b"", etag)
    assert answer.headers["retry-after"] == "2"
    until(lambda: service.watcher.waiting == 0, "the waiter is released")


def test_a_change_that_keeps_the_tag_listed_keeps_waiting(
    client: Client, service: StatusService, store: Store
) -> None:
    """``If-None-Match`` lists two versions: a change to the other one is not an answer."""
    first = store.get(RUNNING).version
    second = store.put(JobRecord(job_id=RUNNING, job_status="running", response=2)).version
    store.put(JobRecord(job_id=RUNNING, job_status="running"))  # back to the first version
    assert store.get(RUNNING).version == first
    tags = f'"{first}", "{second}"'
    held = Held(lambda: get(client, f"{job(RUNNING)}?wait=20", if_none_match=tags))
    until(lambda: service.watcher.waiting == 1, "the request waits")
    store.put(JobRecord(job_id=RUNNING, job_status="running", response=2))  # listed: hold on
    store.put(JobRecord(job_id=RUNNING, job_status="running", response=3))  # not listed
    assert held.answer().json()["response"]["response"] == 3


def test_wait_without_if_none_match_answers_at_once(client: Client) -> None:
    answer = get(client, f"{job(RUNNING)}?wait=30")
    assert answer.status == 200  # (a held request would take 30 s)


def test_a_differing_version_answers_a_wait_at_once(client: Client) -> None:
    answer = get(client, f"{job(RUNNING)}?wait=30", if_none_match='"old"')
    assert answer.status == 200


@pytest.mark.parametrize("wait", ["0", "-1", "30.5", "abc", "nan", "inf", "1e9", "", "0x1"])
def test_a_wait_outside_its_range_is_a_400_on_get(client: Client, wait: str) -> None:
    answer = get(client, f"{job(RUNNING)}?wait={wait}", if_none_match="*")
    assert answer.status == 400
    assert answer.json() == {
        "message": "Invalid payload: wait must be a number of seconds above 0 and at most 30"
    }


@pytest.mark.parametrize("wait", [0, -1, 30.5, "5", True, None, [], 1e999])
def test_a_wait_outside_its_range_is_a_400_on_post(client: Client, wait: Any) -> None:
    body = json.dumps({"job_id": RUNNING, "wait": wait}).replace("Infinity", "1e999")
    answer = client("POST", STATUS, body.encode(), {"x-api-key": KEY})
    assert answer.status == 400, answer.body
    assert "wait must be a number of seconds" in answer.json()["message"]


def test_a_waiting_post_answers_the_change(
    client: Client, service: StatusService, store: Store
) -> None:
    held = Held(lambda: post(client, STATUS, {"job_id": RUNNING, "wait": 20, "id": "w"}))
    until(lambda: service.watcher.waiting == 1, "the request waits")
    store.put(JobRecord(job_id=RUNNING, job_status="running", response={"step": 1}))
    answer = held.answer()
    assert answer.status == 200
    body = answer.json()
    assert tuple(body) == ENVELOPE_KEYS
    assert (body["endpoint"], body["id"], body["job_id"]) == (STATUS, "w", RUNNING)
    assert body["response"]["response"] == {"step": 1}
    assert answer.headers["retry-after"] == "2"


def test_a_waiting_post_answers_the_record_seen_when_the_wait_ends(client: Client) -> None:
    answer = post(client, STATUS, {"job_id": RUNNING, "wait": 0.05})
    assert answer.status == 200
    assert answer.json()["response"]["job_status"] == "running"


def test_a_waiting_post_about_a_final_job_answers_at_once(client: Client) -> None:
    answer = post(client, STATUS, {"job_id": JOB_ID, "wait": 30})
    assert answer.status == 200
    assert answer.json()["response"] == UPSTREAM_EXAMPLE


def test_a_waiting_post_answers_404_when_the_job_goes(
    client: Client, service: StatusService, store: Store
) -> None:
    held = Held(lambda: post(client, STATUS, {"job_id": RUNNING, "wait": 20}))
    until(lambda: service.watcher.waiting == 1, "the request waits")
    store.delete(RUNNING)
    assert held.answer().json() == {"error": "Job not found", "job_id": RUNNING}
    assert post(client, STATUS, {"job_id": UNKNOWN, "wait": 5}).status == 404


# -- listing --------------------------------------------------------------------------------


def fill(store: Store, count: int, *, status: str = "queued", base: float | None = None) -> None:
    """``count`` jobs updated one millisecond apart, the newest now (or at ``base``)."""
    now = time.time() if base is None else base
    store.restore(
        JobRecord(
            job_id=f"job-{n:05d}",
            job_status=status if n % 3 else "running",
            updated_at=now - (count - n) * 0.001,
        )
        for n in range(count)
    )


def walk(client: Client, query: str, key: str = KEY) -> list[list[dict[str, Any]]]:
    pages, url = [], f"{JOBS}?{query}"
    while True:
        answer = get(client, url, key=key)
        assert answer.status == 200, answer.body
        response = answer.json()["response"]
        pages.append(response["jobs"])
        if response["next_cursor"] is None:
            return pages
        url = f"{JOBS}?cursor={response['next_cursor']}&limit={len(response['jobs'])}"


def test_the_list_route_pages_newest_first(client: Client, store: Store) -> None:
    store.delete(JOB_ID)
    store.delete(RUNNING)
    fill(store, 25)
    answer = get(client, f"{JOBS}?limit=10")
    body = answer.json()
    assert tuple(body) == ENVELOPE_KEYS
    assert (body["endpoint"], body["job_id"], body["id"]) == (JOBS, None, None)
    pages = walk(client, "limit=10")
    assert [len(page) for page in pages] == [10, 10, 5]
    ids = [item["job_id"] for page in pages for item in page]
    assert ids == [f"job-{n:05d}" for n in reversed(range(25))]
    first = pages[0][0]
    assert list(first) == ["job_id", "job_status", "updated_at"]
    assert RFC3339_MS.fullmatch(first["updated_at"])


def test_a_list_entry_carries_progress_and_times_when_set(client: Client, store: Store) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    store.put(
        JobRecord(
            job_id=RUNNING,
            job_status="running",
            created_at=moment,
            started_at=moment,
            progress=Progress(percent=40, message="parsing"),
        )
    )
    entries = get(client, JOBS).json()["response"]["jobs"]
    entry = next(item for item in entries if item["job_id"] == RUNNING)
    assert entry["progress"] == {
        "percent": 40,
        "message": "parsing",
        "current": None,
        "total": None,
    }
    assert entry["created_at"] == entry["started_at"] == "2026-01-02T03:04:05.678Z"
    assert "ended_at" not in entry


def test_the_list_route_filters_by_status_and_window(client: Client, store: Store) -> None:
    store.restore([JobRecord(job_id="ancient", job_status="running", updated_at=1e9)])
    running = get(client, f"{JOBS}?status=running").json()["response"]["jobs"]
    assert [item["job_id"] for item in running] == [RUNNING]
    both = get(client, f"{JOBS}?status=running,done&since_seconds=4000000000").json()["response"]
    assert [item["job_id"] for item in both["jobs"]] == [RUNNING, JOB_ID, "ancient"]
    assert get(client, f"{JOBS}?since_seconds=0").json()["response"] == {
        "jobs": [],
        "next_cursor": None,
    }


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=abc", "limit=1.5", "limit=-1", "since_seconds=-1",
     "since_seconds=x", "status=", "status=a,,b", "cursor=", "cursor=abc",
     "limit=1&limit=2", "status=%ff"],
)  # fmt: skip
def test_a_malformed_list_query_is_a_400(client: Client, query: str) -> None:
    answer = get(client, f"{JOBS}?{query}")
    assert answer.status == 400, query
    assert answer.json()["message"].startswith("Invalid payload: ")


def test_a_tampered_cursor_is_a_400(client: Client, store: Store) -> None:
    fill(store, 5)
    cursor = get(client, f"{JOBS}?limit=2").json()["response"]["next_cursor"]
    assert get(client, f"{JOBS}?cursor={cursor}").status == 200
    body, _, tag = cursor.partition(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    tampered = []
    for index in range(len(cursor)):
        if cursor[index] == ".":
            continue
        swap = alphabet[(alphabet.index(cursor[index]) + 1) % len(alphabet)]
        tampered.append(cursor[:index] + swap + cursor[index + 1 :])
    tampered += [body, f"{body}.", f".{tag}", cursor + "A", cursor + "=", f"{body}.{body}"]
    for bad in tampered:
        answer = get(client, f"{JOBS}?cursor={bad}")
        assert answer.status == 400, bad
        assert answer.json() == {"message": "Invalid payload: cursor is not one this service gave"}


def test_a_cursor_is_valid_in_another_process_of_the_deployment(adapter: str, store: Store) -> None:
    """Keys come from configuration: another service with the same keys (another worker, or
    this one after a restart) continues the walk; one configured differently refuses it."""
    fill(store, 5)
    one = ADAPTERS[adapter][0](make_service(store, api_keys=[KEY, "other"]))
    cursor = get(one, f"{JOBS}?limit=3").json()["response"]["next_cursor"]
    two = ADAPTERS[adapter][0](make_service(store, api_keys=["other", KEY]))
    assert len(get(two, f"{JOBS}?cursor={cursor}").json()["response"]["jobs"]) == 4
    rotated = ADAPTERS[adapter][0](make_service(store, api_keys=[KEY, "new"]))
    assert get(rotated, f"{JOBS}?cursor={cursor}").status == 400
    secret = ADAPTERS[adapter][0](make_service(store, cursor_secret="s3"))
    again = ADAPTERS[adapter][0](make_service(store, api_keys=["x"], cursor_secret="s3"))
    cursor = get(secret, f"{JOBS}?limit=3").json()["response"]["next_cursor"]
    assert get(again, f"{JOBS}?cursor={cursor}", key="x").status == 200


def test_walking_the_pages_while_writers_run_lists_every_quiet_job_once(
    client: Client, store: Store
) -> None:
    """Between pages a writer updates some listed and some unlisted jobs, adds new ones and
    deletes one: each job nobody touched during the walk is listed exactly once."""
    store.delete(JOB_ID)
    store.delete(RUNNING)
    fill(store, 60, base=time.time() - 5)
    touched: set[str] = set()
    go, done = threading.Event(), threading.Event()
    rounds = iter(range(100))

    def writer() -> None:
        while go.wait(30):
            go.clear()
            n = next(rounds)
            if n < 0:
                return
            for job_id in (f"job-{(n * 7) % 60:05d}", f"job-{(n * 13 + 5) % 60:05d}"):
                touched.add(job_id)
                store.put(JobRecord(job_id=job_id, job_status="running", response=n))
            touched.add(f"new-{n}")
            store.put(JobRecord(job_id=f"new-{n}", job_status="queued"))
            gone = f"job-{(n * 11 + 3) % 60:05d}"
            touched.add(gone)
            store.delete(gone)
            done.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    seen: list[str] = []
    url = f"{JOBS}?limit=7"
    while url:
        response = get(client, url).json()["response"]
        seen += [item["job_id"] for item in response["jobs"]]
        cursor = response["next_cursor"]
        url = f"{JOBS}?cursor={cursor}&limit=7" if cursor else ""
        done.clear()
        go.set()
        assert done.wait(30)
    rounds = iter([-1])
    go.set()
    thread.join(30)
    quiet = {f"job-{n:05d}" for n in range(60)} - touched
    assert len(quiet) > 20
    for job_id in quiet:
        assert seen.count(job_id) == 1, job_id
    assert len(touched) > 10


def test_the_post_list_takes_a_status_filter(client: Client) -> None:
    for status in ("running", ["running"], "running,queued"):
        answer = post(client, LISTING, {"status": status})
        assert answer.json()["response"] == {RUNNING: "running"}, status
    for bad in ("", [], [""], 3, ["a", 1]):
        assert post(client, LISTING, {"status": bad}).status == 400, bad


def test_a_long_post_list_is_streamed_and_the_same_json(adapter: str) -> None:
    store = MemoryStore()  # (2,600 fsynced files would only make the test slow)
    fill(store, 2600, base=time.time() - 100)
    store.put(JobRecord.from_dict(UPSTREAM_EXAMPLE))
    store.put(JobRecord(job_id=RUNNING, job_status="running"))
    client = ADAPTERS[adapter][0](make_service(store))
    answer = post(client, LISTING, {"since_seconds": 3600})
    assert answer.status == 200
    assert "content-length" not in answer.headers  # streamed
    body = answer.json()
    assert tuple(body) == ENVELOPE_KEYS
    assert len(body["response"]) == 2602
    listed = list(body["response"])
    assert listed[:3] == [RUNNING, JOB_ID, "job-02599"]  # newest first
    short = post(client, LISTING, {"since_seconds": 3600, "status": "done"})
    assert "content-length" in short.headers
    assert short.json()["response"] == {JOB_ID: "done"}

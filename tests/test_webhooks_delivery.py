"""Deliveries to a real receiver on 127.0.0.1 (allowed through ``allow``): signed, retried on a
shortened schedule, refused where the address policy says, claimed once among deliverers.

Every wait is on a condition (the receiver's requests, the document's state), never on a time.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from jobstatus import JobRecord, JobTracker, Webhooks, open_store
from jobstatus.backends.memory import MemoryStore
from jobstatus.store import Store
from jobstatus.webhooks import Deliverer, generate_secret
from jobstatus.webhooks.state import claim, job_ended, new_webhook, with_webhook
from tests.test_lifecycle import CountingStore
from tests.webhook_receiver import Request, make_tls_files, receiving, unused_port, wait_until

ENDPOINT = "/v1/media/transcribe"
SECRET = generate_secret()
FAST = (0.05, 0.1, 0.1, 0.1, 0.1)


def webhooks(**options: Any) -> Webhooks:
    options.setdefault("allow", ["127.0.0.1"])
    options.setdefault("retry_schedule", FAST)
    options.setdefault("timeout", 5.0)
    options.setdefault("sweep_interval", None)
    secret = options.pop("secret", SECRET)
    return Webhooks(secret, **options)


STORES = {
    "memory": lambda tmp: "memory://",
    "file": lambda tmp: str(tmp / "data"),
    "sqlite": lambda tmp: f"sqlite:///{tmp / 'jobs.db'}",
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        pytest.importorskip("sqlalchemy")
    with open_store(STORES[request.param](tmp_path)) as opened:
        yield opened


@pytest.fixture
def trackers() -> Iterator[list[JobTracker]]:
    """Trackers whose deliverers are stopped when the test ends."""
    made: list[JobTracker] = []
    yield made
    for tracker in made:
        if tracker.deliverer is not None:
            tracker.deliverer.stop(timeout=5)


def tracked(store: Store, trackers: list[JobTracker], **options: Any) -> JobTracker:
    tracker = JobTracker(store, webhooks=webhooks(**options))
    trackers.append(tracker)
    return tracker


def hook(store: Store, job_id: str) -> dict[str, Any]:
    value: dict[str, Any] = store.get(job_id).extra["webhook"]
    return value


def settled(store: Store, job_id: str) -> dict[str, Any]:
    return wait_until(
        lambda: (h := hook(store, job_id))["state"] in ("delivered", "failed") and h,
        what=f"the delivery of {job_id} settled",
    )


def scripted(*answers: tuple[int, bytes]) -> Callable[[int, Request], tuple[int, bytes]]:
    """Answer the n-th request with ``answers[n-1]``, then 200 for ever."""
    return lambda n, _: answers[n - 1] if n <= len(answers) else (200, b"ok")


# -- delivered, signed -----------------------------------------------------------------------------


def test_the_final_envelope_is_delivered_signed_and_verified(
    store: Store, trackers: list[JobTracker]
) -> None:
    old, new = generate_secret(), generate_secret()
    with receiving() as receiver:
        tracker = tracked(store, trackers, secret=[old, new])
        job_id = tracker.submit(endpoint=ENDPOINT, id="req-1", webhook_url=receiver.url())
        with tracker.run(job_id) as run:
            run.result = {"text": "done ✓"}
        state = settled(store, job_id)
        record = store.get(job_id)
    assert state["state"] == "delivered"
    assert [a["status"] for a in state["attempts"]] == [200]
    assert state["delivered_at"] is not None
    assert state["reason"] is None
    (request,) = receiver.requests
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["webhook-id"] == state["id"]
    for secret in (old, new):  # a rotation: a receiver holding either secret accepts
        assert standardwebhooks.Webhook(secret).verify(request.body, request.headers) == (
            record.response
        )
    assert set(record.response) == {
        "endpoint", "code", "id", "job_id", "response", "message", "pid", "queue_id",
        "run_time", "queue_time", "total_time", "queue_length", "build_number",
    }  # fmt: skip
    assert record.response["id"] == "req-1"


def test_a_failed_job_delivers_its_error_envelope(store: Store, trackers: list[JobTracker]) -> None:
    with receiving() as receiver:
        tracker = tracked(store, trackers)
        with (
            pytest.raises(RuntimeError),
            tracker.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as run,
        ):
            raise RuntimeError("disk full")
        settled(store, run.job_id)
    body = json.loads(receiver.requests[0].body)
    assert (body["code"], body["message"]) == (500, "disk full")


def test_submit_to_delivers_the_function_s_result(trackers: list[JobTracker]) -> None:
    store = MemoryStore()
    with receiving() as receiver, ThreadPoolExecutor(2) as pool:
        tracker = tracked(store, trackers)
        job_id = tracker.submit_to(pool, sum, [1, 2, 3], webhook_url=receiver.url())
        state = settled(store, job_id)
    assert state["state"] == "delivered"
    assert json.loads(receiver.requests[0].body)["response"] == 6


def test_a_pickled_tracker_sends_with_a_deliverer_of_its_own(
    tmp_path: Path, trackers: list[JobTracker]
) -> None:
    """As a process pool receives it: same store, same webhooks, threads of its own."""
    store = open_store(str(tmp_path / "data"))
    with receiving() as receiver:
        original = tracked(store, trackers)
        copy = pickle.loads(pickle.dumps(original))
        trackers.append(copy)
        assert copy.deliverer is not None
        assert copy.deliverer is not original.deliverer
        with copy.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as run:
            pass
        assert settled(store, run.job_id)["state"] == "delivered"
        assert original.deliverer is not None
        assert original.deliverer.counts == {}


# -- retries --------------------------------------------------------------------------------------


def test_three_failures_then_success_make_four_attempts_and_one_delivery(
    store: Store, trackers: list[JobTracker]
) -> None:
    script = scripted((503, b"busy"), (500, b"oops"), (429, b"slow down"))
    with receiving(script) as receiver:
        tracker = tracked(store, trackers)
        with tracker.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as run:
            run.result = 1
        state = settled(store, run.job_id)
    assert state["state"] == "delivered"
    assert [a["status"] for a in state["attempts"]] == [503, 500, 429, 200]
    assert [a["answer"] for a in state["attempts"]] == ["busy", "oops", "slow down", "ok"]
    assert receiver.answered.count(200) == 1
    assert len(receiver.requests) == 4
    assert {r.headers["webhook-id"] for r in receiver.requests} == {state["id"]}
    stamps = [a["at"] for a in state["attempts"]]
    assert stamps == sorted(stamps)
    # one connection served every attempt: it is reused per host
    assert len(receiver.connections) == 1


def test_after_the_last_step_the_delivery_is_failed(
    store: Store, trackers: list[JobTracker]
) -> None:
    with receiving(lambda n, _: (503, b"down")) as receiver:
        tracker = tracked(store, trackers, retry_schedule=(0.01, 0.02))
        with tracker.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as run:
            pass
        state = settled(store, run.job_id)
    assert state["state"] == "failed"
    assert state["reason"] == "gave up after 3 attempts: the receiver answered 503"
    assert len(receiver.requests) == 3
    assert state["delivered_at"] is None


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_a_client_error_answer_is_final(status: int, trackers: list[JobTracker]) -> None:
    store = MemoryStore()
    with receiving(lambda n, _: (status, b"no")) as receiver:
        tracker = tracked(store, trackers)
        with tracker.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as run:
            pass
        state = settled(store, run.job_id)
    assert (state["state"], state["reason"]) == ("failed", f"the receiver answered {status}")
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retried_answers(status: int, trackers: list[JobTracker]) -> None:
    store = MemoryStore()
    with receiving(scripted((status, b""))) as receiver:
        tracker = tracked(store, trackers)
        with tracker.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as run:
            pass
        state = settled(store, run.job_id)
    assert [a["status"] for a in state["attempts"]] == [status, 200]


def test_a_timeout_is_retried_and_the_attempt_never_outlasts_it(trackers: list[JobTracker]) -> None:
    store = MemoryStore()
    release = threading.Event()

    def hold_the_first(n: int, _: Request) -> tuple[int, bytes]:
        if n == 1:
            release.wait(30)
        return 200, b"ok"

    with receiving(hold_the_first) as receiver:
        tracker = tracked(store, trackers, timeout=0.3, connect_timeout=0.3)
        with tracker.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as run:
            pass
        state = settled(store, run.job_id)
        release.set()
    assert state["attempts"][0]["error"] == "timed out after 0.3 s"
    assert [a.get("status") for a in state["attempts"]] == [None, 200]


def test_an_answer_dripped_byte_by_byte_still_ends_at_the_timeout(
    trackers: list[JobTracker],
) -> None:
    """Each byte comes well within any per-read timeout; the attempt's total deadline ends it."""
    store = MemoryStore()
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 10_000:
                if stop.wait(0.02):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        tracker = tracked(store, trackers, timeout=0.4, retry_schedule=())
        with tracker.run(endpoint=ENDPOINT, webhook_url=f"http://127.0.0.1:{port}/") as run:
            pass
        state = settled(store, run.job_id)
    finally:
        stop.set()
        server.close()
    assert state["reason"] == "gave up after 1 attempts: timed out after 0.4 s"


def test_a_connection_refused_is_retried_then_failed(trackers: list[JobTracker]) -> None:
    store = MemoryStore()
    tracker = tracked(store, trackers, retry_schedule=(0.01,))
    url = f"http://127.0.0.1:{unused_port()}/hook"
    with tracker.run(endpoint=ENDPOINT, webhook_url=url) as run:
        pass
    state = settled(store, run.job_id)
    assert len(state["attempts"]) == 2
    assert all("ConnectionRefusedError" in a["error"] for a in state["attempts"])
    assert state["reason"].startswith("gave up after 2 attempts: connection failed")


def test_at_most_1_kb_of_the_answer_is_kept(trackers: list[JobTracker]) -> None:
    store = MemoryStore()
    with receiving(scripted((500, "é".encode() * 5000))) as receiver:
        tracker = tracked(store, trackers)
        with tracker.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as run:
            pass
        state = settled(store, run.job_id)
    kept = state["attempts"][0]["answer"]
    assert len(kept.encode()) <= 1024 + 2
    assert kept.startswith("é" * 100)
    assert state["state"] == "delivered"


# -- refused addresses ----------------------------------------------------------------------------

REFUSED_URLS = [
    ("http://127.0.0.1:9/", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.0.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
    ("http://100.100.100.200/", "shared (carrier-grade NAT)"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://[::1]/", "loopback"),
    ("http://[fd00:ec2::254]/", "private (unique local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[::ffff:127.0.0.1]/", "loopback (as ::ffff:7f00:1, which reaches 127.0.0.1)"),
    ("http://localhost:9/", "loopback"),
]


@pytest.mark.parametrize(("url", "label"), REFUSED_URLS)
def test_a_non_public_address_is_refused_and_the_reason_recorded(
    url: str, label: str, trackers: list[JobTracker]
) -> None:
    store = MemoryStore()
    tracker = tracked(store, trackers, allow=[])
    with tracker.run(endpoint=ENDPOINT, webhook_url=url) as run:
        pass
    state = settled(store, run.job_id)
    assert state["state"] == "failed"
    assert len(state["attempts"]) == 1
    assert state["reason"].startswith("address refused: ")
    assert label in state["reason"]
    assert "Webhooks(allow=...)" in state["reason"]


def test_a_redirect_to_a_private_address_is_not_followed(trackers: list[JobTracker]) -> None:
    store = MemoryStore()
    target = "http://169.254.169.254/latest/meta-data/?token=abc"
    with receiving(lambda n, _: (302, b"", {"Location": target})) as receiver:
        tracker = tracked(store, trackers)
        with tracker.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as run:
            pass
        state = settled(store, run.job_id)
    assert len(receiver.requests) == 1
    assert state["state"] == "failed"
    assert state["reason"] == (
        "the receiver answered 302: the redirect to "
        "http://169.254.169.254/latest/meta-data/?token=*** is not followed"
    )
    assert state["attempts"][0]["status"] == 302


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(
    trackers: list[JobTracker],
) -> None:
    """The name is resolved once, checked, and that address connected to: a resolver that
    would answer differently the second time (DNS rebinding) is never asked again."""
    calls: list[str] = []

    def resolver(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        address = "127.0.0.1" if len(calls) == 1 else "10.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    store = MemoryStore()
    with receiving() as receiver:
        tracker = tracked(store, trackers, resolver=resolver)
        url = f"http://hooks.rebind.test:{receiver.port}/cb"
        with tracker.run(endpoint=ENDPOINT, webhook_url=url) as run:
            pass
        state = settled(store, run.job_id)
    assert state["state"] == "delivered"
    assert calls == ["hooks.rebind.test"]
    assert receiver.requests[0].headers["Host"] == f"hooks.rebind.test:{receiver.port}"


def test_a_name_in_the_allow_list_may_resolve_to_a_private_address(
    trackers: list[JobTracker],
) -> None:
    def resolver(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    store = MemoryStore()
    with receiving() as receiver:
        refused = tracked(store, trackers, allow=[], resolver=resolver)
        allowed = tracked(store, trackers, allow=["hooks.internal"], resolver=resolver)
        url = f"http://hooks.internal:{receiver.port}/"
        with refused.run(endpoint=ENDPOINT, webhook_url=url) as first:
            pass
        with allowed.run(endpoint=ENDPOINT, webhook_url=url) as second:
            pass
        assert settled(store, first.job_id)["state"] == "failed"
        assert settled(store, second.job_id)["state"] == "delivered"


def test_https_verifies_the_name_while_connecting_to_the_checked_address(
    tmp_path: Path, trackers: list[JobTracker]
) -> None:
    """TLS's server name and certificate check use the URL's host name; the connection goes to
    the address the policy checked. A certificate for another name is a final failure."""
    ca, server = make_tls_files(tmp_path, "hooks.test")

    def resolver(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    store = MemoryStore()
    with receiving(tls=server) as receiver:
        tracker = tracked(
            store,
            trackers,
            allow=["127.0.0.1"],
            resolver=resolver,
            tls_context=ssl.create_default_context(cafile=str(ca)),
        )
        good = f"https://hooks.test:{receiver.port}/cb"
        bad = f"https://other.test:{receiver.port}/cb"
        with tracker.run(endpoint=ENDPOINT, webhook_url=good) as first:
            pass
        with tracker.run(endpoint=ENDPOINT, webhook_url=bad) as second:
            pass
        delivered, refused = settled(store, first.job_id), settled(store, second.job_id)
    assert delivered["state"] == "delivered"
    assert receiver.requests[0].headers["Host"] == f"hooks.test:{receiver.port}"
    assert len(receiver.requests) == 1
    assert refused["state"] == "failed"
    assert refused["reason"].startswith("TLS certificate refused")
    assert "other.test" in refused["reason"]


# -- durability: claims and leases ----------------------------------------------------------------


def pending_jobs(store: Store, url: str, count: int) -> list[str]:
    """Final jobs whose delivery is due, as a tracker that does not deliver leaves them."""
    ids = []
    for n in range(count):
        record = JobRecord(
            job_id=f"job-{n}",
            job_status="done",
            response={"code": 200, "job_id": f"job-{n}"},
            extra={"webhook": new_webhook(url)},
        )
        store.put(job_ended(record, datetime.now(timezone.utc)))
        ids.append(record.job_id)
    return ids


def test_several_deliverers_never_send_the_same_attempt_twice(store: Store) -> None:
    several_deliverers_one_store(store)


@pytest.mark.extras
@pytest.mark.services
def test_several_deliverers_on_redis_never_send_the_same_attempt_twice() -> None:
    from jobstatus.backends.redis import RedisStore
    from tests.redis_server import new_prefix, redis, remove_prefix, shared_redis_url

    url, prefix = shared_redis_url(), new_prefix("webhooks")
    try:
        with RedisStore.from_url(url, prefix=prefix) as store:
            several_deliverers_one_store(store)
    finally:
        client = redis.Redis.from_url(url)
        remove_prefix(client, prefix)
        client.close()


def several_deliverers_one_store(store: Store) -> None:
    """Three deliverers sweeping one store deliver 60 jobs: each exactly once."""
    with receiving() as receiver:
        ids = pending_jobs(store, receiver.url(), 60)
        deliverers = [Deliverer(store, webhooks(sweep_interval=0.01)) for _ in range(3)]
        for deliverer in deliverers:
            deliverer.start()
        try:
            for job_id in ids:
                settled(store, job_id)
        finally:
            for deliverer in deliverers:
                deliverer.stop()
    sent = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(sent) == len(set(sent)) == 60
    assert sum(d.counts.get("attempts", 0) for d in deliverers) == 60
    assert all(len(hook(store, job_id)["attempts"]) == 1 for job_id in ids)


def test_a_claim_whose_lease_ran_out_is_recorded_lost_and_sent_again() -> None:
    store = MemoryStore()
    with receiving() as receiver:
        (job_id,) = pending_jobs(store, receiver.url(), 1)
        record = store.get(job_id)
        stale = claim(
            record.extra["webhook"], now=time.time() - 60, lease=30, token="dead", max_attempts=6
        )
        store.put(with_webhook(record, stale), force=True)
        with Deliverer(store, webhooks()) as deliverer:
            assert deliverer.deliver_due() == 1
    state = hook(store, job_id)
    assert state["state"] == "delivered"
    assert "stopped before its lease ran out" in state["attempts"][0]["error"]
    assert state["attempts"][1]["status"] == 200


def test_a_claim_still_leased_is_left_to_its_deliverer() -> None:
    store = MemoryStore()
    with receiving() as receiver:
        (job_id,) = pending_jobs(store, receiver.url(), 1)
        record = store.get(job_id)
        held = claim(record.extra["webhook"], now=time.time(), lease=60, token="x", max_attempts=6)
        store.put(with_webhook(record, held), force=True)
        with Deliverer(store, webhooks()) as deliverer:
            assert deliverer.deliver_due() == 0
    assert receiver.requests == []
    assert hook(store, job_id)["state"] == "sending"


def test_each_attempt_costs_two_writes_and_the_job_its_own_three() -> None:
    store = CountingStore()
    with receiving(scripted((503, b""), (503, b""))) as receiver:
        tracker = JobTracker(store, webhooks=webhooks(deliver_in_process=False))
        with tracker.run(tracker.submit(endpoint=ENDPOINT, webhook_url=receiver.url())) as run:
            pass
        assert len(store.writes) == 3
        with Deliverer(store, webhooks()) as deliverer:
            while hook(store, run.job_id)["state"] != "delivered":
                deliverer.deliver_due()
    assert len(hook(store, run.job_id)["attempts"]) == 3
    assert len(store.writes) == 3 + 2 * 3


def test_a_worker_without_the_secret_leaves_the_delivery_to_another_deliverer(
    store: Store,
) -> None:
    with receiving() as receiver:
        worker = JobTracker(store, webhooks=Webhooks(None, deliver_in_process=False))
        with worker.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as run:
            pass
        assert hook(store, run.job_id)["state"] == "pending"
        assert receiver.requests == []
        with Deliverer(store, webhooks()) as deliverer:
            assert deliverer.deliver_due() == 1
    assert hook(store, run.job_id)["state"] == "delivered"


# -- the secret stays secret ----------------------------------------------------------------------


def test_the_secret_is_in_no_document_log_or_error(
    caplog: pytest.LogCaptureFixture, trackers: list[JobTracker]
) -> None:
    caplog.set_level(logging.DEBUG)
    store = MemoryStore()
    key = SECRET.removeprefix("whsec_")
    with receiving(scripted((500, b"bad"), (302, b""))) as receiver:
        tracker = tracked(store, trackers)
        with tracker.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as run:
            pass
        settled(store, run.job_id)
    with pytest.raises(ValueError) as caught:
        Webhooks(SECRET + "!")
    text = json.dumps(store.get(run.job_id).to_dict()) + caplog.text + str(caught.value)
    assert key not in text
    assert key[:12] not in text
    assert "webhook to http://127.0.0.1" in caplog.text  # the log says what happened


# -- the workers never wait -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_thousand_jobs_ending_at_once_do_not_wait_for_a_slow_receiver(
    trackers: list[JobTracker],
) -> None:
    """The receiver holds every request until all 1,000 jobs have ended: the workers finish
    regardless, and then every job is delivered exactly once."""
    store = MemoryStore()
    release = threading.Event()

    def slow(n: int, _: Request) -> tuple[int, bytes]:
        release.wait(60)
        return 200, b"ok"

    with receiving(slow) as receiver:
        tracker = tracked(store, trackers, concurrency=8, timeout=60.0)

        def job(n: int) -> str:
            with tracker.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as run:
                run.result = n
            return run.job_id

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(job, range(1000)))
        ended = [store.get(job_id) for job_id in ids]
        assert all(r.job_status == "done" for r in ended)
        assert receiver.count() <= 8
        assert receiver.answered == []
        release.set()
        for job_id in ids:
            settled(store, job_id)
    sent = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(sent) == len(set(sent)) == 1000


# -- processes ------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_delivers_with_threads_of_its_own(
    tmp_path: Path, trackers: list[JobTracker]
) -> None:
    store = open_store(str(tmp_path / "data"))
    with receiving() as receiver:
        tracker = tracked(store, trackers)
        with tracker.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as parents:
            pass
        settled(store, parents.job_id)  # the parent's deliverer threads are running
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through its exit code
            code = 1
            try:
                with tracker.run(endpoint=ENDPOINT, webhook_url=receiver.url()) as run:
                    pass
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if hook(store, run.job_id)["state"] == "delivered":
                        code = 0
                        break
                    time.sleep(0.01)
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(receiver.requests) == 2

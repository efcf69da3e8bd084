"""Webhooks without a network: configuration, URL checks before any write, signing as Standard
Webhooks verify it, the address policy's classes, the document's state, and redaction."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from jobstatus import JobRecord, JobTracker, Reply, StatusService, Webhooks
from jobstatus.backends.memory import MemoryStore
from jobstatus.webhooks import generate_secret
from jobstatus.webhooks.policy import AddressPolicy, AddressRefused, refusal_of
from jobstatus.webhooks.signing import decode_secret, signed_headers
from jobstatus.webhooks.state import (
    Outcome,
    claim,
    due_time,
    job_ended,
    new_webhook,
    public_document,
    settle,
)
from jobstatus.webhooks.urls import MAX_URL_LENGTH, check_webhook_url, redact_url
from jobstatus.wire import Request
from tests.test_lifecycle import CountingStore

ENDPOINT = "/v1/media/transcribe"
SECRET = generate_secret()
ROOT = Path(__file__).resolve().parents[1]


# -- bad URLs are refused before anything is written ---------------------------------------------

BAD_URLS = [
    ("not a url", "ASCII without spaces"),
    ("example.com/hook", "http:// or https://"),
    ("ftp://example.com/hook", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("javascript:alert(1)", "http:// or https://"),
    ("http://", "no host"),
    ("https://user:pa55word@example.com/hook", "credentials"),
    ("https://token@example.com/hook", "credentials"),
    ("https://example.com:99999/hook", "not a valid URL"),
    ("https://example.com:0/hook", "port 0"),
    ("https://[::1/hook", "not a valid URL"),
    ("https://example.com/" + "a" * MAX_URL_LENGTH, "at most 2048"),
    ("https://exämple.com/hook", "ASCII"),
    ("https://example.com/\nhook", "control characters"),
    (42, "must be a string"),
]


@pytest.mark.parametrize(("url", "complaint"), BAD_URLS)
def test_a_bad_webhook_url_is_refused_at_submit_before_any_write(url: Any, complaint: str) -> None:
    store = CountingStore()
    tracker = JobTracker(store, webhooks=Webhooks(SECRET))
    with pytest.raises(ValueError, match=complaint) as caught:
        tracker.submit(endpoint=ENDPOINT, webhook_url=url)
    assert store.writes == []
    assert tracker.queue_length == 0
    assert "pa55word" not in str(caught.value)


@pytest.mark.parametrize(("url", "complaint"), BAD_URLS[:4])
def test_a_bad_webhook_url_is_refused_at_run_before_any_write(url: Any, complaint: str) -> None:
    store = CountingStore()
    tracker = JobTracker(store, webhooks=Webhooks(SECRET))
    entered = False
    with (
        pytest.raises(ValueError, match=complaint),
        tracker.run(endpoint=ENDPOINT, webhook_url=url),
    ):
        entered = True
    assert (store.writes, entered) == ([], False)


def test_a_webhook_url_needs_a_tracker_with_webhooks() -> None:
    store = CountingStore()
    tracker = JobTracker(store)
    needs = r"webhooks=jobstatus\.Webhooks"
    with pytest.raises(ValueError, match=needs):
        tracker.submit(endpoint=ENDPOINT, webhook_url="https://example.com/hook")
    with (
        pytest.raises(ValueError, match=needs),
        tracker.run(endpoint=ENDPOINT, webhook_url="https://example.com/hook"),
    ):
        pass
    assert store.writes == []


def test_a_good_url_is_accepted_as_given() -> None:
    url = "https://hooks.example.com:8443/jobs/done?token=abc&x=1"
    assert check_webhook_url(url) == url
    assert check_webhook_url("http://[2606:4700::1111]/h") == "http://[2606:4700::1111]/h"


# -- the job's writes carry the delivery state ----------------------------------------------------


def test_a_job_with_a_webhook_costs_the_same_three_writes() -> None:
    store = CountingStore()
    tracker = JobTracker(store, webhooks=Webhooks(None, deliver_in_process=False))
    assert tracker.deliverer is None
    url = "https://example.com/hook"
    with tracker.run(tracker.submit(endpoint=ENDPOINT, webhook_url=url)) as run:
        run.result = "ok"
    assert [w.job_status for w in store.writes] == ["queued", "running", "done"]
    states = [w.extra["webhook"]["state"] for w in store.writes]
    assert states == ["waiting", "waiting", "pending"]
    ids = {w.extra["webhook"]["id"] for w in store.writes}
    assert len(ids) == 1
    assert ids.pop().startswith("msg_")
    final = store.get(run.job_id).extra["webhook"]
    assert final["url"] == url
    assert final["next_attempt_at"] == store.get(run.job_id).to_dict()["ended_at"]


def test_a_job_submitted_elsewhere_keeps_its_webhook_and_run_can_replace_it() -> None:
    store = CountingStore()
    webhooks = Webhooks(None, deliver_in_process=False)
    first = JobTracker(store, webhooks=webhooks)
    job_id = first.submit(endpoint=ENDPOINT, webhook_url="https://a.example.com/")
    message_id = store.get(job_id).extra["webhook"]["id"]
    with JobTracker(store).run(job_id, endpoint=ENDPOINT):  # a worker without webhooks=
        pass
    final = store.get(job_id).extra["webhook"]
    assert (final["id"], final["state"]) == (message_id, "pending")

    other = first.submit(endpoint=ENDPOINT, webhook_url="https://a.example.com/")
    with JobTracker(store, webhooks=webhooks).run(
        other, endpoint=ENDPOINT, webhook_url="https://b.example.com/"
    ):
        pass
    assert store.get(other).extra["webhook"]["url"] == "https://b.example.com/"


def test_cancel_and_reap_make_the_delivery_due() -> None:
    store = MemoryStore()
    tracker = JobTracker(store, webhooks=Webhooks(None, deliver_in_process=False))
    queued = tracker.submit(endpoint=ENDPOINT, webhook_url="https://example.com/")
    cancelled = tracker.cancel(queued)
    assert cancelled.extra["webhook"]["state"] == "pending"
    assert cancelled.response["code"] == 499

    lost = tracker.submit(endpoint=ENDPOINT, webhook_url="https://example.com/")
    with tracker.run(lost):
        running = store.get(lost)
        store.restore([replace(running, updated_at=running.updated_at - 3600)])
        assert tracker.reap(stale_after=60) == 1
    reaped = store.get(lost)
    assert reaped.job_status == "failed"
    assert reaped.extra["webhook"]["state"] == "pending"


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"secret": []}, "needs a secret"),
        ({"secret": None}, "needs a secret"),
        ({"secret": "whsec_!!!"}, "base64"),
        ({"secret": "whsec_"}, "must not be empty"),
        ({"secret": SECRET, "timeout": 0}, "timeout"),
        ({"secret": SECRET, "timeout": float("nan")}, "timeout"),
        ({"secret": SECRET, "retry_schedule": (5, -1)}, "retry_schedule"),
        ({"secret": SECRET, "retry_schedule": "5,30"}, "sequence"),
        ({"secret": SECRET, "lease": 5, "timeout": 10}, "lease"),
        ({"secret": SECRET, "concurrency": 0}, "concurrency"),
        ({"secret": SECRET, "allow": "127.0.0.1"}, "collection"),
        ({"secret": SECRET, "allow": ["http://x/"]}, "not a host name"),
        ({"secret": SECRET, "allow": [""]}, "non-empty"),
    ],
)
def test_a_bad_configuration_is_refused_when_built(kwargs: dict[str, Any], complaint: str) -> None:
    secret = kwargs.pop("secret")
    with pytest.raises(ValueError, match=complaint) as caught:
        Webhooks(secret, **kwargs)
    assert "!!!" not in str(caught.value)


def test_the_secret_never_shows_in_a_repr() -> None:
    webhooks = Webhooks([SECRET, generate_secret()], allow=["127.0.0.1", "hooks.internal"])
    text = repr(webhooks) + repr(JobTracker(MemoryStore(), webhooks=webhooks).deliverer)
    assert SECRET not in text
    assert SECRET.removeprefix("whsec_")[:20] not in text
    assert "2 secret(s)" in text
    assert webhooks.max_attempts == 6
    assert webhooks.lease == 30.0
    assert webhooks.look_back == pytest.approx(1.2 * 3600 + 30 + 60)


# -- signing --------------------------------------------------------------------------------------


def test_every_secret_signs_and_standardwebhooks_verifies_with_any() -> None:
    old, new = generate_secret(), generate_secret()
    keys = [decode_secret(old), decode_secret(new)]
    body = json.dumps({"code": 200, "response": "é"}).encode()
    stamp = int(datetime.now(timezone.utc).timestamp())
    headers = signed_headers(keys, "msg_1", stamp, body)
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (old, new):
        assert standardwebhooks.Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(generate_secret()).verify(body, headers)
    tampered = {**headers, "webhook-id": "msg_2"}
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(old).verify(body, tampered)


def test_a_secret_may_be_plain_base64_or_bytes() -> None:
    assert decode_secret(SECRET) == decode_secret(SECRET.removeprefix("whsec_"))
    assert decode_secret(b"raw key") == b"raw key"


# -- the address policy ---------------------------------------------------------------------------

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.5.4", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "shared"),
    ("100.100.100.200", "shared"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "private"),
    ("fd00:ec2::254", "private"),
    ("fe80::1", "link-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("fec0::1", "site-local"),
    ("2001:db8::1", "documentation"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.0.0.1", "private"),
    ("::127.0.0.1", "loopback"),
    ("2002:7f00:1::", "loopback"),
    ("64:ff9b::a9fe:a9fe", "link-local"),
]


@pytest.mark.parametrize(("address", "label"), REFUSED)
def test_every_class_of_non_public_address_is_refused(address: str, label: str) -> None:
    why = refusal_of(ipaddress.ip_address(address))
    assert why is not None
    assert label in why


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_accepted(address: str) -> None:
    assert refusal_of(ipaddress.ip_address(address)) is None


def test_the_allow_list_takes_names_addresses_and_networks() -> None:
    policy = AddressPolicy.from_allow(["Hooks.Internal.", "127.0.0.1", "10.1.0.0/16", "[::1]"])
    loopback = ipaddress.ip_address("127.0.0.1")
    assert policy.refusal("hooks.internal", ipaddress.ip_address("10.9.9.9")) is None
    assert policy.refusal("other.internal", loopback) is None
    assert policy.refusal("x", ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert policy.refusal("x", ipaddress.ip_address("::1")) is None
    assert policy.refusal("x", ipaddress.ip_address("10.1.200.3")) is None
    refused = policy.refusal("x", ipaddress.ip_address("10.2.0.1"))
    assert refused is not None
    assert "Webhooks(allow=...)" in refused


def test_resolve_keeps_only_the_addresses_it_may_reach() -> None:
    import socket

    def resolver(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        answers = {"mixed.test": ["10.0.0.1", "127.0.0.1"], "private.test": ["192.168.0.9"]}
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in answers.get(host, [])
        ]

    policy = AddressPolicy.from_allow(["127.0.0.1"], resolver=resolver)
    assert policy.resolve("mixed.test", 80) == [(socket.AF_INET, ("127.0.0.1", 80))]
    with pytest.raises(AddressRefused, match=r"192\.168\.0\.9 is private"):
        policy.resolve("private.test", 80)
    with pytest.raises(AddressRefused, match="no IP address"):
        policy.resolve("nothing.test", 80)


# -- the document's state -------------------------------------------------------------------------


def _pending() -> dict[str, Any]:
    record = JobRecord(job_id="j", job_status="done", extra={"webhook": new_webhook("http://x/")})
    ended = job_ended(record, datetime(2026, 1, 1, tzinfo=timezone.utc))
    webhook: dict[str, Any] = ended.extra["webhook"]
    return webhook


def test_the_state_moves_pending_sending_pending_delivered() -> None:
    webhook = _pending()
    start = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    assert due_time(webhook) == start
    claimed = claim(webhook, now=start + 1, lease=30, token="t", max_attempts=3)
    assert claimed["state"] == "sending"
    assert due_time(claimed) == start + 31
    failed_once = settle(
        claimed, Outcome(status=503, retry=True), now=start + 2, retry_schedule=(10, 20)
    )
    assert failed_once["state"] == "pending"
    assert "claim" not in failed_once
    assert "lease_until" not in failed_once
    due = due_time(failed_once)
    assert due is not None
    assert start + 12 <= due <= start + 14.001
    again = claim(failed_once, now=due, lease=30, token="u", max_attempts=3)
    done = settle(again, Outcome(status=204), now=due + 1, retry_schedule=(10, 20))
    assert done["state"] == "delivered"
    assert due_time(done) is None
    assert [a["status"] for a in done["attempts"]] == [503, 204]
    assert done["delivered_at"] is not None


def test_a_lost_claim_counts_as_an_attempt_and_may_exhaust_the_schedule() -> None:
    webhook = _pending()
    first = claim(webhook, now=0, lease=30, token="a", max_attempts=2)
    second = claim(first, now=40, lease=30, token="b", max_attempts=2)
    assert second["state"] == "sending"
    assert second["claim"] == "b"
    assert "stopped" in second["attempts"][0]["error"]
    third = claim(second, now=80, lease=30, token="c", max_attempts=2)
    assert third["state"] == "failed"
    assert "gave up after 2 attempts" in third["reason"]


def test_a_final_answer_is_not_retried_and_the_schedule_ends() -> None:
    claimed = claim(_pending(), now=0, lease=30, token="a", max_attempts=2)
    gone = settle(claimed, Outcome(status=410), now=1, retry_schedule=(1,))
    assert (gone["state"], gone["reason"]) == ("failed", "the receiver answered 410")
    again = settle(claimed, Outcome(error="timed out", retry=True), now=1, retry_schedule=())
    assert again["reason"] == "gave up after 1 attempts: timed out"


# -- redaction ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://example.com/cb?token=abc&job=1", "https://example.com/cb?token=***&job=***"),
        ("https://u:p@example.com/cb", "https://***@example.com/cb"),
        ("https://example.com/cb?s3cr3t", "https://example.com/cb?***"),
        ("https://example.com/cb?empty=&x=1#frag", "https://example.com/cb?empty=&x=***#***"),
        ("https://example.com/cb", "https://example.com/cb"),
        ("https://[::1/", "***"),
    ],
)
def test_redact_url_hides_userinfo_query_values_and_fragment(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_status_answer_shows_the_url_redacted_and_the_store_keeps_it_whole() -> None:
    store = MemoryStore()
    tracker = JobTracker(store, webhooks=Webhooks(None, deliver_in_process=False))
    url = "https://hooks.example.com/cb?token=s3cr3t&job=42"
    job_id = tracker.submit(endpoint=ENDPOINT, webhook_url=url)
    plain = tracker.submit(endpoint=ENDPOINT)
    service = StatusService(store, api_keys=None, allow_cancel=tracker)
    body = json.dumps({"job_id": job_id}).encode()
    reply = service.handle("/v1/toolkit/job/status", body, None)
    assert reply.status == 200
    assert b"s3cr3t" not in reply.body
    shown = reply.parsed()["response"]["webhook"]
    assert shown["url"] == "https://hooks.example.com/cb?token=***&job=***"
    assert store.get(job_id).extra["webhook"]["url"] == url
    cancel = service.handle("/v1/toolkit/job/cancel", body, None)
    assert cancel.status == 200
    assert b"s3cr3t" not in cancel.body
    assert cancel.parsed()["response"]["webhook"]["state"] == "pending"
    got = service.respond(Request("GET", f"/v1/toolkit/jobs/{job_id}"))
    assert isinstance(got, Reply)
    assert got.status == 200
    assert b"s3cr3t" not in got.body
    assert got.parsed()["response"]["webhook"]["url"].endswith("token=***&job=***")
    waited = service.handle(
        "/v1/toolkit/job/status", json.dumps({"job_id": job_id, "wait": 0.01}).encode(), None
    )
    assert waited.status == 200
    assert b"s3cr3t" not in waited.body
    # a document without a webhook is answered from its cached JSON, unchanged
    other = service.handle("/v1/toolkit/job/status", json.dumps({"job_id": plain}).encode(), None)
    assert json.dumps(other.parsed()["response"], separators=(",", ":")) == (
        store.get(plain).compact_json()
    )


def test_public_document_leaves_out_the_claim_token() -> None:
    webhook = claim(_pending(), now=0, lease=30, token="secret-token", max_attempts=3)
    record = JobRecord(job_id="j", job_status="done", extra={"webhook": webhook})
    assert "secret-token" not in json.dumps(public_document(record))


# -- layering -------------------------------------------------------------------------------------

# As in test_layers: the jobstatus package is an empty shell, so what a module pulls in is its
# own doing.
PROBE = """
import importlib, json, sys, types
shell = types.ModuleType("jobstatus")
shell.__path__ = [sys.argv[1]]
sys.modules["jobstatus"] = shell
importlib.import_module(sys.argv[2])
print(json.dumps(sorted(sys.modules)))
"""
FORBIDDEN = ("jobstatus.backends", "jobstatus.adapters", "flask", "fastapi", "starlette",
             "sqlalchemy", "fsspec", "s3fs", "redis", "requests", "httpx", "urllib3")  # fmt: skip


@pytest.mark.parametrize(
    "module", sorted(p.stem for p in (ROOT / "jobstatus" / "webhooks").glob("*.py"))
)
def test_a_webhooks_module_imports_no_framework_driver_or_backend(module: str) -> None:
    name = "jobstatus.webhooks" if module == "__init__" else f"jobstatus.webhooks.{module}"
    lines = (ROOT / "jobstatus" / "webhooks" / f"{module}.py").read_text().count("\n")
    assert lines <= 400
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "jobstatus"), name],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert [m for m in loaded if m.startswith(FORBIDDEN)] == []

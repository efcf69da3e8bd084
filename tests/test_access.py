"""KeyRing: keys bound to owners and scopes, a host's own authorize callable, per-job tokens."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobstatus.access import ALL_SCOPES, Access, KeyRing
from jobstatus.errors import ConfigurationError, Unauthorized

JOB = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
OTHER = "0b8e1c7e-2d3f-4a5b-8c9d-0e1f2a3b4c5d"

pytestmark = pytest.mark.extras  # tokens need itsdangerous
pytest.importorskip("itsdangerous")  # the module builds a token ring at import


def test_a_collection_of_keys_sees_everything() -> None:
    ring = KeyRing(["k1", "k2"])
    assert ring.authorize("k1") == Access()
    assert ring.authorize("k2").scopes == ALL_SCOPES
    for bad in (None, "", "k3", "k1 ", "K1"):
        with pytest.raises(Unauthorized):
            ring.authorize(bad)


def test_a_mapping_binds_keys_to_owners_and_scopes() -> None:
    alice = Access(owner="alice", scopes=frozenset({"read"}))
    ring = KeyRing({"alice-key": alice, "ops-key": Access()})
    assert ring.authorize("alice-key") is alice
    assert ring.authorize("ops-key").owner is None
    assert alice.sees("alice")
    assert not alice.sees("bob")
    assert not alice.sees(None)  # a keyed owner does not see jobs without an owner
    with pytest.raises(Unauthorized):
        ring.authorize("bob-key")


def test_ten_thousand_keys_are_each_found() -> None:
    keys = {f"key-{n:05d}": Access(owner=f"owner-{n}") for n in range(10_000)}
    ring = KeyRing(keys)
    assert len(ring) == 10_000
    for n in (0, 4_321, 9_999):
        assert ring.authorize(f"key-{n:05d}").owner == f"owner-{n}"
    with pytest.raises(Unauthorized):
        ring.authorize("key-10000")


def test_a_hosts_authorize_callable_is_asked_once_per_request() -> None:
    asked: list[str] = []

    def authorize(key: str) -> Access | None:
        asked.append(key)
        return Access(owner=key.removeprefix("user-")) if key.startswith("user-") else None

    ring = KeyRing(authorize)
    assert ring.authorize("user-carol").owner == "carol"
    with pytest.raises(Unauthorized):
        ring.authorize("someone")
    with pytest.raises(Unauthorized):
        ring.authorize(None)  # no key: the callable is not even asked
    assert asked == ["user-carol", "someone"]


def test_a_callable_returning_junk_is_an_error_not_access() -> None:
    ring = KeyRing(lambda key: "yes")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="Access or None"):
        ring.authorize("k")


def test_no_keys_means_no_authentication() -> None:
    assert KeyRing(None).authorize(None) == Access()


@pytest.mark.parametrize(
    "bad",
    [
        lambda: KeyRing("one-key"),
        lambda: KeyRing([""]),
        lambda: KeyRing({"k": "read"}),  # type: ignore[dict-item]
        lambda: Access(scopes=frozenset({"write"})),
        lambda: Access(owner=""),
    ],
)
def test_bad_configuration_is_refused(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        bad()  # type: ignore[operator]


# -- per-job tokens ------------------------------------------------------------------------------


def test_a_token_reads_one_job_until_it_expires() -> None:
    ring = KeyRing(["k"], token_secrets=["s1"])
    token = ring.issue_token(JOB, ttl=60)
    assert len(token) < 200
    assert "s1" not in token
    access = ring.authorize(None, f"Bearer {token}")
    assert (access.job_id, access.scopes, access.owner) == (JOB, frozenset({"read"}), None)
    assert ring.authorize(None, f"bearer   {token} ").job_id == JOB


def test_an_expired_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    ring = KeyRing(["k"], token_secrets=["s1"])
    token = ring.issue_token(JOB, ttl=5)
    later = time.time() + 6
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthorized):
        ring.authorize(None, f"Bearer {token}")


def test_remembered_tokens_still_expire_and_the_oldest_are_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the 4,096 most recent tokens the oldest is forgotten, and checked again when it
    comes back; a remembered token is refused once its expiry passed."""
    ring = KeyRing(["k"], token_secrets=["s1"])
    tokens = [ring.issue_token(f"job:{n}", ttl=60 + n) for n in range(4200)]
    for n, token in enumerate(tokens):
        assert ring.authorize(None, f"Bearer {token}").job_id == f"job:{n}"
    assert ring.authorize(None, f"Bearer {tokens[0]}").job_id == "job:0"  # checked anew
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthorized):
        ring.authorize(None, f"Bearer {tokens[0]}")  # remembered, and expired
    assert ring.authorize(None, f"Bearer {tokens[-1]}").job_id == "job:4199"


def test_rotation_the_first_secret_signs_and_every_one_verifies() -> None:
    old = KeyRing(["k"], token_secrets=["old"]).issue_token(JOB)
    rotated = KeyRing(["k"], token_secrets=["new", "old"])
    assert rotated.authorize(None, f"Bearer {old}").job_id == JOB
    fresh = rotated.issue_token(JOB)
    assert KeyRing(["k"], token_secrets=["new"]).authorize(None, f"Bearer {fresh}").job_id == JOB
    with pytest.raises(Unauthorized):
        KeyRing(["k"], token_secrets=["old"]).authorize(None, f"Bearer {fresh}")
    with pytest.raises(Unauthorized):
        KeyRing(["k"], token_secrets=["other"]).authorize(None, f"Bearer {old}")


def test_the_key_decides_when_both_are_given() -> None:
    ring = KeyRing({"k": Access(owner="alice")}, token_secrets=["s"])
    token = ring.issue_token(JOB)
    assert ring.authorize("k", f"Bearer {token}").owner == "alice"
    with pytest.raises(Unauthorized):
        ring.authorize("wrong", f"Bearer {token}")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc", "Token x"])
def test_headers_without_a_bearer_token(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        KeyRing(["k"], token_secrets=["s"]).authorize(None, header)


def test_tokens_need_secrets() -> None:
    with pytest.raises(ConfigurationError, match="token_secrets"):
        KeyRing(["k"]).issue_token(JOB)
    with pytest.raises(ValueError):
        KeyRing(["k"], token_secrets=[""])
    with pytest.raises(ValueError):
        KeyRing(["k"], token_secrets=["s"]).issue_token(JOB, ttl=0)


_RING = KeyRing(["k"], token_secrets=["tamper-proof"])
_TOKEN = _RING.issue_token(JOB, ttl=3600)
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


@settings(max_examples=500, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=len(_TOKEN) - 1),
    replacement=st.sampled_from(_ALPHABET),
    cut=st.integers(min_value=0, max_value=len(_TOKEN)),
    mode=st.sampled_from(["replace", "truncate", "insert", "delete"]),
)
def test_tampered_tokens_never_pass(position: int, replacement: str, cut: int, mode: str) -> None:
    if mode == "replace":
        forged = _TOKEN[:position] + replacement + _TOKEN[position + 1 :]
    elif mode == "truncate":
        forged = _TOKEN[:cut]
    elif mode == "insert":
        forged = _TOKEN[:position] + replacement + _TOKEN[position:]
    else:
        forged = _TOKEN[:position] + _TOKEN[position + 1 :]
    if forged == _TOKEN:
        return
    try:
        access = _RING.authorize(None, f"Bearer {forged}")
    except Unauthorized:
        return
    # base64 padding bits can make two spellings decode alike: only the same job may pass
    assert access.job_id == JOB


def test_a_token_for_another_job_carries_that_job() -> None:
    token = _RING.issue_token(OTHER)
    assert _RING.authorize(None, f"Bearer {token}").job_id == OTHER

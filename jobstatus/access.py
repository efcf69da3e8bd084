"""Who may see what: API keys bound to owners and scopes, and per-job read tokens.

:class:`KeyRing` turns what a request presents -- an ``x-api-key`` header, an ``Authorization:
Bearer`` token -- into an :class:`Access`, or refuses it:

- ``api_keys`` is a collection of keys (each sees every job, as the upstream service's one key
  does), a mapping of key → :class:`Access`, a callable ``authorize(key) -> Access | None`` for
  hosts with their own key store, or None (no authentication: every request sees everything).
- A key is found with one keyed hash and one dictionary lookup, then compared in constant time,
  so 10,000 keys cost what one does, and an unknown key takes the same path as a known one.
- ``token_secrets`` (the first signs, all verify, for rotation) let :meth:`KeyRing.issue_token`
  sign short, expiring tokens that read one job and nothing else. Signing is itsdangerous'
  (HMAC-SHA256); tokens carry the job id and the expiry, no secret.

A request carrying both a key and a token is decided by the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jobstatus.errors import ConfigurationError, JobNotFound, Unauthorized, missing_extra
from jobstatus.record import JobRecord
from jobstatus.store import BaseStore, Store, list_owned

__all__ = ["ALL_SCOPES", "Access", "ApiKeys", "KeyRing", "SCOPES", "visible", "visible_store"]

log = logging.getLogger(__name__)

#: The scopes a key may hold -- reading one job's status (and waiting on it), listing jobs,
#: cancelling jobs.
SCOPES = ("read", "list", "cancel")
#: Every scope, as a set. An :class:`Access` holds them all unless it names fewer.
ALL_SCOPES = frozenset(SCOPES)
_READ = frozenset({"read"})
#: How many verified tokens a service remembers.
_REMEMBERED = 4096


@dataclass(frozen=True)
class Access:
    """What a request may do.

    ``owner``: None sees every job; a string sees only the jobs whose ``owner`` is that string
    (records with no owner included: it does not see them). ``scopes``: a subset of
    :data:`SCOPES`. ``job_id``: set for a per-job token, which reads that one job only.
    """

    owner: str | None = None
    scopes: frozenset[str] = ALL_SCOPES
    job_id: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        scopes = frozenset(self.scopes)
        unknown = scopes - ALL_SCOPES
        if unknown:
            raise ValueError(f"unknown scopes {sorted(unknown)}; known: {', '.join(SCOPES)}")
        object.__setattr__(self, "scopes", scopes)
        if self.owner is not None and (not isinstance(self.owner, str) or not self.owner):
            raise ValueError(f"owner must be a non-empty string or None, got {self.owner!r}")

    def sees(self, owner: str | None) -> bool:
        """True when a job with this ``owner`` is visible to this access."""
        return self.owner is None or self.owner == owner


#: Everything; what a request gets when authentication is off.
EVERYTHING = Access()

#: What ``StatusService(api_keys=…)`` takes.
ApiKeys = Collection[str] | Mapping[str, Access] | Callable[[str], Access | None] | None


class KeyRing:
    """The keys and token secrets of a service; :meth:`authorize` decides each request."""

    def __init__(self, api_keys: ApiKeys, *, token_secrets: Iterable[str] | None = None) -> None:
        if isinstance(api_keys, (str, bytes)):
            raise TypeError("api_keys takes a collection of keys, not one string")
        self.enabled = api_keys is not None
        self._authorize: Callable[[str], Access | None] | None = None
        # A per-process salt: it keys the lookup hash only, never anything that outlives us.
        self._salt = os.urandom(16)
        self._index: dict[bytes, tuple[bytes, Access]] = {}
        if callable(api_keys) and not isinstance(api_keys, Mapping):
            self._authorize = api_keys
        elif api_keys is not None:
            pairs = api_keys.items() if isinstance(api_keys, Mapping) else _all_seeing(api_keys)
            for key, access in pairs:
                raw = _key_bytes(key)
                if not raw:
                    raise ValueError("an API key must not be empty")
                if not isinstance(access, Access):
                    raise TypeError(f"api_keys maps each key to an Access, got {access!r}")
                self._index[self._lookup(raw)] = (raw, access)
        self._dummy = _key_bytes("jobstatus-no-such-key") + self._salt
        self._tokens = _Tokens(list(token_secrets)) if token_secrets else None

    def __len__(self) -> int:
        return len(self._index)

    def _lookup(self, raw: bytes) -> bytes:
        return hashlib.blake2b(raw, key=self._salt, digest_size=16).digest()

    def authorize(self, api_key: str | None, authorization: str | None = None) -> Access:
        """The access of a request, from its ``x-api-key`` or, without one, its bearer token;
        raises :class:`~jobstatus.Unauthorized` when neither is good. Exceptions from a
        host's ``authorize`` callable propagate (the service answers them with a 500)."""
        if not self.enabled:
            return EVERYTHING
        if api_key is not None or self._tokens is None:
            access = self._key_access(api_key)
        else:
            access = self._tokens.verify(_bearer(authorization))
        if access is None:
            raise Unauthorized()
        return access

    def _key_access(self, api_key: str | None) -> Access | None:
        if self._authorize is not None:
            if not api_key:
                return None
            access = self._authorize(api_key)
            if access is not None and not isinstance(access, Access):
                raise TypeError(f"authorize() must return an Access or None, got {access!r}")
            return access
        given = _key_bytes(api_key or "")
        entry = self._index.get(self._lookup(given))
        if entry is None:
            hmac.compare_digest(given, self._dummy)  # the same work as for a known key
            return None
        return entry[1] if hmac.compare_digest(given, entry[0]) else None

    def issue_token(self, job_id: str, *, ttl: float = 3600) -> str:
        """A token that lets its bearer read ``job_id``'s status for ``ttl`` seconds."""
        if self._tokens is None:
            raise ConfigurationError("issuing tokens needs StatusService(token_secrets=[...])")
        if not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        return self._tokens.issue(job_id, ttl)


class _Tokens:
    """Per-job read tokens: ``<job_id>:<expires>`` in URL-safe base64, signed with
    itsdangerous' :class:`~itsdangerous.Signer` (HMAC-SHA256 under a key derived once per
    secret from it and the salt ``jobstatus.job-token``).

    A token that verified is remembered (at most :data:`_REMEMBERED`, the oldest forgotten
    first), so a client polling with it pays for the signature check once; its expiry is still
    checked on every request. Refused tokens are never remembered.
    """

    def __init__(self, secrets: list[str]) -> None:
        if not all(isinstance(s, str) and s for s in secrets):
            raise ValueError("token secrets must be non-empty strings")
        try:
            from itsdangerous import BadData, BadSignature, Signer, base64_decode, base64_encode
        except ImportError as exc:
            raise missing_extra("tokens", exc) from exc
        self._bad, self._forged = BadData, BadSignature
        self._decode, self._encode = base64_decode, base64_encode
        # The key is derived here, once (HMAC of the salt, as itsdangerous' "hmac" derivation),
        # not on every check; the first secret signs, every one verifies, the first tried first.
        self._signers = [
            Signer(
                hmac.new(secret.encode(), b"jobstatus.job-token", hashlib.sha256).digest(),
                key_derivation="none",
                digest_method=hashlib.sha256,
            )
            for secret in secrets
        ]
        # An OrderedDict forgets its oldest entry in O(1); a dict's next(iter()) would walk
        # past every slot freed before it.
        self._verified: OrderedDict[str, tuple[Access, int]] = OrderedDict()

    def issue(self, job_id: str, ttl: float) -> str:
        payload = self._encode(f"{job_id}:{int(time.time() + ttl)}".encode())
        return self._signers[0].sign(payload).decode("ascii")

    def verify(self, token: str | None) -> Access | None:
        if not token:
            return None
        known = self._verified.get(token)
        if known is not None:
            if known[1] > time.time():
                return known[0]
            del self._verified[token]
            log.info("bearer token refused: expired")
            return None
        try:
            job_id, expires = self._signed(token.encode("ascii"))
        except (self._bad, ValueError) as exc:
            log.info("bearer token refused: %s", type(exc).__name__)
            return None
        if expires <= time.time():
            log.info("bearer token refused: expired")
            return None
        access = Access(owner=None, scopes=_READ, job_id=job_id)
        if len(self._verified) >= _REMEMBERED:
            self._verified.popitem(last=False)
        self._verified[token] = (access, expires)
        return access

    def _signed(self, token: bytes) -> tuple[str, int]:
        """The job id and expiry a token signed by one of the secrets holds; raises BadData
        (a bad signature, bad base64) or ValueError (not a job token)."""
        for signer in self._signers:
            try:
                payload = signer.unsign(token)
                break
            except self._bad:
                continue
        else:
            raise self._forged("no secret signed it")
        job_id, colon, expires = self._decode(payload).decode("utf-8").rpartition(":")
        if not (colon and job_id and expires.isascii() and expires.isdigit()):
            raise ValueError("not a job token")
        return job_id, int(expires)


def visible(record: JobRecord, access: Access) -> JobRecord:
    """``record`` if ``access`` may see it; else the same :class:`~jobstatus.JobNotFound` an
    unknown job raises, so another owner's job cannot be told from no job."""
    if access.owner is not None and record.owner != access.owner:
        raise JobNotFound(record.job_id)
    return record


def visible_store(store: Store, access: Access) -> Store:
    """``store`` as ``access`` sees it: for a key bound to an owner, a view whose ``list``
    yields that owner's records only (:func:`~jobstatus.store.list_owned`: through the store's
    owner index where it has one)."""
    return store if access.owner is None else _OwnedView(store, access.owner)


class _OwnedView(BaseStore):
    """The records of one owner, read-only: what the listing routes read for an owner's key."""

    def __init__(self, store: Store, owner: str) -> None:
        self._store = store
        self._owner = owner

    def get(self, job_id: str) -> JobRecord:
        return visible(self._store.get(job_id), Access(owner=self._owner))

    def list(
        self,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        return list_owned(self._store, self._owner, since=since, status=status, limit=limit)

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("an owner's view of a store is read-only")

    put = restore = delete = purge = _read_only


def _all_seeing(keys: Iterable[str]) -> Iterable[tuple[str, Access]]:
    return ((key, EVERYTHING) for key in keys)


def _bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _key_bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")

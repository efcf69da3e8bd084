"""The deliverer: finds due deliveries, claims each attempt, sends it, records the outcome.

Where work comes from:

- :meth:`Deliverer.notify`: the tracker hands over each job it ended with a pending delivery
  (the record it just wrote, so the first attempt costs no read);
- :meth:`Deliverer.sweep`: a look at the store for deliveries other processes left behind -- a
  process that died, a tracker without ``webhooks=``. The first sweep lists the final records
  written in the last ``look_back`` seconds; each later one only those written since the
  previous sweep (minus 5 s for clock skew), since every delivery that is due later is then
  already scheduled in memory. Its cost is one ``store.list(since=…, status=final)`` per
  ``sweep_interval``, reading the records written meanwhile.

Due deliveries sit in a heap ordered by due time. Each attempt costs two store writes: the
claim (``sending`` with a lease, conditional on the version read: of several deliverers exactly
one wins) and the outcome (conditional on the claim's version). A deliverer that dies
mid-attempt leaves a claim whose lease runs out; the next deliverer records that attempt as lost
and sends again: delivery is at least once, and receivers deduplicate on ``webhook-id``.

In a process, one scheduler thread and ``concurrency`` sending threads (daemons) run from the
first :meth:`~Deliverer.notify` or :meth:`~Deliverer.start`; a forked child starts its own.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any

from jobstatus.errors import Conflict, JobNotFound, redact
from jobstatus.record import FINAL_STATES, JobRecord, dump_compact
from jobstatus.store import Store
from jobstatus.webhooks.config import JITTER, Webhooks
from jobstatus.webhooks.schedule import DueDeliveries
from jobstatus.webhooks.sending import Sender
from jobstatus.webhooks.signing import signed_headers
from jobstatus.webhooks.state import (
    DeliveryState,
    Outcome,
    claim,
    due_time,
    settle,
    webhook_of,
    with_webhook,
)
from jobstatus.webhooks.urls import redact_url

__all__ = ["Deliverer"]

log = logging.getLogger("jobstatus.webhooks")

#: Seconds a sweep reaches back before the previous one began (writers' clocks differ).
SWEEP_OVERLAP = 5.0
#: Seconds before a delivery whose store access failed is tried again.
STORE_RETRY_DELAY = 5.0
#: Conditional writes tried before giving up on a record that keeps changing.
_MAX_WRITES = 10

_fork_guard = threading.Lock()


def _new_fork_guard() -> None:
    global _fork_guard
    _fork_guard = threading.Lock()


os.register_at_fork(after_in_child=_new_fork_guard)


class Deliverer:
    """Sends the pending webhook deliveries of the jobs in ``store``.

    Use it as a background service (:meth:`start`, :meth:`notify`, :meth:`stop`), or one pass
    at a time (:meth:`deliver_due`). Everything it needs to know -- secrets, address policy,
    timeouts, schedule, concurrency, sweeps -- is in ``webhooks``.
    """

    def __init__(self, store: Store, webhooks: Webhooks) -> None:
        if not webhooks.keys:
            raise ValueError("a Deliverer needs Webhooks with a secret to sign with")
        self.store = store
        self.webhooks = webhooks
        self.sweep_interval = webhooks.sweep_interval
        self.look_back = webhooks.look_back
        self._pid = -1
        self._reset()

    def __repr__(self) -> str:
        return f"Deliverer({self.store!r}, {self.webhooks!r})"

    def _reset(self) -> None:
        """Fresh state for this process: nothing inherited from a parent's threads."""
        inherited = getattr(self, "_sender", None)
        if inherited is not None:
            inherited.forget()
        self._pid = os.getpid()
        self._due = DueDeliveries()
        self._cond = self._due.cond
        self._busy: set[str] = set()
        self._again: set[str] = set()
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._swept_at: float | None = None
        self._sender = Sender(self.webhooks)
        self._rand = random.Random()
        self._tokens = itertools.count()
        self._token_prefix = uuid.uuid4().hex[:16]
        self._counts: Counter[str] = Counter()

    def _here(self) -> None:
        if self._pid != os.getpid():
            with _fork_guard:
                if self._pid != os.getpid():
                    self._reset()

    @property
    def counts(self) -> dict[str, int]:
        """Counts of what this deliverer did in this process, by name -- ``attempts``,
        ``delivered``, ``failed``, ``retrying`` (attempts that will be retried) and
        ``lost_claims`` (outcomes another deliverer's claim overtook)."""
        with self._cond:
            return dict(self._counts)

    # -- running in the background ---------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler and sending threads in this process (once)."""
        self._here()
        with self._cond:
            if self._threads and not self._stopping:
                return
            self._stopping = False
            # A fresh queue: threads of an earlier start() that are still ending keep theirs.
            self._queue, self._busy, self._again = queue.SimpleQueue(), set(), set()
            threads = [
                threading.Thread(
                    target=self._schedule_loop, args=(self._queue,), name="jobstatus-webhooks"
                )
            ]
            threads += [
                threading.Thread(
                    target=self._send_loop, args=(self._queue,), name=f"jobstatus-webhooks-{n}"
                )
                for n in range(self.webhooks.concurrency)
            ]
            self._threads = threads
        for thread in threads:
            thread.daemon = True
            thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the threads; an attempt being sent ends first (within ``timeout`` seconds,
        default the webhooks' timeout and a second), queued ones are left. What is not done
        stays in the store for the next deliverer."""
        with self._cond:
            threads, self._threads = self._threads, []
            self._stopping = True
            self._cond.notify_all()
            work = self._queue
        for _ in threads:
            work.put(None)
        deadline = time.monotonic() + (self.webhooks.timeout + 1 if timeout is None else timeout)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._sender.close()

    def close(self) -> None:
        """Stop the threads (:meth:`stop`) and close the idle connections."""
        self.stop()

    def __enter__(self) -> Deliverer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def notify(self, record: JobRecord) -> None:
        """Schedule the delivery of a record just written, if it has one due; starts the
        threads in this process when they are not running. Never blocks on the network."""
        webhook = webhook_of(record)
        due = None if webhook is None else due_time(webhook)
        if due is None:
            return
        self._here()
        if not self._threads:
            self.start()
        self._schedule(record.job_id, due, record)

    # -- one pass at a time ------------------------------------------------------------------

    def sweep(self, since: float | None = None) -> int:
        """Schedule every due or future delivery of the final records written since ``since``
        (seconds since the epoch; default: since the previous sweep began, or ``look_back``
        ago for the first); return how many were found."""
        self._here()
        started = time.time()
        if since is None:
            since = (
                started - self.look_back
                if self._swept_at is None
                else self._swept_at - SWEEP_OVERLAP
            )
        found = 0
        for record in self.store.list(since=since, status=FINAL_STATES):
            webhook = webhook_of(record)
            due = None if webhook is None else due_time(webhook)
            if due is not None:
                self._schedule(record.job_id, due, record)
                found += 1
        self._swept_at = started
        return found

    def deliver_due(self) -> int:
        """Sweep, then make every attempt due now, one after another in this thread; return
        how many attempts were made. Retries fall due later: call again (``jobstatus deliver
        --once`` is this)."""
        self.sweep()
        now, made = time.time(), 0
        while True:
            due = self._due.pop_due(now)
            if not due:
                return made
            for job_id in due:
                if self.attempt(job_id, self._due.record(job_id)) is not None:
                    made += 1

    def attempt(self, job_id: str, record: JobRecord | None = None) -> str | None:
        """Make the job's due attempt, if one is due and no other deliverer holds it: claim
        it, send it, record the outcome. Returns the delivery's state after the attempt, or
        None when none was made (not due: then it is scheduled)."""
        self._here()
        token = f"{self._token_prefix}-{next(self._tokens)}"
        if record is None or record.version is None:
            record = self._read(job_id)
        for _ in range(_MAX_WRITES):
            if record is not None and record.version is None:
                # Without a version the claim could not be conditional: never claim blind.
                log.warning("job %s: the store gave no version; its webhook is left", job_id)
                return None
            webhook = None if record is None or not record.is_final else webhook_of(record)
            due = None if webhook is None else due_time(webhook)
            if record is None or webhook is None or due is None:
                return None
            now = time.time()
            if due > now:
                self._schedule(job_id, due, record)
                return None
            claimed = claim(
                webhook,
                now=now,
                lease=self.webhooks.lease,
                token=token,
                max_attempts=self.webhooks.max_attempts,
            )
            try:
                written = self.store.put(
                    with_webhook(record, claimed), force=True, expect_version=record.version
                )
                break
            except Conflict:  # another deliverer (or writer) was first: look again
                record = self._read(job_id)
        else:
            return None
        if claimed["state"] != DeliveryState.SENDING.value:
            self._count("failed")
            return str(claimed["state"])  # its lost attempts used up the schedule
        outcome = self._send(written, claimed)
        settled = settle(
            claimed,
            outcome,
            now=time.time(),
            retry_schedule=self.webhooks.retry_schedule,
            jitter=JITTER,
            rand=self._rand,
        )
        stored = self._record_outcome(written, settled, token)
        state = str(settled["state"])
        self._count("attempts")
        self._count("retrying" if state == DeliveryState.PENDING.value else state)
        log.info(
            "job %s: webhook to %s %s (%s)",
            job_id,
            redact_url(str(claimed["url"])),
            state,
            "delivered" if outcome.delivered else outcome.describe(),
        )
        if stored is not None and state == DeliveryState.PENDING.value:
            self._schedule(job_id, due_time(settled) or time.time(), stored)
        return state

    # -- the steps ---------------------------------------------------------------------------

    def _send(self, record: JobRecord, claimed: Mapping[str, Any]) -> Outcome:
        body = dump_compact(record.response).encode("ascii")
        headers = signed_headers(self.webhooks.keys, str(claimed["id"]), int(time.time()), body)
        return self._sender.send(str(claimed["url"]), body, headers)

    def _record_outcome(
        self, record: JobRecord, settled: Mapping[str, Any], token: str
    ) -> JobRecord | None:
        current: JobRecord | None = record
        for _ in range(_MAX_WRITES):
            if current is None:
                return None
            try:
                return self.store.put(
                    with_webhook(current, settled), force=True, expect_version=current.version
                )
            except Conflict:
                current = self._read(record.job_id)
                webhook = None if current is None else webhook_of(current)
                if webhook is None or webhook.get("claim") != token:
                    # Our lease ran out and another deliverer claimed the attempt: its claim
                    # recorded ours as lost, and it sends again.
                    self._count("lost_claims")
                    return None
        return None

    def _read(self, job_id: str) -> JobRecord | None:
        try:
            return self.store.get(job_id)
        except JobNotFound:
            return None

    def _count(self, what: str) -> None:
        with self._cond:
            self._counts[what] += 1

    def _schedule(self, job_id: str, due: float, record: JobRecord | None = None) -> None:
        self._due.add(job_id, due, record)

    def _schedule_loop(self, work: queue.SimpleQueue[str | None]) -> None:
        next_sweep = time.time() if self.sweep_interval is not None else float("inf")
        while True:
            if time.time() >= next_sweep:
                try:
                    self.sweep()
                except Exception as exc:  # the store failed: look again next interval
                    log.warning("webhook sweep failed: %s", redact(str(exc)))
                next_sweep = time.time() + (self.sweep_interval or 0.0)
            with self._cond:
                if self._stopping:
                    return
                for job_id in self._due.pop_due(time.time()):
                    if job_id in self._busy:
                        self._again.add(job_id)  # sent again once the running attempt ends
                    else:
                        self._busy.add(job_id)
                        work.put(job_id)
                wait = min(self._due.soonest(), next_sweep) - time.time()
                if wait > 0:
                    self._cond.wait(min(wait, 60.0))

    def _send_loop(self, work: queue.SimpleQueue[str | None]) -> None:
        while True:
            job_id = work.get()
            if job_id is None or self._stopping:
                return
            try:
                self.attempt(job_id, self._due.record(job_id))
            except Exception as exc:  # the store failed: try again later
                log.warning("webhook delivery of job %s failed: %s", job_id, redact(str(exc)))
                self._schedule(job_id, time.time() + STORE_RETRY_DELAY)
            finally:
                with self._cond:
                    self._busy.discard(job_id)
                    if job_id in self._again:
                        self._again.discard(job_id)
                        self._busy.add(job_id)
                        work.put(job_id)

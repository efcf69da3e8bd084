"""A clock for the reads of a driver that has none: psycopg waits for an answer as long as it
takes, and no TCP option ends that wait when the server, or a proxy on the way, still
acknowledges every byte and answers keepalives but says nothing (a frozen server, a silent
middlebox). A call armed here for ``seconds`` has its connection's socket shut down under it
once they passed: the driver's wait ends at once, with the error of a dropped connection.

One thread per process checks the armed calls every :data:`TICK` seconds while any were armed
in the last :data:`LINGER` seconds, then sleeps until the next one; arming and disarming a
call costs a lock and a dict entry, never a wake-up of that thread on the way of a lookup.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from typing import Any

from jobstatus.errors import StorageError

__all__ = ["LINGER", "TICK", "Armed", "NoAnswer", "arm", "disarm"]

#: Seconds between two looks at the armed calls: a call is shut down at most this late.
TICK = 0.05
#: Seconds the thread keeps looking after the last call was armed, before it sleeps.
LINGER = 10.0


class NoAnswer(StorageError):
    """The server did not answer within the timeout: the connection was shut down."""


class Armed:
    """One armed call: the DB-API connection it waits on, and when it runs out."""

    __slots__ = ("connection", "deadline", "fired")

    def __init__(self, connection: Any, deadline: float) -> None:
        self.connection = connection
        self.deadline = deadline
        #: True once the watchdog shut the connection down.
        self.fired = False


class _Watchdog:
    """The armed calls of this process, and the thread that shuts down the late ones."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.armed: dict[int, Armed] = {}
        self.last_armed = 0.0
        self.thread: threading.Thread | None = None
        self.asleep = False  # the thread waits for a call to be armed

    def started(self) -> None:
        """Make sure the thread looks at the armed calls; the lock is held."""
        if self.thread is None:
            self.thread = threading.Thread(target=self.run, name="jobstatus-watchdog", daemon=True)
            self.thread.start()
        elif self.asleep:
            self.asleep = False
            self.wake.notify()

    def run(self) -> None:
        with self.lock:
            while True:
                now = time.monotonic()
                late = [key for key, armed in self.armed.items() if armed.deadline <= now]
                for key in late:
                    armed = self.armed.pop(key)
                    armed.fired = True
                    _shut_down(armed.connection)
                if self.armed or now - self.last_armed < LINGER:
                    self.wake.wait(TICK)
                else:
                    self.asleep = True
                    while self.asleep:
                        self.wake.wait()


_watchdog = _Watchdog()


def arm(connection: Any, seconds: float) -> Armed:
    """Shut ``connection``'s socket down unless :func:`disarm` is called within ``seconds``."""
    global _watchdog
    now = time.monotonic()
    armed = Armed(connection, now + seconds)
    watchdog = _watchdog
    if watchdog.pid != os.getpid():  # a forked child: the parent's thread is not here
        watchdog = _watchdog = _Watchdog()
    with watchdog.lock:
        watchdog.armed[id(armed)] = armed
        watchdog.last_armed = now
        watchdog.started()
    return armed


def disarm(armed: Armed) -> bool:
    """The call is over; True when the watchdog shut its connection down first."""
    watchdog = _watchdog
    with watchdog.lock:
        watchdog.armed.pop(id(armed), None)
    return armed.fired


def _shut_down(connection: Any) -> None:
    """Shut down the socket of a psycopg connection (``closed``, ``fileno()``) a call is
    blocked on, through a duplicate of its descriptor: the driver's own descriptor stays
    open, and the driver closes it as it handles the error."""
    with contextlib.suppress(Exception):  # closed meanwhile: nothing left to end
        if connection.closed:
            return
        with socket.socket(fileno=os.dup(connection.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)

"""Linux inotify through ctypes: one instance per process (:data:`HUB`), shared by folders.

No dependency: ``inotify_init1``, ``inotify_add_watch``, ``inotify_rm_watch`` and ``read`` from
the C library. Where they are missing (not Linux) :data:`AVAILABLE` is False and
:meth:`Hub.watch` raises ``OSError``.
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import errno
import fcntl
import itertools
import logging
import os
import select
import struct
import sys
import termios
import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = [
    "AVAILABLE",
    "IN_ATTRIB",
    "IN_CLOSE_WRITE",
    "IN_DELETE",
    "IN_DELETE_SELF",
    "IN_IGNORED",
    "IN_ISDIR",
    "IN_MOVED_FROM",
    "IN_MOVED_TO",
    "IN_MOVE_SELF",
    "IN_Q_OVERFLOW",
    "HUB",
    "Event",
    "Hub",
    "Watch",
]

log = logging.getLogger("jobstatus.backends.filesystem")

IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_MASK_ADD = 0x20000000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len
_BUFFER = 1 << 16
# The largest event: its header and a file name of NAME_MAX bytes, NUL-padded.
_LARGEST_EVENT = _HEADER.size + 256
# While a folder's watch is lost, how often the reader thread tries to set it up again.
_LOOK_AGAIN = 1.0


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        for name in ("inotify_init1", "inotify_add_watch", "inotify_rm_watch"):
            getattr(libc, name)
    except (OSError, AttributeError):
        return None
    libc.inotify_add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
    libc.inotify_rm_watch.argtypes = (ctypes.c_int, ctypes.c_int)
    return libc


_LIBC = _libc()
#: True where the C library offers inotify (Linux).
AVAILABLE = _LIBC is not None


class Event(NamedTuple):
    """One event: its mask and the name of the file in the watched folder ("" for the folder)."""

    mask: int
    name: str


#: What a watch calls for each of its events, the hub's lock held.
Handler = Callable[[Event], None]


class Watch(NamedTuple):
    """A folder's registration with the hub."""

    wd: int
    key: int
    generation: int


class Hub:
    """One inotify instance per process, shared by every watched folder.

    Linux allows few inotify instances per user (128 by default) and many watches (one per
    folder), so a process keeps one instance, reads it in one place and hands each event to
    the handlers of its folder. Everything runs under :attr:`lock`, an ``RLock`` the folder
    watches share for their own state too. A forked child starts afresh: the parent's
    instance and reader thread are not its own.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._fd = -1
        self._pid = os.getpid()
        #: bumped when the instance is replaced: watches of an older generation are gone
        self.generation = 0
        self._handlers: dict[int, dict[int, weakref.WeakMethod[Handler]]] = {}
        self._keys = itertools.count()
        self._readers = 0
        self._reader: threading.Thread | None = None
        self._wake_w = -1
        self._retries: dict[int, weakref.WeakMethod[Callable[[], bool]]] = {}
        self._pending_bytes = array.array("i", [0])

    def after_fork_in_child(self) -> None:
        """Forget the parent's instance, thread and lock (which another thread of the parent
        may have held at the fork)."""
        self.lock = threading.RLock()
        if self._fd >= 0:
            os.close(self._fd)  # our copy; the parent keeps its own
        self._fd, self._pid = -1, os.getpid()
        self._handlers.clear()
        self._retries.clear()
        self._readers, self._reader, self._wake_w = 0, None, -1
        self.generation += 1

    def _instance(self) -> int:
        if self._pid != os.getpid():  # forked without the fork hook (os.fork in C code)
            self.after_fork_in_child()
        if self._fd < 0:
            if _LIBC is None:
                raise OSError(errno.ENOSYS, "inotify is not available on this platform")
            fd = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                code = ctypes.get_errno()
                raise OSError(code, f"inotify_init1: {os.strerror(code)}")
            self._fd = fd
            self.generation += 1
        return self._fd

    def watch(self, folder: str, mask: int, handler: Handler) -> Watch:
        """Hand ``handler`` the events of ``folder`` (a bound method, held weakly) until
        :meth:`unwatch`; raises ``OSError`` (``FileNotFoundError`` for a missing folder)."""
        with self.lock:
            fd = self._instance()
            wd = _LIBC.inotify_add_watch(fd, os.fsencode(folder), mask | IN_ONLYDIR | IN_MASK_ADD)
            if wd < 0:
                code = ctypes.get_errno()
                raise OSError(code, f"inotify_add_watch {folder}: {os.strerror(code)}")
            key = next(self._keys)
            self._handlers.setdefault(wd, {})[key] = weakref.WeakMethod(handler)
            return Watch(wd, key, self.generation)

    def unwatch(self, watch: Watch) -> None:
        """Stop handing events to a watch's handler; the folder's watch goes with the last."""
        with self.lock:
            if watch.generation != self.generation or self._pid != os.getpid():
                return
            handlers = self._handlers.get(watch.wd)
            if handlers is None:
                return
            handlers.pop(watch.key, None)
            if not handlers:
                del self._handlers[watch.wd]
                _LIBC.inotify_rm_watch(self._fd, watch.wd)

    def alive(self, watch: Watch) -> bool:
        """True while the watch still receives events."""
        return (
            watch.generation == self.generation
            and self._pid == os.getpid()
            and watch.wd in self._handlers
        )

    def flush(self) -> None:
        """Read every queued event now and hand it to its handlers, in this thread."""
        with self.lock:
            fd = self._fd
            if fd < 0 or self._pid != os.getpid():
                return
            # How many bytes wait: one cheap system call, and nothing to do when none do.
            fcntl.ioctl(fd, termios.FIONREAD, self._pending_bytes, True)
            if not self._pending_bytes[0]:
                return
            for wd, event in _read_events(fd):
                if event.mask & IN_Q_OVERFLOW:  # wd -1: every folder may have missed events
                    targets = [h for hs in self._handlers.values() for h in hs.values()]
                else:
                    targets = list(self._handlers.get(wd, {}).values())
                    if event.mask & IN_IGNORED:
                        self._handlers.pop(wd, None)  # the folder's watch is gone
                for reference in targets:
                    handler = reference()
                    if handler is not None:
                        handler(event)

    # -- the reader thread: pushes events while some folder has subscribers -----------------

    def start_reading(self) -> None:
        """Count one more folder that needs events pushed; the first starts the thread."""
        with self.lock:
            self._readers += 1
            if self._reader is None:
                wake_r, self._wake_w = os.pipe()
                self._reader = threading.Thread(
                    target=self._read,
                    args=(self._fd, wake_r),
                    name="jobstatus-inotify",
                    daemon=True,
                )
                self._reader.start()

    def stop_reading(self) -> None:
        """Count one folder fewer; the last stops the thread."""
        with self.lock:
            if self._pid != os.getpid() or self._readers == 0:
                return
            self._readers -= 1
            if self._readers == 0 and self._reader is not None:
                os.write(self._wake_w, b"s")
                os.close(self._wake_w)
                self._reader, self._wake_w = None, -1

    def retry_later(self, key: int, retry: Callable[[], bool] | None) -> None:
        """While a folder's watch is lost, the reader thread calls ``retry`` (a bound method,
        held weakly) about every second until it returns True; None cancels."""
        with self.lock:
            if retry is None:
                self._retries.pop(key, None)
                return
            self._retries[key] = weakref.WeakMethod(retry)
            if self._reader is not None:
                os.write(self._wake_w, b"r")  # it may be waiting without a timeout

    def _read(self, fd: int, wake: int) -> None:
        while True:
            timeout = _LOOK_AGAIN if self._retries else None
            try:
                readable, _, _ = select.select([wake, fd], [], [], timeout)
            except (OSError, ValueError):
                readable = []
            if wake in readable and b"s" in os.read(wake, 64):
                os.close(wake)
                return
            try:
                self.flush()
                self._run_retries()
            except Exception:
                log.exception("the inotify reader failed; it goes on")

    def _run_retries(self) -> None:
        with self.lock:
            retries = list(self._retries.items())
        for key, reference in retries:
            retry = reference()
            if retry is None or retry():
                with self.lock:
                    self._retries.pop(key, None)


def _read_events(fd: int) -> list[tuple[int, Event]]:
    """The events queued now on ``fd`` (non-blocking), with their watch descriptors."""
    events: list[tuple[int, Event]] = []
    while True:
        try:
            data = os.read(fd, _BUFFER)
        except BlockingIOError:
            return events
        offset = 0
        while offset < len(data):
            wd, mask, _cookie, size = _HEADER.unpack_from(data, offset)
            start = offset + _HEADER.size
            name = data[start : start + size].rstrip(b"\0")
            events.append((wd, Event(mask, os.fsdecode(name))))
            offset = start + size
        # The kernel fills the buffer with every event that fits: room left for the largest
        # event means the queue was empty after this read.
        if len(data) <= _BUFFER - _LARGEST_EVENT:
            return events


#: The process's hub.
HUB = Hub()
os.register_at_fork(after_in_child=HUB.after_fork_in_child)

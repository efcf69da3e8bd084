"""The filesystem store's watch on its ``jobs/`` folder: a recency index and a change feed.

One inotify instance per store and process sees every change a writer finishes in the folder:
a file renamed into place (this library's writes), a file written in place and closed (the
upstream service's writes), a file deleted or renamed away, a changed modification time. From
those events the watch keeps

- the **recency index**: each job's modification time, sorted, so listing the recent jobs reads
  only the files in the window instead of a ``stat`` of every file. The index is built by one
  scan and then kept by the events; before it answers, it reads the kernel's queue, so a
  change any writer finished before the call is in the answer;
- the **change feed** of :meth:`FileSystemStore.subscribe
  <jobstatus.backends.filesystem.FileSystemStore.subscribe>`: each job id that changed, on a
  thread of the watch, as :mod:`jobstatus.store` specifies.

A change is seen once its writer renames or closes the file: a writer that keeps a file open
while it writes is seen when it closes it. The kernel does not see other machines' writes to a
network filesystem (NFS, SMB): turn the watch off there (``FileSystemStore(notify=False)``).
When the kernel's queue overflows, or the folder is deleted and made again, the index is
rebuilt by a scan and subscribers are told that changes may have been missed.
"""

from __future__ import annotations

import bisect
import errno
import itertools
import logging
import os
import time

from jobstatus.backends import _inotify
from jobstatus.backends._inotify import HUB, Event
from jobstatus.errors import StorageError
from jobstatus.store import ChangeCallback

__all__ = ["FolderWatch"]

log = logging.getLogger("jobstatus.backends.filesystem")

_MASK = (
    _inotify.IN_CLOSE_WRITE
    | _inotify.IN_MOVED_TO
    | _inotify.IN_MOVED_FROM
    | _inotify.IN_DELETE
    | _inotify.IN_ATTRIB
    | _inotify.IN_DELETE_SELF
    | _inotify.IN_MOVE_SELF
)
_FOLDER_GONE = _inotify.IN_DELETE_SELF | _inotify.IN_MOVE_SELF | _inotify.IN_IGNORED
# After inotify could not be set up (limits reached), how long until it is tried again.
_RETRY_SECONDS = 30.0
_keys = itertools.count()
# Errors that say inotify is out of reach for a while: no instance or watch left, no inotify.
_LIMITS = frozenset({errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOSYS, errno.ENOMEM})


class FolderWatch:
    """The recency index and change feed of one folder of ``<job_id><suffix>`` files.

    Its state is guarded by the process's inotify lock (``HUB.lock``), under which the hub
    also hands it its events.
    """

    def __init__(self, folder: str, suffix: str) -> None:
        self._folder = folder
        self._suffix = suffix
        self._key = next(_keys)
        self._watch: _inotify.Watch | None = None
        self._retry_at = 0.0
        self._mtimes: dict[str, int] = {}
        self._order: list[tuple[int, str]] = []  # (mtime_ns, job_id), ascending
        self._callbacks: dict[int, ChangeCallback] = {}
        self._closed = False

    def __del__(self) -> None:
        try:  # (not contextlib: an interpreter shutting down may have unloaded it already)
            self.close()
        except Exception:  # shutting down: nothing is left to release
            return

    # -- the index -------------------------------------------------------------------------

    def recent(self, since: float | None) -> list[tuple[int, str]] | None:
        """(mtime_ns, job_id) of every file modified at ``since`` or later, newest first, or
        None when the index is not available (the caller scans the folder itself)."""
        with HUB.lock:
            if not self._ensure():
                return None
            HUB.flush()
            if self._watch is None:  # the folder went away meanwhile
                return None
            order = self._order
            if since is None or since <= 0:
                start = 0
            elif since < 1e11:  # (not NaN, not infinite: a time before the year 5138)
                # A float holds today's time to about 240 ns: start a millisecond early, then
                # compare each stamp exactly as a scan does.
                start = bisect.bisect_left(order, (int(since * 1e9) - 1_000_000, ""))
            else:
                start = len(order)
            found = order[start:]
        found.reverse()
        if since is not None:  # compare exactly as a scan does, on the stamp in seconds
            while found and found[-1][0] / 1e9 < since:
                found.pop()
        return found

    def _ensure(self) -> bool:
        """Set the watch up (and scan) unless it is; False when it cannot be now."""
        if self._watch is not None and HUB.alive(self._watch):
            return True
        self._watch = None
        if self._closed or time.monotonic() < self._retry_at:
            return False
        try:
            self._watch = HUB.watch(self._folder, _MASK, self._on_event)
        except OSError as exc:
            if exc.errno in _LIMITS:  # the kernel's or the process's limits: not soon
                self._retry_at = time.monotonic() + _RETRY_SECONDS
                log.warning("no change notification for %s (%s): listing scans", self._folder, exc)
            return False  # otherwise no folder (yet), or not one: scanning says what is wrong
        self._rescan()
        if self._callbacks:
            HUB.retry_later(self._key, None)
        return True

    def _rescan(self) -> None:
        """Rebuild the index from the folder; subscribers re-read what they watch."""
        mtimes: dict[str, int] = {}
        suffix, cut = self._suffix, -len(self._suffix)
        try:
            with os.scandir(self._folder) as entries:
                for entry in entries:
                    if entry.name.endswith(suffix):
                        try:
                            mtimes[entry.name[:cut]] = entry.stat().st_mtime_ns
                        except FileNotFoundError:
                            continue
        except OSError as exc:
            self._lost()
            raise StorageError(f"cannot list {os.path.basename(self._folder)}/: {exc}") from exc
        self._mtimes = mtimes
        self._order = sorted((stamp, job_id) for job_id, stamp in mtimes.items())
        self._notify(None)

    def _lost(self) -> None:
        """The folder is gone (or unreadable): forget the index until it is back."""
        if self._watch is not None:
            HUB.unwatch(self._watch)
            self._watch = None
        self._mtimes, self._order = {}, []
        if self._callbacks:
            HUB.retry_later(self._key, self._retry)

    def _retry(self) -> bool:
        """Called by the hub's reader while the folder is lost: True once it is back."""
        with HUB.lock:
            try:
                return self._closed or self._ensure()
            except StorageError:
                return False

    def _on_event(self, event: Event) -> None:
        """One event of the folder (the hub's lock held): update the index, tell subscribers."""
        mask = event.mask
        if mask & _inotify.IN_Q_OVERFLOW:
            self._rescan()
        elif mask & _FOLDER_GONE:
            self._lost()
            self._notify(None)
        elif event.name.endswith(self._suffix) and not mask & _inotify.IN_ISDIR:
            job_id = event.name[: -len(self._suffix)]
            self._update(job_id)
            self._notify(job_id)

    def _update(self, job_id: str) -> None:
        try:
            stamp: int | None = os.stat(
                os.path.join(self._folder, job_id + self._suffix)
            ).st_mtime_ns
        except OSError:
            stamp = None
        old = self._mtimes.get(job_id)
        if old == stamp:
            return
        order = self._order
        if old is not None:
            del order[bisect.bisect_left(order, (old, job_id))]
        if stamp is None:
            del self._mtimes[job_id]
        else:
            self._mtimes[job_id] = stamp
            bisect.insort(order, (stamp, job_id))

    # -- the change feed -------------------------------------------------------------------

    def subscribe(self, callback: ChangeCallback) -> _Subscription:
        """Report changes to ``callback`` from the hub's reader thread, until closed."""
        with HUB.lock:
            if not self._ensure():
                raise StorageError(f"cannot watch {os.path.basename(self._folder)}/ for changes")
            key = next(_keys)
            if not self._callbacks:
                HUB.start_reading()
            self._callbacks[key] = callback
        return _Subscription(self, key)

    def _unsubscribe(self, key: int) -> None:
        with HUB.lock:
            if self._callbacks.pop(key, None) is not None and not self._callbacks:
                HUB.stop_reading()
                HUB.retry_later(self._key, None)

    def flush(self) -> None:
        """Report every change finished before the call, in this thread."""
        watch = self._watch
        if watch is not None and watch.generation == HUB.generation:  # the usual case, quick
            HUB.flush()
            if self._watch is not None:
                return
        with HUB.lock:
            if self._ensure():
                HUB.flush()

    def _notify(self, job_id: str | None) -> None:
        for callback in list(self._callbacks.values()):
            try:
                callback(job_id)
            except Exception:
                log.exception("a change callback failed")

    def close(self) -> None:
        """Stop the feed and the watch."""
        with HUB.lock:
            self._closed = True
            if self._callbacks:
                self._callbacks.clear()
                HUB.stop_reading()
            HUB.retry_later(self._key, None)
            if self._watch is not None:
                HUB.unwatch(self._watch)
                self._watch = None
            self._mtimes, self._order = {}, []


class _Subscription:
    """A subscription to a :class:`FolderWatch`; see :mod:`jobstatus.store` for the contract."""

    def __init__(self, watch: FolderWatch, key: int) -> None:
        self._watch = watch
        self._key = key

    def flush(self) -> None:
        self._watch.flush()

    def close(self) -> None:
        self._watch._unsubscribe(self._key)

"""Database servers of one's own, to stop and start for real: PostgreSQL and Redis.

The shared servers on 127.0.0.1:5432 and :6379 serve other test runs, so a run that restarts a
server starts its own: :class:`PrivatePostgres` (``initdb`` into a temp folder, ``pg_ctl`` on a
free port; as user ``postgres`` when run as root, since PostgreSQL refuses to run as root) and
:class:`PrivateRedis` (``redis-server`` with its append-only file, so a restart keeps the data
as PostgreSQL does). Each counts the connections its clients hold, by client name.

:class:`ServerUnavailable` means the binaries are not installed or the server would not start.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["PrivatePostgres", "PrivateRedis", "ServerUnavailable", "free_port"]

_START_TIMEOUT = 60.0


class ServerUnavailable(RuntimeError):
    """The server's binaries are missing, or it did not start."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _until(ready: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while not ready():
        if time.monotonic() > deadline:
            text = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise ServerUnavailable(f"{what} did not start:\n{text}")
        time.sleep(0.05)


_P = TypeVar("_P", bound="_Private")


class _Private:
    """Started for a ``with`` block, closed after it (and when it fails to start)."""

    def start(self: _P) -> _P:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _P) -> _P:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PrivatePostgres(_Private):
    """A PostgreSQL cluster in a temp folder of its own, listening on 127.0.0.1 only,
    database ``soak``; as a context manager, started for the ``with`` block, then stopped and
    removed.

    ``fsync`` is off: the data survives a clean stop (what :meth:`stop` does), not a crash of
    the machine, which is all a test needs and spares the shared disk.
    """

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = found[-1] if found else shutil.which("initdb")
        if initdb is None:
            raise ServerUnavailable("PostgreSQL's initdb is not installed")
        self.bin = Path(initdb).parent
        self._as_postgres = os.geteuid() == 0
        # Directly under the temp root: user postgres must reach it, and the socket path
        # must stay short.
        self.folder = Path(tempfile.mkdtemp(prefix="jobstatus-pg-"))
        if self._as_postgres:
            shutil.chown(self.folder, "postgres")
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.port = free_port()

    def close(self) -> None:
        """Stop the server and remove its folder."""
        if self.data.exists():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, application_name: str) -> str:
        """The store URL; connections made through it carry ``application_name``."""
        return (
            f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/soak"
            f"?application_name={application_name}"
        )

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        return subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=120, check=check
        )

    def start(self) -> PrivatePostgres:
        """initdb on first use, then start the server and wait until it answers."""
        if not self.data.exists():
            try:
                self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust",
                          "-U", "postgres", "-E", "UTF8", "--no-sync")  # fmt: skip
            except (OSError, subprocess.CalledProcessError) as exc:
                raise ServerUnavailable(f"initdb failed: {getattr(exc, 'stderr', exc)}") from exc
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")  # fmt: skip
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                      "-l", str(self.log), "-w", "start")  # fmt: skip
        except subprocess.CalledProcessError as exc:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise ServerUnavailable(f"PostgreSQL did not start: {exc.stderr}\n{log}") from exc
        if not self._database_exists():
            with self._connect("postgres") as conn:
                conn.execute("CREATE DATABASE soak")
        return self

    def stop(self) -> None:
        """A fast shutdown: open transactions are rolled back, clients cut off."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop",
                  check=False)  # fmt: skip

    def _connect(self, database: str) -> Any:
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database,
            autocommit=True, connect_timeout=5, application_name="soak-monitor",
        )  # fmt: skip

    def _database_exists(self) -> bool:
        with self._connect("postgres") as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'soak'")
            return found.fetchone() is not None

    def connections(self) -> dict[str, int] | None:
        """Client connections to database ``soak`` by application name (this query's own
        left out); None when the server does not answer."""
        try:
            with self._connect("soak") as conn:
                rows = conn.execute(
                    "SELECT application_name, count(*) FROM pg_stat_activity "
                    "WHERE datname = 'soak' AND pid <> pg_backend_pid() GROUP BY 1"
                ).fetchall()
        except Exception:
            return None
        return {str(name): int(count) for name, count in rows}


class PrivateRedis(_Private):
    """A ``redis-server`` on a free port whose data lives in ``folder``'s append-only file
    (``appendfsync everysec``; a clean stop writes it out), nothing shared; as a context
    manager, started for the ``with`` block and stopped after it."""

    def __init__(self, folder: Path) -> None:
        if shutil.which("redis-server") is None:
            raise ServerUnavailable("redis-server is not installed")
        self.folder = folder
        self.log = folder / "redis.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, client_name: str) -> str:
        """The store URL; connections made through it carry ``client_name``."""
        return f"redis://127.0.0.1:{self.port}/0?client_name={client_name}"

    def start(self) -> PrivateRedis:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                 "--dir", str(self.folder)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        process = self.process

        def ready() -> bool:  # data answered: the append-only file is loaded
            if process.poll() is not None:
                raise ServerUnavailable(f"redis-server exited:\n{self.log.read_text()[-3000:]}")
            import redis

            client = redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=5)
            try:
                client.get("jobstatus-private-redis-probe")
                return True
            except redis.RedisError:  # refused, or LOADING
                return False
            finally:
                client.close()

        _until(ready, "redis-server", self.log)
        return self

    def close(self) -> None:
        """Stop the server; its folder is the caller's."""
        self.stop()

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file out and exits."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)

    def connections(self) -> dict[str, int] | None:
        """Client connections by client name (this query's own left out); None when the
        server does not answer."""
        import redis

        client = redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=5)
        try:
            clients = client.client_list()
            me = client.client_id()
        except redis.RedisError:
            return None
        finally:
            client.close()
        counts: dict[str, int] = {}
        for entry in clients:
            if int(entry["id"]) != me:
                counts[entry["name"]] = counts.get(entry["name"], 0) + 1
        return counts

"""A real server to test against: gunicorn in a subprocess on a free loopback port.

:class:`Gunicorn` starts any gunicorn command line and waits until every worker has booted;
:func:`serve_command` is ``jobstatus serve`` as a user runs it; :data:`LOG_PROBLEMS` finds the
lines of gunicorn's error log that mean a worker or a connection went wrong.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["LOG_PROBLEMS", "MOTO_SERVER", "Gunicorn", "serve_command"]

#: Lines of a gunicorn error log that mean a worker or a connection went wrong.
LOG_PROBLEMS = re.compile(
    r"Traceback|WORKER TIMEOUT|Worker .* was sent|SSL error|bad record mac|"
    r"commands out of sync|Exception in worker|\[ERROR\]",
    re.IGNORECASE,
)


#: A Python program that serves moto's S3 in the process it runs in, on a free loopback port,
#: and prints the port: ``subprocess.Popen([sys.executable, "-c", MOTO_SERVER], stdout=PIPE)``.
MOTO_SERVER = """
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server

class Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass

server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app),
                     threaded=True, request_handler=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
"""


def serve_command(store_url: str, workers: int) -> list[str]:
    """The arguments after the interpreter for ``jobstatus serve`` on a port of its choosing."""
    return ["-m", "jobstatus", "serve", "--store", store_url, "--port", "0",
            "--workers", str(workers)]  # fmt: skip


class Gunicorn:
    """A gunicorn server in a subprocess of its own session, its error log in a file.

    ``command`` is the argument list after the Python interpreter; with ``--bind 127.0.0.1:0``
    gunicorn picks the port, which :meth:`start` reads back from the log. Used as a context
    manager, the server runs for the ``with`` block and is stopped (SIGTERM, then SIGKILL to
    its whole process group) after it.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        workers: int,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.workers = workers
        self.error_log = log_dir / f"gunicorn-{uuid.uuid4().hex[:8]}.log"
        self.env = {**os.environ, **(env or {})}
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Gunicorn:
        """Start the server; return once it listens and all its workers have booted."""
        with open(self.error_log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, *self.command],
                env=self.env,
                stdout=subprocess.DEVNULL,  # the access log
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            listening = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
            if listening and text.count("Booting worker") >= self.workers:
                self.port = int(listening.group(1))
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not start:\n{self.log()[-3000:]}")

    def log(self) -> str:
        """The error log so far."""
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def problems(self) -> list[str]:
        """The error log's lines that match :data:`LOG_PROBLEMS`."""
        return [line for line in self.log().splitlines() if LOG_PROBLEMS.search(line)]

    def worker_pids(self) -> set[int]:
        return {int(p) for p in re.findall(r"Booting worker with pid: (\d+)", self.log())}

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

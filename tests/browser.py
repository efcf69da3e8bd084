"""A real browser and real servers for the dashboard's tests (and the docs' screenshots).

- :func:`chromium` finds Debian's ``chromium`` and ``chromedriver`` (``apt-get install chromium
  chromium-driver``); nothing is downloaded.
- :func:`open_browser` starts it headless, with a fresh profile, no background networking, the
  browser log on, and two hooks installed before any page script runs: every Content Security
  Policy violation and every ``alert``/``confirm``/``prompt`` is recorded in the page
  (:func:`violations`, :func:`dialogs`).
- :class:`WSGIServer` and :class:`ASGIServer` serve an app from a thread on 127.0.0.1 (werkzeug's
  threaded server; uvicorn), counting the requests they answer.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER_NAMES = ("chromedriver",)
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--password-store=basic",
    "--hide-scrollbars",
)

# Installed before any script of a page: records CSP violations and native dialogs, which a
# test then reads back (a dialog would also block the driver; these never open one).
_HOOKS = """
window.__violations = [];
window.__dialogs = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});
for (const name of ["alert", "confirm", "prompt"]) {
  const real = window[name];
  window[name] = (...args) => { window.__dialogs.push(name + ": " + String(args[0])); };
}
"""


def chromium() -> tuple[str, str] | None:
    """``(browser, driver)`` executables, or None when either is missing."""
    browser = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    driver = next((p for p in map(shutil.which, CHROMEDRIVER_NAMES) if p), None)
    return (browser, driver) if browser and driver else None


@contextmanager
def open_browser(
    *, width: int = 1280, height: int = 900, dark: bool = False, scale: float = 1.0
) -> Iterator[Any]:
    """A headless Chromium driven by Selenium, with a fresh profile removed afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = chromium()
    if found is None:
        raise RuntimeError("chromium and chromedriver are not installed")
    browser, driver_path = found
    profile = tempfile.mkdtemp(prefix="jobstatus-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--force-device-scale-factor={scale}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _HOOKS})
        set_viewport(driver, width, height, scale)
        driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]},
        )
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def set_viewport(driver: Any, width: int, height: int, scale: float = 1.0) -> None:
    """The page's viewport in CSS pixels (any width, 320 included: the window has a minimum)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": width < 500},
    )


def violations(driver: Any) -> list[str]:
    """The CSP violations the current page reported."""
    return list(driver.execute_script("return window.__violations || []"))


def dialogs(driver: Any) -> list[str]:
    """The alert/confirm/prompt calls the current page made."""
    return list(driver.execute_script("return window.__dialogs || []"))


def browser_log(driver: Any) -> list[dict[str, Any]]:
    """The browser's console and network log entries since the last call."""
    return list(driver.get_log("browser"))


# -- servers ------------------------------------------------------------------------------


class _Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.paths: list[str] = []

    def add(self, path: str) -> None:
        with self.lock:
            self.paths.append(path)

    def take(self) -> list[str]:
        """The paths asked since the last call."""
        with self.lock:
            paths, self.paths = self.paths, []
        return paths


class WSGIServer:
    """A WSGI app served by werkzeug's threaded server on 127.0.0.1, from a daemon thread;
    ``prefix`` mounts it under a path (``SCRIPT_NAME``) as a host app would."""

    def __init__(self, app: Callable[..., Iterable[bytes]], prefix: str = "") -> None:
        from werkzeug.serving import make_server

        self.requests = _Counter()
        counted = self._count(app)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self._server = make_server("127.0.0.1", 0, counted, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}{prefix}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _count(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            self.requests.add(environ.get("PATH_INFO", ""))
            return app(environ, start_response)

        return counted

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


class ASGIServer:
    """An ASGI app served by uvicorn on 127.0.0.1, from a thread with its own event loop."""

    def __init__(self, app: Any, prefix: str = "") -> None:
        import uvicorn

        self.requests = _Counter()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}{prefix}"

        async def counted(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                self.requests.add(scope["path"])
            await app(scope, receive, send)

        config = uvicorn.Config(counted, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._sock = sock
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            task = loop.create_task(self._server.serve(sockets=[sock]))
            loop.call_soon(started.set)
            loop.run_until_complete(task)
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        started.wait(10)
        for _ in range(200):
            if self._server.started:
                break
            threading.Event().wait(0.05)

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


def screenshot(driver: Any, path: Path, *, width: int, max_height: int = 4000) -> None:
    """Save a PNG of the page at ``width`` CSS pixels, as tall as its content (at most
    ``max_height``)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    set_viewport(driver, width, min(max(int(height), 200), max_height))
    driver.save_screenshot(str(path))

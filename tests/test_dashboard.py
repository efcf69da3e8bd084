"""The dashboard's route helper and its files, without a browser: which file answers which path,
with which headers, on every adapter, under a prefix; what the files may not contain; and that
the wheel ships them. The page's behaviour in a real browser is test_dashboard_browser.py."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest

from jobstatus import StatusService, open_store
from jobstatus.dashboard import (
    CONTENT_SECURITY_POLICY,
    DASHBOARD_PATH,
    SECURITY_HEADERS,
    Dashboard,
)
from jobstatus.store import Store
from tests.clients import ADAPTERS, Answer

ROOT = Path(__file__).resolve().parents[1]
FILES = resources.files("jobstatus.dashboard")
ADAPTER_PARAMS = [pytest.param(name, marks=marks, id=name) for name, (_, marks) in ADAPTERS.items()]


@pytest.fixture
def store() -> Iterator[Store]:
    with open_store("memory://") as store:
        yield store


class _Page(HTMLParser):
    """What the page's markup holds: its tags with their attributes, and inline text in
    ``<script>``/``<style>``."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag

    def handle_data(self, data: str) -> None:
        if self._open in ("script", "style") and data.strip():
            self.inline.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._open = None


def parse(html: bytes) -> _Page:
    page = _Page()
    page.feed(html.decode("utf-8"))
    return page


def assets_of(page: _Page) -> list[str]:
    return [
        attrs.get("src") or attrs.get("href") or ""
        for tag, attrs in page.tags
        if (tag == "script" and "src" in attrs) or (tag == "link" and "href" in attrs)
    ]


# -- the helper --------------------------------------------------------------------------------


def test_the_page_is_revalidated_and_names_its_files_by_their_hash() -> None:
    dashboard = Dashboard()
    reply = dashboard.respond("GET", DASHBOARD_PATH)
    headers = dict(reply.headers)
    assert reply.status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["ETag"] == f'"{hashlib.sha256(reply.body).hexdigest()[:32]}"'
    names = assets_of(parse(reply.body))
    sources = {"dashboard.js", "dashboard.css", "icon.svg"}
    assert len(names) == len(sources)
    for name in names:
        stem, digest, suffix = name.split(".")
        source = f"{stem}.{suffix}"
        assert source in sources
        body = FILES.joinpath(source).read_bytes()
        assert digest == hashlib.sha256(body).hexdigest()[:16]
        asset = dashboard.respond("GET", DASHBOARD_PATH + name)
        assert asset.status == 200
        assert asset.body == body
        asset_headers = dict(asset.headers)
        assert asset_headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert asset_headers["ETag"] == f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        assert (
            asset_headers["Content-Type"]
            == {
                "js": "text/javascript; charset=utf-8",
                "css": "text/css; charset=utf-8",
                "svg": "image/svg+xml",
            }[suffix]
        )


@pytest.mark.parametrize("path", [DASHBOARD_PATH, None])
@pytest.mark.parametrize(
    "condition", ["{tag}", "W/{tag}", '"other", {tag}', "*"], ids=["tag", "weak", "list", "any"]
)
def test_if_none_match_gives_a_304_with_the_tag(path: str | None, condition: str) -> None:
    dashboard = Dashboard()
    if path is None:  # the script
        path = DASHBOARD_PATH + next(n for n in dashboard.assets if n.endswith(".js"))
    tag = dict(dashboard.respond("GET", path).headers)["ETag"]
    reply = dashboard.respond("GET", path, condition.format(tag=tag))
    assert reply.status == 304
    assert reply.body == b""
    headers = dict(reply.headers)
    assert headers["ETag"] == tag
    assert "Content-Type" not in headers
    assert dashboard.respond("GET", path, '"something-else"').status == 200


def test_head_has_the_headers_and_no_body() -> None:
    dashboard = Dashboard()
    get, head = dashboard.respond("GET", DASHBOARD_PATH), dashboard.respond("HEAD", DASHBOARD_PATH)
    assert (head.status, head.headers, head.body) == (200, get.headers, b"")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", DASHBOARD_PATH, 405),
        ("DELETE", DASHBOARD_PATH + "dashboard.js", 405),
        ("GET", DASHBOARD_PATH + "dashboard.js", 404),  # only by its hashed name
        ("GET", DASHBOARD_PATH + "dashboard.0000000000000000.js", 404),
        ("GET", DASHBOARD_PATH + "index.html", 404),
        ("GET", DASHBOARD_PATH + "__init__.py", 404),
        ("GET", DASHBOARD_PATH + "x/../icon.svg", 404),
    ],
)
def test_other_methods_and_names_are_json_errors(method: str, path: str, status: int) -> None:
    reply = Dashboard().respond(method, path)
    assert reply.status == status
    assert reply.parsed()["message"]
    headers = dict(reply.headers)
    assert headers["Content-Type"] == "application/json"
    if status == 405:
        assert headers["Allow"] == "GET, HEAD"


def test_the_bare_path_redirects_relative_to_itself() -> None:
    reply = Dashboard().respond("GET", DASHBOARD_PATH.rstrip("/"))
    assert reply.status == 308
    assert dict(reply.headers)["Location"] == "dashboard/"  # works under any prefix


def test_every_answer_carries_the_security_headers() -> None:
    dashboard = Dashboard()
    replies = [
        dashboard.respond("GET", DASHBOARD_PATH),
        dashboard.respond("GET", DASHBOARD_PATH + next(iter(dashboard.assets))),
        dashboard.respond(
            "GET", DASHBOARD_PATH, dict(dashboard.respond("GET", DASHBOARD_PATH).headers)["ETag"]
        ),
        dashboard.respond("GET", DASHBOARD_PATH + "nope"),
        dashboard.respond("PUT", DASHBOARD_PATH),
        dashboard.respond("GET", DASHBOARD_PATH.rstrip("/")),
    ]
    for reply in replies:
        headers = dict(reply.headers)
        for name, value in SECURITY_HEADERS:
            assert headers[name] == value, (reply.status, name)
    policy = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == "'self'"  # nothing inline
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert policy["require-trusted-types-for"] == "'script'"
    assert dict(SECURITY_HEADERS)["X-Content-Type-Options"] == "nosniff"
    assert dict(SECURITY_HEADERS)["Referrer-Policy"] == "no-referrer"


def test_the_page_learns_cancel_and_max_wait_from_the_service(store: Store) -> None:
    plain = Dashboard.for_service(StatusService(store, api_keys=["k"]))
    cancelling = Dashboard.for_service(
        StatusService(store, api_keys=["k"], allow_cancel=True, max_wait=7)
    )
    root = dict(parse(plain.assets[""].body).tags)["html"]
    assert root["data-allow-cancel"] == "false"
    assert root["data-max-wait"] == "30"
    root = dict(parse(cancelling.assets[""].body).tags)["html"]
    assert root["data-allow-cancel"] == "true"
    assert root["data-max-wait"] == "7"
    assert plain.assets[""].etag != cancelling.assets[""].etag


# -- what the files may hold -------------------------------------------------------------------


def test_the_page_has_no_inline_script_style_or_handler() -> None:
    page = parse(Dashboard().assets[""].body)
    assert page.inline == []
    for tag, attrs in page.tags:
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        assert tag != "style"
        if tag == "script":
            assert attrs.get("type") == "module"
            assert attrs.get("src")
    for name in assets_of(page):  # relative: the page works under any prefix
        assert "/" not in name
        assert ":" not in name


def test_the_files_fetch_nothing_from_elsewhere() -> None:
    for name in ("index.html", "dashboard.js", "dashboard.css", "icon.svg"):
        text = FILES.joinpath(name).read_text("utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), name
        assert "@import" not in text
        assert "//cdn" not in text
    assert "url(" not in FILES.joinpath("dashboard.css").read_text("utf-8")


def test_the_script_never_writes_markup_or_evaluates_text() -> None:
    script = FILES.joinpath("dashboard.js").read_text("utf-8")
    code = re.sub(r"//[^\n]*", "", script)  # comments may name what the code avoids
    for sink in (
        r"\.innerHTML",
        r"\.outerHTML",
        r"insertAdjacentHTML",
        r"document\.write",
        r"\beval\(",
        r"new Function",
        r"createContextualFragment",
        r"srcdoc",
        r"javascript:",
        r"setAttribute\(\s*[\"']on",
        r"setTimeout\(\s*[\"'`]",
        r"localStorage",  # the key lives in sessionStorage only
    ):
        assert not re.search(sink, code), sink
    assert "sessionStorage" in code
    assert '"x-api-key"' in code


# -- on every adapter --------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTER_PARAMS)
@pytest.mark.parametrize("prefix", ["", "/ops/status"])
def test_every_adapter_serves_the_same_files(store: Store, adapter: str, prefix: str) -> None:
    service = StatusService(store, api_keys=["k"], allow_cancel=True)
    client = ADAPTERS[adapter][0](service, dashboard=True, prefix=prefix)
    expected = Dashboard.for_service(service)
    for name, asset in expected.assets.items():
        answer = client("GET", prefix + DASHBOARD_PATH + name)
        assert answer.status == 200, (adapter, name)
        assert answer.body == asset.body
        for header, value in asset.headers():
            assert answer.headers[header.lower()] == value
        again = client("GET", prefix + DASHBOARD_PATH + name, headers={"If-None-Match": asset.etag})
        assert again.status == 304
        assert again.body == b""
    moved = client("GET", prefix + DASHBOARD_PATH.rstrip("/"))
    assert moved.status == 308
    assert moved.headers["location"] == "dashboard/"
    missing = client("GET", prefix + DASHBOARD_PATH + "nope.js")
    assert missing.status == 404
    assert missing.json()["message"]
    posted = client("POST", prefix + DASHBOARD_PATH)
    assert posted.status == 405
    assert posted.headers["allow"] == "GET, HEAD"
    # the service's routes are still there, beside the page
    listed = client("GET", prefix + "/v1/toolkit/jobs", headers={"x-api-key": "k"})
    assert listed.status == 200


@pytest.mark.parametrize("adapter", ADAPTER_PARAMS)
def test_no_dashboard_unless_asked(store: Store, adapter: str) -> None:
    client = ADAPTERS[adapter][0](StatusService(store, api_keys=["k"]))
    answer: Answer = client("GET", DASHBOARD_PATH)
    assert answer.status == 404


# -- packaging ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_wheel_ships_the_dashboard(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if n.startswith("jobstatus/dashboard/")}
        for name in ("index.html", "dashboard.js", "dashboard.css", "icon.svg", "__init__.py"):
            path = f"jobstatus/dashboard/{name}"
            assert path in shipped
            assert archive.read(path) == (ROOT / path).read_bytes()

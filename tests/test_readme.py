"""README.md works as pasted: every Python block runs (in a fresh folder, printing what its
comments say), every shell block parses and names commands, sub-commands, options, extras and
files that exist, and the shell walkthroughs run against real servers."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
BIN = str(Path(sys.executable).parent)  # where this environment's console scripts are
EXAMPLE_EXTRAS = {"examples/flask_app.py": "flask", "examples/fastapi_app.py": "fastapi"}
#: Programs a reader is expected to have besides Python's.
SYSTEM_TOOLS = {"curl"}


def blocks(language: str) -> list[tuple[str, str]]:
    """``(section heading, code)`` of every fenced block in ``language``."""
    found, heading = [], ""
    for match in re.finditer(r"^## ([^\n]*)$|^```(\w*)\n(.*?)^```$", README, re.M | re.S):
        if match[1] is not None:
            heading = match[1]
        elif match[2] == language:
            found.append((heading, match[3]))
    return found


def block_id(heading: str, code: str) -> str:
    return f"{heading}: {code.strip().splitlines()[0][:40]}"


def fresh_env(**extra: str) -> dict[str, str]:
    """The reader's shell: no jobstatus configuration, this checkout's code, this venv's tools."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JOBSTATUS_") and k not in {"API_KEY", "LOCAL_STORAGE_PATH", "PORT"}
    }
    env.update(PYTHONPATH=str(ROOT), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    env.update(extra)
    return env


def run(argv: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """A command in the reader's shell, its output captured."""
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=cwd, env=fresh_env(), timeout=120, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_readme_has_the_blocks_these_tests_read() -> None:
    headings = {heading for heading, _ in blocks("sh")}
    assert {"The two commands", "A first status", "In your own app"} <= headings
    assert len(blocks("python")) >= 3
    assert not blocks(""), "a fenced block without a language is neither run nor checked"


# -- Python blocks ------------------------------------------------------------------------------

PYTHON_BLOCKS = [pytest.param(code, id=block_id(h, code)) for h, code in blocks("python")]


@pytest.mark.parametrize("code", PYTHON_BLOCKS)
def test_a_python_block_runs_as_pasted(code: str, tmp_path: Path) -> None:
    for module in re.findall(r"^from (flask|fastapi) import", code, re.M):
        pytest.importorskip(module)
    result = run([sys.executable, "-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # ``print(...)  # 200 queued``: the comment is what the line prints.
    expected = re.findall(r"^print\(.*\)  # (.*)$", code, re.M)
    assert result.stdout.splitlines() == expected


# -- shell blocks: syntax, and every name they use --------------------------------------------

SHELL_BLOCKS = [pytest.param(code, id=block_id(h, code)) for h, code in blocks("sh")]
SEPARATOR = set("();<>|&\n")


def commands(code: str) -> list[list[str]]:
    """The simple commands of a shell block, each as its words, variable assignments left out
    (``A=1 cmd x`` → ``["cmd", "x"]``; ``v=$(cmd x)`` → ``["cmd", "x"]``)."""
    lexer = shlex.shlex(code.replace("\\\n", " "), posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace, lexer.commenters, lexer.whitespace_split = " \t\r", "", True
    found: list[list[str]] = []
    current: list[str] = []
    in_comment = False
    for token in lexer:
        if set(token) <= SEPARATOR:
            if current:
                found.append(current)
            current, in_comment = [], in_comment and "\n" not in token
        elif in_comment or token.startswith("#"):
            in_comment = True
        elif current or not re.fullmatch(r"[A-Za-z_]\w*=.*", token):
            current.append(token)
    if current:
        found.append(current)
    return found


def test_commands_are_found_as_a_shell_reads_them() -> None:
    code = 'A=1 one x "y z" # note\nv=$(two | three -c "a; b") && four \\\n  --flag &\n'
    assert commands(code) == [
        ["one", "x", "y z"],
        ["two"],
        ["three", "-c", "a; b"],
        ["four", "--flag"],
    ]


@pytest.mark.parametrize("code", SHELL_BLOCKS)
def test_a_shell_block_parses(code: str) -> None:
    result = subprocess.run(["bash", "-n"], input=code, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def cli_help(*words: str) -> str:
    result = run([sys.executable, "-m", "jobstatus", *words, "--help"])
    assert result.returncode == 0, f"jobstatus {' '.join(words)}: {result.stderr}"
    return result.stdout


def is_shell_builtin(name: str) -> bool:
    kind = subprocess.run(
        ["bash", "-c", f"type -t {shlex.quote(name)}"], capture_output=True, text=True, check=False
    )
    return kind.stdout.strip() in {"builtin", "keyword"}


@pytest.mark.parametrize("code", SHELL_BLOCKS)
def test_a_shell_block_names_what_exists(code: str) -> None:
    installed = set()  # programs a `pip install` earlier in the block brings
    for words in commands(code):
        program, args = words[0], words[1:]
        if program == "pip":
            assert args[0] == "install", words
            for spec in args[1:]:
                match = re.fullmatch(r"\.\[([\w,]+)\]", spec)
                if match:  # this project's extras
                    extras = set(match[1].split(","))
                    assert extras <= set(PYPROJECT["project"]["optional-dependencies"]), spec
                elif not spec.startswith("-"):
                    installed.add(spec)
        elif program == "jobstatus":
            assert "jobstatus" in PYPROJECT["project"]["scripts"]
            sub = args[0]
            assert sub in cli_help(), f"no sub-command {sub!r}"
            for option in (a.split("=")[0] for a in args[1:] if a.startswith("--")):
                assert option in cli_help(sub), f"jobstatus {sub} has no {option}"
        elif program == "python":
            files = [a for a in args if a.endswith(".py")]
            for file in files:
                assert (ROOT / file).is_file(), file
                extra = EXAMPLE_EXTRAS[file]  # an example names its install line beside it
                assert f'pip install -e ".[{extra}]"' in code, f"{file} without its extra"
            if not files:
                assert args[0] == "-c", words
                compile(args[1], "<README>", "exec")
        elif program not in SYSTEM_TOOLS and program not in installed:
            assert is_shell_builtin(program), f"{program!r}: not a command this README may use"


def test_each_example_run_line_states_the_examples_own_port() -> None:
    for file in EXAMPLE_EXTRAS:
        port = re.search(r"^PORT = (\d+)$", (ROOT / file).read_text(), re.M)
        assert port, file
        # The sentence just above the block that runs it names that port.
        before = README[: README.index(f"python {file}")].rsplit("```sh", 1)[0][-200:]
        assert f"127.0.0.1:{port[1]}" in before, (file, before)
    assert "127.0.0.1:8080" in README  # jobstatus serve's, different from both


# -- the walkthroughs, run ----------------------------------------------------------------------


def section(heading: str, index: int = 0) -> str:
    return [code for h, code in blocks("sh") if h == heading][index]


@contextmanager
def running(argv: list[str], cwd: Path, **env: str) -> Iterator[subprocess.Popen[str]]:
    """A process group that is stopped, whatever happens, when the block ends."""
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=fresh_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=30)


def envelopes(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"endpoint"')]


@pytest.mark.slow
@pytest.mark.extras
def test_a_first_status_runs_as_pasted(tmp_path: Path) -> None:
    """The block alone, in a fresh folder, on a machine where the server is slow to start
    (a shim delays ``jobstatus serve`` by two seconds): the block waits for it by itself, and
    leaves no server behind."""
    pytest.importorskip("gunicorn")
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed here")
    real = shutil.which("jobstatus", path=fresh_env()["PATH"])
    assert real, "the jobstatus command is not installed (pip install -e .)"
    shim = tmp_path / "slow" / "jobstatus"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\n[ "$1" = serve ] && sleep 2\nexec {shlex.quote(real)} "$@"\n')
    shim.chmod(0o755)
    port = free_port()
    code = section("A first status").replace("8080", str(port))
    path = f"{shim.parent}{os.pathsep}{fresh_env()['PATH']}"
    with running(["bash", "-c", code], tmp_path, PATH=path) as shell:
        out, err = shell.communicate(timeout=120)
    assert shell.returncode == 0, err
    answers = envelopes(out)
    assert len(answers) == 1, (out, err)
    answer = answers[0]
    assert (answer["code"], answer["job_id"]) == (200, "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7")
    assert answer["response"]["response"] == {"result": 42}  # type: ignore[index]
    with socket.socket() as again:  # `kill $!` stopped the server: its port is free
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 30  # gunicorn's graceful stop, bounded
        while True:
            try:
                again.bind(("127.0.0.1", port))
                break
            except OSError:
                assert time.monotonic() < deadline, "the block left its server running"
                time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.extras
@pytest.mark.parametrize("run_block", [0, 1], ids=["flask", "fastapi"])
def test_the_example_walkthrough_runs_as_pasted(run_block: int) -> None:
    """The README's run line for the example, then its submit-and-poll block, as written but
    for the port."""
    run_line = section("In your own app", run_block).splitlines()[-1]
    file = re.search(r"examples/\w+\.py", run_line)
    assert file, run_line
    pytest.importorskip(EXAMPLE_EXTRAS[file[0]])
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed here")
    port = free_port()
    variables = dict(word.split("=", 1) for word in shlex.split(run_line) if "=" in word)
    program = [word for word in shlex.split(run_line) if "=" not in word]
    assert program[0] == "python", run_line
    with running([sys.executable, *program[1:]], ROOT, PORT=str(port), **variables) as server:
        deadline = time.monotonic() + 30
        while True:  # the reader waits for the server to start before the second terminal
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "the example never started listening"
                time.sleep(0.05)
        walkthrough = section("In your own app", 2).replace("8081", str(port))
        result = run(["bash", "-c", walkthrough])
    assert result.returncode == 0, result.stderr
    answers = envelopes(result.stdout)
    assert len(answers) == 1, (result.stdout, result.stderr)
    answer = answers[0]
    assert answer["code"] == 200
    assert answer["response"]["job_status"] in {"queued", "running", "done"}  # type: ignore[index]

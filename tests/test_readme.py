"""Every command the README shows works as written, on a copy of the repository.

How the copy is made
    The files a fresh clone of the next commit would hold (``git ls-files --cached --others
    --exclude-standard``: tracked files plus new files git does not ignore) are copied to a
    temporary folder, modification times kept. ``.venv`` in the copy is a **symlink to this
    checkout's venv** rather than a new install: the README's commands name ``.venv/bin/...``
    literally, so they run unchanged, and a fresh install would take minutes and the network
    (``make test`` installs before it runs this suite, which is what a fresh clone does). Passing
    ``VENV=`` to make instead would change the commands as written. Because the venv is shared,
    the test first asks ``make -q install`` and stops if make would reinstall (that would
    install the copy, editable, into this checkout's venv). ``PYTHONPATH`` points at the copy, so
    the copy's code runs (the venv's editable install points at this checkout), and ``PATH``
    loses any activated venv, so no command relies on one.

How each command is checked
    - Fenced ``bash`` blocks: one command a line (``\\`` continues a line, ``#`` starts a comment).
      ``5006`` in a command becomes a free port, and ``PORT`` is set to it (the Makefile's
      ``PORT ?= 5006`` takes it). A command must exit 0.
    - A command ending in ``&`` and ``make run`` start a server (on 127.0.0.1, the default
      address): the test waits for ``/health``, checks the admin key and the one-time sign-in
      link ``make run`` prints, and stops the server (its process group) at the end of the
      README section; the section's later commands run against it.
    - ``curl`` commands run with ``-sS -w '\\n%{http_code}'`` appended: they must answer 200
      with a JSON body that is not ``"success": false``.
    - ``make test``, ``make lab``, ``make bench`` and ``make gpu-check`` are dry runs
      (``make -n``): ``make test`` is this suite (it cannot run inside itself), ``make lab``
      opens JupyterLab and never exits, ``make bench`` runs every benchmark at full size
      (minutes; ``python -m benchmarks ... --quick`` is run for real), ``make gpu-check``
      needs a GPU.
    - A block after ``<!-- readme-test: needs-cuda -->`` needs an NVIDIA GPU, which this
      project's CI does not have: its ``make`` commands are dry runs as if ``pyproject.toml``
      had changed (``make -n -W pyproject.toml``, so the install recipe is shown, with the
      index given), scripts are parsed (``bash -n``), and ``pip install -e ".[extra]"`` is
      checked by the extra existing in ``pyproject.toml``. ``benchmarks/gpu_check.sh`` is what
      a GPU machine runs.
    - Fenced ``python`` blocks run with the venv's Python in the copy.
    - Inline code: ``make ...`` spans are dry runs, ``.venv/bin/...`` spans must be part of a
      fenced command (so they were run), ``from x import y`` spans are imported; links stay
      inside the repository and point at files that exist; the configuration table's flags
      are ``prism serve``'s and its ``PRISM_*`` variables the server's.

Bounded: the whole module takes about a minute on two cores (``--quick``, a two-point grid).
"""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import re
import shutil
import signal
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from tests.serverutil import free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CUDA_MARK = "<!-- readme-test: needs-cuda -->"
README_PORT = "5006"
DRY_RUN_TARGETS = {
    "test": "the suite itself",
    "lab": "JupyterLab never exits",
    "bench": "every benchmark at full size takes minutes",
    "gpu-check": "needs a GPU",
}
SERVER_TARGETS = {"run"}
COMMAND_TIMEOUT_S = 300
SERVER_START_S = 120


# ---------------------------------------------------------------- reading the README


@dataclass
class Command:
    text: str
    lang: str  # "bash" or "python"
    section: str
    line: int
    needs_cuda: bool = False

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.section}): {self.text[:200]}"


def _strip_comment(line: str) -> str:
    """``line`` without a trailing shell comment (a ``#`` after blank space, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def readme_commands(text: str) -> list[Command]:
    """The commands of the fenced ``bash`` and ``python`` blocks, in order."""
    out: list[Command] = []
    section = "(top)"
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = re.match(r"^```(\w+)?\s*$", line)
        if not fence:
            i += 1
            continue
        lang = fence.group(1) or ""
        previous = next((p for p in reversed(lines[:i]) if p.strip()), "")
        needs_cuda = previous.strip() == CUDA_MARK
        start = i + 1
        i += 1
        body: list[tuple[int, str]] = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append((i + 1, lines[i]))
            i += 1
        i += 1  # the closing fence
        if lang == "python":
            code = "\n".join(t for _, t in body)
            out.append(Command(code, "python", section, start + 1, needs_cuda))
        elif lang in ("bash", "sh", "shell"):
            pending, first = "", 0
            for n, raw in body:
                text_ = _strip_comment(raw) if not pending else raw.rstrip()
                if not pending:
                    first = n
                if text_.endswith("\\"):
                    pending += text_[:-1].strip() + " "
                    continue
                cmd = (pending + text_.strip()).strip()
                pending = ""
                cmd = _strip_comment(cmd)
                if cmd:
                    out.append(Command(cmd, "bash", section, first, needs_cuda))
    return out


def inline_spans(text: str) -> list[str]:
    """Inline code spans outside fenced blocks."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", prose)


COMMANDS = readme_commands(README.read_text())
SECTIONS = list(dict.fromkeys(c.section for c in COMMANDS if not c.needs_cuda))


def _words(cmd: str) -> list[str]:
    """The words of a command after its leading ``NAME=value`` assignments."""
    words = cmd.rstrip("& ").split()
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words.pop(0)
    return words


def _make_target(cmd: str) -> str | None:
    words = _words(cmd)
    if not words or words[0] != "make":
        return None
    targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return targets[0] if targets else ""


# ---------------------------------------------------------------- the copy


class ServerFailed(AssertionError):
    """A server command did not come up (the section's later commands need it)."""


@dataclass
class Clone:
    root: Path
    env: dict[str, str]
    port: int = 0
    servers: list[tuple[subprocess.Popen, Path]] = field(default_factory=list)

    def bash(self, cmd: str, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", cmd],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start_server(self, cmd: str) -> tuple[subprocess.Popen, Path]:
        # Beside the other test servers' logs (see tests/serverutil.py), kept after the run.
        logs = ROOT / os.environ.get("PRISM_TEST_LOGS", "test-artifacts/server-logs")
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"readme-{self.port}-{len(self.servers)}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                ["bash", "-c", cmd.rstrip().rstrip("&").strip()],
                cwd=self.root,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.servers.append((proc, log))
        deadline = time.time() + SERVER_START_S
        while time.time() < deadline:
            if proc.poll() is not None:
                raise ServerFailed(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url("/health"), timeout=1.0).status_code == 200:
                    return proc, log
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise ServerFailed(f"no answer on /health within {SERVER_START_S} s")

    def server_log_tail(self, chars: int = 1500) -> str:
        """The end of the running server's output (where a 500's traceback is)."""
        return self.servers[-1][1].read_text()[-chars:] if self.servers else "(no server)"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop_servers(self) -> None:
        for proc, _ in self.servers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        self.servers.clear()


def _repository_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


def _without_venvs(path: str) -> str:
    """``PATH`` without the ``bin`` folders of virtual environments (no activated venv)."""
    keep = [p for p in path.split(os.pathsep) if not (Path(p).parent / "pyvenv.cfg").exists()]
    return os.pathsep.join(keep)


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Clone:
    venv = ROOT / ".venv"
    if not (venv / "bin" / "python").exists():
        pytest.fail("no .venv in this checkout: run `make install` first")
    root = tmp_path_factory.mktemp("clone") / "prism"
    for name in _repository_files():
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest, follow_symlinks=False)
    (root / ".venv").symlink_to(venv, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRISM_", "VIRTUAL_ENV"))}
    env.update(
        PYTHONPATH=str(root),
        PATH=_without_venvs(env.get("PATH", "/usr/bin:/bin")),
        PYTHONUNBUFFERED="1",
        MPLBACKEND="Agg",
    )
    c = Clone(root, env)
    stale = c.bash("make -q install")
    if stale.returncode != 0:
        pytest.fail(
            "make would reinstall .venv (pyproject.toml is newer than .venv/.installed): run "
            "`make install` first; this test never installs into the shared venv"
        )
    yield c
    c.stop_servers()


# ---------------------------------------------------------------- running one command


def _curl(c: Clone, cmd: Command, text: str) -> None:
    done = c.bash(text + " -sS -w '\\n%{http_code}'", timeout=120)
    assert done.returncode == 0, f"{cmd}\ncurl exited {done.returncode}: {done.stderr[-1500:]}"
    body, _, status = done.stdout.rpartition("\n")
    assert status == "200", (
        f"{cmd}\nanswered {status}: {body[:1000]}\nserver log: ...{c.server_log_tail()}"
    )
    try:
        payload = json.loads(body)
    except ValueError:
        return  # a text answer (none today), checked by its status only
    assert not (isinstance(payload, dict) and payload.get("success") is False), f"{cmd}\n{body}"


def _check_generated_key(c: Clone, log: Path) -> None:
    """``make run`` prints an admin key and a one-time dashboard sign-in link (README): the
    key opens the API, the link signs a browser in (a redirect that sets a cookie)."""
    text = log.read_text()
    m = re.search(r"generated an admin key.*?\n\s+(\S+)\n", text, re.S)
    assert m, f"make run printed no admin key:\n{text[-2000:]}"
    r = httpx.get(
        c.url("/api/v1/gpu/status"), headers={"Authorization": f"Bearer {m.group(1)}"}, timeout=60
    )
    assert r.status_code == 200, r.text[:500]
    link = re.search(r"(http://\S+/login\?token=\S+)", text)
    assert link, f"make run printed no sign-in link:\n{text[-2000:]}"
    r = httpx.get(link.group(1), follow_redirects=False, timeout=60)
    assert r.status_code in (302, 303) and r.headers.get("set-cookie"), (
        r.status_code,
        r.text[:300],
    )


def run_command(c: Clone, cmd: Command) -> None:
    if cmd.lang == "python":
        done = subprocess.run(
            [str(c.root / ".venv/bin/python"), "-c", cmd.text],
            cwd=c.root,
            env=c.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        assert done.returncode == 0, f"{cmd}\n{done.stderr[-3000:]}"
        return
    text = cmd.text.replace(README_PORT, str(c.port))
    words = _words(text)
    target = _make_target(text)
    if target in DRY_RUN_TARGETS:
        done = c.bash(re.sub(r"\bmake\b", "make -n", text, count=1))
        assert done.returncode == 0, f"{cmd}\nmake -n: {done.stderr[-2000:]}"
        assert done.stdout.strip(), f"{cmd}\nmake -n shows no recipe"
        return
    if text.endswith("&") or target in SERVER_TARGETS:
        c.stop_servers()
        _, log = c.start_server(text)
        if target in SERVER_TARGETS and "PRISM_API_KEYS" not in text:
            _check_generated_key(c, log)
        return
    if words and words[0] == "curl":
        _curl(c, cmd, text)
        return
    done = c.bash(text)
    assert done.returncode == 0, (
        f"{cmd}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )


def check_without_gpu(c: Clone, cmd: Command) -> None:
    """A command of a needs-cuda block, checked as far as a machine without a GPU can."""
    words = _words(cmd.text)
    if words[0] == "make":
        done = c.bash(re.sub(r"\bmake\b", "make -n -W pyproject.toml", cmd.text, count=1))
        assert done.returncode == 0, f"{cmd}\n{done.stderr[-2000:]}"
        index = re.search(r"TORCH_INDEX_URL=(\S+)", cmd.text)
        if index:
            assert f"--index-url {index.group(1)} " in done.stdout, done.stdout
        return
    if words[0] == "bash":
        assert (c.root / words[1]).is_file(), f"{cmd}: no {words[1]}"
        done = c.bash(f"bash -n {words[1]}")
        assert done.returncode == 0, f"{cmd}\n{done.stderr}"
        return
    if words[0].endswith("/pip") and "-e" in words:
        extras = re.search(r"\.\[([\w,-]+)\]", cmd.text)
        assert extras, f"{cmd}: an editable install without an extra"
        declared = tomllib.loads((c.root / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]
        for extra in extras.group(1).split(","):
            assert extra in declared, f"{cmd}: pyproject.toml has no extra {extra!r}"
        assert (c.root / words[0]).exists(), f"{cmd}: no {words[0]}"
        return
    raise AssertionError(f"{cmd}: this test does not know how to check it without a GPU")


# ---------------------------------------------------------------- tests


def test_readme_has_commands_of_every_kind():
    """The parser found what the README shows (a test that finds nothing checks nothing)."""
    texts = [c.text for c in COMMANDS]
    assert any(t.startswith("make run") for t in texts)
    assert any(" &" in t and "prism serve" in t for t in texts)
    assert sum(t.startswith("curl") and " -d " in t for t in texts) >= 4
    assert any(c.lang == "python" for c in COMMANDS)
    assert any(c.needs_cuda for c in COMMANDS)
    assert "(top)" in SECTIONS and len(SECTIONS) >= 3


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("section", SECTIONS)
def test_every_command_of_the_section_runs(clone, section):
    """Each command of one README section, in order; every failure is reported (a server
    that does not start ends the section: the commands after it need it)."""
    clone.port = free_port()
    clone.env["PORT"] = str(clone.port)
    failures = []
    try:
        for cmd in COMMANDS:
            if cmd.section != section or cmd.needs_cuda:
                continue
            try:
                run_command(clone, cmd)
            except ServerFailed as exc:
                failures.append(f"{cmd}\n{exc}")
                break
            except (AssertionError, subprocess.TimeoutExpired) as exc:
                failures.append(str(exc))
    finally:
        clone.stop_servers()
    assert not failures, "\n\n".join(failures)


def test_gpu_commands_check_out_without_a_gpu(clone):
    cuda = [c for c in COMMANDS if c.needs_cuda]
    assert cuda
    for cmd in cuda:
        check_without_gpu(clone, cmd)


def test_inline_commands(clone):
    """Commands in the prose: ``make`` spans are valid targets (dry run), ``.venv/bin/...``
    spans are part of a fenced command that ran, ``from ... import ...`` spans import."""
    fenced = " ".join(c.text for c in COMMANDS)
    imports = []
    for span in inline_spans(README.read_text()):
        if span.startswith("make "):
            done = clone.bash(f"make -n {span[5:]}")
            assert done.returncode == 0, f"`{span}`: {done.stderr[-1000:]}"
        elif span.startswith(".venv/bin/"):
            assert span in fenced, f"`{span}` is not part of any command the README shows"
            assert (clone.root / span.split()[0]).exists(), f"`{span}`: no such program"
        elif span.startswith("source "):
            assert (clone.root / span.split()[1]).is_file(), f"`{span}`: no such file"
        elif re.match(r"^from [\w.]+ import \w+", span):
            imports.append(span)
    assert imports
    done = subprocess.run(
        [str(clone.root / ".venv/bin/python"), "-c", "\n".join(imports)],
        cwd=clone.root,
        env=clone.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_links_stay_inside_the_repository():
    text = README.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if re.match(r"^[a-z]+://", link) or link.startswith("#"):
            continue
        target = (ROOT / link.split("#")[0]).resolve()
        assert target.is_relative_to(ROOT), f"{link} points outside the repository"
        assert target.exists(), f"{link} does not exist"
    assert "../" not in text, "a path outside the repository is broken in a clone"


def test_every_domain_has_a_request_body_example():
    """Each route module (a domain, ``gpu`` included) has a curl example that POSTs a body."""
    import widgets.server.routes as routes

    domains = [m.name for m in pkgutil.iter_modules(routes.__path__) if not m.name.startswith("_")]
    assert {"gpu", "pwsa", "finance", "pixels"} <= set(domains)
    posts = [c.text for c in COMMANDS if c.text.startswith("curl") and " -d " in c.text]
    for d in domains:
        assert any(f"/api/v1/{d}/" in t for t in posts), f"no curl example with a body for {d}"


def test_torch_index_is_a_makefile_variable():
    """``TORCH_INDEX_URL`` empty: the configured index; set: PyTorch's wheels from there."""

    def recipe(*args: str) -> str:
        done = subprocess.run(
            ["make", "-n", "-W", "pyproject.toml", "install", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return next(line for line in done.stdout.splitlines() if "torch==" in line)

    assert "--index-url" not in recipe()
    cpu = "https://download.pytorch.org/whl/cpu"
    assert f'--index-url {cpu} "torch==2.13.0"' in recipe(f"TORCH_INDEX_URL={cpu}")


def _notebook_parameters(path: Path) -> set[str]:
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}


def test_batch_grids_name_the_notebooks_parameters():
    """Every ``prism batch`` command's grid and ``-p`` names are parameters of its notebook."""
    batches = [c for c in COMMANDS if "prism batch" in c.text]
    assert batches
    for cmd in batches:
        words = _words(cmd.text)
        notebook = ROOT / words[2]
        params = _notebook_parameters(notebook)
        grid = ROOT / words[words.index("--grid") + 1]
        names = set(yaml.safe_load(grid.read_text()))
        names |= {words[i + 1] for i, w in enumerate(words) if w in ("-p", "--parameter")}
        assert names <= params, f"{cmd}: {names - params} are not parameters of {notebook.name}"


def test_configuration_table_names_real_flags_and_variables():
    """Every flag of the README's configuration table is one ``prism serve`` takes, and every
    ``PRISM_*`` variable is one the server reads."""
    text = README.read_text()
    table = text[text.index("## Configuration") :]
    table = table[: table.index("\n## ")]
    flags = set(re.findall(r"`(--[a-z-]+)`", table))
    variables = set(re.findall(r"`(PRISM_[A-Z_]+)`", table))
    assert {"--no-auth", "--port"} <= flags and "PRISM_API_KEYS" in variables
    done = subprocess.run(
        [str(ROOT / ".venv/bin/prism"), "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert not flags - set(re.findall(r"--[a-z-]+", done.stdout)), done.stdout
    server = (ROOT / "widgets/server/config.py").read_text()
    assert not {v for v in variables if f'"{v}"' not in server}

"""pytest plugin: each test gets its own tmux server, killed afterwards.

Loaded automatically (entry point ``pytest11``) wherever tmux-sane is installed, so
projects that build on sane get the same fixtures. The server starts with
``-f /dev/null``: nobody's ~/.tmux.conf changes what a test sees.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import pytest

from sane.ops.context import Context
from sane.testing.fleet import Fleet, FleetUnavailable, Mode
from sane.tmux.command import SOCKET_ENV, TmuxServer
from sane.tmux.structure import kill_for_good

if TYPE_CHECKING:
    from sane.testing.containers import ContainerFleet, Network
from sane.testing.engine import Service

# Shells started with no rc files: tests must not depend on the machine's dotfiles.
# (ENV=/dev/null: ksh, mksh, ash and posh read $ENV, ksh93 ~/.kshrc without it;
# HISTFILE=/dev/null: ksh93 writes ~/.sh_history by default.)
_CLEAN = "env -u PROMPT_COMMAND ENV=/dev/null HISTFILE=/dev/null PS1='$ '"
SHELLS = {
    "bash": "env -u HISTCONTROL -u PROMPT_COMMAND HISTFILE=/dev/null PS1='$ '"
    " bash --norc --noprofile",
    "dash": "env PS1='$ ' dash",
    "zsh": f"{_CLEAN} zsh -f",
    "ksh93": f"{_CLEAN} ksh93",
    "mksh": f"{_CLEAN} mksh",
    "ash": f"{_CLEAN} busybox ash",
    "yash": f"{_CLEAN} yash --norcfile --noprofile",
    "posh": f"{_CLEAN} posh",
    # --no-config keeps fish's default prompt, which runs git in a repository: `$ `.
    "fish": "env -u PROMPT_COMMAND fish --no-config"
    " -C \"function fish_prompt; printf '%s' '\\$ '; end\"",
}
# The same shells running one command (`-c` appended): the reference outputs.
SHELL_COMMANDS = {
    "bash": ["bash", "--norc", "--noprofile"],
    "dash": ["dash"],
    "zsh": ["zsh", "-f"],
    "ksh93": ["ksh93"],
    "mksh": ["mksh"],
    "ash": ["busybox", "ash"],
    "yash": ["yash"],
    "posh": ["posh"],
    "fish": ["fish", "--no-config"],
}


class TmuxTestServer:
    """A private tmux server with helpers to open panes running a given shell."""

    def __init__(self, socket_name: str) -> None:
        self.server = TmuxServer(socket_name=socket_name, config_file="/dev/null")
        self.socket_name = socket_name

    def start(self) -> None:
        self.server.run("new-session", "-d", "-s", "base", "-x", "200", "-y", "50", SHELLS["bash"])
        self.server.run("set-option", "-g", "history-limit", "10000")
        # Panes sane creates itself (its default `local` pane) get the clean shell too:
        # a login shell's rc files (pyenv rehash, say) must not decide a test's fate.
        self.server.run("set-option", "-g", "default-command", SHELLS["bash"])

    def new_pane(self, shell: str = "bash", session: str = "base") -> str:
        """A new window in ``session`` running ``shell`` (a key of SHELLS or a command)."""
        command = SHELLS.get(shell, shell)
        out = self.server.run(
            "new-window", "-d", "-P", "-F", "#{pane_id}", "-t", f"{session}:", command
        )
        pane = out.strip()
        self.server.run("set-option", "-w", "-t", pane, "window-size", "manual")
        self.server.run("resize-window", "-t", pane, "-x", "200", "-y", "50")
        return pane

    def run(self, *args: str) -> str:
        return self.server.run(*args)

    def kill(self) -> None:
        """Kill the server and remove its socket and sane's lock files for it (without
        this every test left them in the temp directory)."""
        kill_for_good(self.server)


@pytest.fixture
def tmux_server(request: pytest.FixtureRequest) -> Iterator[TmuxTestServer]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    name = f"sane-test-{os.getpid()}-{abs(hash(request.node.nodeid)) % 10**8}"
    srv = TmuxTestServer(name)
    srv.kill()
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture
def sane_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "sane-home"
    monkeypatch.setenv("SANE_HOME", str(home))
    return home


@pytest.fixture
def sane_ctx(tmux_server: TmuxTestServer, sane_home: Path) -> Iterator[Context]:
    ctx = Context(tmux_server.server, home=sane_home)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def cli_env(tmux_server: TmuxTestServer, sane_home: Path) -> dict[str, str]:
    """Environment for running sane's commands as processes against the test server."""
    env = dict(os.environ)
    env[SOCKET_ENV] = tmux_server.socket_name
    env["SANE_HOME"] = str(sane_home)
    return env


def run_process(
    argv: list[str], env: dict[str, str], stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


class FleetFactory(Protocol):
    def __call__(
        self, count: int, mode: Mode = "ports", *, bastion: str | None = None
    ) -> Fleet: ...


@pytest.fixture(scope="session")
def ssh_fleet() -> Iterator[Fleet]:
    """Three real sshd servers s1..s3 on 127.0.0.1 for the whole session (root logins).

    Shared: tests must not stop them or change their keys (use ``make_fleet`` for that),
    and should clean up what they write in the homes.
    """
    try:
        fleet = Fleet(3)
    except FleetUnavailable as exc:
        pytest.skip(f"ssh test fleet unavailable: {exc.reason}")
    try:
        yield fleet
    finally:
        fleet.close()


@pytest.fixture
def make_fleet() -> Iterator[FleetFactory]:
    """``make_fleet(count, mode="ports", bastion=None)``: a private fleet, closed after
    the test (``bastion``: see :class:`Fleet`)."""
    fleets: list[Fleet] = []

    def make(count: int, mode: Mode = "ports", *, bastion: str | None = None) -> Fleet:
        try:
            fleet = Fleet(count, mode, bastion=bastion)
        except FleetUnavailable as exc:
            pytest.skip(f"ssh test fleet ({mode}) unavailable: {exc.reason}")
        fleets.append(fleet)
        return fleet

    try:
        yield make
    finally:
        for fleet in reversed(fleets):
            fleet.close()


# ----------------------------------------------------------------- container fleet
# Real containers through testcontainers (sane.testing.containers): one engine connection
# (a private podman service where no Docker engine answers) per pytest session.

_container_runs: list[dict[str, object]] = []  # what the session-finish check looks at
# Set (to 1) where the container tests must run, as in CI (.ci/run): there a missing
# engine or image fails the test with the reason instead of skipping it.
REQUIRE_CONTAINERS = "SANE_REQUIRE_CONTAINERS"


def _containers_unavailable(reason: str) -> NoReturn:
    message = f"container fleet unavailable: {reason}"
    if os.environ.get(REQUIRE_CONTAINERS) == "1":
        pytest.fail(
            f"{message} ({REQUIRE_CONTAINERS}=1: the container tests must run)", pytrace=False
        )
    pytest.skip(message)


@pytest.fixture(scope="session")
def container_service() -> Iterator[Service]:
    """The Docker API testcontainers talks to; skips with the exact reason when neither a
    Docker engine nor podman can run here (fails, with ``SANE_REQUIRE_CONTAINERS=1``).
    Stopped at the end of the session."""
    from sane.testing.engine import ContainersUnavailable, Service, find_engine

    try:
        service = Service(find_engine())
    except ContainersUnavailable as exc:
        _containers_unavailable(exc.reason)
    _container_runs.append({"service": service, "pid": service.pid, "base": service.directory})
    try:
        yield service
    finally:
        service.close()


class ContainerFleetFactory(Protocol):
    def __call__(
        self,
        count: int = 0,
        image: str = "debian",
        *,
        images: list[str] | None = None,
        network: Network = "published",
    ) -> ContainerFleet: ...


def _container_fleet(service: Service, **kwargs: Any) -> ContainerFleet:
    from sane.testing.containers import ContainerFleet, ContainersUnavailable

    try:
        fleet = ContainerFleet(service=service, **kwargs)
    except ContainersUnavailable as exc:
        _containers_unavailable(exc.reason)
    _container_runs.append({"fleet": fleet, "base": fleet.base})
    return fleet


@pytest.fixture(scope="session")
def container_fleet(container_service: Service) -> Iterator[ContainerFleet]:
    """A mixed fleet for the session: ``deb1..deb3`` (Debian bookworm, OpenSSH, bash) and
    ``bb1..bb3`` (busybox ash behind Dropbear). Shared: tests must not stop them."""
    fleet = _container_fleet(container_service, images=["debian"] * 3 + ["busybox"] * 3)
    try:
        yield fleet
    finally:
        fleet.close()


@pytest.fixture
def make_container_fleet(container_service: Service) -> Iterator[ContainerFleetFactory]:
    """``make_container_fleet(count, image=..., images=[...], network=...)``: closed after
    the test."""
    fleets: list[ContainerFleet] = []

    def make(
        count: int = 0,
        image: str = "debian",
        *,
        images: list[str] | None = None,
        network: Network = "published",
    ) -> ContainerFleet:
        fleet = _container_fleet(
            container_service, count=count, image=image, images=images, network=network
        )
        fleets.append(fleet)
        return fleet

    try:
        yield make
    finally:
        for fleet in reversed(fleets):
            fleet.close()


def container_leftovers() -> list[str]:
    """What this session's container fleets left behind: containers of this process, a
    podman service still running, fleet or service directories. Empty when all is clean."""
    from sane.testing.engine import OWNER_LABEL, EngineError, labelled, owner_token

    problems: list[str] = []
    mine = owner_token()
    for run in _container_runs:
        service = run.get("service")
        if isinstance(service, Service):
            pid = run["pid"]
            if isinstance(pid, int) and Path(f"/proc/{pid}").exists():
                problems.append(f"podman service {pid} still running")
            try:
                left = [
                    cid[:12]
                    for cid, owner in labelled(service.engine, OWNER_LABEL).items()
                    if owner == mine
                ]
            except EngineError as exc:
                problems.append(f"cannot list containers: {exc}")
                continue
            if left:
                problems.append(f"containers left: {', '.join(left)}")
        base = run.get("base")
        if isinstance(base, Path) and base.exists():
            problems.append(f"directory left: {base}")
    return problems


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the session's fixtures are torn down: fail the run if a container fleet
    left a container, its podman service or its files behind."""
    if not _container_runs:
        return
    problems = container_leftovers()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.write_line("container fleet left behind: " + "; ".join(problems), red=True)
    elif reporter is not None:
        reporter.write_line(
            "container fleet: no container, service or directory left behind", green=True
        )

"""The demo fleet (issue 18, repro 10): every session starts in its server's own home
(a pane's ``pwd``, a side channel's relative path), and ``demo fleet stop`` ends
everything the fleet started: the connected sessions too, whose panes' ssh then ends.
Real sshd (sane.demo.fleet), real tmux, real ssh."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sane import errors
from sane.demo import fleet as demo_fleet
from sane.fleet.registry import Registry, Server
from sane.fleet.run import fleet_run
from sane.fleet.ssh import control_path, run_remote
from sane.ops.context import Context
from sane.poll import poll

pytestmark = [pytest.mark.ssh]


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Server]]]:
    try:
        demo_fleet.check_usable()
    except errors.SaneError as exc:
        pytest.skip(f"a demo fleet cannot run here: {exc.message}")
    base = tmp_path_factory.mktemp("demo") / "fleet"
    servers = demo_fleet.start(base, ["d1", "d2"])
    try:
        yield base, servers
    finally:
        demo_fleet.stop(base)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def test_sessions_start_in_each_servers_home(
    sane_ctx: Context, demo: tuple[Path, list[Server]]
) -> None:
    base, servers = demo
    for server in servers:
        Registry(sane_ctx.home).add(server, replace=True)
    homes = demo_fleet.homes(base)
    mark = f"here-{os.getpid()}.txt"
    result = fleet_run(sane_ctx, servers, f'pwd; echo "$SANE_DEMO_SERVER" > {mark}')
    assert result["status"] == "completed", result
    assert [r["output"] for r in result["results"]] == [f"{homes['d1']}\n", f"{homes['d2']}\n"]
    assert (homes["d1"] / mark).read_text() == "d1\n"
    assert run_remote(servers[1], "pwd").stdout == f"{homes['d2']}\n".encode()
    assert not (Path(os.path.expanduser("~")) / mark).exists()


def test_stop_ends_everything_the_fleet_started(
    sane_ctx: Context, demo: tuple[Path, list[Server]]
) -> None:
    base, servers = demo
    for server in servers:
        Registry(sane_ctx.home).add(server, replace=True)
    result = fleet_run(sane_ctx, servers, "(sleep 600 >/dev/null 2>&1 &); echo $$")
    assert result["status"] == "completed", result
    listeners = {int(r["pid"]) for r in demo_fleet._records(base)}
    started = set().union(*(demo_fleet._started_by(pid) for pid in listeners))
    shells = {int(r["output"]) for r in result["results"]}
    assert shells <= started and len(started) > len(listeners) + len(shells)
    clients = [pid for server in servers for pid in _ssh_clients(control_path(server))]
    assert len(clients) >= 2  # the panes' ssh clients, connected
    stopped = demo_fleet.stop(base)
    assert stopped == ["d1", "d2"]
    assert not [pid for pid in started if _alive(pid)]
    # The panes' ssh lost its server: it ends on its own.
    assert poll(lambda: not [pid for pid in clients if _alive(pid)], 20.0, cap=0.1)


def _ssh_clients(control: str) -> list[int]:
    """This machine's ssh processes for one entry (its ControlPath is in their argv)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"ssh") and f"ControlPath={control}".encode() in argv:
            found.append(int(entry))
    return found

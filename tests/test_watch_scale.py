"""``sane watch`` with 1,000 servers (issue #17: big fleets stay usable for people).

Readable: the counts, each tag's, then the servers in trouble first, cut to the
terminal. Cheap: a refresh costs the same tmux commands at 1,000 servers as at 3, and
health is read in the background over the live connections only. The display part
needs no real servers (a registry of 1,000 entries nobody connects to); the health and
runs shown come from real sshd servers and a real tmux."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sane.fleet.health import set_health
from sane.fleet.panes import connect_many
from sane.fleet.registry import Registry, Server
from sane.fleet.watch import HealthReader, live_snapshot, render
from sane.ops.context import Context
from sane.testing.fleet import register
from sane.testing.pytest_plugin import TmuxTestServer
from sane.tmux.command import TmuxServer
from sane.tmux.control import ControlClient


def synthetic(count: int) -> list[dict[str, Any]]:
    """``count`` rows as a snapshot holds them: every 50th unreachable, every 40th
    unhealthy, every 30th without a pane, every 97th running; three tags."""
    rows = []
    for i in range(count):
        gone = i % 50 == 7
        rows.append(
            {
                "server": f"web{i:04d}",
                "host": f"10.0.{i // 250}.{i % 250}:22",
                "tags": [("web", "db", "cache")[i % 3]],
                "pane": None if i % 30 == 5 else f"%{i}",
                "connection": "unreachable"
                if gone
                else "disconnected"
                if i % 30 == 5
                else "connected",
                "run_id": "r0123456789ab" if i % 97 == 3 else None,
                "health": "unhealthy" if i % 40 == 11 else None if gone else "healthy",
                "health_reason": None,
                "version": "1.4.2",
            }
        )
    return rows


def test_a_thousand_servers_fit_the_terminal_trouble_first() -> None:
    rows = synthetic(1000)
    text = render({"servers": rows}, width=100, height=40, health_status="health read 1s ago")
    lines = text.rstrip("\n").split("\n")
    assert len(lines) <= 40 and all(len(line) <= 100 for line in lines), text
    unreachable = sum(r["connection"] == "unreachable" for r in rows)
    disconnected = sum(r["connection"] == "disconnected" for r in rows)
    running = sum(r["run_id"] is not None for r in rows)
    assert lines[0] == (
        f"1000 servers: {1000 - unreachable - disconnected} connected, {unreachable} "
        f"unreachable, {disconnected} disconnected; {running} running"
    )
    assert lines[1].startswith("health: ") and "unhealthy" in lines[1]
    assert lines[1].endswith("(health read 1s ago)")
    tags = [line.split()[0] for line in lines if line.split()[:1] in (["web"], ["db"], ["cache"])]
    assert sorted(tags) == ["cache", "db", "web"], text
    header = next(i for i, line in enumerate(lines) if line.startswith("SERVER"))
    shown = [line.split()[0] for line in lines[header + 2 : -1]]
    by_name = {r["server"]: r for r in rows}
    ranks = [
        0
        if by_name[n]["connection"] == "unreachable"
        else 1
        if by_name[n]["health"] == "unhealthy"
        else 2
        for n in shown
    ]
    assert ranks == sorted(ranks) and ranks[0] == 0, shown  # trouble first
    assert sum(ranks[i] == 0 for i in range(len(ranks))) == min(unreachable, len(shown))
    assert lines[-1].startswith(f"… {1000 - len(shown)} more"), lines[-1]
    # Without a height (a file, --once's reader): every server.
    assert len(render({"servers": rows}).split("\n")) > 1000


def _registry_of(home: Path, extra: int) -> None:
    """``extra`` servers nobody connects to, added to the registry in one write."""
    with Registry(home).locked() as registry:
        registry.servers.extend(
            Server(name=f"far{i:04d}", host="192.0.2.1", port=22, tags=[f"t{i % 7}"])
            for i in range(extra)
        )


def _tmux_commands(ctx: Context, work: Any) -> int:
    """How many tmux commands ``work`` sends, through processes or a control client
    (the two ways sane speaks to tmux), each still sent to the real tmux."""
    count = 0
    run, send = TmuxServer.run, ControlClient.send

    def counted_run(self: TmuxServer, *args: str, **kwargs: Any) -> str:
        nonlocal count
        count += 1
        return run(self, *args, **kwargs)

    def counted_send(self: ControlClient, *commands: str, **kwargs: Any) -> Any:
        nonlocal count
        count += len(commands)
        return send(self, *commands, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TmuxServer, "run", counted_run)
        patch.setattr(ControlClient, "send", counted_send)
        work()
    return count


def test_a_refresh_costs_the_same_tmux_commands_at_1000_servers_as_at_3(
    sane_ctx: Context, ssh_fleet: Any
) -> None:
    servers = register(sane_ctx.home, ssh_fleet)
    set_health(servers[0], "unhealthy", {"version": "9"})
    try:
        reports = connect_many(sane_ctx, servers)
        assert all(r["ok"] for r in reports), reports
        reader = HealthReader(sane_ctx.home, interval=3600)
        live_snapshot(sane_ctx, reader)  # the first refresh starts the health read
        deadline = time.monotonic() + 60
        while reader.read_at is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        small = _tmux_commands(sane_ctx, lambda: live_snapshot(sane_ctx, reader))
        _registry_of(sane_ctx.home, 1000)
        snaps: list[dict[str, Any]] = []
        big = _tmux_commands(sane_ctx, lambda: snaps.append(live_snapshot(sane_ctx, reader)))
        assert big == small <= 2, (small, big)
        # Health was read over the three live connections only, and is shown.
        assert sorted(reader.reports) == sorted(s.name for s in servers)
        rows = {r["server"]: r for r in snaps[0]["servers"]}
        assert len(rows) == 1003 and rows["far0999"]["connection"] == "disconnected"
        assert (rows[servers[0].name]["health"], rows[servers[0].name]["version"]) == (
            "unhealthy",
            "9",
        )
        assert rows["far0000"]["health"] is None
        text = render(snaps[0], width=120, height=30)
        assert text.split("\n")[0] == "1003 servers: 3 connected, 1000 disconnected; 0 running"
        first = next(line for line in text.split("\n") if line.startswith("SERVER"))
        after = text.split(first + "\n", 1)[1].split("\n")
        assert after[1].startswith(servers[0].name + " "), text  # the unhealthy one first
    finally:
        (Path(ssh_fleet.servers[0].home) / ".sane" / "health.json").unlink(missing_ok=True)


def test_sane_watch_in_a_pane_shows_1000_servers_in_one_screen(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any, tmux_server: TmuxTestServer
) -> None:
    servers = register(sane_ctx.home, ssh_fleet)
    _registry_of(sane_ctx.home, 1000)
    up = subprocess.run(
        [sys.executable, "-m", "sane.cli.main", "up", *(s.name for s in servers)],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    pane = tmux_server.new_pane("bash")
    tmux_server.run("resize-window", "-t", pane, "-x", "110", "-y", "30")
    env = " ".join(f"{k}={v}" for k, v in cli_env.items() if k in ("SANE_HOME", "SANE_TMUX_SOCKET"))
    tmux_server.run(
        "send-keys",
        "-t",
        pane,
        "-l",
        f"{env} {sys.executable} -m sane.cli.main watch --interval 0.3 > /dev/null",
    )
    tmux_server.run("send-keys", "-t", pane, "Enter")
    deadline = time.monotonic() + 60

    def screen() -> list[str]:
        lines: list[str] = tmux_server.run("capture-pane", "-p", "-t", pane).split("\n")
        return lines

    try:
        while not any("health: 3 unknown, 1000 not read (health read" in x for x in screen()):
            assert time.monotonic() < deadline, screen()
            time.sleep(0.1)
        lines = [line for line in screen() if line.strip()]
        assert lines[0].startswith("sane watch ") and len(lines) <= 30, lines
        assert "1003 servers: 3 connected, 1000 disconnected; 0 running" in lines, lines
        # The three read (no health file: unknown, missing) come before the 1,000 far
        # ones, who are disconnected and not read; the rest is counted, not listed.
        header = next(i for i, line in enumerate(lines) if line.startswith("SERVER"))
        rows = [line.split()[0] for line in lines[header + 2 : -1]]
        assert rows[:3] == sorted(s.name for s in servers), lines
        assert all(name.startswith("far") for name in rows[3:]), lines
        assert lines[-1].startswith("… ") and "more" in lines[-1], lines
    finally:
        tmux_server.run("send-keys", "-t", pane, "C-c")
    # C-c stops it: the pane's shell is back.
    status = tmux_server.run("display-message", "-p", "-t", pane, "#{pane_current_command}")
    deadline = time.monotonic() + 30
    while "python" in status:
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
        status = tmux_server.run("display-message", "-p", "-t", pane, "#{pane_current_command}")


def test_watch_once_with_a_tag_lists_only_that_tag(
    cli_env: dict[str, str], sane_home: Path
) -> None:
    _registry_of(sane_home, 1000)
    proc = subprocess.run(
        [sys.executable, "-m", "sane.cli.main", "watch", "--once", "--no-health", "--tag", "t3"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(proc.stdout)["servers"]
    assert [r["server"] for r in rows] == [f"far{i:04d}" for i in range(1000) if i % 7 == 3]
    assert {r["connection"] for r in rows} == {"disconnected"}


def test_watch_once_for_a_person_lists_trouble_first() -> None:
    """``sane watch --once`` on a terminal: the counts, then every server (none cut),
    in the live view's order."""
    from rich.console import Console

    from sane.cli.human import watch_view

    rows = synthetic(1000)
    console = Console(width=120, record=True, color_system=None)
    watch_view({"servers": rows}, console)
    text = console.export_text()
    lines = text.split("\n")
    assert lines[0].startswith("1000 servers: ") and lines[1].startswith("health: ")
    listed = [line.split()[0] for line in lines if line.strip().startswith("web")]
    assert len(listed) == 1000
    first = {r["server"]: r for r in rows}[listed[0]]
    assert first["connection"] == "unreachable", listed[:3]

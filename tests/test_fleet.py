"""The fleet against real sshd servers on loopback: panes, errors, lost connections."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sane import errors
from sane.fleet.panes import connect_many, down, open_server_pane, pane_for_server, server_panes
from sane.fleet.registry import Registry, Server
from sane.fleet.ssh import probe_connection
from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions
from sane.testing import retry_until
from sane.testing.fleet import register as register  # (older tests import it from here)

from .conftest import cli, output_bytes


def peak_concurrency(reports: list[dict[str, Any]]) -> int:
    """Most reports whose [started_ms, finished_ms] intervals overlap at one instant."""
    events = sorted(
        [(r["started_ms"], 1) for r in reports] + [(r["finished_ms"], -1) for r in reports],
        key=lambda e: (e[0], e[1]),
    )
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def _host_pid(listener: int, inner: str) -> int:
    """The host's pid of the process that is ``inner`` in ``listener``'s pid namespace."""
    namespace = os.readlink(f"/proc/{listener}/ns/pid")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != namespace:
                continue
            with open(f"/proc/{entry}/status", encoding="utf-8") as fh:
                nspid = next(line.split()[1:] for line in fh if line.startswith("NSpid:"))
        except (OSError, StopIteration):
            continue
        if nspid[-1] == inner:
            return int(entry)
    raise AssertionError(f"no process {inner} in the pid namespace of sshd {listener}")


def handshakes(ctx: Context, fleet: Any, reports: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Each connected server's ssh handshake as its sshd saw it, in clock ticks since
    boot, from the processes themselves (not from sane's reports): from the fork of
    the listening sshd that accepted the connection (the connection's first process)
    to the start of the login shell the runner then ran in (``@sane_host_pid``: its
    pid in the server's own pid namespace, found here among the host's)."""
    found = []
    for report in reports:
        pane, name = report["pane"], report["server"]
        inner = ctx.tmux(["display-message", "-p", "-t", pane, "#{@sane_host_pid}"])[0]
        listener = fleet.server(name).pid
        shell = _host_pid(listener, inner)
        pid = shell
        while (parent := int(_stat(pid)[1])) != listener:
            assert parent > 1, f"{name}: shell {shell} is not under its sshd {listener}"
            pid = parent
        found.append((int(_stat(pid)[19]), int(_stat(shell)[19])))
    return found


def peak_overlap(intervals: list[tuple[int, int]]) -> int:
    """Most [start, end] intervals open at one instant; one ending at the tick another
    starts is counted as over (a tick is 10 ms: a slot is given back after the shell
    started, and the next connection is accepted after that)."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def test_runs_on_three_servers_with_their_own_homes(sane_ctx: Context, ssh_fleet: Any) -> None:
    register(sane_ctx.home, ssh_fleet)
    marker = f"owner-{os.getpid()}"
    try:
        for s in ssh_fleet.servers:
            pane = pane_for_server(sane_ctx, s.name)
            r = run_command(
                sane_ctx,
                f"echo $FLEET_HOST; cd ~; printf mine-{s.name} > {marker}; cat {marker}; (exit 7)",
                pane=pane,
                options=RunOptions(timeout=20),
            )
            assert (r["status"], r["exit_code"]) == ("completed", 7)
            assert r["output"] == f"{s.name}\nmine-{s.name}"
        for s in ssh_fleet.servers:  # each home holds only its own server's file
            assert (s.home / marker).read_text() == f"mine-{s.name}"
    finally:
        for s in ssh_fleet.servers:
            (s.home / marker).unlink(missing_ok=True)
    bytes_ = run_command(sane_ctx, "printf '\\377\\000x'", pane=pane_for_server(sane_ctx, "s2"))
    assert output_bytes(dict(bytes_)) == b"\xff\x00x"


def test_up_twice_reuses_panes_and_down_closes(sane_ctx: Context, ssh_fleet: Any) -> None:
    servers = register(sane_ctx.home, ssh_fleet)
    first = connect_many(sane_ctx, servers)
    assert all(r["ok"] for r in first)
    second = connect_many(sane_ctx, servers)
    assert [r["pane"] for r in second] == [r["pane"] for r in first]
    windows = sane_ctx.tmux(["list-windows", "-t", "=sane", "-F", "#{window_name}"])
    assert windows == ["orchestrator", "servers"]  # grouped (sane.fleet.layout)
    assert down(sane_ctx) == sorted(s.name for s in servers)
    assert server_panes(sane_ctx) == {}


def _down_counting_kills(ctx: Context, gone: str | None) -> tuple[list[str], list[tuple[str, ...]]]:
    """``down(ctx)`` and every tmux process it ran with ``kill-pane``; ``gone``: a pane
    killed by hand just before the first of them (gone between listing and kill)."""
    from sane.tmux.command import TmuxServer

    run = TmuxServer.run
    kills: list[tuple[str, ...]] = []

    def counted(self: TmuxServer, *args: str, **kwargs: Any) -> str:
        if "kill-pane" in args:
            if gone is not None and not kills:
                run(self, "kill-pane", "-t", gone)
            kills.append(args)
        return run(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TmuxServer, "run", counted)
        closed = down(ctx)
    return closed, kills


def test_down_closes_every_pane_in_one_tmux_process(sane_ctx: Context, ssh_fleet: Any) -> None:
    """``sane down`` at 1,000 servers was 1,000 tmux processes: now one per batch, and
    a pane gone between the listing and the kill does not keep the others open."""
    servers = register(sane_ctx.home, ssh_fleet)
    names = sorted(s.name for s in servers)
    for vanishing in (None, servers[1].name):
        reports = connect_many(sane_ctx, servers)
        assert all(r["ok"] for r in reports), reports
        gone = {r["server"]: r["pane"] for r in reports}.get(vanishing or "")
        closed, kills = _down_counting_kills(sane_ctx, gone)
        assert closed == names and server_panes(sane_ctx) == {}
        if gone is None:
            assert len(kills) == 1 and kills[0].count("kill-pane") == 3, kills
        else:  # the batch stopped at the missing pane; the rest one by one
            assert kills[0].count("kill-pane") == 3 and len(kills) == 4, kills


def test_cli_server_commands(cli_env: dict[str, str], ssh_fleet: Any, sane_home: Path) -> None:
    register(sane_home, ssh_fleet)
    status, doc, _ = cli(["sane.cli.main", "server", "test", "s1"], cli_env)
    assert status == 0 and doc["reachable"] is True and doc["latency_ms"] > 0
    status, doc, _ = cli(["sane.cli.main", "up"], cli_env)
    assert status == 0 and [r["ok"] for r in doc["servers"]] == [True, True, True]
    status, doc, _ = cli(["sane.cli.run_command", "--server", "s3", "echo $FLEET_HOST"], cli_env)
    assert status == 0 and doc["output"] == "s3\n"
    status, doc, _ = cli(["sane.cli.list_panes"], cli_env)
    roles = sorted((p["sane_role"], p["sane_server"]) for p in doc["panes"])
    assert roles == [("orchestrator", None), ("ssh", "s1"), ("ssh", "s2"), ("ssh", "s3")]
    status, doc, _ = cli(["sane.cli.run_command", "--server", "nope", "true"], cli_env)
    assert (status, doc["error"]["code"]) == (3, "server_not_found")


def test_create_file_and_detect_platform_over_ssh(sane_ctx: Context, ssh_fleet: Any) -> None:
    from sane.ops.create_file import create_file
    from sane.ops.detect_platform import detect_platform

    register(sane_ctx.home, ssh_fleet)
    pane = pane_for_server(sane_ctx, "s1")
    data = bytes(range(256)) * 100
    home = ssh_fleet.servers[0].home
    run_command(sane_ctx, "cd ~", pane=pane)
    try:
        r = create_file(sane_ctx, "sub dir/$(touch CANARY) it's.bin", data, pane=pane, parents=True)
        assert (home / "sub dir" / "$(touch CANARY) it's.bin").read_bytes() == data
        assert not (home / "CANARY").exists()
        assert r["path"].endswith("/sub dir/$(touch CANARY) it's.bin")
    finally:
        import shutil

        shutil.rmtree(home / "sub dir", ignore_errors=True)
    info = detect_platform(sane_ctx, pane=pane)
    assert (info["user"], info["uid"], info["os"]) == ("root", 0, "Linux")


def test_create_file_over_the_ssh_side_channel(
    sane_ctx: Context, ssh_fleet: Any, cli_env: dict[str, str], tmp_path: Path
) -> None:
    from sane.fleet.panes import file_channel
    from sane.ops.create_file import create_file

    register(sane_ctx.home, ssh_fleet)
    pane = pane_for_server(sane_ctx, "s2")
    home = ssh_fleet.servers[1].home
    data = os.urandom(300_000) + bytes(range(256))
    run_command(sane_ctx, "cd ~", pane=pane)
    try:
        r = create_file(
            sane_ctx,
            "side channel's.bin",
            data,
            pane=pane,
            side_channel=file_channel(sane_ctx, "s2"),
        )
        assert (home / "side channel's.bin").read_bytes() == data and r["bytes"] == len(data)
        assert sorted(p.name for p in home.iterdir() if p.name.startswith(".sane-")) == []
        source = tmp_path / "local.bin"
        source.write_bytes(b"via cli\n")
        status, doc, _ = cli(
            [
                "sane.cli.create_file",
                "--server",
                "s2",
                "--from",
                str(source),
                "--mode",
                "0600",
                f"{home}/cli.txt",
            ],
            {
                **cli_env,
                "SANE_HOME": str(sane_ctx.home),
                "SANE_TMUX_SOCKET": sane_ctx.server.socket_name or "",
            },
        )
        assert status == 0 and (home / "cli.txt").read_bytes() == b"via cli\n"
        assert doc["mode"] == "0600"
        with pytest.raises(errors.ChecksumMismatch):
            create_file(
                sane_ctx,
                "bad.bin",
                b"x",
                pane=pane,
                expected_sha256="0" * 64,
                side_channel=file_channel(sane_ctx, "s2"),
            )
        assert not (home / "bad.bin").exists()
    finally:
        for name in ("side channel's.bin", "cli.txt"):
            (home / name).unlink(missing_ok=True)


def _timed(fn: Callable[[], object]) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        fn()
    except BaseException as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


# The deadline given to a connection whose failure ssh reports at once: "quickly" is
# before it, whatever the machine's load (a failure found only by the deadline would
# take all of it). Before, wall-clock bounds of 5 s and 10 s failed at load 50-60.
QUICK_DEADLINE = 60.0


def test_wrong_key_is_auth_failed_quickly(
    sane_ctx: Context, ssh_fleet: Any, tmp_path: Path
) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    register(sane_ctx.home, ssh_fleet)
    server = Registry(sane_ctx.home).get("s1").model_copy(update={"identity_file": str(other)})
    elapsed, exc = _timed(lambda: probe_connection(server, timeout=QUICK_DEADLINE))
    assert isinstance(exc, errors.AuthFailed) and elapsed < QUICK_DEADLINE
    elapsed, exc = _timed(lambda: open_server_pane(sane_ctx, server, timeout=QUICK_DEADLINE))
    assert isinstance(exc, errors.AuthFailed) and elapsed < QUICK_DEADLINE


def test_closed_port_is_connection_refused(sane_ctx: Context, ssh_fleet: Any) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = Server(
        name="closed",
        host="127.0.0.1",
        port=port,
        user="root",
        identity_file=str(ssh_fleet.client_key),
    )
    elapsed, exc = _timed(lambda: probe_connection(server, timeout=QUICK_DEADLINE))
    assert isinstance(exc, errors.ConnectionRefused) and elapsed < QUICK_DEADLINE
    elapsed, exc = _timed(lambda: open_server_pane(sane_ctx, server, timeout=QUICK_DEADLINE))
    assert isinstance(exc, errors.ConnectionRefused) and elapsed < QUICK_DEADLINE


def test_changed_host_key_is_refused_and_nothing_runs(
    sane_ctx: Context, make_fleet: Callable[..., Any]
) -> None:
    fleet = make_fleet(1)
    (server,) = register(sane_ctx.home, fleet)
    fleet.regenerate_host_key(server.name)
    with pytest.raises(errors.HostKeyMismatch):
        probe_connection(server)
    with pytest.raises(errors.HostKeyMismatch):
        open_server_pane(sane_ctx, server)
    log = fleet.servers[0].log.read_text(errors="replace")
    assert "Accepted publickey" not in log  # never authenticated: no command was sent


KILLED_RUN_DEADLINE = 40.0


def test_killed_server_makes_the_run_lost_then_reconnects(
    sane_ctx: Context, make_fleet: Callable[..., Any]
) -> None:
    fleet = make_fleet(1)
    (server,) = register(sane_ctx.home, fleet)
    pane = pane_for_server(sane_ctx, server.name)
    started = threading.Event()

    def kill_when_started() -> None:
        deadline = time.monotonic() + 20
        while not started.is_set() and time.monotonic() < deadline:
            started.wait(0.05)
        fleet.stop(server.name)

    result: dict[str, Any] = {}
    killer = threading.Thread(target=kill_when_started)
    killer.start()

    def run_it() -> None:
        def hook(client: object, pane_id: str, scanner: Any) -> None:
            if b"running" in scanner.region():  # printed by the command, not echoed
                started.set()

        result.update(
            run_command(
                sane_ctx,
                "echo running; sleep 60; echo never",
                pane=pane,
                options=RunOptions(timeout=KILLED_RUN_DEADLINE, on_output=hook),
            )
        )

    elapsed, exc = _timed(run_it)
    killer.join()
    assert exc is None
    assert (result["status"], result["exit_code"]) == ("lost", None)
    # Ended by the connection's loss, not by the run's deadline.
    assert result["output"] == "running\n" and elapsed < KILLED_RUN_DEADLINE
    status, doc, _ = cli(
        ["sane.cli.main", "server", "list"],
        {
            **os.environ,
            "SANE_HOME": str(sane_ctx.home),
            "SANE_TMUX_SOCKET": sane_ctx.server.socket_name or "",
        },
    )
    assert status == 0
    assert [(s["name"], s["connection"]) for s in doc["servers"]] == [(server.name, "unreachable")]
    fleet.start(server.name)
    again = run_command(
        sane_ctx,
        "echo back",
        pane=pane_for_server(sane_ctx, server.name),
        options=RunOptions(timeout=20),
    )
    assert (again["status"], again["output"]) == ("completed", "back\n")


def test_twenty_servers_connect_concurrently_and_bounded(
    sane_ctx: Context, make_fleet: Callable[..., Any]
) -> None:
    fleet = make_fleet(20)
    servers = register(sane_ctx.home, fleet)
    started = time.monotonic()
    reports = connect_many(sane_ctx, servers, max_parallel=5)
    assert [r["ok"] for r in reports] == [True] * 20, [r["error"] for r in reports]
    assert time.monotonic() - started < 60
    # Bounded: at no instant were more than 5 connections being opened, by sane's
    # reports and as the servers saw it (more than one ssh handshake at once, never
    # more than 5).
    assert 1 < peak_concurrency(reports) <= 5
    assert 1 < peak_overlap(handshakes(sane_ctx, fleet, reports)) <= 5
    panes = server_panes(sane_ctx)
    assert sorted(panes) == sorted(s.name for s in servers)
    for name, state in panes.items():
        r = run_command(sane_ctx, "echo $FLEET_HOST", pane=state.pane_id)
        assert r["output"] == f"{name}\n"
    pids = [state.pid for state in panes.values()]
    down(sane_ctx)
    retry_until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids),
        message="ssh processes of closed panes exit",
    )


def test_a_server_pane_is_made_when_no_tmux_server_runs_yet(
    sane_ctx: Context, ssh_fleet: Any, tmux_server: Any
) -> None:
    """The first pane of a fresh machine (a deploy or fleet run before any `sane up`):
    no tmux server, no session; both are made with the pane, never tmux_server_not_running."""
    servers = register(sane_ctx.home, ssh_fleet)
    tmux_server.kill()
    state = open_server_pane(sane_ctx, servers[0])
    assert state.runner_installed and not state.dead
    r = run_command(
        sane_ctx, "echo $FLEET_HOST", pane=state.pane_id, options=RunOptions(timeout=20)
    )
    assert (r["status"], r["output"]) == ("completed", servers[0].name + "\n")

"""The ssh test fleet against real sshd servers: homes, stop/start, host keys, netns, cleanup.

Nothing here sleeps for a fixed time: waits are on conditions with deadlines.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sane.testing import retry_until
from sane.testing.fleet import Fleet, FleetUnavailable
from sane.testing.pytest_plugin import FleetFactory


def ssh(
    fleet: Fleet, name: str, command: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        fleet.ssh_argv(name, command),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    comm: str
    state: str
    start: int
    pid_ns: str | None
    cmdline: str


def processes() -> dict[int, Proc]:
    """Every process on the machine, from /proc (those that vanish while reading are skipped)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = (
                Path(f"/proc/{pid}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
        except OSError:
            continue
        try:
            pid_ns: str | None = os.readlink(f"/proc/{pid}/ns/pid")
        except OSError:
            pid_ns = None  # zombies have no namespaces any more
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found[pid] = Proc(pid, int(fields[1]), comm, fields[0], int(fields[19]), pid_ns, cmdline)
    return found


def pid_namespace(pid: int | None) -> str:
    assert pid is not None
    return os.readlink(f"/proc/{pid}/ns/pid")


def boot_ticks() -> float:
    """Now, in the unit of /proc/PID/stat's start time (clock ticks since boot)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK")


def in_namespace(ns: str) -> list[Proc]:
    return [p for p in processes().values() if p.pid_ns == ns]


def ours_or_orphaned(
    proc: Proc, table: dict[int, Proc], belongs: Callable[[Proc], bool] = lambda p: True
) -> bool:
    """Started by this test process (at any depth), or orphaned to PID 1 (which, on this
    machine, does not reap: a leaked session would stay there as a zombie) and ``belongs``
    to the fleet under test: another test run sharing the machine orphans its own."""
    if proc.ppid == 1:
        return belongs(proc)
    seen = set()
    pid = proc.ppid
    while pid and pid not in seen:
        if pid == os.getpid():
            return True
        seen.add(pid)
        parent = table.get(pid)
        pid = parent.ppid if parent else 0
    return False


def fleet_processes(belongs: Callable[[Proc], bool] = lambda p: True) -> set[tuple[int, int]]:
    table = processes()
    return {
        (p.pid, p.start)
        for p in table.values()
        if p.comm in ("sshd", "unshare") and ours_or_orphaned(p, table, belongs)
    }


def test_three_servers_answer_with_their_own_homes(ssh_fleet: Fleet) -> None:
    assert [s.name for s in ssh_fleet.servers] == ["s1", "s2", "s3"]
    ports = {s.port for s in ssh_fleet.servers}
    assert len(ports) == 3
    known = ssh_fleet.known_hosts.read_text().splitlines()
    for srv, line in zip(ssh_fleet.servers, known, strict=True):
        assert line.startswith(f"[127.0.0.1]:{srv.port} ssh-ed25519 ")
        assert line.split()[2] == srv.host_key_pub.read_text().split()[1]
    # The session's shared fleet: earlier tests' login shells may have saved a
    # .bash_history in their server's home (sane's shell-kind probe line, typed before
    # its takeover turns ignorespace on; docs/security.md). Nothing else is there.
    for srv in ssh_fleet.servers:
        proc = ssh(ssh_fleet, srv.name, "echo $FLEET_HOST; cd ~ && pwd && ls -A")
        assert proc.returncode == 0, proc.stderr
        listed = [name for name in proc.stdout.splitlines() if name != ".bash_history"]
        assert listed == [srv.name, "/root", ".fleet-host"]

    marker = f"fleet-test-{uuid.uuid4().hex}"
    s1, s2, _ = ssh_fleet.servers
    try:
        proc = ssh(ssh_fleet, "s1", f"echo from-s1 > ~/{marker} && cat ~/{marker}")
        assert (proc.returncode, proc.stdout) == (0, "from-s1\n"), proc.stderr
        proc = ssh(ssh_fleet, "s2", "ls -A ~ | grep -vx .bash_history")
        assert (proc.returncode, proc.stdout) == (0, ".fleet-host\n"), proc.stderr
        # The file landed in s1's own home directory on the host, and nowhere else.
        assert (s1.home / marker).read_text() == "from-s1\n"
        assert not (s2.home / marker).exists()
        assert not (Path("/root") / marker).exists()
        # The bind mounts live only in the servers' private mount namespaces.
        assert str(ssh_fleet.base) not in Path("/proc/self/mountinfo").read_text()
        assert str(ssh_fleet.base) not in Path("/proc/1/mountinfo").read_text()
    finally:
        (s1.home / marker).unlink(missing_ok=True)


def test_stop_kills_sessions_and_start_brings_it_back(make_fleet: FleetFactory) -> None:
    fleet = make_fleet(2)
    s1 = fleet.server("s1")
    ns = pid_namespace(s1.pid)
    port, old_pid = s1.port, s1.pid
    # One live session, and one process a session left running in the background.
    session = subprocess.Popen(
        fleet.ssh_argv("s1", "exec sleep 300"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        proc = ssh(fleet, "s1", "nohup sleep 301 >/dev/null 2>&1 </dev/null &")
        assert proc.returncode == 0, proc.stderr

        def sleepers() -> list[str]:
            return sorted(p.cmdline.strip() for p in in_namespace(ns) if p.comm == "sleep")

        retry_until(
            lambda: sleepers() == ["sleep 300", "sleep 301"],
            timeout=20,
            message="the two sleeps never showed up in s1's namespace",
        )

        fleet.stop("s1")
        assert s1.pid is None and not s1.running
        # stop() returns only once everything s1 ran is gone (and reaped: no zombies).
        assert in_namespace(ns) == []
        assert not any(p.pid == old_pid for p in processes().values())
        assert session.wait(timeout=20) == 255
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        proc = ssh(fleet, "s1", "true")
        assert proc.returncode == 255 and "Connection refused" in proc.stderr, proc.stderr
        assert ssh(fleet, "s2", "echo $FLEET_HOST").stdout == "s2\n"

        fleet.start("s1")
        assert s1.running and s1.port == port and s1.pid not in (None, old_pid)
        proc = ssh(fleet, "s1", "echo $FLEET_HOST; ls -A ~")
        assert (proc.returncode, proc.stdout) == (0, "s1\n.fleet-host\n"), proc.stderr
    finally:
        if session.poll() is None:
            session.kill()
        session.wait(timeout=20)
        assert session.stderr is not None
        session.stderr.close()


def test_regenerated_host_key_fails_strict_checking(make_fleet: FleetFactory) -> None:
    fleet = make_fleet(1)
    old_key = fleet.server("s1").host_key_pub.read_text()
    assert ssh(fleet, "s1", "true").returncode == 0
    fleet.regenerate_host_key("s1")
    assert fleet.server("s1").host_key_pub.read_text() != old_key
    proc = ssh(fleet, "s1", "echo should-not-run")
    assert proc.returncode == 255
    assert proc.stdout == ""
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in proc.stderr, proc.stderr
    assert "Host key verification failed" in proc.stderr, proc.stderr
    fleet.trust_host_key("s1")
    proc = ssh(fleet, "s1", "echo trusted-again")
    assert (proc.returncode, proc.stdout) == (0, "trusted-again\n"), proc.stderr


def test_netns_hosts_have_their_own_addresses_and_hostnames(make_fleet: FleetFactory) -> None:
    fleet = make_fleet(2, mode="netns")
    hosts = [s.host for s in fleet.servers]
    assert len(set(hosts)) == 2
    assert all(
        h.startswith("10.231.") and s.port == 22 for h, s in zip(hosts, fleet.servers, strict=True)
    )
    assert fleet.known_hosts.read_text().startswith(f"{hosts[0]} ssh-ed25519 ")
    for srv in fleet.servers:
        proc = ssh(fleet, srv.name, "hostname; echo $FLEET_HOST; echo $SSH_CONNECTION; ls -A ~")
        assert proc.returncode == 0, proc.stderr
        hostname, fleet_host, connection, listing = proc.stdout.splitlines()
        assert (hostname, fleet_host, listing) == (srv.name, srv.name, ".fleet-host")
        assert connection.split()[2:] == [srv.host, "22"]
    assert socket.gethostname() not in ("s1", "s2")

    netns = [s.netns for s in fleet.servers]
    bridge = fleet.bridge
    spaces = [pid_namespace(s.pid) for s in fleet.servers]
    fleet.close()
    listed = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert not any(ns is not None and ns in listed for ns in netns)
    assert bridge is not None
    link = subprocess.run(
        ["ip", "link", "show", bridge], capture_output=True, text=True, check=False
    )
    assert link.returncode != 0
    assert all(in_namespace(ns) == [] for ns in spaces)


def test_hosts_behind_a_bastion_are_reached_only_through_it(make_fleet: FleetFactory) -> None:
    """``bastion="s1"``: s2 is on a network only s1 has a leg in; the fleet's config jumps
    through s1, a direct connection has no route, and close removes the inner bridge
    and the host's unreachable route."""
    fleet = make_fleet(2, mode="netns", bastion="s1")
    s1, s2 = fleet["s1"], fleet["s2"]
    assert s1.host.startswith("10.231.") and s2.host.startswith("10.232.")
    proc = ssh(fleet, "s2", "echo $FLEET_HOST; echo $SSH_CONNECTION")
    assert proc.returncode == 0, proc.stderr
    fleet_host, connection = proc.stdout.splitlines()
    assert fleet_host == "s2" and connection.split()[0] != s1.host  # it came from s1's eth1
    with pytest.raises(OSError):
        socket.create_connection((s2.host, 22), timeout=5).close()
    inner = fleet.inner_bridge
    fleet.close()
    routes = subprocess.run(
        ["ip", "route", "show", "type", "unreachable"], capture_output=True, text=True, check=True
    ).stdout
    assert s2.host.rsplit(".", 1)[0] + ".0/24" not in routes
    assert (
        inner is not None
        and subprocess.run(
            ["ip", "link", "show", inner], capture_output=True, check=False
        ).returncode
        != 0
    )


@pytest.mark.ssh
def test_nothing_remains_after_close() -> None:
    before = fleet_processes()
    try:
        fleet = Fleet(3)
    except FleetUnavailable as exc:
        pytest.skip(exc.reason)
    with fleet:
        base = fleet.base
        spaces = [pid_namespace(s.pid) for s in fleet.servers]
        assert fleet_processes() - before, "the fleet's processes should be visible"
        session = subprocess.Popen(
            fleet.ssh_argv("s2", "exec sleep 300"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        retry_until(
            lambda: any(p.comm == "sleep" for p in in_namespace(spaces[1])),
            timeout=20,
            message="the session never started",
        )
        closing = boot_ticks()
    assert fleet.closed
    assert session.wait(timeout=20) == 255
    after = fleet_processes(lambda p: p.pid_ns in spaces or str(base) in p.cmdline)
    assert after - before == set()
    # Started before the close: a namespace's number is reused once it is freed, and another
    # test run sharing the machine may get it for its own fleet a moment later.
    assert all([p for p in in_namespace(ns) if p.start < closing] == [] for ns in spaces)
    assert not [p for p in processes().values() if str(base) in p.cmdline]
    assert not base.exists()
    fleet.close()  # idempotent


def test_unavailable_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(FleetUnavailable, match="root") as info:
        Fleet(1)
    assert "root" in info.value.reason

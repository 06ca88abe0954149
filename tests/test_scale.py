"""Big fleets from one orchestrator (issue 17): connecting is never serialised across
servers, --max-parallel bounds the handshakes, and every server ends alone with its
own result. Real sshd on loopback, a real tmux server per test."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from typing import Any

import pytest

from sane.fleet.panes import connect_many, ensure_session
from sane.fleet.run import fleet_run
from sane.ops.context import Context
from sane.tmux import structure

from .test_fleet import peak_concurrency, register


def test_servers_connect_while_another_process_holds_the_creation_lock(
        sane_ctx: Context, ssh_fleet: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a server's pane takes that server's lock only: a process busy creating
    sessions (or stuck holding that lock) does not hold any server's connection back,
    and neither does another server's. Before, every pane was made under the one
    creation lock, with a tmux process per step: connections queued behind each other
    and a server's deadline ran out while it waited."""
    servers = register(sane_ctx.home, ssh_fleet)
    ensure_session(sane_ctx)
    monkeypatch.setattr(structure, "CREATION_LOCK_TIMEOUT", 1.0)
    fd = os.open(structure.creation_lock_path(sane_ctx.server), os.O_RDWR | os.O_CREAT, 0o600)
    other = os.open(structure.pane_lock_path(sane_ctx.server, "s2"),
                    os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another open file: conflicts as across processes
        fcntl.flock(other, fcntl.LOCK_EX)
        reports = {r["server"]: r for r in connect_many(sane_ctx, servers, max_parallel=3)}
    finally:
        os.close(fd)
        os.close(other)
    assert reports["s1"]["ok"] and reports["s3"]["ok"], reports
    assert reports["s2"]["error"]["code"] == "state_locked"
    assert "opening the pane of s2" in reports["s2"]["error"]["message"]


@pytest.mark.slow
def test_200_servers_connect_with_bounded_handshakes_and_run_exactly(
        sane_ctx: Context, make_fleet: Callable[..., Any]) -> None:
    """200 servers cold: all connect, never more than --max-parallel at once (each
    server's ssh handshake happens inside its [started, finished] interval: its ssh is
    held behind a gate until then), and a run on all 200 gives each its own answer."""
    fleet = make_fleet(200)
    servers = register(sane_ctx.home, fleet)
    reports = connect_many(sane_ctx, servers, max_parallel=25)
    failed = [r for r in reports if not r["ok"]]
    assert failed == [], failed[:3]
    assert peak_concurrency(reports) <= 25
    result = fleet_run(sane_ctx, servers, "echo $FLEET_HOST", max_parallel=200, timeout=60)
    assert result["counts"]["ok"] == 200, [r for r in result["results"] if not r["ok"]][:3]
    assert [r["output"] for r in result["results"]] == [f"{s.name}\n" for s in servers]

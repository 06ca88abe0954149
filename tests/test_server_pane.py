"""Finding a server's pane by name (issue #17: the tmux session stays navigable).

With hundreds of servers a person cannot look for a window by eye, and windows may
hold several servers' panes (grouped), so window names and indexes say nothing:
``sane server pane NAME`` asks tmux for the pane whose own ``@sane_server`` option is
NAME, and ``--select`` makes it what a client attached to the session shows."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from sane.ops.context import Context
from sane.schema import validate
from sane.testing.fleet import register
from sane.testing.pytest_plugin import TmuxTestServer


def sane(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "sane.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout.splitlines()[-1])


def test_a_server_pane_is_found_by_name_whatever_the_layout(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any, tmux_server: TmuxTestServer
) -> None:
    register(sane_ctx.home, ssh_fleet)
    s1, s2, s3 = (s.name for s in ssh_fleet.servers)
    status, up = sane(cli_env, "up", s1, s2)
    assert status == 0, up
    panes = {r["server"]: r["pane"] for r in up["servers"]}

    # Two servers in one window (as grouped windows hold them); its name says s1 only.
    def window_of(pane: str) -> str:
        return tmux_server.run("display-message", "-p", "-t", pane, "#{window_id}").strip()

    if window_of(panes[s2]) != window_of(panes[s1]):  # not grouped by `up` already
        tmux_server.run("join-pane", "-d", "-s", panes[s2], "-t", panes[s1])
    status, doc = sane(cli_env, "server", "pane", s2)
    assert status == 0, doc
    validate("server-pane", doc)
    assert (doc["pane"], doc["window"], doc["window_panes"]) == (panes[s2], window_of(panes[s1]), 2)
    assert doc["connection"] == "connected" and doc["selected"] is False
    assert doc["target"] == f"{doc['session']}:{doc['window_index']}.{doc['pane_index']}"
    assert doc["attach"].endswith(f"attach-session -t {panes[s2]}")
    assert f"-L {tmux_server.socket_name}" in doc["attach"]
    # The target a person (or tmux) is given is that very pane.
    shown = tmux_server.run("display-message", "-p", "-t", doc["target"], "#{pane_id}").strip()
    assert shown == panes[s2]

    # --select: the session's current window and pane become the server's.
    status, doc = sane(cli_env, "server", "pane", s1, "--select")
    assert status == 0 and doc["selected"] is True, doc
    session = f"={doc['session']}:"

    def current() -> str:
        return tmux_server.run("display-message", "-p", "-t", session, "#{pane_id}").strip()

    assert current() == panes[s1]
    sane(cli_env, "server", "pane", s2, "--select")
    assert current() == panes[s2]

    # A registered server without a pane, and a name that is not registered.
    status, doc = sane(cli_env, "server", "pane", s3)
    assert (status, doc["error"]["code"]) == (3, "pane_not_found"), doc
    assert f"sane connect {s3}" in doc["error"]["message"]
    status, doc = sane(cli_env, "server", "pane", "nope")
    assert (status, doc["error"]["code"]) == (3, "server_not_found"), doc

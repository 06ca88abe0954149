"""sane fleet run on real sshd servers: bounded parallelism, aggregation, streaming."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from sane.fleet.run import fleet_run
from sane.ops.context import Context
from sane.testing.fleet import register

from .conftest import read_terminal, sane_json
from .test_fleet import peak_concurrency


def test_max_parallel_two_on_six_servers(sane_ctx: Context, make_fleet: Callable[..., Any]) -> None:
    fleet = make_fleet(6)
    servers = register(sane_ctx.home, fleet)
    fleet_run(sane_ctx, servers, "true", max_parallel=6)  # connect first: time the runs
    result = fleet_run(sane_ctx, servers, "sleep 1; echo $FLEET_HOST", max_parallel=2)
    assert result["status"] == "completed" and result["counts"]["ok"] == 6
    assert [r["output"] for r in result["results"]] == [f"{s.name}\n" for s in servers]
    assert peak_concurrency(result["results"]) == 2  # never more than 2 at once, and 2 were used
    assert result["duration_ms"] >= 3000  # 6 runs of 1 s, two at a time


def test_one_unreachable_server_is_partial(
    sane_ctx: Context, make_fleet: Callable[..., Any]
) -> None:
    fleet = make_fleet(3)
    servers = register(sane_ctx.home, fleet)
    fleet.stop("s2")
    result = fleet_run(sane_ctx, servers, "echo hi", timeout=20)
    assert result["status"] == "partial"
    by_name = {r["server"]: r for r in result["results"]}
    assert by_name["s1"]["output"] == "hi\n" and by_name["s3"]["ok"]
    assert by_name["s2"]["status"] == "unreachable"
    assert by_name["s2"]["error"]["code"] == "connection_refused"
    assert result["counts"]["unreachable"] == 1 and result["counts"]["ok"] == 2


def test_all_failing_is_failed_with_exact_codes(sane_ctx: Context, ssh_fleet: Any) -> None:
    servers = register(sane_ctx.home, ssh_fleet)
    result = fleet_run(sane_ctx, servers, "echo no >&2; exit 3")
    assert result["status"] == "failed" and result["counts"]["nonzero_exit"] == 3
    assert [(r["exit_code"], r["output"]) for r in result["results"]] == [(3, "no\n")] * 3


def test_a_hung_server_does_not_hold_the_others(sane_ctx: Context, ssh_fleet: Any) -> None:
    """s2 and s3 run and finish while s1 hangs; s1 is handed over at its own deadline.

    The connections are opened first (a generous deadline), so the timed run measures
    a command on open panes, not ssh handshakes a loaded machine may spend the 3 s on;
    and the order is judged by s2 starting before s1 gave up (which a fleet holding s2
    behind s1 cannot do), not by which finish time a loaded machine stamps first."""
    servers = register(sane_ctx.home, ssh_fleet)
    assert fleet_run(sane_ctx, servers, "true", timeout=60)["status"] == "completed"
    command = 'if [ "$FLEET_HOST" = s1 ]; then sleep 30; fi; echo done'
    result = fleet_run(sane_ctx, servers, command, timeout=3)
    by_name = {r["server"]: r for r in result["results"]}
    s1, s2 = by_name["s1"], by_name["s2"]
    assert s1["status"] == "running" and s1["exit_code"] is None
    assert s2["output"] == "done\n" and by_name["s3"]["ok"]
    assert s2["started_ms"] < s1["finished_ms"]
    assert result["status"] == "partial" and result["duration_ms"] < 10_000
    from sane.ops.run.resume import run_interrupt

    run_interrupt(sane_ctx, by_name["s1"]["run_id"])


def test_a_server_hung_in_the_handshake_fails_within_the_deadline(
    sane_ctx: Context, ssh_fleet: Any
) -> None:
    """A server that accepts the TCP connection and never speaks: its own deadline
    (--timeout) covers connecting, not ssh's longer ConnectTimeout."""
    import socket
    import threading

    from sane.fleet.panes import CONNECT_TIMEOUT

    servers = register(sane_ctx.home, ssh_fleet)
    # Connected first (a loaded machine may take longer than the short deadline below
    # to connect and take over a pane; that is not what this test is about).
    assert fleet_run(sane_ctx, servers, "true", timeout=60)["status"] == "completed"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    held: list[Any] = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
    # ssh's own ConnectTimeout past the pane's connect deadline (CONNECT_TIMEOUT): what
    # ends the silent server's attempt sooner can only be the run's deadline. The
    # bounds below come from those deadlines, not from the machine's speed (bounds of
    # 6 s and 9 s failed at load 50-60).
    late = f"{CONNECT_TIMEOUT * 2:g}"
    silent = servers[0].model_copy(
        update={
            "name": "silent",
            "port": listener.getsockname()[1],
            "ssh_options": {**servers[0].ssh_options, "ConnectTimeout": late},
        }
    )
    try:
        result = fleet_run(sane_ctx, [*servers, silent], "echo hi", timeout=2)
        by_name = {r["server"]: r for r in result["results"]}
        assert [by_name[s.name]["output"] for s in servers] == ["hi\n"] * 3
        assert by_name["silent"]["status"] == "unreachable"
        assert by_name["silent"]["error"]["code"] == "timeout"
        assert "within 2s" in by_name["silent"]["error"]["message"]
        assert result["status"] == "partial"
        assert result["duration_ms"] < CONNECT_TIMEOUT * 1000
        # Past the 5 s after which a quiet pane's ssh master is asked: still nothing
        # typed into a connection that is not up, and still `timeout` at the deadline.
        result = fleet_run(sane_ctx, [silent], "echo hi", timeout=6.5)
        (report,) = result["results"]
        assert (report["status"], report["error"]["code"]) == ("unreachable", "timeout")
        assert 6000 < result["duration_ms"] < CONNECT_TIMEOUT * 1000
        screen = sane_ctx.tmux(["capture-pane", "-p", "-t", report["error"]["details"]["pane"]])
        assert not any(line.strip() for line in screen), screen
    finally:
        listener.close()
        for conn, _ in held:
            conn.close()


def test_a_connected_pane_without_the_runner_is_taken_over_under_a_short_timeout(
    sane_ctx: Context, ssh_fleet: Any
) -> None:
    """What a timed-out connection leaves once ssh gets through: a pane at its remote
    prompt, no runner. It prints nothing new; a short deadline must not call it
    unreachable, and the runner is installed so the next run finds it warm."""
    from sane.fleet.panes import _new_pane, server_panes
    from sane.testing import retry_until

    servers = register(sane_ctx.home, ssh_fleet)
    from sane.fleet.panes import ensure_session

    ensure_session(sane_ctx)
    pane, _, _ = _new_pane(sane_ctx, servers[0], accept_new=False, replacing=False)
    retry_until(
        lambda: any(line.strip() for line in sane_ctx.tmux(["capture-pane", "-p", "-t", pane])),
        timeout=30,
    )  # the remote prompt is up
    assert not server_panes(sane_ctx)["s1"].runner_installed
    result = fleet_run(sane_ctx, servers[:1], "echo hi", timeout=1)
    (report,) = result["results"]
    assert report["status"] in ("completed", "running"), report
    assert report["pane"] == pane
    assert server_panes(sane_ctx)["s1"].runner_installed
    again = fleet_run(sane_ctx, servers[:1], "echo hi", timeout=1)
    assert again["results"][0]["output"] == "hi\n" and again["status"] == "completed"


def test_cli_stream(cli_env: dict[str, str], ssh_fleet: Any, sane_home: Any) -> None:
    register(sane_home, ssh_fleet)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sane.cli.main",
            "fleet",
            "run",
            "--stream",
            "--servers",
            "s1,s2",
            "printf 'a\\nb\\n'",
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    final = lines[-1]
    assert final["ok"] is True and final["status"] == "completed"
    events = lines[:-1]
    for name in ("s1", "s2"):
        mine = [e for e in events if e.get("server") == name]
        assert mine[0]["event"] == "started" and mine[-1]["event"] == "finished"
        streamed = "".join(e["data"] for e in mine if e["event"] == "output")
        assert streamed == "a\nb\n" == mine[-1]["output"]
    env = dict(cli_env)
    status = subprocess.run(
        [sys.executable, "-m", "sane.cli.main", "fleet", "run", "--servers", "s1,nope", "true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 3 and json.loads(status.stdout)["error"]["code"] == (
        "server_not_found"
    )
    assert os.path.exists(sane_home / "servers.json")


def test_fleet_put_skips_servers_that_have_the_file(
    sane_ctx: Context, make_fleet: Callable[..., Any]
) -> None:
    from sane.fleet.run import fleet_put

    fleet = make_fleet(3)
    servers = register(sane_ctx.home, fleet)
    data = os.urandom(50_000)
    target = "/root/app/config.bin"
    first = fleet_put(sane_ctx, servers, target, data, mode=0o640, parents=True)
    assert first["status"] == "completed"
    assert [r["action"] for r in first["results"]] == ["created"] * 3
    for s in fleet.servers:
        assert (s.home / "app" / "config.bin").read_bytes() == data
    mtime = (fleet.servers[0].home / "app" / "config.bin").stat().st_mtime_ns
    (fleet.servers[2].home / "app" / "config.bin").write_bytes(b"drifted")
    second = fleet_put(sane_ctx, servers, target, data)
    assert [r["action"] for r in second["results"]] == ["unchanged", "unchanged", "replaced"]
    assert (fleet.servers[0].home / "app" / "config.bin").stat().st_mtime_ns == mtime
    assert (fleet.servers[2].home / "app" / "config.bin").read_bytes() == data


def test_fleet_detect(sane_ctx: Context, ssh_fleet: Any) -> None:
    from sane.fleet.run import fleet_detect

    servers = register(sane_ctx.home, ssh_fleet)
    result = fleet_detect(sane_ctx, servers)
    assert result["status"] == "completed"
    assert [(r["server"], r["user"], r["os"]) for r in result["results"]] == [
        (s.name, "root", "Linux") for s in servers
    ]


def test_stream_on_a_terminal_draws_a_live_table(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any
) -> None:
    """On a TTY, --stream is for people: a live table, `[server] line` output, then
    the result as a table (the JSON document through a pipe or with --json)."""
    import pty
    import re

    register(sane_ctx.home, ssh_fleet)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sane.cli.main",
            "fleet",
            "run",
            "--all",
            "--stream",
            "echo line-$FLEET_HOST; echo second",
        ],
        env={**cli_env, "TERM": "xterm", "COLUMNS": "120"},
        stdout=slave,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    status, raw = read_terminal(master, proc, 60)
    assert status == 0, proc.stderr.read() if proc.stderr else ""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode()).replace("\r", "")
    for name in ("s1", "s2", "s3"):
        assert f"[{name}] line-{name}\n" in text
        assert f"[{name}] second\n" in text
    assert '{"ok"' not in text and "3 of 3 servers ok" in text


def _cli_run(
    cli_env: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sane.cli.main", "fleet", "run", *args],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc, json.loads(proc.stdout)


def test_cli_fleet_run_skips_pydantic_only_for_bytes_it_validated(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any
) -> None:
    """servers.json as sane last validated it: no pydantic import (it costs more than
    the runs). Edited by hand into something invalid: the validating path answers."""
    register(sane_ctx.home, ssh_fleet)
    path = sane_ctx.home / "servers.json"
    copy = sane_ctx.home / "servers.json.validated"
    assert copy.read_bytes() == path.read_bytes()
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    proc, doc = _cli_run(cli_env, "--all", "echo $FLEET_HOST")
    assert [r["output"] for r in doc["results"]] == ["s1\n", "s2\n", "s3\n"]
    assert "pydantic" not in proc.stderr  # the -X importtime listing
    assert not re.search(r"\| +click\b", proc.stderr)  # the fast front door (sane.cli.fast)
    proc, doc = _cli_run(cli_env, "--servers", "s2,nope", "true")  # unknown name
    assert doc["error"]["code"] == "server_not_found" and "nope" in doc["error"]["message"]
    data = json.loads(path.read_text())
    data["servers"][1]["port"] = "not a port"
    path.write_text(json.dumps(data, indent=2) + "\n")
    proc, doc = _cli_run(cli_env, "--all", "true")
    assert proc.returncode == 7 and doc["error"]["code"] == "config_invalid"
    assert doc["error"]["details"]["field"] == "servers.1.port"


def test_a_pane_with_typed_text_is_refused_or_cleared_never_run(
    cli_env: dict[str, str], sane_ctx: Context, ssh_fleet: Any, tmp_path: Any
) -> None:
    """One server's pane holds a person's half-typed command (no Enter): fleet run
    refuses that server (pane_has_input, the text named, nothing run) and runs on the
    others; with clear_input (library, and the CLI's --clear-input) the text is
    discarded, never run, and every server runs."""
    from sane.testing import retry_until

    servers = register(sane_ctx.home, ssh_fleet)
    first = fleet_run(sane_ctx, servers, "true", timeout=60)
    assert first["status"] == "completed", first
    pane = {r["server"]: r["pane"] for r in first["results"]}["s2"]
    marker = tmp_path / "typed-ran"
    typed = f"touch {marker} #"

    def type_it() -> None:
        sane_ctx.tmux(["send-keys", "-t", pane, "-l", typed])
        retry_until(
            lambda: any(
                line.rstrip().endswith(typed)
                for line in sane_ctx.tmux(["capture-pane", "-p", "-t", pane])
            ),
            timeout=10,
        )

    type_it()
    refused = fleet_run(sane_ctx, servers, "echo $FLEET_HOST")
    by_name = {r["server"]: r for r in refused["results"]}
    assert refused["status"] == "partial" and by_name["s1"]["output"] == "s1\n"
    assert by_name["s2"]["status"] == "error" and not by_name["s2"]["ok"]
    assert by_name["s2"]["error"]["code"] == "pane_has_input"
    assert by_name["s2"]["error"]["details"]["text"] == typed
    import sane  # the public API takes it too

    cleared = sane.fleet_run(sane_ctx, servers, "echo $FLEET_HOST", clear_input=True)
    assert cleared["status"] == "completed", cleared
    assert [r["output"] for r in cleared["results"]] == ["s1\n", "s2\n", "s3\n"]
    type_it()
    status, doc = sane_json(cli_env, "fleet", "run", "--clear-input", "echo ok")
    assert status == 0, doc
    assert [r["output"] for r in doc["results"]] == ["ok\n"] * 3
    assert not marker.exists()

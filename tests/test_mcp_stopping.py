"""``sane mcp`` stopped by signals while a call's run is going: both transports stop
serving at the first SIGTERM or SIGINT, interrupt the run (the wind-down), and only
then die by that first signal, whatever else arrives meanwhile; a third Ctrl-C is the
hard stop that does not wait.

The run traps the C-c and takes a while to end (``sleep 2`` in its trap), so the
wind-down is seen going on (the trap's ``caught`` on the pane) when the later signals
are sent. Ctrl-C is sent as a terminal sends it: to the whole process group (sane and
its tmux control client).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from sane.testing.mcp_http import http_server
from sane.testing.pytest_plugin import TmuxTestServer

from .test_mcp import RAW_INITIALIZE, _assert_pane_serves, _reap
from .test_mcp_http import http_session

# A run that traps C-c and takes a while to end once it has: `armed` once the trap is
# set, `caught` when the C-c came (printed words spelled apart in the command line, so
# the typed line on the screen never matches them).
TRAPPED = '(trap \'echo ca""ught; {after}\' INT; echo ar""med; sleep 600 & wait)'
SLOW_END = "sleep 2; exit 130"


def _screen_shows(tmux_server: TmuxTestServer, pane: str, word: str) -> bool:
    lines = tmux_server.run("capture-pane", "-p", "-t", pane).splitlines()
    return any(line.rstrip().endswith(word) for line in lines)  # `^Ccaught` too


def _wait_until(
    condition: Callable[[], bool],
    what: str,
    describe: Callable[[], str] = lambda: "",
    deadline: float = 60,
) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"{what}: not within {deadline} s ({describe()})"
        time.sleep(0.05)  # polling a condition, with a deadline


def _stdio_with_trapped_run(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, pane: str, after: str
) -> subprocess.Popen[str]:
    """``sane mcp`` over raw stdio in a process group of its own (as a terminal's
    foreground job), its run_command of TRAPPED going (stdin left open)."""
    run = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {
            "name": "run_command",
            "arguments": {"command": TRAPPED.format(after=after), "pane": pane, "timeout": 600},
        },
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sane.cli.main", "mcp"],
        env=cli_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        proc.stdin.write("\n".join(json.dumps(m) for m in (RAW_INITIALIZE, initialized, run)))
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["id"] == 1
        _wait_until(lambda: _screen_shows(tmux_server, pane, "armed"), "the run never started")
    except BaseException:
        _reap(proc)
        raise
    return proc


def _ctrl_c(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGINT)


def test_ctrl_c_over_stdio_interrupts_the_run_and_more_signals_wait_for_it(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    """Ctrl-C in the terminal running `sane mcp`: the run is interrupted; a second
    Ctrl-C and a SIGTERM during that wind-down are noted; sane then dies by SIGINT and
    the pane serves. Before, the first Ctrl-C exited at once (130) with the run still
    going in its pane (pane_busy)."""
    pane = tmux_server.new_pane("bash")
    proc = _stdio_with_trapped_run(cli_env, tmux_server, pane, SLOW_END)
    try:
        _ctrl_c(proc)
        _wait_until(
            lambda: _screen_shows(tmux_server, pane, "caught") or proc.poll() is not None,
            "the wind-down never interrupted the run",
        )
        with contextlib.suppress(ProcessLookupError):  # gone already: the old way
            _ctrl_c(proc)
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == -signal.SIGINT
    finally:
        _reap(proc)
    _assert_pane_serves(cli_env, pane)


def test_a_third_ctrl_c_stops_at_once(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """The hard stop: a third Ctrl-C does not wait for a wind-down that takes long
    (the run's trap ends 60 s later, touching a file): sane dies by SIGINT first."""
    ended = tmp_path / "trap-ended"
    pane = tmux_server.new_pane("bash")
    proc = _stdio_with_trapped_run(cli_env, tmux_server, pane, f"sleep 60; touch {ended}; exit 130")
    try:
        _ctrl_c(proc)
        _wait_until(
            lambda: _screen_shows(tmux_server, pane, "caught"),
            "no interrupt",
            lambda: tmux_server.run("capture-pane", "-p", "-t", pane),
        )
        _ctrl_c(proc)
        _ctrl_c(proc)
        assert proc.wait(timeout=30) == -signal.SIGINT
        assert not ended.exists()
    finally:
        _reap(proc)


@contextlib.contextmanager
def _call_in_background(url: str, token: str, pane: str) -> Iterator[None]:
    """A client's run_command of TRAPPED over HTTP, left waiting in a thread (the
    server's stop breaks it off: whatever it raises is its own business)."""

    async def call() -> None:
        async with http_session(url, token) as session:
            await session.call_tool(
                "run_command",
                {"command": TRAPPED.format(after=SLOW_END), "pane": pane, "timeout": 600},
            )

    def client() -> None:
        with contextlib.suppress(BaseException):
            anyio.run(call)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=60)


@pytest.mark.parametrize("first", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_http_finishes_its_wind_down_whatever_signals_come_during_it(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, first: signal.Signals
) -> None:
    """`sane mcp --http` stopped while a call's run is going: the first signal stops
    the serving, the call is cancelled and its run interrupted; a SIGINT and SIGTERM
    after SIGTERM during that wind-down are only noted; sane then dies by the first
    signal and the pane serves. Before, the wind-down ran with the default handlers
    back (a SIGTERM there killed it mid-interrupt), and a stop's exit status was 0."""
    pane = tmux_server.new_pane("bash")
    with http_server(cli_env) as server, _call_in_background(server.url, server.token, pane):
        proc = server.process
        _wait_until(lambda: _screen_shows(tmux_server, pane, "armed"), "the run never started")
        proc.send_signal(first)
        _wait_until(
            lambda: _screen_shows(tmux_server, pane, "caught") or proc.poll() is not None,
            "the wind-down never interrupted the run",
        )
        proc.send_signal(signal.SIGINT)
        end = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < end:  # SIGTERM on SIGTERM
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
        assert proc.wait(timeout=1) == -first
    _assert_pane_serves(cli_env, pane)

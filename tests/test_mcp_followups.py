"""Calls that follow a run on (``run_wait``, ``run_input``) and ``wait_for_text``, as an
MCP client sees them: a cancelled one stops at once and loses no output (the client
never read its result), and each sends progress when asked.

Driven by the MCP SDK's own client over stdio against real tmux panes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, MCPError

from sane.testing.pytest_plugin import TmuxTestServer

from .test_mcp import Call, _wait_free, document, with_session


async def _progress(
    session: ClientSession, tool: str, **arguments: Any
) -> tuple[dict[str, Any], list[str]]:
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    result = await session.call_tool(tool, arguments, progress_callback=on_progress)
    return document(result), seen


def _gated(tmp_path: Path, first: str) -> tuple[Path, Path, str]:
    """(go, went, command): ``first``, then the command waits for ``go``, prints b and
    makes ``went``: the test decides when the run goes on, and sees when it is over."""
    go, went = tmp_path / "go", tmp_path / "went"
    return go, went, f"{first}; until [ -e {go} ]; do sleep 0.05; done; echo b; touch {went}"


async def _until(path: Path) -> None:
    with anyio.fail_after(30):
        while not path.exists():
            await anyio.sleep(0.05)  # polling a condition, with a deadline


def test_a_cancelled_run_wait_stops_and_its_output_comes_with_the_next_one(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """Before: a cancelled run_wait followed the run on to its own timeout (600 s here)
    and, when the run ended meanwhile, kept the ending for itself: the next run_wait
    answered `completed` with no output, the "b" the client never got was lost."""
    pane = tmux_server.new_pane("bash")
    go, went, command = _gated(tmp_path, "echo a")

    async def body(session: ClientSession, call: Call) -> None:
        started = await call("run_command", command=command, pane=pane, timeout=0.5)
        assert (started["status"], started["output"]) == ("running", "a\n")
        run_id = started["run_id"]
        with pytest.raises(MCPError):
            await session.call_tool(
                "run_wait", {"run_id": run_id, "timeout": 600}, read_timeout_seconds=1
            )
        go.touch()
        await _until(went)
        rest = await call("run_wait", run_id=run_id, timeout=30)
        assert (rest["status"], rest["exit_code"], rest["output"]) == ("completed", 0, "b\n")
        await _wait_free(call, pane)

    with_session(cli_env, body)


def test_a_cancelled_run_input_stops_and_its_output_comes_with_the_next_wait(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    pane = tmux_server.new_pane("bash")
    go, went, command = _gated(tmp_path, "read -r x; echo got $x")

    async def body(session: ClientSession, call: Call) -> None:
        started = await call(
            "run_command", command=command, pane=pane, timeout=10, quiet_period=0.3
        )
        assert started["status"] == "waiting_input", started
        run_id = started["run_id"]
        with pytest.raises(MCPError):
            await session.call_tool(
                "run_input",
                {"run_id": run_id, "text": "abc", "timeout": 600},
                read_timeout_seconds=1,
            )
        go.touch()
        await _until(went)
        rest = await call("run_wait", run_id=run_id, timeout=30)
        assert (rest["status"], rest["exit_code"]) == ("completed", 0), rest
        assert rest["output"].endswith("got abc\nb\n"), rest

    with_session(cli_env, body)


def test_run_wait_run_input_and_wait_for_text_send_progress(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("bash")
    # 10 ticks, 5 s: the run outlasts a loaded machine's start of the next call
    ticks = "for i in 1 2 3 4 5 6 7 8 9 10; do echo tick $i; sleep 0.5; done"

    async def body(session: ClientSession, call: Call) -> None:
        started = await call("run_command", command=f"echo a; {ticks}", pane=pane, timeout=0.1)
        assert started["status"] == "running", started
        done, seen = await _progress(session, "run_wait", run_id=started["run_id"], timeout=30)
        assert done["status"] == "completed" and done["output"].endswith("tick 10\n")
        # new output only, not what the first call returned ("a", unless a loaded
        # machine had not printed it yet): each message is part of this call's output
        assert len(seen) >= 2 and all(m in done["output"] for m in seen), (started, seen)

        started = await call(
            "run_command", command=f"read -r x; {ticks}", pane=pane, timeout=10, quiet_period=0.3
        )
        assert started["status"] == "waiting_input", started
        done, seen = await _progress(session, "run_input", run_id=started["run_id"], text="x")
        assert done["status"] == "completed" and done["output"].endswith("tick 10\n")
        assert len(seen) >= 2 and any(m.startswith("tick") for m in seen), seen

        found, seen = await _progress(
            session, "wait_for_text", pane=pane, pattern="never-shown", timeout=3.5
        )
        assert found["matched"] is False
        assert len(seen) >= 2 and all("never-shown" in m for m in seen), seen

    with_session(cli_env, body)


def test_a_cancelled_run_left_to_run_wait_keeps_the_output_its_call_never_returned(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    pane = tmux_server.new_pane("bash")
    go, went, command = _gated(tmp_path, "echo a")

    async def body(session: ClientSession, call: Call) -> None:
        with pytest.raises(MCPError):
            await session.call_tool(
                "run_command",
                {"command": command, "pane": pane, "timeout": 600, "on_cancel": "keep"},
                read_timeout_seconds=1,
            )
        listing = await call("list_panes", all=True)
        run_id = next(p["run_id"] for p in listing["panes"] if p["pane_id"] == pane)
        assert run_id is not None, listing
        go.touch()
        await _until(went)
        rest = await call("run_wait", run_id=run_id, timeout=30)
        assert (rest["status"], rest["exit_code"]) == ("completed", 0), rest
        assert (rest["output_start"], rest["output"]) == (0, "a\nb\n"), rest

    with_session(cli_env, body)

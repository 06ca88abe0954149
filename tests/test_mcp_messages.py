"""What an agent reads in errors over MCP: tool names, not the command line's spellings
(issue 15: "messages name tools, not CLI spellings"), also in the per-server errors
inside a fleet's result and in hints. Real sshd, the MCP SDK's client over stdio."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession

from sane.testing.fleet import register

from .test_mcp import Call, with_session

CLI_SPELLING = re.compile(r"\bsane [a-z]|--[a-z]")


def test_per_server_errors_and_hints_name_tools_and_arguments(
    cli_env: dict[str, str], sane_home: Path, make_fleet: Callable[..., Any]
) -> None:
    """s1's sshd stops under a run: its `lost` error's hint named `sane connect`
    (the tool is connect); a duplicate server_add said `use --replace`."""
    fleet = make_fleet(1)
    register(sane_home, fleet)
    started = fleet["s1"].home / "started"

    async def body(session: ClientSession, call: Call) -> None:
        got: dict[str, Any] = {}

        async def run() -> None:
            got["doc"] = await call(
                "fleet_run", command="touch ~/started; sleep 60", servers=["s1"], timeout=90
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            with anyio.fail_after(60):
                while not started.exists():
                    await anyio.sleep(0.05)  # polling a condition, with a deadline
            fleet.stop("s1")
        report = got["doc"]["results"][0]
        assert report["status"] == "lost", report
        error = report["error"]
        assert not CLI_SPELLING.search(error["message"]), error
        hint = error["details"]["hint"]
        assert "connect reopens the pane" in hint and not CLI_SPELLING.search(hint), error

        again = await call("server_add", name="s1", host="127.0.0.1")
        assert again["error"]["code"] == "server_exists"
        assert "MCP: replace" in again["error"]["message"], again

    with_session(cli_env, body)

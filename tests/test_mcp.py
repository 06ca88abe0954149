"""``sane mcp`` driven by the MCP SDK's own client over stdio, against real tmux panes
and real sshd servers: spawn the server, initialize, list tools, call them, read the
documents. Nothing here calls the tool functions directly."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp.types as mt
import pytest
from mcp import ClientSession, MCPError
from mcp.client.stdio import StdioServerParameters, stdio_client

from sane import tools
from sane.schema import validate
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import cli

Call = Callable[..., Awaitable[dict[str, Any]]]


@contextlib.asynccontextmanager
async def mcp_session(env: dict[str, str]) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sane.cli.main", "mcp"],
        env={k: env[k] for k in ("SANE_TMUX_SOCKET", "SANE_HOME")},
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def document(result: Any) -> dict[str, Any]:
    """The JSON document of a tool result; the text a model reads says the same."""
    doc: dict[str, Any] = result.structured_content
    assert json.loads(result.content[0].text) == doc
    assert result.is_error == (not doc["ok"])
    return doc


def text_of(result: mt.CallToolResult) -> str:
    """The text a model reads of a tool result (its first content block)."""
    block = result.content[0]
    assert isinstance(block, mt.TextContent)
    return block.text


def with_session(
    env: dict[str, str], body: Callable[[ClientSession, Call], Awaitable[None]]
) -> None:
    async def main() -> None:
        async with mcp_session(env) as session:

            async def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
                return document(await session.call_tool(tool, arguments))

            await body(session, call)

    anyio.run(main)


def test_tools_list_matches_the_models_and_run_command_is_exact(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("bash")

    async def body(session: ClientSession, call: Call) -> None:
        listed = {t.name: t for t in (await session.list_tools()).tools}
        assert list(listed) == [t.name for t in tools.TOOLS]
        for tool in tools.TOOLS:
            assert listed[tool.name].input_schema == tools.input_schema(tool)
            assert listed[tool.name].output_schema == tools.output_schema(tool)
        doc = await call("run_command", command="printf 'a\\nb'; (exit 3)", pane=pane)
        validate("run-command", doc)
        assert (doc["status"], doc["exit_code"], doc["output"]) == ("completed", 3, "a\nb")
        cd = await call("run_command", command="cd /tmp && export SANE_X=1", pane=pane)
        again = await call("run_command", command="echo $PWD $SANE_X", pane=pane)
        assert cd["exit_code"] == 0 and again["output"] == "/tmp 1\n"  # one persistent shell

    with_session(cli_env, body)


def test_errors_are_the_cli_documents_and_the_server_lives_on(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("dash")
    _, cli_missing, _ = cli(["sane.cli.run_command", "--pane", "%999", "true"], cli_env)
    _, cli_failed, _ = cli(
        ["sane.cli.run_command", "--check", "--pane", pane, "echo x; false"], cli_env
    )

    async def body(session: ClientSession, call: Call) -> None:
        missing = await call("run_command", command="true", pane="%999")
        assert missing == cli_missing and missing["error"]["code"] == "pane_not_found"
        failed = await call("run_command", command="echo x; false", pane=pane, check=True)
        validate("command-failed", failed)
        assert {k: v for k, v in failed.items() if k not in ("run_id", "duration_ms")} == {
            k: v for k, v in cli_failed.items() if k not in ("run_id", "duration_ms")
        }
        bad = await call("run_command", command="true", timeout=-1)
        assert bad["error"] == {
            "code": "invalid_argument",
            "message": "timeout: Input should be greater than or equal to 0",
            "details": {"field": "timeout"},
        }
        extra = await call("list_panes", sesion="base")
        assert (extra["error"]["code"], extra["error"]["details"]) == (
            "invalid_argument",
            {"field": "sesion"},
        )
        unknown = await call("no_such_tool")
        assert unknown["error"]["code"] == "invalid_argument"
        missing_run = await call("run_wait", run_id="r000000000000")
        assert missing_run["error"]["code"] == "run_not_found"
        fine = await call("run_command", command="echo still here", pane=pane)
        assert fine["output"] == "still here\n"

    with_session(cli_env, body)


def test_running_wait_interrupt_and_concurrent_calls(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("bash")

    async def body(session: ClientSession, call: Call) -> None:
        first = await call(
            "run_command", command="echo one; sleep 1; echo two", pane=pane, timeout=0.2
        )
        assert (first["status"], first["exit_code"]) == ("running", None)
        rest = await call("run_wait", run_id=first["run_id"], timeout=30)
        assert (rest["status"], rest["exit_code"]) == ("completed", 0)
        # split wherever the deadline fell, nothing lost or repeated
        assert first["output"] + rest["output"] == "one\ntwo\n"
        assert rest["output_start"] == len(first["output"])

        results: dict[str, dict[str, Any]] = {}

        async def long_run() -> None:
            results["run"] = await call(
                "run_command", command="sleep 5; echo slept", pane=pane, timeout=60
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_run)
            run_id = None
            with anyio.fail_after(30):
                while run_id is None:  # the busy pane names the run: the call is in flight
                    listing = await call("list_panes", all=True)
                    run_id = next(p["run_id"] for p in listing["panes"] if p["pane_id"] == pane)
                    if run_id is None:
                        await anyio.sleep(0.05)  # polling a condition, with a deadline
            busy = await call("run_command", command="true", pane=pane)
            assert (busy["error"]["code"], busy["error"]["details"]["run_id"]) == (
                "pane_busy",
                run_id,
            )
            assert "run" not in results  # answered while the long call was still waiting
        assert (results["run"]["run_id"], results["run"]["output"]) == (run_id, "slept\n")

        late = await call("run_command", command="sleep 30", pane=pane, timeout=0.1)
        stopped = await call("run_interrupt", run_id=late["run_id"])
        assert (late["status"], stopped["status"]) == ("running", "interrupted")

    with_session(cli_env, body)


def test_files_platform_and_panes(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    pane = tmux_server.new_pane("dash")
    target = tmp_path / "out" / "bin.dat"
    big = os.urandom(3 << 20)  # one 4 MiB JSON line: the server reads it in many pieces

    async def body(session: ClientSession, call: Call) -> None:
        created = await call(
            "create_file",
            path=str(target),
            content_base64="AAH/Cg==",
            pane=pane,
            parents=True,
            mode="0600",
        )
        validate("create-file", created)
        assert (created["bytes"], created["mode"], created["action"]) == (4, "0600", "created")
        large = await call(
            "create_file",
            path=str(target.with_name("big")),
            pane=pane,
            content_base64=base64.b64encode(big).decode(),
        )
        assert large["sha256"] == hashlib.sha256(big).hexdigest()
        both = await call("create_file", path=str(target), content="x", content_base64="eA==")
        assert both["error"]["code"] == "invalid_argument"
        platform = await call("detect_platform", pane=pane)
        validate("detect-platform", platform)
        assert (platform["os"], platform["pane"]) == ("Linux", pane)
        panes = await call("list_panes", all=True)
        validate("list-panes", panes)
        assert pane in [p["pane_id"] for p in panes["panes"]]

    with_session(cli_env, body)
    assert target.read_bytes() == b"\x00\x01\xff\n"
    assert target.with_name("big").read_bytes() == big


def test_fleet_tools_on_real_sshd(cli_env: dict[str, str], ssh_fleet: Any) -> None:
    known = {"UserKnownHostsFile": str(ssh_fleet.known_hosts)}

    async def body(session: ClientSession, call: Call) -> None:
        for s in ssh_fleet.servers:
            added = await call(
                "server_add",
                name=s.name,
                host=s.host,
                port=s.port,
                user="root",
                identity=str(ssh_fleet.client_key),
                ssh_options=known,
                tags=["mcp"],
            )
            validate("server-add", added)
        again = await call("server_add", name="s1", host="127.0.0.1")
        assert again["error"]["code"] == "server_exists"
        tested = await call("server_test", name="s1")
        validate("server-test", tested)
        assert tested["reachable"] is True
        ran = await call(
            "fleet_run", command="echo $FLEET_HOST; (exit 2)", tag="mcp", max_parallel=3
        )
        validate("fleet-run", ran)
        assert ran["status"] == "failed" and ran["counts"]["nonzero_exit"] == 3
        assert [(r["server"], r["exit_code"], r["output"]) for r in ran["results"]] == [
            (s.name, 2, f"{s.name}\n") for s in ssh_fleet.servers
        ]
        listed = await call("server_list", tag="mcp")
        validate("server-list", listed)
        assert {s["name"]: s["connection"] for s in listed["servers"]} == {
            s.name: "connected" for s in ssh_fleet.servers
        }
        health = await call("health", servers=["s1", "s2"], query=".version")
        validate("health", health)
        assert [(r["server"], r["status"], r["reason"]) for r in health["servers"]] == [
            ("s1", "unknown", "missing"),
            ("s2", "unknown", "missing"),
        ]
        waited = await call(
            "health_wait", until='.status == "healthy"', servers=["s1"], timeout=0, interval=0.05
        )
        validate("health-wait", waited)
        assert (waited["met"], waited["waiting_for"]) == (False, ["s1"])

    with_session(cli_env, body)


def test_sane_call_runs_a_tool_call_from_json_like_the_cli(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("dash")
    args = json.dumps({"command": "printf 'x\\ny'; (exit 4)", "pane": pane, "check": True})
    status, doc, _ = cli(["sane.cli.main", "call", "run_command", args], cli_env)
    assert (status, doc["error"]["code"], doc["exit_code"], doc["output"]) == (
        1,
        "command_failed",
        4,
        "x\ny",
    )
    validate("command-failed", doc)
    status, doc, _ = cli(
        ["sane.cli.main", "call", "run-command", "-"],
        cli_env,
        stdin=json.dumps({"command": "sleep 5", "pane": pane, "timeout": 0.1}),
    )
    assert (status, doc["status"]) == (4, "running")  # the CLI's exit status for `running`
    status, doc, _ = cli(["sane.cli.main", "call", "list_panes", '{"bogus": 1}'], cli_env)
    assert (status, doc["error"]["code"], doc["error"]["details"]) == (
        2,
        "invalid_argument",
        {"field": "bogus"},
    )


def test_deploy_and_deploy_status_over_mcp(
    cli_env: dict[str, str], sane_home: Path, make_fleet: Callable[..., Any], tmp_path: Path
) -> None:
    from sane.testing.fleet import register

    fleet = make_fleet(2)
    register(sane_home, fleet)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        json.dumps(
            {
                "name": "t",
                "steps": [
                    {"name": "one", "run": "echo one >> log", "undo": "echo undo-one >> log"},
                    {
                        "name": "two",
                        "run": 'if [ "$FLEET_HOST" = s2 ]; then exit 3; fi; echo two >> log',
                        "undo": "echo undo-two >> log",
                    },
                ],
            }
        )
    )

    async def body(session: ClientSession, call: Call) -> None:
        nothing = await call("deploy", plan=str(plan))
        assert nothing["error"]["code"] == "usage_error"  # never deploys to all by default
        report = await call("deploy", plan=str(plan), servers=["s1", "s2"], wait=True)
        validate("deploy", report)
        assert report["status"] == "partial"
        assert {s["server"]: s["state"] for s in report["servers"]} == {
            "s1": "deployed",
            "s2": "rolled_back",
        }
        again = await call("deploy_status", deploy_id=report["deploy_id"])
        validate("deploy", again)
        assert again["servers"] == report["servers"] and again["status"] == "partial"
        missing = await call("deploy_status", deploy_id="d00000000-000000-000000")
        assert missing["error"]["code"] == "deploy_not_found"

    with_session(cli_env, body)
    assert (fleet["s1"].home / "log").read_text().split() == ["one", "two"]
    assert (fleet["s2"].home / "log").read_text().split() == ["one", "undo-one"]


async def _busy_run_id(call: Call, pane: str) -> str:
    """The run id list_panes shows for ``pane`` once a call's run holds it."""
    with anyio.fail_after(30):
        while True:
            listing = await call("list_panes", all=True)
            run_id = next(p["run_id"] for p in listing["panes"] if p["pane_id"] == pane)
            if run_id is not None:
                return str(run_id)
            await anyio.sleep(0.05)  # polling a condition, with a deadline


async def _wait_free(call: Call, pane: str) -> None:
    with anyio.fail_after(30):
        while True:
            listing = await call("list_panes", all=True)
            if not next(p["busy"] for p in listing["panes"] if p["pane_id"] == pane):
                return
            await anyio.sleep(0.02)


def test_a_cancelled_call_interrupts_its_run_or_leaves_it_to_run_wait(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("bash")

    async def body(session: ClientSession, call: Call) -> None:
        # The client's own request timeout cancels the call (notifications/cancelled).
        with pytest.raises(MCPError):
            await session.call_tool(
                "run_command",
                {"command": "sleep 600", "pane": pane, "timeout": 600},
                read_timeout_seconds=1,
            )
        cancelled_at = time.monotonic()
        await _wait_free(call, pane)
        freed_after = time.monotonic() - cancelled_at
        after = await call("run_command", command="echo free", pane=pane)
        assert (after["status"], after["output"]) == ("completed", "free\n")
        print(f"pane free {freed_after * 1000:.0f} ms after the cancellation")

        with pytest.raises(MCPError):
            await session.call_tool(
                "run_command",
                {
                    "command": "sleep 1; echo kept",
                    "pane": pane,
                    "timeout": 600,
                    "on_cancel": "keep",
                },
                read_timeout_seconds=0.3,
            )
        run_id = await _busy_run_id(call, pane)
        rest = await call("run_wait", run_id=run_id, timeout=30)
        assert (rest["status"], rest["exit_code"], rest["output"]) == ("completed", 0, "kept\n")

    with_session(cli_env, body)


def test_the_run_id_of_a_busy_pane_is_accepted_while_its_first_call_follows_it(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    pane = tmux_server.new_pane("bash")
    # The first run lasts until the test has seen it busy (a file it waits for), not a
    # fixed second that a loaded machine can spend before list_panes answers.
    go = tmp_path / "go"

    async def body(session: ClientSession, call: Call) -> None:
        results: dict[str, dict[str, Any]] = {}

        async def first(command: str) -> None:
            results["first"] = await call("run_command", command=command, pane=pane, timeout=120)

        async with anyio.create_task_group() as tg:
            tg.start_soon(first, f"echo a; until [ -e {go} ]; do sleep 0.05; done; echo b")
            run_id = await _busy_run_id(call, pane)
            busy = await call("run_command", command="true", pane=pane)
            assert busy["error"]["details"]["run_id"] == run_id

            async def wait_rest() -> None:
                results["rest"] = await call("run_wait", run_id=run_id, timeout=30)

            tg.start_soon(wait_rest)
            with anyio.fail_after(30):  # run_wait takes the run over: the first call returns
                while "first" not in results:
                    await anyio.sleep(0.05)  # polling a condition, with a deadline
            go.touch()
        rest = results["rest"]
        # the first call handed the run over; together nothing is lost or repeated
        assert (results["first"]["status"], rest["status"]) == ("running", "completed")
        assert results["first"]["output"] + rest["output"] == "a\nb\n"

        async with anyio.create_task_group() as tg:
            tg.start_soon(first, "sleep 600")
            run_id = await _busy_run_id(call, pane)
            stopped = await call("run_interrupt", run_id=run_id)
        assert stopped["status"] == "interrupted"
        # a run that ended inside its first call still answers run_wait with its ending
        done = await call("run_command", command="echo once", pane=pane)
        again = await call("run_wait", run_id=done["run_id"])
        assert (again["status"], again["exit_code"], again["output"]) == ("completed", 0, "")
        assert again["output_start"] == len("once\n")

    with_session(cli_env, body)


def test_run_interrupt_does_not_queue_behind_many_waiting_calls(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    panes = [tmux_server.new_pane("dash") for _ in range(45)]

    async def body(session: ClientSession, call: Call) -> None:
        finished: list[str] = []

        async def wait_long(pane: str) -> None:
            doc = await call("run_command", command="sleep 600", pane=pane, timeout=600)
            finished.append(doc["status"])

        async with anyio.create_task_group() as tg:
            for pane in panes:
                tg.start_soon(wait_long, pane)
            run_ids = [await _busy_run_id(call, pane) for pane in panes]
            with anyio.fail_after(60):  # not behind the 45 waiting calls (600 s each)
                stopped = await call("run_interrupt", run_id=run_ids[-1])
            assert stopped["status"] == "interrupted"
            assert finished in ([], ["running"])  # the others still wait
            for run_id in run_ids[:-1]:
                await call("run_interrupt", run_id=run_id)
        assert len(finished) == 45

    with_session(cli_env, body)


def test_list_panes_on_a_fresh_socket_is_empty(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    env = {**cli_env, "SANE_TMUX_SOCKET": f"{tmux_server.socket_name}-fresh"}

    async def body(session: ClientSession, call: Call) -> None:
        assert (await call("list_panes"))["panes"] == []
        assert (await call("list_panes", all=True))["panes"] == []
        named = await call("list_panes", session="nope")
        assert named["error"]["code"] == "session_not_found"

    with_session(env, body)


RAW_INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}


def raw_mcp(cli_env: dict[str, str]) -> subprocess.Popen[str]:
    """`sane mcp` on pipes, for a test that writes raw JSON-RPC lines."""
    return subprocess.Popen(
        [sys.executable, "-m", "sane.cli.main", "mcp"],
        env=cli_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_every_request_line_gets_a_reply(cli_env: dict[str, str]) -> None:
    """A malformed line, a batch, a request nested too deep to parse: each is answered
    (JSON-RPC -32700 / -32600), and the server goes on serving."""
    nested = (
        '{"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": '
        '"list_panes", "arguments": {"x": ' + "[" * 5000 + "]" * 5000 + "}}}"
    )
    lines = [
        json.dumps(RAW_INITIALIZE),
        '{"jsonrpc": "2.0", "method": "notifications/initialized"}',
        "{bad json",
        '[{"jsonrpc": "2.0", "id": 2, "method": "ping"}]',
        "[]",  # JSON-RPC 2.0: one error object, not an array
        nested,
        '{"jsonrpc": "2.0", "id": 6}',
        '{"jsonrpc": "2.0", "id": 7, "method": "ping"}',
    ]
    proc = raw_mcp(cli_env)
    assert proc.stdin is not None and proc.stdout is not None
    replies: list[Any] = []
    try:
        proc.stdin.write("\n".join(lines) + "\n")
        proc.stdin.flush()
        while len(replies) < 7:  # the notification gets none; every other line one
            replies.append(json.loads(proc.stdout.readline()))
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    by_id = {json.dumps(r["id"]) if isinstance(r, dict) else "batch": r for r in replies}
    assert by_id["1"]["result"]["serverInfo"]["name"] == "tmux-sane"
    assert by_id["batch"] == [
        {
            "jsonrpc": "2.0",
            "id": 2,
            "error": {
                "code": -32600,
                "message": "Invalid Request: JSON-RPC batches are not supported; "
                "send each message on its own line",
            },
        }
    ]
    errors_without_id = [
        r["error"]["code"] for r in replies if isinstance(r, dict) and r["id"] is None
    ]
    # the bad line, the empty batch, the deep nesting
    assert errors_without_id == [-32700, -32600, -32700]
    assert by_id["6"]["error"]["code"] == -32600
    assert by_id["7"]["result"] == {}


def test_a_client_that_cancels_then_leaves_gets_its_run_interrupted(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    """A client cancels a long run_command (its own request timeout) and exits at
    once, closing sane's stdin: sane still interrupts the run before it exits, and the
    pane serves the next caller. Before, the process exited mid-wind-down: `sleep 600`
    held the pane (pane_busy, owner_died) with a run id no tool accepted."""
    pane = tmux_server.new_pane("bash")
    proc = _cancelled_sleep(cli_env, tmux_server, pane)
    try:
        assert proc.stdin is not None
        proc.stdin.close()  # the client is gone
        proc.wait(timeout=90)
    finally:
        _reap(proc)
    _assert_pane_serves(cli_env, pane)


@pytest.mark.parametrize("stdin_closed", [True, False], ids=["after-eof", "stdin-open"])
def test_a_sigterm_waits_for_the_cancelled_runs_interrupt(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, stdin_closed: bool
) -> None:
    """The TypeScript SDK's close(): end stdin, SIGTERM 2 s later (SIGKILL 2 s after).
    Here the SIGTERM comes at once, with stdin closed or not: sane stops serving,
    interrupts the cancelled run, then dies of the SIGTERM (the exit status says so),
    and the pane serves the next caller. Before, the SIGTERM killed sane mid-wind-down:
    `sleep 600` held the pane (pane_busy)."""
    pane = tmux_server.new_pane("bash")
    proc = _cancelled_sleep(cli_env, tmux_server, pane)
    try:
        assert proc.stdin is not None
        if stdin_closed:
            proc.stdin.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == -signal.SIGTERM
    finally:
        _reap(proc)
    _assert_pane_serves(cli_env, pane)


def _cancelled_sleep(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, pane: str
) -> subprocess.Popen[str]:
    """`sane mcp` over raw stdio, its `run_command sleep 600` on ``pane`` seen running
    and then cancelled (notifications/cancelled sent)."""
    run = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {
            "name": "run_command",
            "arguments": {"command": "sleep 600", "pane": pane, "timeout": 600},
        },
    }
    cancel = {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 2, "reason": "request timed out"},
    }
    proc = raw_mcp(cli_env)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        proc.stdin.write(
            "\n".join(json.dumps(m) for m in (RAW_INITIALIZE, initialized, run)) + "\n"
        )
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["id"] == 1
        deadline = time.monotonic() + 60
        while tmux_server.run("display-message", "-p", "-t", pane, "#{pane_current_command}") != (
            "sleep\n"
        ):
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)  # polling a condition, with a deadline
        proc.stdin.write(json.dumps(cancel) + "\n")
        proc.stdin.flush()
    except BaseException:
        _reap(proc)
        raise
    return proc


def _reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _assert_pane_serves(cli_env: dict[str, str], pane: str) -> None:
    status, doc, _ = cli(
        ["sane.cli.main", "run-command", "--pane", pane, "--timeout", "60", "echo after"], cli_env
    )
    assert (status, doc.get("status"), doc.get("output")) == (0, "completed", "after\n"), doc


def test_big_outputs_fit_a_model_and_the_rest_is_a_resource(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, ssh_fleet: Any
) -> None:
    """The result keeps head and tail under the cap; its link is the first page it left
    out (a page a model can take, as the result is), and following each page's
    ``_meta.next`` gives the rest exactly: the link never hands a host the whole
    output in one read."""
    from sane.mcp.resources import LOG_PAGE

    pane = tmux_server.new_pane("dash")
    known = {"UserKnownHostsFile": str(ssh_fleet.known_hosts)}
    full = "".join(f"{i}\n" for i in range(1, 100001)).encode()

    async def pages(session: ClientSession, uri: str) -> bytes:
        got = b""
        while uri:
            read = await session.read_resource(uri)
            page = read.contents[0]
            assert isinstance(page, mt.TextResourceContents) and page.meta is not None
            assert len(page.text.encode()) <= LOG_PAGE
            assert len(read.model_dump_json(by_alias=True)) < 30_000  # the reply fits too
            got += page.text.encode()
            uri = page.meta["next"]
        return got

    async def whole(session: ClientSession, result: Any, count: int) -> list[bytes]:
        links = [c for c in result.content if c.type == "resource_link"]
        assert len(links) == count
        doc = document(result)
        out = []
        for link, kept in zip(links, doc.get("results") or [doc], strict=True):
            head = kept["output"].index("\n[... sane: ")  # bytes: the output is ASCII
            base, _, query = str(link.uri).partition("?")
            assert query == f"offset={head}", link.uri  # the first byte left out
            assert await pages(session, str(link.uri)) == full[head:]
            out.append(await pages(session, base))  # from the start, page by page
        return out

    async def body(session: ClientSession, call: Call) -> None:
        result = await session.call_tool("run_command", {"command": "seq 1 100000", "pane": pane})
        doc = document(result)
        validate("run-command", doc)
        assert doc["truncated"] and len(text_of(result)) < 30_000
        assert doc["output"].startswith("1\n2\n") and doc["output"].endswith("99999\n100000\n")
        assert Path(doc["full_output_path"]).stat().st_mode & 0o777 == 0o600
        assert await whole(session, result, 1) == [full]

        for s in ssh_fleet.servers:
            await call(
                "server_add",
                name=s.name,
                host=s.host,
                port=s.port,
                user="root",
                identity=str(ssh_fleet.client_key),
                ssh_options=known,
                tags=["big"],
            )
        result = await session.call_tool("fleet_run", {"command": "seq 1 100000", "tag": "big"})
        doc = document(result)
        validate("fleet-run", doc)
        assert len(text_of(result)) < 30_000  # three servers under one cap
        for r in doc["results"]:
            assert r["truncated"] and r["output"].startswith("1\n2\n")
            assert r["output"].endswith("\n100000\n")
        assert await whole(session, result, 3) == [full] * 3
        with pytest.raises(MCPError):
            await session.read_resource("sane://runs/r000000000000/output-0")
        with pytest.raises(MCPError):
            await session.read_resource("sane://runs/../../etc/passwd")

    with_session(cli_env, body)


def test_two_agents_one_deploys_the_other_polls_and_is_told_why_not_to_interrupt(
    cli_env: dict[str, str], sane_home: Path, make_fleet: Callable[..., Any], tmp_path: Path
) -> None:
    """The seed scenario, over MCP only: an expensive agent deploys, a cheap one polls
    health and tries to interrupt the step holding the pane; the deploy is undisturbed
    and the cheap agent is told whose run it is and which tool to call instead."""
    from sane.testing.fleet import register

    fleet = make_fleet(1)
    register(sane_home, fleet)
    go = fleet["s1"].home / "go"
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "name": "seed",
                "steps": [
                    {
                        "name": "migrate",
                        "run": "while [ ! -e go ]; do sleep 0.05; done; echo migrated",
                        "undo": "true",
                        "timeout": 120,
                    }
                ],
            }
        )
    )

    async def main() -> None:
        async with mcp_session(cli_env) as deployer, mcp_session(cli_env) as poller:

            async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
                return document(await session.call_tool(tool, arguments))

            started = await call(deployer, "deploy", plan=str(plan), servers=["s1"])
            assert started["status"] == "running"  # it answers at once, with its id
            with anyio.fail_after(60):
                while True:  # until the step holds the server's pane (read-only polling:
                    # a run of the poller's own there could make the step find it busy)
                    listing = await call(poller, "list_panes", all=True)
                    if any(p["sane_server"] == "s1" and p["busy"] for p in listing["panes"]):
                        break
                    await anyio.sleep(0.05)
            busy = await call(poller, "run_command", command="true", server="s1")
            assert busy["error"]["code"] == "pane_busy"
            owner = busy["error"]["details"]["owner"]
            assert (owner["step"], owner["server"]) == ("step:migrate", "s1")
            assert "deploy_status" in busy["error"]["message"]
            assert "sane " not in busy["error"]["message"]  # tool names, not the CLI
            health = await call(
                poller,
                "health_wait",
                until='.status == "healthy"',
                servers=["s1"],
                timeout=0.2,
                interval=0.05,
            )
            assert health["ok"] and health["met"] is False
            refused = await call(poller, "run_interrupt", run_id=busy["error"]["details"]["run_id"])
            assert refused["error"]["code"] == "run_owned"
            assert refused["error"]["details"]["owner"]["deploy_id"] == owner["deploy_id"]
            assert "deploy_status" in refused["error"]["message"]
            status = await call(poller, "deploy_status", deploy_id=owner["deploy_id"])
            assert status["status"] == "running"
            go.touch()
            with anyio.fail_after(60):
                while True:  # the deployer follows its deploy
                    report = await call(deployer, "deploy_status", deploy_id=started["deploy_id"])
                    if report["status"] != "running":
                        break
                    await anyio.sleep(0.1)
            assert report["status"] == "completed", report
            assert report["deploy_id"] == owner["deploy_id"]
            step = report["servers"][0]["steps"][0]
            assert (step["status"], step["output"]) == ("completed", "migrated\n")

    anyio.run(main)


def test_progress_notifications_for_runs_fleets_health_and_deploys(
    cli_env: dict[str, str],
    sane_home: Path,
    make_fleet: Callable[..., Any],
    tmux_server: TmuxTestServer,
    tmp_path: Path,
) -> None:
    from sane.testing.fleet import register

    pane = tmux_server.new_pane("bash")
    fleet = make_fleet(2)
    register(sane_home, fleet)
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "name": "p",
                "steps": [
                    {"name": "one", "run": "true", "undo": "true"},
                    {"name": "two", "run": "true", "undo": "true"},
                ],
            }
        )
    )

    async def body(session: ClientSession, call: Call) -> None:
        async def with_progress(
            tool: str, **arguments: Any
        ) -> tuple[dict[str, Any], list[tuple[float, Any, Any]]]:
            seen: list[tuple[float, Any, Any]] = []

            async def on_progress(
                progress: float, total: float | None, message: str | None
            ) -> None:
                seen.append((progress, total, message))

            result = await session.call_tool(tool, arguments, progress_callback=on_progress)
            return document(result), seen

        doc, seen = await with_progress(
            "run_command", pane=pane, command="for i in 1 2 3 4 5; do echo tick $i; sleep 0.4; done"
        )
        assert doc["output"] == "".join(f"tick {i}\n" for i in range(1, 6))
        assert len(seen) >= 2 and all(m.startswith("tick") for _, _, m in seen)
        assert [p for p, _, _ in seen] == sorted({p for p, _, _ in seen})  # increasing
        doc, seen = await with_progress("fleet_run", command="echo hi", all=True)
        assert doc["status"] == "completed"
        assert sorted(m for _, _, m in seen) == ["s1: completed (exit 0)", "s2: completed (exit 0)"]
        assert {t for _, t, _ in seen} == {2}
        # up, fleet put and health: one notification per server as it finishes
        doc, seen = await with_progress("connect", servers=["s1", "s2"])
        assert sorted(m for _, _, m in seen) == ["s1: ok", "s2: ok"], seen
        local = tmp_path / "put.txt"
        local.write_text("put\n")
        for tool, arguments in (
            ("fleet_put", {"local_file": str(local), "remote_path": "~/progress-put.txt"}),
            ("fleet_detect", {}),
        ):
            doc, seen = await with_progress(tool, servers=["s1", "s2"], **arguments)
            assert doc["status"] == "completed", doc
            assert sorted(m.partition(": ")[0] for _, _, m in seen) == ["s1", "s2"], seen
            assert all(m.partition(": ")[2] for _, _, m in seen), seen
            assert {t for _, t, _ in seen} == {2}
        doc, seen = await with_progress("health", servers=["s1", "s2"])
        assert sorted(m for _, _, m in seen) == ["s1: unknown (missing)", "s2: unknown (missing)"]
        assert {t for _, t, _ in seen} == {2}
        doc, seen = await with_progress(
            "health_wait",
            until='.status == "healthy"',
            servers=["s1", "s2"],
            timeout=0,
            interval=0.05,
        )
        assert sorted(m for _, _, m in seen) == ["s1: unknown (missing)", "s2: unknown (missing)"]
        doc, seen = await with_progress("deploy", plan=str(plan), servers=["s1", "s2"], wait=True)
        assert doc["status"] == "completed"
        messages = [m for _, _, m in seen]
        for server in ("s1", "s2"):
            for step in ("step:one", "step:two"):
                assert f"{server}: item_finished {step}" in messages

    with_session(cli_env, body)


def test_screen_keys_and_text_drive_a_full_screen_program(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("bash")

    async def body(session: ClientSession, call: Call) -> None:
        started = await call("run_command", command="seq 1 500 | less", pane=pane, timeout=0.5)
        assert started["status"] in ("running", "waiting_input")
        first = await call("wait_for_text", pane=pane, pattern=r"^1$", timeout=30)
        validate("wait-for-text", first)
        assert first["matched"] and first["match"] == "1"
        await call("send_keys", pane=pane, text="/250", keys=["Enter"])
        found = await call("wait_for_text", pane=pane, pattern=r"^250$", timeout=30)
        assert found["matched"]
        screen = await call("read_screen", pane=pane)
        validate("read-screen", screen)
        assert screen["text"].splitlines()[0] == "250" and screen["height"] > 0
        sent = await call("send_keys", pane=pane, keys=["q"])
        validate("send-keys", sent)
        done = await call("run_wait", run_id=started["run_id"], timeout=30)
        assert (done["status"], done["exit_code"]) == ("completed", 0)
        missing = await call("wait_for_text", pane=pane, pattern="never-shown", timeout=0.2)
        assert missing["matched"] is False
        bad = await call("send_keys", pane=pane, keys=["-t %0"])
        assert bad["error"]["code"] == "invalid_argument"
        regex = await call("wait_for_text", pane=pane, pattern="(", timeout=0)
        assert regex["error"]["code"] == "invalid_argument"
        tail = await call("read_screen", pane=pane, lines=3)
        assert len(tail["text"].splitlines()) <= 3
        as_resource = await session.read_resource(f"sane://panes/{pane}/screen")
        now = await call("read_screen", pane=pane)
        content = as_resource.contents[0]
        assert isinstance(content, mt.TextResourceContents) and content.text == now["text"]
        with pytest.raises(MCPError):
            await session.read_resource("sane://panes/%999/screen")

    with_session(cli_env, body)


def test_send_keys_refuses_the_pane_sane_runs_in(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("bash")
    socket_path = tmux_server.run("display-message", "-p", "#{socket_path}").strip()
    env = {**cli_env, "TMUX_PANE": pane, "TMUX": f"{socket_path},1,0"}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "sane.cli.main", "mcp"], env=env
    )

    async def main() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            doc = document(await s.call_tool("send_keys", {"pane": pane, "text": "echo x"}))
            assert doc["error"]["code"] == "pane_busy"

    anyio.run(main)


CALLER_CLIENT = """
import json, os, sys
import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

own, other, out, cwd = sys.argv[1:]
assert os.environ["TMUX_PANE"] == own  # this client runs in pane `own`
# What the TypeScript SDK passes a server it starts when given no env (and the server's
# configured variables): no TMUX, no TMUX_PANE.
keep = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "SANE_HOME", "SANE_TMUX_SOCKET")
env = {k: os.environ[k] for k in keep if k in os.environ}
params = StdioServerParameters(
    command=sys.executable, args=["-m", "sane.cli.main", "mcp"], env=env, cwd=cwd
)

async def main() -> None:
    docs = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        for pane in (own, other):
            result = await s.call_tool("send_keys", {"pane": pane, "text": "typed"})
            docs.append(result.structured_content)
    with open(out + ".part", "w") as fh:
        json.dump(docs, fh)
    os.rename(out + ".part", out)

anyio.run(main)
"""


def test_send_keys_refuses_the_callers_pane_without_tmux_pane_in_its_env(
    cli_env: dict[str, str], tmux_server: TmuxTestServer, tmp_path: Path
) -> None:
    """A client inside a tmux pane that starts ``sane mcp`` with few variables (the
    TypeScript SDK's default) leaves out ``$TMUX_PANE``: sane finds the pane its
    caller runs in from its own ancestry, and refuses to type there."""
    other = tmux_server.new_pane("bash")
    script, out = tmp_path / "client.py", tmp_path / "out.json"
    script.write_text(CALLER_CLIENT)
    root = Path(__file__).resolve().parents[1]
    env = " ".join(f"{k}={cli_env[k]}" for k in ("SANE_HOME", "SANE_TMUX_SOCKET"))
    log = tmp_path / "client.log"
    own = tmux_server.new_pane(
        f"env {env} {sys.executable} {script} PANE {other} {out} {root} 2>{log}".replace(
            "PANE", "$TMUX_PANE"
        )
    )
    deadline = time.monotonic() + 90
    while not out.exists():
        assert time.monotonic() < deadline, (own, log.read_text() if log.exists() else None)
        time.sleep(0.05)  # polling a condition, with a deadline
    refused, typed = json.loads(out.read_text())
    assert refused["ok"] is False and refused["error"]["code"] == "pane_busy", refused
    assert refused["error"]["details"] == {"pane": own}
    validate("error", refused)
    assert typed["ok"] is True and typed["pane"] == other, typed


def test_sane_mcp_tools_and_exclude_serve_a_subset(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("dash")
    env = {k: cli_env[k] for k in ("SANE_TMUX_SOCKET", "SANE_HOME")}

    async def listed(*options: str) -> tuple[list[str], dict[str, Any]]:
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "sane.cli.main", "mcp", *options], env=env
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            names = [t.name for t in (await s.list_tools()).tools]
            refused = document(await s.call_tool("run_command", {"command": "true", "pane": pane}))
            return names, refused

    async def main() -> None:
        names, refused = await listed("--tools", "read-only")
        assert names == [t.name for t in tools.TOOLS if t.read_only]
        assert {"list_panes", "read_screen", "health", "deploy_status"} <= set(names)
        assert refused["error"]["code"] == "invalid_argument"
        assert "not served" in refused["error"]["message"]
        names, refused = await listed("--exclude", "send_keys,deploy")
        assert names == [t.name for t in tools.TOOLS if t.name not in ("send_keys", "deploy")]
        assert refused["status"] == "completed"

    anyio.run(main)
    # an unknown name: tests/test_mcp_clients.py (said on stderr and to the client)


def test_every_advertised_resource_and_template_answers(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    """Each template, filled with a real run's or pane's values, and each listed
    resource reads (a template added without a case here fails); every link a result
    carries reads too."""
    pane = tmux_server.new_pane("bash")

    async def body(session: ClientSession, call: Call) -> None:
        big = await session.call_tool(
            "run_command", {"command": "seq 1 30000; read -r x", "pane": pane, "timeout": 120}
        )
        started = document(big)
        assert started["status"] == "waiting_input" and started["truncated"], started
        run_id, start = started["run_id"], started["output_start"]
        linked = [str(c.uri) for c in big.content if isinstance(c, mt.ResourceLink)]
        assert len(linked) == 2  # the part left out, and the run's log
        number = pane.lstrip("%")
        filled = {
            "run-output": [
                f"sane://runs/{run_id}/output-{start}",
                f"sane://runs/{run_id}/output-{start}?offset=5",
                linked[0],
            ],
            "run": [f"sane://runs/{run_id}"],
            "run-log": [f"sane://runs/{run_id}/log", f"sane://runs/{run_id}/log?offset=7"],
            "pane-screen": [f"sane://panes/%{number}/screen", f"sane://panes/%25{number}/screen"],
        }
        templates = (await session.list_resource_templates()).resource_templates
        assert sorted(t.name for t in templates) == sorted(filled)
        listed = [str(r.uri) for r in (await session.list_resources()).resources]
        assert f"sane://runs/{run_id}" in listed
        for uri in [*linked, *listed, *(u for uris in filled.values() for u in uris)]:
            contents = (await session.read_resource(uri)).contents
            assert contents and all(c.uri is not None for c in contents), uri
        done = await call("run_input", run_id=run_id, text="x")
        assert done["status"] == "completed", done

    with_session(cli_env, body)


def test_recorded_runs_are_resources_state_and_paged_log(
    cli_env: dict[str, str], tmux_server: TmuxTestServer
) -> None:
    """A run left waiting is listed; its state and its whole output so far are readable
    page by page (a page never splits a character); URIs are allow-listed."""
    from sane.mcp.resources import LOG_PAGE

    pane = tmux_server.new_pane("bash")
    line = "abcéx\n"  # 7 bytes: the first page's end would fall inside the é
    assert LOG_PAGE % len(line.encode()) == 4
    whole = line * 5000

    async def read_log(session: ClientSession, uri: str) -> tuple[str, list[dict[str, Any]]]:
        text, metas = "", []
        next_uri: str | None = uri
        while next_uri is not None:
            contents = (await session.read_resource(next_uri)).contents[0]
            assert isinstance(contents, mt.TextResourceContents)  # a page is text
            assert len(contents.text.encode()) <= LOG_PAGE
            text += contents.text
            metas.append(contents.meta or {})
            next_uri = metas[-1]["next"]
        return text, metas

    async def body(session: ClientSession, call: Call) -> None:
        result = await session.call_tool(
            "run_command",
            {
                "command": "yes abcéx | head -n 5000; read -r x; echo got $x",
                "pane": pane,
                "timeout": 20,
            },
        )
        started = document(result)
        assert started["status"] == "waiting_input", started
        run_id = started["run_id"]
        linked = [str(c.uri) for c in result.content if isinstance(c, mt.ResourceLink)]
        assert f"sane://runs/{run_id}/log" in linked  # beside the spilled output's link
        listed = {str(r.uri) for r in (await session.list_resources()).resources}
        assert {f"sane://runs/{run_id}", f"sane://runs/{run_id}/log"} <= listed
        templates = {
            t.uri_template for t in (await session.list_resource_templates()).resource_templates
        }
        assert {"sane://runs/{run_id}", "sane://runs/{run_id}/log{?offset}"} <= templates

        state = (await session.read_resource(f"sane://runs/{run_id}")).contents[0]
        assert isinstance(state, mt.TextResourceContents)
        summary = json.loads(state.text)
        assert (summary["pane"], summary["status"], summary["output_bytes"]) == (
            pane,
            "running",
            len(whole.encode()),
        )
        text, metas = await read_log(session, f"sane://runs/{run_id}/log")
        assert text == whole and len(metas) == 2
        assert metas[0]["next_offset"] == LOG_PAGE - 1  # moved back to the é's first byte

        done = await call("run_input", run_id=run_id, text="yes")
        assert (done["status"], done["output"]) == ("completed", "yes\ngot yes\n"), done  # echoed
        state = (await session.read_resource(f"sane://runs/{run_id}")).contents[0]
        assert isinstance(state, mt.TextResourceContents)
        summary = json.loads(state.text)
        assert (summary["status"], summary["exit_code"]) == ("completed", 0)
        text, _ = await read_log(session, f"sane://runs/{run_id}/log")
        assert text == whole + "yes\ngot yes\n"

        for bad in (
            f"sane://runs/{run_id}/../../servers.json",
            "sane://runs/../runs",
            f"sane://runs/{run_id}/log?offset=-1",
            f"sane://runs/{run_id}/log?offset=99999999",
            f"sane://runs/{run_id}/record.json",
            f"sane://runs/{run_id}/stream",
        ):
            with pytest.raises(MCPError) as refused:
                await session.read_resource(bad)
            assert refused.value.error.code == mt.INVALID_PARAMS, bad
        with pytest.raises(MCPError) as missing:
            await session.read_resource("sane://runs/r000000000000")
        assert missing.value.error.code == -32002

    with_session(cli_env, body)


def test_a_run_that_ended_in_another_process_answers_run_wait_with_its_ending(
    cli_env: dict[str, str],
    sane_home: Path,
    tmux_server: TmuxTestServer,
    make_fleet: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """A CLI one-shot's run id, and a deploy step's (its deploy ran in another ``sane
    mcp``): run_wait and run_interrupt return the run's ending as a run result (no
    output: its call returned it; no command: sane keeps only the ending), run_input
    is refused with run_finished. Before, all three answered run_finished."""
    from sane.testing.fleet import register

    pane = tmux_server.new_pane("bash")
    _, oneshot, _ = cli(
        ["sane.cli.main", "run-command", "--pane", pane, "echo hi; (exit 3)"], cli_env
    )
    assert (oneshot["status"], oneshot["exit_code"], oneshot["output"]) == ("completed", 3, "hi\n")
    register(sane_home, make_fleet(1))
    plan = tmp_path / "plan.json"
    step = {"name": "one", "run": "echo deployed", "undo": "true"}
    plan.write_text(json.dumps({"name": "p", "steps": [step]}))
    steps: list[dict[str, Any]] = []

    async def deploy(session: ClientSession, call: Call) -> None:
        report = await call("deploy", plan=str(plan), servers=["s1"], wait=True)
        assert report.get("status") == "completed", report
        steps.extend(report["servers"][0]["steps"])

    with_session(cli_env, deploy)
    step_run = next(s["run_id"] for s in steps if s.get("run_id"))

    async def follow(session: ClientSession, call: Call) -> None:
        for run_id, code, shown in ((oneshot["run_id"], 3, 3), (step_run, 0, None)):
            for tool in ("run_wait", "run_interrupt"):
                ended = await call(tool, run_id=run_id)
                validate("run-command", ended)
                assert ended["ok"] and ended["command"] is None, ended
                assert (ended["status"], ended["exit_code"], ended["output"]) == (
                    "completed",
                    code,
                    "",
                )
                if shown is not None:
                    assert ended["output_start"] == shown and ended["pane"] == pane
            refused = await call("run_input", run_id=run_id, text="y")
            assert refused["error"]["code"] == "run_finished", refused

    with_session(cli_env, follow)

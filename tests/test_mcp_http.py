"""``sane mcp --http``: the same server over Streamable HTTP, driven by real clients (the
Python SDK's streamable HTTP client, the TypeScript SDK's StreamableHTTPClientTransport,
plain HTTP requests), against real tmux panes. Each server listens on a port the system
chose, so two test runs share the machine."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp.types as mt
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client

from sane import tools
from sane.testing.mcp_http import HttpServer, http_server
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import cli
from .test_mcp import document
from .test_mcp_clients import TS_CLIENT

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}


@pytest.fixture
def server(cli_env: dict[str, str]) -> Iterator[HttpServer]:
    with http_server(cli_env) as running:
        yield running


@contextlib.asynccontextmanager
async def http_session(url: str, token: str) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def post(url: str, token: str | None, body: Any = INITIALIZE) -> tuple[int, dict[str, str], str]:
    """One raw HTTP POST as any client sends it: (status, headers, body text)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **({"Authorization": f"Bearer {token}"} if token is not None else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_every_request_needs_the_token_and_the_generated_one_is_private(
    server: HttpServer, sane_home: Path
) -> None:
    ready = server.ready
    assert ready["url"].startswith("http://127.0.0.1:") and ready["url"].endswith("/mcp")
    assert ready["token_source"] == "generated" and ready["token"] == server.token
    token_file = Path(ready["token_file"])
    assert token_file.parent == sane_home / "mcp"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert token_file.parent.stat().st_mode & 0o777 == 0o700
    assert token_file.read_text().strip() == server.token

    status, headers, body = post(server.url, None)
    assert status == 401 and headers["www-authenticate"] == 'Bearer realm="sane"'
    assert json.loads(body)["error"] == "invalid_token"
    for wrong in ("x" * 43, server.token[:-1], server.token + "x", ""):
        status, headers, body = post(server.url, wrong)
        assert status == 401, wrong
        assert "invalid_token" in headers["www-authenticate"] or wrong == ""
        assert server.token not in body
    status, _, _ = post(server.url.removesuffix("/mcp") + "/other", "x" * 43)
    assert status == 401  # every path, not just the endpoint
    status, headers, body = post(server.url, server.token)
    assert status == 200 and json.loads(body)["result"]["serverInfo"]["name"] == "tmux-sane"
    # a request without a progressToken is answered with one JSON body, not an SSE stream
    assert headers["content-type"] == "application/json" and headers["mcp-session-id"]


def test_a_restart_reuses_the_token_and_a_given_one_is_never_printed(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    with http_server(cli_env) as first:
        pass
    # SIGTERM: a clean stop (uvicorn's own handling re-raised the signal and killed the
    # process before sane could let background deploys finish)
    assert first.process.returncode == 0
    with http_server(cli_env) as second:
        assert second.ready["token_source"] == "file" and second.ready["token"] is None
        assert second.token == first.token
        assert post(second.url, first.token)[0] == 200
    given = tmp_path / "token"
    given.write_text("a-token-of-my-own-0123456789\n")
    given.chmod(0o600)
    with http_server(cli_env, "--token-file", str(given)) as third:
        assert third.ready["token"] is None and third.ready["token_file"] == str(given)
        assert post(third.url, "a-token-of-my-own-0123456789")[0] == 200
        assert post(third.url, first.token)[0] == 401
    with http_server({**cli_env, "SANE_MCP_TOKEN": "from-the-environment-42"}) as fourth:
        assert fourth.ready["token_source"] == "env" and fourth.ready["token"] is None
        assert post(fourth.url, "from-the-environment-42")[0] == 200

    given.chmod(0o644)  # readable by others: refused, as ssh refuses such a key
    code, doc, _ = cli(["sane.cli.main", "mcp", "--http", "0", "--token-file", str(given)], cli_env)
    assert code == 2 and doc["error"]["code"] == "invalid_argument"
    assert "chmod 600" in doc["error"]["message"]
    code, doc, _ = cli(
        ["sane.cli.main", "mcp", "--http", "0"], {**cli_env, "SANE_MCP_TOKEN": "short"}
    )
    assert code == 2 and doc["error"]["code"] == "invalid_argument"
    assert "short" not in json.dumps(doc)  # a token is never echoed back


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0", "192.0.2.1:0", "example.com:0"])
def test_a_non_loopback_address_is_refused_unless_allowed_by_name(
    cli_env: dict[str, str], address: str
) -> None:
    code, doc, _ = cli(["sane.cli.main", "mcp", "--http", address], cli_env)
    assert code == 2 and doc["error"]["code"] == "invalid_argument", doc
    assert doc["error"]["details"]["option"] == "--allow-non-loopback"


def test_allow_non_loopback_listens_on_every_address(cli_env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [*_sane(), "mcp", "--http", "0.0.0.0:0", "--allow-non-loopback"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        from sane.testing.mcp_http import read_ready

        ready = read_ready(proc)
        assert ready["url"].startswith("http://0.0.0.0:")
        port = ready["url"].split(":")[2].split("/")[0]
        assert post(f"http://127.0.0.1:{port}/mcp", None)[0] == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()


def _sane() -> list[str]:
    import sys

    return [sys.executable, "-m", "sane.cli.main"]


@pytest.mark.parametrize("bad", ["", "host:", ":99999", "x:y", "70000"])
def test_a_malformed_address_is_invalid_argument(cli_env: dict[str, str], bad: str) -> None:
    code, doc, _ = cli(["sane.cli.main", "mcp", "--http", bad], cli_env)
    assert code == 2 and doc["error"]["code"] == "invalid_argument", doc


def test_tools_progress_cancellation_and_resources_over_http(
    server: HttpServer, tmux_server: TmuxTestServer
) -> None:
    pane = tmux_server.new_pane("bash")

    async def main() -> None:
        async with http_session(server.url, server.token) as session:
            listed = await session.list_tools()
            assert [t.name for t in listed.tools] == [t.name for t in tools.TOOLS]
            doc = document(
                await session.call_tool("run_command", {"command": "echo hi", "pane": pane})
            )
            assert (doc["status"], doc["output"]) == ("completed", "hi\n")

            seen: list[str | None] = []

            async def on_progress(
                progress: float, total: float | None, message: str | None
            ) -> None:
                seen.append(message)

            doc = document(
                await session.call_tool(
                    "run_command",
                    {"command": "for i in 1 2 3; do echo tick $i; sleep 0.4; done", "pane": pane},
                    progress_callback=on_progress,
                )
            )
            assert doc["output"] == "tick 1\ntick 2\ntick 3\n"
            assert len(seen) >= 2 and all(m is not None and m.startswith("tick") for m in seen)

            # The client's request timeout cancels the call (notifications/cancelled over
            # HTTP): the run is interrupted and the pane free at once.
            with pytest.raises(MCPError):
                await session.call_tool(
                    "run_command",
                    {"command": "sleep 600", "pane": pane, "timeout": 600},
                    read_timeout_seconds=1,
                )
            cancelled = time.monotonic()
            with anyio.fail_after(30):
                while True:
                    again = document(
                        await session.call_tool(
                            "run_command", {"command": "echo free", "pane": pane}
                        )
                    )
                    if again["ok"] or again["error"]["code"] != "pane_busy":
                        break
            freed = time.monotonic() - cancelled
            assert (again["status"], again["output"]) == ("completed", "free\n"), again
            assert freed < 1.0 + 0.5, freed  # within 1 s (+ the calls' own round trips)

            read = await session.read_resource(f"sane://panes/{pane}/screen")
            contents = read.contents[0]
            assert isinstance(contents, mt.TextResourceContents) and "free" in contents.text

    anyio.run(main)


def test_the_typescript_sdk_over_http(
    cli_env: dict[str, str], server: HttpServer, tmux_server: TmuxTestServer
) -> None:
    """The client most hosts embed, over HTTP: every result through its own output-schema
    check, progress, a cancelled call that frees its pane; a wrong or missing token is
    refused before any session starts."""
    node = shutil.which("node")
    assert node, "node (20+) is needed for the TypeScript MCP client test"
    pane = tmux_server.new_pane("bash")

    def ts(target: dict[str, Any], calls: list[dict[str, Any]]) -> dict[str, Any]:
        proc = subprocess.run(
            [node, str(TS_CLIENT / "call.mjs"), json.dumps(target)],
            input=json.dumps(calls),
            env={k: v for k, v in os.environ.items() if not k.startswith("SANE_")},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        out: dict[str, Any] = json.loads(proc.stdout)
        return out

    for token in (None, "not-the-token-at-all"):
        out = ts({"url": server.url, "token": token}, [])
        assert out["code"] == 401 and "invalid_token" in out["connect_error"], out

    out = ts(
        {"url": server.url, "token": server.token},
        [
            {"tool": "run_command", "arguments": {"command": "echo hi", "pane": pane}},
            {"tool": "run_command", "arguments": {"command": "true", "pane": "%999"}},
            {
                "tool": "run_command",
                "arguments": {
                    "command": "for i in 1 2 3; do echo t$i; sleep 0.4; done",
                    "pane": pane,
                },
                "progress": True,
            },
            {
                "tool": "run_command",
                "arguments": {"command": "sleep 600", "pane": pane, "timeout": 600},
                "timeout_ms": 1000,
            },
            {
                "tool": "run_command",
                "arguments": {"command": "echo free", "pane": pane},
                "retry_busy_ms": 30000,
            },
        ],
    )
    assert out["tools"] == [t.name for t in tools.TOOLS]
    hi, missing, ticking, cancelled, free = out["results"]
    assert hi["structured"]["output"] == "hi\n" and not hi["is_error"]
    assert missing["is_error"] and missing["structured"]["error"]["code"] == "pane_not_found"
    assert ticking["structured"]["output"] == "t1\nt2\nt3\n"
    assert len(ticking["progress"]) >= 2
    assert cancelled["code"] == -32001 and "timed out" in cancelled["thrown"]
    assert free["structured"]["output"] == "free\n", free
    assert free["elapsed_ms"] < 1500, free  # the pane was free within a second

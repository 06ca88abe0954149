"""``sane mcp --http``: the same server over Streamable HTTP, driven by real clients (the
Python SDK's streamable HTTP client, the TypeScript SDK's StreamableHTTPClientTransport,
plain HTTP requests), against real tmux panes. Each server listens on a port the system
chose, so two test runs share the machine."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
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
from sane.mcp import http, http_answers, stdio
from sane.mcp.server import build_server
from sane.ops.context import Context
from sane.testing.mcp_http import HttpServer, http_server
from sane.testing.pytest_plugin import TmuxTestServer

from .conftest import cli
from .test_mcp import RAW_INITIALIZE, document
from .test_mcp_clients import TS_CLIENT

INITIALIZE = RAW_INITIALIZE


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


def post(
    url: str, token: str | None, body: Any = INITIALIZE, **headers: str
) -> tuple[int, dict[str, str], str]:
    """One raw HTTP POST as any client sends it: (status, headers, body text);
    ``headers`` (``Mcp_Session_Id="..."``) added or replacing the usual ones."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **({"Authorization": f"Bearer {token}"} if token is not None else {}),
            **{name.replace("_", "-"): value for name, value in headers.items()},
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


def test_the_short_way_for_plain_requests_is_in_use_with_this_sdk(
    tmux_server: TmuxTestServer,
) -> None:
    """The short way (:mod:`sane.mcp.http_answers`) reads the SDK transport's internals:
    an SDK that no longer has them would quietly send every request the slow way."""
    ctx = Context(tmux_server.server)
    try:
        server = build_server(ctx)
        http.app(server, "t" * 20, "127.0.0.1")
        assert http_answers.sessions_of(server) is not None
    finally:
        ctx.close()


def test_a_plain_request_in_a_session_keeps_the_transports_rules(server: HttpServer) -> None:
    """A request without a progressToken in an open session is answered with one JSON
    body carrying the session id; one that fails any check of the SDK's transport
    (unknown session, Accept, Host, Content-Type, protocol version, a body that does not
    parse) gets the SDK's own answer; one with a progressToken its SSE stream."""
    status, headers, _ = post(server.url, server.token)
    assert status == 200
    session = headers["mcp-session-id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert post(server.url, server.token, initialized, Mcp_Session_Id=session)[0] == 202
    ping = {"jsonrpc": "2.0", "id": "p1", "method": "ping"}

    status, headers, body = post(server.url, server.token, ping, Mcp_Session_Id=session)
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["mcp-session-id"] == session
    assert json.loads(body) == {"jsonrpc": "2.0", "id": "p1", "result": {}}
    status, _, body = post(
        server.url,
        server.token,
        {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "no_such"}},
        Mcp_Session_Id=session,
    )
    answer = json.loads(body)
    assert status == 200 and answer["id"] == 7 and answer["result"]["isError"], answer

    refused = {
        "unknown session": ({"Mcp_Session_Id": "0" * 32}, 404),
        "no session": ({}, 400),
        "Accept without SSE": ({"Mcp_Session_Id": session, "Accept": "application/json"}, 406),
        "foreign Host": ({"Mcp_Session_Id": session, "Host": "evil.example:80"}, 421),
        "foreign Origin": ({"Mcp_Session_Id": session, "Origin": "http://evil.example"}, 403),
        "Content-Type": ({"Mcp_Session_Id": session, "Content_Type": "text/plain"}, 400),
    }
    for what, (extra, code) in refused.items():
        assert post(server.url, server.token, ping, **extra)[0] == code, what
    status, _, body = post(
        server.url, server.token, ping, Mcp_Session_Id=session, Mcp_Protocol_Version="1999-01-01"
    )
    assert status >= 400, (status, body)
    status, _, body = post(
        server.url, server.token, {"jsonrpc": "2.0", "id": 3}, Mcp_Session_Id=session
    )
    assert status == 400 and json.loads(body)["error"]["code"] == mt.INVALID_PARAMS

    with_progress = {**ping, "id": "p2", "params": {"_meta": {"progressToken": "t"}}}
    status, headers, body = post(server.url, server.token, with_progress, Mcp_Session_Id=session)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert '"id":"p2"' in body and '"result":{}' in body
    # the session is still served the short way after all that
    assert post(server.url, server.token, ping, Mcp_Session_Id=session)[0] == 200


def test_a_batch_is_refused_as_stdio_refuses_it(server: HttpServer) -> None:
    """MCP has no JSON-RPC batches: a batch gets the -32600 refusal stdio gives (each
    request by its id; an empty array one error object), not a pydantic dump under
    -32602 with no id."""
    session = _open_session(server)
    batch = [
        {"jsonrpc": "2.0", "id": 3, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "b", "method": "tools/list"},
    ]
    for body, expected in ((batch, rejection(json.dumps(batch))), ([], rejection("[]"))):
        status, headers, text = post(server.url, server.token, body, Mcp_Session_Id=session)
        assert (status, headers["content-type"]) == (400, "application/json"), text
        assert json.loads(text) == expected
    assert [reply["id"] for reply in rejection(json.dumps(batch))] == [3, "b"]
    assert {reply["error"]["code"] for reply in rejection(json.dumps(batch))} == {
        mt.INVALID_REQUEST
    }
    assert rejection("[]")["error"]["code"] == mt.INVALID_REQUEST
    ping = {"jsonrpc": "2.0", "id": "p", "method": "ping"}
    assert post(server.url, server.token, ping, Mcp_Session_Id=session)[0] == 200


def rejection(line: str) -> Any:
    """stdio's answer to ``line``, a batch (one definition: sane.mcp.stdio)."""
    return json.loads(stdio.batch_rejection(json.loads(line)))


def _data_segments_in(sock: socket.socket) -> int:
    """Segments with data this socket has received (Linux ``tcp_info.tcpi_data_segs_in``,
    after the fields up to ``tcpi_min_rtt``: offset 152)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < 156:
        pytest.skip("this kernel's tcp_info has no data_segs_in")
    count: int = struct.unpack_from("I", info, 152)[0]
    return count


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_INFO is Linux's")
def _open_session(server: HttpServer) -> str:
    """A session started with ``initialize`` and ``notifications/initialized``; its id."""
    status, headers, _ = post(server.url, server.token)
    assert status == 200
    session: str = headers["mcp-session-id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert post(server.url, server.token, initialized, Mcp_Session_Id=session)[0] == 202
    return session


@contextlib.contextmanager
def _raw_connection(server: HttpServer) -> Iterator[socket.socket]:
    host, port = server.url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield sock


def _ping_on(sock: socket.socket, server: HttpServer, session: str, number: int) -> bytes:
    """An MCP ping on ``sock`` (kept alive), its answer checked; the answer's bytes."""
    host, port = sock.getpeername()[:2]
    body = json.dumps({"jsonrpc": "2.0", "id": number, "method": "ping"}).encode()
    request = (
        f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {server.token}\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\n"
        f"Mcp-Session-Id: {session}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    sock.sendall(request)
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < int(
        answer.lower().partition(b"content-length: ")[2].split(b"\r\n")[0] or b"0"
    ):
        piece = sock.recv(1 << 16)
        assert piece, answer
        answer += piece
    head, _, reply = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert json.loads(reply) == {"jsonrpc": "2.0", "id": number, "result": {}}
    return answer


def test_an_answer_goes_out_in_one_segment(server: HttpServer) -> None:
    """A JSON answer's head and body leave in one write: uvicorn writes them apart, two
    segments the client wakes for one by one (and a loopback send runs the peer's
    receive path in the sender, twice). Counted by the kernel on the client's socket."""
    session = _open_session(server)
    with _raw_connection(server) as sock:
        for number in range(5):  # the first and later answers on a kept-alive connection
            before = _data_segments_in(sock)
            answer = _ping_on(sock, server, session, number)
            assert _data_segments_in(sock) - before == 1, (number, answer)


def test_the_server_parses_http_with_httptools(server: HttpServer) -> None:
    """uvicorn serves ``sane mcp --http`` with httptools' C parser, not h11's pure Python
    one (a quarter of a ``ping``'s server CPU; 0.16-0.39 ms a call, docs/performance.md):
    the ``mcp`` extra installs it and the running server, having answered a request, has
    its parser loaded (its own memory map, not this process's imports)."""
    session = _open_session(server)
    with _raw_connection(server) as sock:
        _ping_on(sock, server, session, 1)
    maps = Path(f"/proc/{server.process.pid}/maps").read_text()
    assert "/httptools/parser/parser." in maps, "httptools is not installed: bin/sane-bootstrap"
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert issubclass(http.one_write_protocol(), HttpToolsProtocol)


CLIENT_IDLE_S = 7.0  # past undici's 4 s and httpx's 5 s (uvicorn's own default was 5 s)


def test_an_idle_connection_stays_open_longer_than_clients_keep_theirs(
    server: HttpServer,
) -> None:
    """The client closes an idle kept-alive connection, never the server first: a client
    that reuses a pooled connection as the server closes it gets "other side closed"
    for a POST it may not resend (the TypeScript SDK's ``fetch failed``, seen under
    load). A connection idle for longer than the common clients keep theirs is still
    open (no end of stream within CLIENT_IDLE_S: the idleness under test, not a
    settling delay) and answers the next request."""
    session = _open_session(server)
    with _raw_connection(server) as sock:
        _ping_on(sock, server, session, 1)
        closed, _, _ = select.select([sock], [], [], CLIENT_IDLE_S)
        assert not closed, f"the server closed an idle connection within {CLIENT_IDLE_S} s"
        _ping_on(sock, server, session, 2)


def test_a_restart_reuses_the_token_and_a_given_one_is_never_printed(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    with http_server(cli_env) as first:
        pass
    # SIGTERM: a clean stop, the wind-down done, then death by that SIGTERM (uvicorn's
    # own handling re-raised it before sane could let background deploys finish)
    assert first.process.returncode == -signal.SIGTERM
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

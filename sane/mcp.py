"""``sane mcp``: sane's commands as MCP tools over stdio, in one long-lived process.

Why a server at all: a CLI call pays for a Python start-up, a tmux control client
attach and the pane look-up every time (~100 ms); this process keeps one
:class:`~sane.ops.context.Context` (and so its control-mode clients) for its whole
life, so a warm ``run_command`` costs about a millisecond plus the MCP framing.

The tools are the table in :mod:`sane.tools`: same input models, same library calls,
same JSON documents (the ``{"ok": ..., "schema_version": 1, ...}`` envelope) and same
error objects as the CLI. A document with ``ok: false`` is returned with ``isError``
set; a failing call never takes the server down (``sane.tools.call`` turns any
exception into an ``internal_error`` document).

Each call runs in a worker thread: the library blocks (it waits on pane output), and
an agent may well call ``run_interrupt`` while a ``run_command`` is still waiting.

This module is ``sane.mcp``; ``import mcp`` below is the MCP SDK (absolute imports).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import mcp.types as mt
from mcp.server import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from sane import __version__, tools
from sane.ops.context import Context
from sane.tmux.command import TmuxServer

INSTRUCTIONS = (
    "tmux-sane: run shell commands in tmux panes (local or over ssh) and get their exact "
    "output and exit code as JSON. Every result is {\"ok\": true|false, \"schema_version\": 1, "
    "...}. A run past its timeout comes back with status `running`: call run_wait with its "
    "run_id (or run_interrupt). `waiting_input` means the command waits for terminal input "
    "(`prompt` holds the prompt text): answer with run_input, or run_interrupt. Errors carry "
    "a stable `error.code`."
)


@functools.cache
def tool_list() -> list[mt.Tool]:
    """The tools as MCP declares them: built once from :data:`sane.tools.TOOLS`."""
    return [
        mt.Tool(name=tool.name, description=tool.description,
                input_schema=tools.input_schema(tool), output_schema=tools.output_schema(tool),
                annotations=mt.ToolAnnotations(read_only_hint=tool.read_only))
        for tool in tools.TOOLS
    ]


def tool_result(document: dict[str, Any]) -> mt.CallToolResult:
    """The JSON document as text (what a model reads) and as structured content."""
    text = json.dumps(document, ensure_ascii=False)
    return mt.CallToolResult(content=[mt.TextContent(text=text)], structured_content=document,
                             is_error=not document["ok"])


def build_server(ctx: Context) -> Server[Any]:
    async def list_tools(_: ServerRequestContext[Any],
                         __: mt.PaginatedRequestParams | None) -> mt.ListToolsResult:
        return mt.ListToolsResult(tools=tool_list())

    async def call_tool(_: ServerRequestContext[Any],
                        params: mt.CallToolRequestParams) -> mt.CallToolResult:
        outcome = await anyio.to_thread.run_sync(tools.call, ctx, params.name, params.arguments)
        return tool_result(outcome.document)

    return Server("tmux-sane", version=__version__, instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)


class _LineReader:
    """The protocol's input as async lines, read straight from the pipe.

    Why not the SDK's default: it wraps stdin and stdout in ``anyio.wrap_file``, a
    worker-thread hop for every read, write and flush, which measured ~4 ms of a 6 ms
    round trip. A non-blocking descriptor and the event loop's readiness wait cost
    microseconds. (A regular file never blocks, so it needs no wait either.)
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.scanned = 0  # no newline before this offset: a long line is searched once
        self.eof = False
        os.set_blocking(fd, False)

    def __aiter__(self) -> _LineReader:
        return self

    async def __anext__(self) -> str:
        while True:
            end = self.buffer.find(b"\n", self.scanned)
            if end >= 0 or (self.eof and self.buffer):
                cut = end + 1 if end >= 0 else len(self.buffer)
                line = bytes(self.buffer[:cut])
                del self.buffer[:cut]
                self.scanned = 0
                return line.decode("utf-8", "replace")
            if self.eof:
                raise StopAsyncIteration
            self.scanned = len(self.buffer)
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                await anyio.wait_readable(self.fd)
                continue
            self.eof = not chunk
            self.buffer += chunk


class _LineWriter:
    """The protocol's output: whole messages written to the pipe without a thread."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)

    async def write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8"))
        while data:
            try:
                data = data[os.write(self.fd, data):]
            except BlockingIOError:
                await anyio.wait_writable(self.fd)

    async def flush(self) -> None:
        return None


@contextlib.contextmanager
def _protocol_fds() -> Iterator[tuple[int, int]]:
    """Private copies of stdin/stdout for the protocol; fd 0 becomes /dev/null and fd 1
    stderr meanwhile, so a child process can neither eat a request nor corrupt a reply."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    os.close(null)
    try:
        yield proto_in, proto_out
    finally:
        # O_NONBLOCK belongs to the open file, shared with whoever started us (a
        # terminal's shell, say): give it back as it was.
        for fd in (proto_in, proto_out):
            os.set_blocking(fd, True)
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        for fd in (saved_in, saved_out, proto_in, proto_out):
            os.close(fd)


async def _serve(ctx: Context, proto_in: int, proto_out: int) -> None:
    server = build_server(ctx)
    reader: Any = _LineReader(proto_in)  # duck-typed: the SDK iterates and writes only
    writer: Any = _LineWriter(proto_out)
    async with stdio_server(stdin=reader, stdout=writer) as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def _have_uvloop() -> bool:
    """uvloop when installed (a dependency off Windows): its event loop and thread
    wake-ups took a warm ``run_command`` call from ~4.0 to ~2.7 ms (bench_mcp.py)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def serve(socket: str | None = None) -> None:
    """Serve MCP on stdin/stdout until the client closes stdin."""
    ctx = Context(TmuxServer.from_env(socket))
    try:
        with _protocol_fds() as (proto_in, proto_out):
            anyio.run(_serve, ctx, proto_in, proto_out,
                      backend_options={"use_uvloop": _have_uvloop()})
    finally:
        ctx.close()

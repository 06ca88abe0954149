"""MCP over stdin/stdout: newline-delimited JSON-RPC, read and written without threads,
and every line answered.

Why not the SDK's ``stdio_server``: it wraps the pipes in ``anyio.wrap_file`` (a
worker-thread hop for every read, write and flush, ~4 ms of a 6 ms round trip), and
it drops a line it cannot parse without a reply, so a client that sent a malformed
line, a JSON-RPC batch or a request nested too deeply to parse waits for ever. Here
such a line gets the JSON-RPC error the spec prescribes: ``-32700`` (parse error) or
``-32600`` (invalid request, with the request's id when it can be read).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import mcp_types as types
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import SessionMessage
from pydantic import ValidationError


class LineReader:
    """The protocol's input as async lines (bytes), read straight from the pipe.

    A non-blocking descriptor and the event loop's readiness wait cost microseconds.
    (A regular file never blocks, so it needs no wait either.)
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.scanned = 0  # no newline before this offset: a long line is searched once
        self.eof = False
        os.set_blocking(fd, False)

    def __aiter__(self) -> LineReader:
        return self

    async def __anext__(self) -> bytes:
        while True:
            end = self.buffer.find(b"\n", self.scanned)
            if end >= 0 or (self.eof and self.buffer):
                cut = end + 1 if end >= 0 else len(self.buffer)
                line = bytes(self.buffer[:cut])
                del self.buffer[:cut]
                self.scanned = 0
                return line
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


class LineWriter:
    """The protocol's output: whole messages, one at a time, written without a thread.

    The lock keeps two messages from interleaving when the pipe is full and a write
    has to wait (the SDK's replies and this module's error replies share the pipe)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = anyio.Lock()
        os.set_blocking(fd, False)

    async def write_line(self, text: str) -> None:
        data = memoryview((text + "\n").encode("utf-8"))
        async with self.lock:
            while data:
                try:
                    data = data[os.write(self.fd, data) :]
                except BlockingIOError:
                    await anyio.wait_writable(self.fd)


def _error(request_id: Any, code: int, message: str) -> str:
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    )


def _id_of(item: Any) -> Any:
    """The id of a would-be request, when it has a usable one (else null)."""
    if isinstance(item, dict) and isinstance(item.get("id"), (str, int)):
        return item["id"]
    return None


def batch_rejection(batch: list[Any]) -> str:
    """The reply to a JSON-RPC batch, which MCP (2025-06-18 on) does not have: each
    request in it refused by its id, so its caller hears back (one definition for stdio
    and HTTP)."""
    if not batch:
        # JSON-RPC 2.0 (section 6): an empty array is one invalid request, answered
        # with one error object, not an array.
        return _error(None, types.INVALID_REQUEST, "Invalid Request: an empty batch")
    replies = [
        json.loads(
            _error(
                _id_of(item),
                types.INVALID_REQUEST,
                "Invalid Request: JSON-RPC batches are not supported; "
                "send each message on its own line",
            )
        )
        for item in batch
        if _id_of(item) is not None
    ]
    if not replies:
        replies = [
            json.loads(
                _error(
                    None,
                    types.INVALID_REQUEST,
                    "Invalid Request: JSON-RPC batches are not supported",
                )
            )
        ]
    return json.dumps(replies)


def rejection(line: str, problem: ValidationError) -> str | None:
    """The JSON-RPC error reply to a line the SDK cannot take, or None when the line is
    a notification or response (which never get a reply)."""
    try:
        parsed = json.loads(line)
    except (ValueError, RecursionError):
        reason = problem.errors()[0]["msg"] if problem.errors() else "not JSON"
        return _error(None, types.PARSE_ERROR, f"Parse error: {reason}")
    if isinstance(parsed, list):
        return batch_rejection(parsed)
    if isinstance(parsed, dict) and "method" in parsed and "id" not in parsed:
        return None  # a malformed notification: nobody waits for an answer
    if (
        isinstance(parsed, dict)
        and "id" not in parsed
        and ("result" in parsed or "error" in parsed)
    ):
        return None
    detail = problem.errors()[0]["msg"] if problem.errors() else "not a JSON-RPC message"
    return _error(_id_of(parsed), types.INVALID_REQUEST, f"Invalid Request: {detail}")


@contextlib.asynccontextmanager
async def stdio_streams(reader: LineReader, writer: LineWriter) -> AsyncIterator[Any]:
    """The (read, write) stream pair ``Server.run`` takes, over ``reader``/``writer``."""
    read_writer, read_stream = create_context_streams[SessionMessage | Exception](0)
    write_stream, write_reader = create_context_streams[SessionMessage](0)

    async def read_lines() -> None:
        try:
            async with read_writer:
                async for line in reader:
                    if not line.strip():
                        continue
                    text = line.decode("utf-8", "replace")
                    try:
                        message = types.jsonrpc_message_adapter.validate_json(text, by_name=False)
                    except ValidationError as exc:
                        reply = rejection(text, exc)
                        if reply is not None:
                            await writer.write_line(reply)
                        continue
                    await read_writer.send(SessionMessage(message))
        except anyio.ClosedResourceError:  # the server stopped reading: we are done
            await anyio.lowlevel.checkpoint()

    async def write_messages() -> None:
        try:
            async with write_reader:
                async for session_message in write_reader:
                    await writer.write_line(
                        session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    )
        except anyio.ClosedResourceError:
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_lines)
        tg.start_soon(write_messages)
        yield read_stream, write_stream


@contextlib.contextmanager
def protocol_fds() -> Iterator[tuple[int, int]]:
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

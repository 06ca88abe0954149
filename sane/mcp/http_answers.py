"""The hot path of ``sane mcp --http``: a request in an open session that asked for no
progress is handed to its session and answered with one JSON body, without the SDK's
per-request web stack.

Why: a warm ``ping`` through the SDK's Streamable HTTP transport cost the server ~5 ms
of CPU (stdio: 0.7 ms), most of it the layers one request crosses there (Starlette's
router and middleware, the session manager, an SSE response with its own task group
and a disconnect watcher, then :class:`JsonAnswers` turning the SSE
event back into a body), so a ``run_command`` over HTTP took longer than an agent's
own ``tmux send-keys`` + ``tmux wait-for`` (bench/bench_mcp.py). Here such a request
costs a header scan, one parse and two stream hops: the same hand-over the SDK's own
JSON-answer mode makes (``StreamableHTTPServerTransport._handle_post_request``),
taken from the ASGI entry.

What stays the SDK's: everything that does not pass every check its transport would
make (Host/Origin, Content-Type, Accept, a known session, a protocol version of the
session era, a body that parses, not ``initialize``, no ``progressToken``, no
duplicate request id) goes its way untouched, so its answers, errors included, are its
own; so do GET (the standalone stream), DELETE, notifications and answers to the
server, the opening request, and bodies larger than :data:`PEEK_LIMIT`. The session,
its dispatcher, cancellation (``notifications/cancelled`` still reaches the session;
the request's answer is then the SDK's ``Request cancelled`` error, written to this
request as to its own) and the idle timeout bookkeeping are the SDK's.

This reads the SDK transport's attributes (mcp 2.3: ``_server_instances``,
``_request_streams``, ``_read_stream_writer``, ``_security``, ``idle_scope``,
``_idle_timeout``, ``_requests_in_flight``). :func:`sessions_of` checks them once; when
one is missing every request goes the SDK's way (slower, same answers), and a test
fails so the change is seen.
"""

from __future__ import annotations

import json
import math
import re
from functools import partial
from typing import Any

import anyio
from mcp.server.streamable_http import (
    MCP_SESSION_ID_HEADER,
    EventMessage,
    StreamableHTTPServerTransport,
    check_accept_headers,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import (
    INTERNAL_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request

from sane.mcp.stdio import batch_rejection

PEEK_LIMIT = 1 << 20  # a request body looked at to choose the answer's form
_SESSION = MCP_SESSION_ID_HEADER.encode()
_VERSION = b"mcp-protocol-version"
_TRANSPORT_FIELDS = (
    "_request_streams",
    "_read_stream_writer",
    "_security",
    "idle_scope",
    "_idle_timeout",
    "_requests_in_flight",
    "mcp_session_id",
    "is_json_response_enabled",
)


def sessions_of(server: Any) -> StreamableHTTPSessionManager | None:
    """The session manager of ``server``'s Streamable HTTP app (made by
    ``streamable_http_app``), or None when this SDK does not have what the fast path
    reads."""
    manager = getattr(server, "_session_manager", None)
    if not isinstance(manager, StreamableHTTPSessionManager):
        return None
    if not isinstance(getattr(manager, "_server_instances", None), dict):
        return None
    if manager.stateless or manager.json_response or manager.event_store is not None:
        return None
    probe = StreamableHTTPServerTransport(mcp_session_id="probe")
    if not all(hasattr(probe, name) for name in _TRANSPORT_FIELDS):
        return None
    return manager


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _session(
    manager: StreamableHTTPSessionManager, scope: dict[str, Any]
) -> StreamableHTTPServerTransport | None:
    """The open session this request belongs to, when the SDK would serve it as a
    plain request of the session era: else None (the SDK's way)."""
    if "user" in scope:  # an authenticated user: the SDK checks the session's owner
        return None
    version = _header(scope, _VERSION)
    if version is not None and version.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS:
        return None
    session_id = _header(scope, _SESSION)
    if session_id is None:
        return None
    transport = manager._server_instances.get(session_id.decode("latin-1"))
    if transport is None or transport.is_terminated or transport._read_stream_writer is None:
        return None
    if transport.idle_scope is not None and transport.idle_scope.cancel_called:
        return None
    return transport


def wants_progress(message: JSONRPCRequest) -> bool:
    meta = message.params.get("_meta") if message.params else None
    return isinstance(meta, dict) and meta.get("progressToken") is not None


async def answer(
    manager: StreamableHTTPSessionManager,
    scope: dict[str, Any],
    message: JSONRPCRequest,
    send: Any,
) -> bool:
    """Answer ``message`` (a request that asked for no progress, its body already read)
    within its session; False, having sent nothing, when the SDK should serve it."""
    if message.method == "initialize":
        return False
    transport = _session(manager, scope)
    if transport is None:
        return False
    request = Request(scope)
    if await transport._security.validate_request(request, is_post=True) is not None:
        return False
    if check_accept_headers(request) != (True, True):
        return False
    request_id = str(message.id)
    session_id = (transport.mcp_session_id or "").encode()
    if request_id in transport._request_streams:
        return False
    writer = transport._read_stream_writer
    assert writer is not None
    streams = anyio.create_memory_object_stream[EventMessage](16)
    transport._request_streams[request_id] = streams
    idle = transport.idle_scope if transport._idle_timeout is not None else None
    if idle is not None:
        transport._requests_in_flight += 1
        idle.deadline = math.inf
    try:
        metadata = ServerMessageMetadata(
            request_context=request,
            on_request_unanswered=partial(transport._terminate_unanswered_request, message.id),
            # One JSON body carries the answer only: a request to the client tied to
            # this call could never be answered (the SDK's JSON mode says the same).
            can_send_request=False,
        )
        await writer.send(SessionMessage(message, metadata=metadata))
        reply = await _reply(streams[1], message)
    finally:
        await transport._clean_up_memory_streams(request_id)
        if idle is not None:
            transport._requests_in_flight -= 1
            if not transport._requests_in_flight and transport._idle_timeout is not None:
                idle.deadline = anyio.current_time() + transport._idle_timeout
    if reply is None:
        status, body = 500, _TERMINATED
    else:
        status, body = 200, reply.model_dump_json(by_alias=True, exclude_unset=True).encode()
    await _send_json(send, status, body, (_SESSION, session_id))
    return True


async def _reply(
    stream: anyio.abc.ObjectReceiveStream[EventMessage], message: JSONRPCRequest
) -> JSONRPCResponse | JSONRPCError | None:
    """The request's own answer; what else the session writes for it (a log line)
    has no place in one JSON body and is dropped, as the SDK's JSON mode drops it."""
    try:
        while True:
            event = await stream.receive()
            got = event.message
            if isinstance(got, JSONRPCResponse | JSONRPCError) and str(got.id) == str(message.id):
                return got
    except (anyio.EndOfStream, anyio.ClosedResourceError):
        return None  # the session ended with the request in flight


_TERMINATED = (
    JSONRPCError(
        jsonrpc="2.0",
        id=None,
        error=ErrorData(
            code=INTERNAL_ERROR, message="Session terminated before the request completed"
        ),
    )
    .model_dump_json(by_alias=True, exclude_unset=True)
    .encode()
)


_SSE_ONLY_HEADERS = {
    b"content-type",
    b"content-length",
    b"cache-control",
    b"connection",
    b"x-accel-buffering",
    b"transfer-encoding",
}
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def _plain_request(body: bytes) -> JSONRPCRequest | None:
    """A JSON-RPC request that asked for no progress (its answer is one message), else
    None."""
    try:
        message = jsonrpc_message_adapter.validate_json(body, by_name=False)
    except ValueError:
        return None
    if not isinstance(message, JSONRPCRequest) or wants_progress(message):
        return None
    return message


def _batch(body: bytes) -> list[Any] | None:
    """The JSON-RPC batch ``body`` is, else None. The SDK's transport would answer one
    with -32602 and a dump of its parser's errors, no id; stdio refuses it by each
    request's id with -32600 (:func:`sane.mcp.stdio.batch_rejection`): HTTP answers
    the same."""
    if not body.lstrip().startswith(b"["):
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: the SDK's parse error
    return parsed if isinstance(parsed, list) else None


async def _send_json(send: Any, status: int, body: bytes, *headers: tuple[bytes, bytes]) -> None:
    """One answer, ``body`` JSON, in one body."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class JsonAnswers:
    """ASGI middleware: a request that asked for no progress is answered with one
    ``application/json`` body instead of an SSE stream (the transport lets a server
    choose per request). The SDK's transport answers in one form for all: SSE, which
    progress needs, costs each plain call three writes (headers, event, end of stream)
    and the client an SSE parse. Such a request in an open session takes the short way
    of :func:`answer` (``sessions``: the SDK's session manager); anything
    else passes untouched."""

    def __init__(self, app: Any, sessions: StreamableHTTPSessionManager | None, path: str) -> None:
        self.app = app
        self.sessions = sessions
        self.path = path

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        if not length.isdigit() or int(length) > PEEK_LIMIT:
            await self.app(scope, receive, send)
            return
        pieces, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its request was whole
            pieces.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(pieces)
        plain = _plain_request(body)
        batch = _batch(body) if plain is None and scope.get("path") == self.path else None
        if batch is not None:
            await _send_json(send, 400, batch_rejection(batch).encode())
            return
        if (
            plain is not None
            and self.sessions is not None
            and scope.get("path") == self.path
            and await answer(self.sessions, scope, plain, send)
        ):
            return
        given = False

        async def replay() -> Any:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        reply = send if plain is None else _OneMessage(send, plain.id)
        await self.app(scope, replay, reply)


class _OneMessage:
    """``send`` for a plain request: an SSE answer's response event goes out as a
    JSON body; the rest of that stream is dropped (as the SDK's JSON mode drops what
    a JSON body cannot carry); any other answer passes untouched."""

    def __init__(self, send: Any, request_id: Any) -> None:
        self.send = send
        self.request_id = request_id
        self.start: dict[str, Any] | None = None
        self.passing = False
        self.done = False
        self.buffer = b""

    async def __call__(self, message: dict[str, Any]) -> None:
        if self.done:
            return
        if message["type"] == "http.response.start":
            kind = next((v for k, v in message["headers"] if k == b"content-type"), b"")
            if kind.startswith(b"text/event-stream"):
                self.start = message
                return
            self.passing = True
        if self.passing or self.start is None:
            await self.send(message)
            return
        self.buffer += message.get("body", b"")
        *events, self.buffer = _EVENT_END.split(self.buffer)
        for event in events:
            data = b"\n".join(
                line[5:].removeprefix(b" ")
                for line in event.splitlines()
                if line.startswith(b"data:")
            )
            if await self._answer(data):
                return
        if not message.get("more_body", False):  # no response in the stream: as it was
            self.done = True
            await self.send(self.start)
            await self.send({"type": "http.response.body", "body": self.buffer})

    async def _answer(self, data: bytes) -> bool:
        try:
            parsed = json.loads(data)
        except ValueError:
            return False
        if not (
            isinstance(parsed, dict)
            and parsed.get("id") == self.request_id
            and ("result" in parsed or "error" in parsed)
        ):
            return False
        assert self.start is not None
        headers = [(k, v) for k, v in self.start["headers"] if k not in _SSE_ONLY_HEADERS]
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        self.done = True
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": data})
        return True

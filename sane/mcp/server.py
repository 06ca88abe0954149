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

A cancelled call (``notifications/cancelled``, or the client's own request timeout)
stops its run at once: by the call's ``on_cancel`` it is interrupted (the pane free
within a second) or left running, to follow with ``run_wait``.

This package is ``sane.mcp``; ``import mcp`` below is the MCP SDK (absolute imports).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import socket as _socket
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import mcp.types as mt
from mcp.server import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params

from sane import __version__, errors, handlers, tools
from sane.envelope import error_document
from sane.mcp import resources, stopping
from sane.mcp.stdio import LineReader, LineWriter, protocol_fds, stdio_streams
from sane.ops.context import Context
from sane.tmux.command import TmuxServer

INSTRUCTIONS = (
    "tmux-sane: run shell commands in tmux panes (local or over ssh) and get their exact "
    'output and exit code as JSON. Every result is {"ok": true|false, "schema_version": 1, '
    "...}. A run past its timeout comes back with status `running`: call run_wait with its "
    "run_id (or run_interrupt). `waiting_input` means the command waits for terminal input "
    "(`prompt` holds the prompt text): answer with run_input, or run_interrupt. A busy pane "
    "(`pane_busy`) names its run and owner: follow a deploy's step with deploy_status, "
    "never interrupt it. deploy returns its deploy_id at once: follow with deploy_status. "
    "Full-screen programs: read_screen, send_keys, wait_for_text. Big outputs keep head "
    "and tail; the rest is a resource. Errors carry a stable `error.code`."
)


@functools.cache
def tool_list(exposed: tuple[tools.Tool, ...] = tools.TOOLS) -> list[mt.Tool]:
    """The tools as MCP declares them: built once from :data:`sane.tools.TOOLS`."""
    return [
        mt.Tool(
            name=tool.name,
            description=tool.description,
            input_schema=tools.input_schema(tool),
            output_schema=tools.output_schema(tool),
            annotations=mt.ToolAnnotations(read_only_hint=tool.read_only),
        )
        for tool in exposed
    ]


RESOURCE_NOT_FOUND = -32002  # MCP's code for resources/read of an unknown resource
WAITING_CALLS = 256
QUICK_CALLS = 64
STOPPING_CALLS = 64
# Seconds a server whose client is gone waits for its calls to wind down (a cancelled
# run's interrupt takes about one; a deploy in the background is waited for apart).
WIND_DOWN = 30.0


@functools.cache
def pool_of(name: str) -> tools.Pool:
    """The worker pool serving the tool (:attr:`sane.tools.Tool.pool`, the command
    table's column); a name that is no tool waits (its refusal is made there)."""
    try:
        return tools.find(name).pool
    except errors.SaneError:
        return "waiting"


def _is_quick(name: str) -> bool:
    return pool_of(name) == "quick"


def tool_result(
    document: dict[str, Any], links: list[mt.ResourceLink] | None = None
) -> dict[str, Any]:
    """The JSON document as text (what a model reads) and as structured content; a link
    to each output file the document keeps only the head and tail of.

    A ``CallToolResult`` in its wire form, not the model: the SDK validates and dumps a
    handler's result against the protocol's own result type in any case, so building
    and dumping the model first only walked the document twice more per call."""
    content: list[dict[str, Any]] = [
        {"type": "text", "text": json.dumps(document, ensure_ascii=False)},
        *(link.model_dump(by_alias=True, mode="json", exclude_none=True) for link in links or ()),
    ]
    return {"content": content, "structuredContent": document, "isError": not document["ok"]}


def _progress_sender(
    request: ServerRequestContext[Any],
) -> Callable[[str, float | None], None] | None:
    """Progress notifications for the call, when its client sent a ``progressToken``:
    called from any thread (a fleet's per-server threads too), each waits until its
    notification is out, and they are numbered in the order they are sent."""
    token = progress_token_from_params(request.params)
    if token is None:
        return None
    loop = anyio.lowlevel.current_token()
    lock = threading.Lock()
    count = itertools.count(1)
    related = str(request.request_id) if request.request_id is not None else None

    def send(message: str, total: float | None) -> None:
        with contextlib.suppress(Exception), lock:  # a closed client must not fail the work
            anyio.from_thread.run(
                request.session.send_progress_notification,
                token,
                float(next(count)),
                total,
                message,
                related,
                token=loop,
            )

    return send


def _followed_call(
    ctx: Context, name: str, arguments: dict[str, Any] | None, control: tools.Call
) -> tools.Outcome:
    """``tools.call`` seen by :data:`sane.handlers.CALLS` (a shutdown waits for it)."""
    with handlers.CALLS.follow(control):
        return tools.call(ctx, name, arguments, control)


def build_server(ctx: Context, exposed: tuple[tools.Tool, ...] = tools.TOOLS) -> Server[Any]:
    """The server; ``exposed``: the tools it lists and answers (``--tools``/``--exclude``)."""
    served = {tool.name for tool in exposed}

    async def list_tools(
        _: ServerRequestContext[Any], __: mt.PaginatedRequestParams | None
    ) -> mt.ListToolsResult:
        return mt.ListToolsResult(tools=tool_list(exposed))

    # Calls that may wait, quick ones and interrupts draw worker threads from separate
    # pools (sane.tools.Tool.pool): a list_panes never queues behind waiting runs,
    # connects or deploys, nor behind interrupts waiting out their grace; a
    # run_interrupt never queues behind the runs it is there to stop.
    limiters: dict[tools.Pool, anyio.CapacityLimiter] = {
        "quick": anyio.CapacityLimiter(QUICK_CALLS),
        "waiting": anyio.CapacityLimiter(WAITING_CALLS),
        "stopping": anyio.CapacityLimiter(STOPPING_CALLS),
    }
    quick = limiters["quick"]

    async def call_tool(
        request: ServerRequestContext[Any], params: mt.CallToolRequestParams
    ) -> dict[str, Any]:
        if params.name not in served:
            refused = errors.InvalidArgument(
                f"tool {params.name!r} is not served here; this server offers: "
                f"{', '.join(sorted(served))}",
                tool=params.name,
            )
            return tool_result(error_document(refused))
        control = tools.Call(progress=_progress_sender(request))
        limiter = limiters[pool_of(params.name)]
        try:
            # abandon_on_cancel: a cancelled call returns at once; its thread sees
            # `control` and winds the run down (interrupt, or hand-over) on its own.
            outcome = await anyio.to_thread.run_sync(
                _followed_call,
                ctx,
                params.name,
                params.arguments,
                control,
                abandon_on_cancel=True,
                limiter=limiter,
            )
        except anyio.get_cancelled_exc_class():
            control.cancel()
            raise
        return tool_result(outcome.document, resources.links(ctx, outcome.document))

    async def list_templates(
        _: ServerRequestContext[Any], __: mt.PaginatedRequestParams | None
    ) -> mt.ListResourceTemplatesResult:
        return mt.ListResourceTemplatesResult(resource_templates=resources.TEMPLATES)

    async def list_resources(
        _: ServerRequestContext[Any], __: mt.PaginatedRequestParams | None
    ) -> mt.ListResourcesResult:
        # the recorded runs; saved outputs come as links with their results
        listed = await anyio.to_thread.run_sync(resources.listing, ctx, limiter=quick)
        return mt.ListResourcesResult(resources=listed)

    async def read_resource(
        _: ServerRequestContext[Any], params: mt.ReadResourceRequestParams
    ) -> mt.ReadResourceResult:
        try:
            return await anyio.to_thread.run_sync(
                resources.read, ctx, str(params.uri), limiter=quick
            )
        except errors.SaneError as err:
            raise MCPError(
                RESOURCE_NOT_FOUND if isinstance(err, errors.NotFound) else mt.INVALID_PARAMS,
                err.message,
                err.to_dict(),
            ) from None

    server: Server[Any] = Server(
        "tmux-sane",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,  # type: ignore[arg-type]  # the wire form: see tool_result
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )
    server.middleware = [m for m in server.middleware if not _idle_tracing(m)]
    return server


def _idle_tracing(middleware: object) -> bool:
    """The SDK's OpenTelemetry middleware when no tracer provider is set up: it opens a
    span that goes nowhere around every request (~5% of a ``ping``'s server CPU). Kept
    when one is (``opentelemetry-instrument sane mcp``, or ``OTEL_PYTHON_TRACER_PROVIDER``),
    so a traced deployment still gets its spans. The SDK says to drop it from
    ``Server.middleware`` to opt out."""
    try:
        from mcp.server._otel import OpenTelemetryMiddleware
        from opentelemetry import trace
    except ImportError:
        return False
    return isinstance(middleware, OpenTelemetryMiddleware) and isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider
    )


async def _serve(
    ctx: Context,
    proto_in: int,
    proto_out: int,
    exposed: tuple[tools.Tool, ...],
    termination: stopping.Termination,
) -> None:
    """Serve until stdin ends or a SIGTERM/SIGINT comes (``termination``): either way
    the caller winds down next."""
    server = build_server(ctx, exposed)
    loop = asyncio.get_running_loop()
    with anyio.CancelScope() as scope:
        termination.on_signal = lambda: loop.call_soon_threadsafe(scope.cancel)
        try:
            if termination.came is not None:
                return
            async with stdio_streams(LineReader(proto_in), LineWriter(proto_out)) as (
                read,
                write,
            ):
                await server.run(read, write, server.create_initialization_options())
        finally:
            termination.on_signal = None


def _have_uvloop() -> bool:
    """uvloop when installed (a dependency off Windows): its event loop and thread
    wake-ups took a warm ``run_command`` call from ~4.0 to ~2.7 ms (bench_mcp.py)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def serve(socket: str | None = None, exposed: tuple[tools.Tool, ...] = tools.TOOLS) -> None:
    """Serve MCP on stdin/stdout until the client closes stdin or a SIGTERM or SIGINT
    comes; then wind down: cancelled calls interrupt their runs, and deploys started in
    the background finish (their journals would otherwise stop mid-way). A signal
    during all this is obeyed after it (:mod:`sane.mcp.stopping`)."""
    ctx = Context(TmuxServer.from_env(socket))
    with stopping.deferred() as termination:
        try:
            with protocol_fds() as (proto_in, proto_out):
                anyio.run(
                    _serve,
                    ctx,
                    proto_in,
                    proto_out,
                    exposed,
                    termination,
                    backend_options={"use_uvloop": _have_uvloop()},
                )
        finally:
            _wind_down(ctx)


def _wind_down(ctx: Context) -> None:
    """Cancel the calls still going and wait for them (their runs interrupted), then
    for the deploys started in the background."""
    handlers.CALLS.wind_down(WIND_DOWN)
    handlers.BACKGROUND.join()
    ctx.close()


def serve_http(
    listener: _socket.socket,
    token: str,
    on_ready: Callable[[str], None],
    socket: str | None = None,
    exposed: tuple[tools.Tool, ...] = tools.TOOLS,
) -> None:
    """Serve MCP over Streamable HTTP on ``listener`` (bound by :func:`sane.mcp.http.
    bind`) until SIGINT/SIGTERM; every request must carry ``token``. ``on_ready`` gets
    the URL once the server is about to accept. One context for every session, as one
    stdio server has: its control clients stay warm across clients. The wind-down is
    stdio's, signals during it deferred alike (:mod:`sane.mcp.stopping`)."""
    from sane.mcp import http

    ctx = Context(TmuxServer.from_env(socket))
    with stopping.deferred() as termination:
        try:
            host = listener.getsockname()[0]
            asgi = http.app(build_server(ctx, exposed), token, host)
            anyio.run(
                http.serve_socket,
                asgi,
                listener,
                lambda: on_ready(http.url_of(listener)),
                termination,
                backend_options={"use_uvloop": _have_uvloop()},
            )
        finally:
            _wind_down(ctx)

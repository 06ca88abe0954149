"""``sane mcp`` drops the SDK's OpenTelemetry middleware only when nothing traces.

The middleware opens a span around every request; with no tracer provider set up the
span goes nowhere and costs ~5% of a ``ping``'s server CPU, so the server leaves it
out. A deployment that set a provider up (``opentelemetry-instrument``,
``OTEL_PYTHON_TRACER_PROVIDER``) must still get its spans."""

from __future__ import annotations

import pytest
from mcp.server._otel import OpenTelemetryMiddleware
from opentelemetry import trace

from sane.mcp.server import build_server
from sane.ops.context import Context
from sane.testing.pytest_plugin import TmuxTestServer


def _traced(tmux_server: TmuxTestServer) -> bool:
    ctx = Context(tmux_server.server)
    try:
        server = build_server(ctx)
    finally:
        ctx.close()
    return any(isinstance(m, OpenTelemetryMiddleware) for m in server.middleware)


def test_requests_are_traced_only_when_a_tracer_provider_is_set_up(
    tmux_server: TmuxTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert not _traced(tmux_server)
    configured = trace.NoOpTracerProvider()  # any provider someone set up on purpose
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: configured)
    assert _traced(tmux_server)

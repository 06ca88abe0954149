"""A lean MCP client over Streamable HTTP for bench_mcp: one keep-alive ``http.client``
connection, JSON-RPC POSTs, nothing else.

Why beside the SDK's client: with ``sane mcp --http`` the SDK's streamable HTTP client
(httpx2/httpcore, a post-writer task, an SSE parser) costs more CPU per call than the
server does (~4.4 ms for a ``ping`` against ~1 ms for a bare POST), so on a shared
2-core machine its row measures the client as much as sane. This client speaks the
same protocol (MCP 2025-11-25, Streamable HTTP): ``initialize`` then
``notifications/initialized``, the ``Mcp-Session-Id`` the server gave on every later
request with the ``MCP-Protocol-Version`` header, ``Accept: application/json,
text/event-stream`` on every POST and an answer read as either content type, the
bearer token, a new connection when the server closed an idle one, a ``DELETE`` of
the session at the end. Like the SDK's client it checks
each tool result's ``structuredContent`` against the tool's declared output schema
(a validator compiled once per tool, as ``jsonschema`` in the SDK). What it leaves
out: server-to-client requests (sampling, elicitation), the standalone GET stream and
resumption, none of which a ``run_command`` uses.
"""

from __future__ import annotations

import http.client
import itertools
import json
import select
import urllib.parse
from typing import Any

from jsonschema.validators import validator_for  # type: ignore[import-untyped]

PROTOCOL_VERSION = "2025-11-25"


class LeanMcpError(RuntimeError):
    """The server answered with something a conforming client must reject."""


class LeanMcpHttp:
    """One MCP session over one keep-alive HTTP connection (not thread-safe)."""

    def __init__(self, url: str, token: str, timeout: float = 300.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"not an http://HOST:PORT/PATH url: {url}")
        self.path = parts.path or "/"
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        self.ids = itertools.count(1)
        self.validators: dict[str, Any] = {}  # jsonschema validators (no type stubs)

    def _post(self, message: dict[str, Any]) -> tuple[http.client.HTTPResponse, bytes]:
        # A keep-alive connection the server closed while idle (uvicorn's keep-alive
        # timeout: 5 s until sane set its own, 120 s, sane.mcp.http.KEEP_ALIVE_S) reads as ready:
        # drop it, and http.client opens a new one, before the request is sent (as
        # urllib3 checks a pooled connection). A request is never sent twice.
        sock = self.conn.sock
        if sock is not None and select.select([sock], [], [], 0)[0]:
            self.conn.close()
        self.conn.request("POST", self.path, json.dumps(message).encode(), self.headers)
        response = self.conn.getresponse()
        return response, response.read()

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request; its result (a JSON-RPC error raises LeanMcpError)."""
        request_id = next(self.ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        response, body = self._post(message)
        if response.status != 200:
            raise LeanMcpError(f"{method}: HTTP {response.status}: {body[:200]!r}")
        answer = self._answer(response, body, request_id)
        if "error" in answer:
            raise LeanMcpError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    @staticmethod
    def _answer(response: http.client.HTTPResponse, body: bytes, request_id: int) -> Any:
        """The JSON-RPC response to ``request_id`` in a JSON body or an SSE stream."""
        kind = (response.getheader("Content-Type") or "").split(";")[0].strip()
        if kind == "application/json":
            messages = [json.loads(body)]
        elif kind == "text/event-stream":
            messages = []
            for event in body.decode().replace("\r\n", "\n").split("\n\n"):
                data = "\n".join(
                    line[5:].lstrip(" ") for line in event.split("\n") if line.startswith("data:")
                )
                if data:
                    messages.append(json.loads(data))
        else:
            raise LeanMcpError(f"answer of Content-Type {kind!r}")
        for message in messages:
            if isinstance(message, dict) and message.get("id") == request_id:
                return message
        raise LeanMcpError(f"no response to request {request_id} in the answer")

    def notify(self, method: str) -> None:
        response, body = self._post({"jsonrpc": "2.0", "method": method})
        if response.status != 202:
            raise LeanMcpError(f"{method}: HTTP {response.status}: {body[:200]!r}")

    def initialize(self) -> dict[str, Any]:
        """The handshake; then every request carries the session id and the version."""
        request_id = next(self.ids)
        response, body = self._post(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "sane-bench-lean", "version": "1"},
                },
            }
        )
        session = response.getheader("Mcp-Session-Id")
        if response.status != 200 or not session:
            raise LeanMcpError(f"initialize: HTTP {response.status}: {body[:200]!r}")
        result: dict[str, Any] = self._answer(response, body, request_id)["result"]
        self.headers["Mcp-Session-Id"] = session
        self.headers["MCP-Protocol-Version"] = result["protocolVersion"]
        self.notify("notifications/initialized")
        return result

    def list_tools(self) -> list[dict[str, Any]]:
        """The tools, with a validator of each declared output schema compiled once."""
        tools: list[dict[str, Any]] = self.request("tools/list")["tools"]
        for tool in tools:
            schema = tool.get("outputSchema")
            self.validators[tool["name"]] = (
                None if schema is None else validator_for(schema)(schema)
            )
        return tools

    def ping(self) -> None:
        self.request("ping")

    def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """``tools/call``; the result's structured content, checked against the schema."""
        result = self.request("tools/call", {"name": name, "arguments": arguments})
        validator = self.validators.get(name)
        if validator is not None:
            content = result.get("structuredContent")
            if content is None:
                raise LeanMcpError(f"tool {name} declared an output schema but sent no content")
            problem = next(iter(validator.iter_errors(content)), None)
            if problem is not None:
                raise LeanMcpError(f"tool {name}: structured content off its schema: {problem}")
        structured: dict[str, Any] = result.get("structuredContent") or {}
        return structured

    def close(self) -> None:
        """End the session (DELETE) and the connection."""
        try:
            if "Mcp-Session-Id" in self.headers:
                self.conn.request("DELETE", self.path, headers=self.headers)
                self.conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            pass
        finally:
            self.conn.close()

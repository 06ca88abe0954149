"""``sane mcp``: sane's commands as MCP tools (:mod:`sane.mcp.server`) over stdio
(:mod:`sane.mcp.stdio`) or Streamable HTTP (:mod:`sane.mcp.http`).

The server's names load on first use: ``sane.mcp.http``'s address and token rules are
read by the CLI before it knows the MCP SDK is installed at all.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_server", "serve", "tool_list", "tool_result"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sane.mcp import server

        return getattr(server, name)
    raise AttributeError(f"module 'sane.mcp' has no attribute {name!r}")

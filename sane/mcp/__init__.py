"""``sane mcp``: sane's commands as MCP tools (:mod:`sane.mcp.server`) over stdio
(:mod:`sane.mcp.stdio`)."""

from sane.mcp.server import build_server, serve, tool_list, tool_result

__all__ = ["build_server", "serve", "tool_list", "tool_result"]

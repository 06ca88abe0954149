"""``sane mcp``: sane's commands served to MCP clients, over stdio or Streamable HTTP."""

from __future__ import annotations

import json
import sys

import click

from sane.cli._output import socket_option
from sane.errors import UsageError
from sane.mcp.http import TOKEN_ENV

MCP_EPILOG = """\b
Example (an MCP client's configuration, e.g. Claude Desktop or an agent SDK):
  {"mcpServers": {"sane": {"command": "sane", "args": ["mcp"],
                           "env": {"SANE_TMUX_SOCKET": "work"}}}}

\b
Example (by hand; stdin must stay open until the answer, as a client keeps it):
  $ (printf '%s\\n' "$INITIALIZE" "$INITIALIZED" '{"jsonrpc": "2.0", "id": 2,
      "method": "tools/call", "params": {"name": "run_command",
      "arguments": {"command": "echo hi"}}}'; sleep 3) | sane mcp
  {"jsonrpc":"2.0","id":1,"result":{"capabilities":{"tools":{"listChanged":false}}, ...}}
  {"jsonrpc":"2.0","id":2,"result":{"content":[{"text":"{\\"ok\\": true, ...}",
   "type":"text"}],"isError":false,"structuredContent":{"ok":true,"schema_version":1,
   "run_id":"rbd515f884a69","pane":"%0","command":"echo hi","status":"completed",
   "exit_code":0,"output":"hi\\n", ...}}}

\b
Example (Streamable HTTP on loopback, a free port; give the client the URL and
the header Authorization: Bearer <token>):
  $ sane mcp --http 0
  {"ok": true, "schema_version": 1, "url": "http://127.0.0.1:40321/mcp",
   "token_source": "generated", "token_file": "/home/me/.sane/mcp/http-token",
   "token": "k3...Q"}
"""


def _tools_list() -> str:
    """Every tool's name (from the command table), wrapped for --help."""
    import textwrap

    from sane.cli.table import TOOL_NAMES

    return (
        "\b\n"
        + textwrap.fill("Tools: " + ", ".join(TOOL_NAMES) + ".", 86)
        + (
            "\nEach returns the same JSON document as the CLI command (`sane schema --tools "
            "mcp`).\n"
        )
    )


MCP_EPILOG += "\n" + _tools_list()


class _McpCommand(click.Command):
    """``sane mcp``: over stdio, stdout is the protocol channel from the first byte, so
    every error of this command (a usage error of its options too, which click raises
    while parsing) is said on stderr and as the refusal of the client's first request
    (:func:`sane.cli._emit.stdout_is_protocol`, :mod:`sane.mcp.refusal`). With
    ``--http`` stdout is the CLI's as usual: the JSON document (the URL, or the error)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = args[: args.index("--")] if "--" in args else args
        if not any(arg == "--http" or arg.startswith("--http=") for arg in given):
            from sane.cli._emit import stdout_is_protocol
            from sane.mcp.refusal import answer_first_request

            stdout_is_protocol("sane mcp", answer_first_request)
        return super().parse_args(ctx, args)


@click.command("mcp", cls=_McpCommand, epilog=MCP_EPILOG)
@click.option(
    "--tools",
    "only",
    metavar="NAMES",
    help="Serve only these tools (comma-separated names; `read-only` for the "
    "tools that change nothing: lists, screens, health, status).",
)
@click.option("--exclude", metavar="NAMES", help="Serve every tool but these (same names).")
@click.option(
    "--http",
    "http_address",
    metavar="[HOST:]PORT",
    help="Serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio (HOST: "
    "127.0.0.1 unless given; PORT 0: a free port). Every request needs "
    "`Authorization: Bearer <token>`; the first line on stdout is a JSON document "
    "with the URL (and the token when sane just made it).",
)
@click.option(
    "--token-file",
    metavar="PATH",
    help=f"With --http: the bearer token is this file's text (mode 0600). Default: "
    f"${TOKEN_ENV}, else $SANE_HOME/mcp/http-token (made on first use).",
)
@click.option(
    "--allow-non-loopback",
    is_flag=True,
    help="With --http: listen on an address other than loopback. Plain HTTP carries "
    "the token and all output in clear: prefer an ssh tunnel (ssh -L).",
)
@socket_option
def mcp_cli(
    only: str | None,
    exclude: str | None,
    http_address: str | None,
    token_file: str | None,
    allow_non_loopback: bool,
    socket: str | None,
) -> None:
    """Serve sane's commands as MCP tools over stdio, or Streamable HTTP with --http
    (one process, many fast calls)."""
    from sane import tools

    exposed = tools.select(only, exclude)
    if http_address is None and (token_file is not None or allow_non_loopback):
        raise UsageError("--token-file and --allow-non-loopback go with --http")
    from importlib.util import find_spec

    if find_spec("mcp") is None:  # an optional dependency: say how to get it
        raise UsageError(
            "sane mcp needs the MCP SDK, an optional dependency: install"
            " tmux-sane[mcp] (pipx install 'tmux-sane[mcp]', or"
            " pip install 'tmux-sane[mcp]')",
            extra="mcp",
        )
    if http_address is None:
        from sane.mcp import serve

        serve(socket, exposed)
        return
    from sane.mcp import http
    from sane.mcp.server import serve_http

    listener = http.bind(http.parse_address(http_address), allow_non_loopback)
    token = http.load_token(token_file)

    def ready(url: str) -> None:
        # The one document this command prints: where to connect and with what. The
        # token itself only when sane just made it (it is never shown again).
        document = {
            "ok": True,
            "schema_version": 1,
            "url": url,
            "token_source": token.source,
            "token_file": token.path,
            "token": token.value if token.generated else None,
        }
        sys.stdout.write(json.dumps(document) + "\n")
        sys.stdout.flush()

    serve_http(listener, token.value, ready, socket, exposed)

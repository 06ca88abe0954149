"""A ``sane mcp`` that cannot start still answers its client's first request.

Why: an MCP client reads the server's stdout as protocol, and many never show the
server's stderr (the Inspector CLI 0.15 pipes it and drops it), so a server that exits
on a bad argument showed only "Connection closed". A client sends its ``initialize``
request as soon as the process starts; answered with a JSON-RPC error that carries
sane's message, the client shows the reason (the TypeScript SDK: ``MCP error -32602:
sane mcp: invalid_argument: --tools: no tool 'bogus'; ...``). Only JSON-RPC goes to
stdout, and the same line is on stderr for the hosts that show it.

No MCP SDK here: this runs when the arguments are wrong, possibly because the SDK is
not installed at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import time
from collections.abc import Mapping
from typing import Any

WAIT_FOR_REQUEST = 10.0  # s: a client sends initialize at once (even under load); a tty none
_MAX_LINE = 1 << 20
INVALID_PARAMS = -32602  # JSON-RPC's code: the call's parameters (here: sane's) are wrong


def _first_line(fd: int, wait: float) -> bytes | None:
    """The first line on ``fd`` within ``wait`` seconds (None: none came)."""
    data = b""
    deadline = time.monotonic() + wait
    while b"\n" not in data and len(data) < _MAX_LINE:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


def answer_first_request(line: str, document: Mapping[str, Any]) -> None:
    """Refuse the client's first request (its ``initialize``) with ``line`` as the
    JSON-RPC error message and the error ``document`` as its data. Nothing is written
    when stdin is a terminal (a person, who reads stderr) or no request came."""
    with contextlib.suppress(OSError, ValueError):
        if os.isatty(0):
            return
        raw = _first_line(0, WAIT_FOR_REQUEST)
        request = json.loads(raw) if raw else None
        if not isinstance(request, dict) or "method" not in request:
            return
        request_id = request.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
            return  # a notification gets no answer
        reply = {
            "jsonrpc": "2.0",
            "id": request_id,
            "error": {"code": INVALID_PARAMS, "message": line, "data": dict(document)},
        }
        os.write(1, (json.dumps(reply, ensure_ascii=False) + "\n").encode("utf-8"))

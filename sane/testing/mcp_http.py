"""A real ``sane mcp --http`` process for tests and benches: started on a free port
(port 0, so two runs share a machine), its ready document read with a deadline, and
stopped with SIGTERM at the end."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, NamedTuple


class HttpServer(NamedTuple):
    url: str
    token: str
    ready: dict[str, Any]  # the document sane printed
    process: subprocess.Popen[bytes]


def read_ready(proc: subprocess.Popen[bytes], deadline: float = 60.0) -> dict[str, Any]:
    """The first stdout line of a starting ``sane mcp --http``, as JSON."""
    assert proc.stdout is not None
    line = b""
    end = time.monotonic() + deadline
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            left = end - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise TimeoutError(f"sane mcp --http printed no ready line in {deadline} s")
            piece = os.read(proc.stdout.fileno(), 1 << 16)
            if not piece:
                break  # it exited: the line (an error document) is all there is
            line += piece
    document: dict[str, Any] = json.loads(line)
    return document


@contextlib.contextmanager
def http_server(env: dict[str, str], *args: str, tree: str | None = None) -> Iterator[HttpServer]:
    """``sane mcp --http 127.0.0.1:0 ARGS...`` with ``env``; the token is the generated
    one, or ``$SANE_MCP_TOKEN``. ``tree``: the sane of that source tree (an A/B bench
    of two trees), not this process's."""
    if tree is not None:  # `-m` puts the working directory first on sys.path
        env = {**env, "PYTHONPATH": tree}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sane.cli.main", "mcp", "--http", "127.0.0.1:0", *args],
        cwd=tree,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        ready = read_ready(proc)
        assert ready["ok"], ready
        token = ready["token"] or env.get("SANE_MCP_TOKEN")
        if token is None:
            with open(ready["token_file"]) as fh:
                token = fh.read().strip()
        yield HttpServer(ready["url"], token, ready, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

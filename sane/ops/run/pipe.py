"""sane's pipe-pane: what records a handed-over run's output to its stream file.

The pane option OPT_PIPED names the run whose output the pipe records, so a later
call can tell sane's pipe from a person's own and stop only its own.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from sane.tmux import panes
from sane.tmux.command import no_formats, quote

if TYPE_CHECKING:
    from pathlib import Path


def pipe_to(pane_id: str, run_id: str, stream_path: Path) -> list[str]:
    """Append the pane's output from now on to ``stream_path`` (``-o``: only if the
    pane has no pipe yet), and mark the pipe as ``run_id``'s, in one tmux line."""
    shell = f"exec cat >> {shlex.quote(str(stream_path))}"
    return [
        f"pipe-pane -o -t {pane_id} {quote(no_formats(shell))}",
        f"set-option -p -t {pane_id} {panes.OPT_PIPED} {run_id}",
    ]


def unpipe(pane_id: str) -> list[str]:
    """Stop the pane's pipe and its mark. tmux refuses pipe-pane on a dead pane and
    skips the rest of the line, so the mark then stays: the pipe, which respawn-pane
    keeps, is stopped once the pane lives again (:func:`sane.ops.takeover.respawn`)."""
    return [f"pipe-pane -t {pane_id}", f"set-option -p -u -t {pane_id} {panes.OPT_PIPED}"]

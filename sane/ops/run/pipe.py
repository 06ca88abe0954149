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

    from sane.tmux.control import ControlClient


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


def drop_leftover_pipe(client: ControlClient, pane_id: str) -> bool:
    """Stop a pipe-pane that an earlier run of sane left (marked with its run id): this
    run holds the pane's flag now, so that run is over, and a process killed after the
    run ended but before it stopped the pipe left it running. Before, every later
    durable run in the pane (each deploy step) failed with ``run_not_resumable``. A
    pipe without sane's mark is the user's own: kept, and False."""
    lines = client.command(f"display-message -p -t {pane_id} '#{{{panes.OPT_PIPED}}}'")
    if not (lines and lines[0].strip()):
        return False
    client.command(*unpipe(pane_id))
    return True

"""How a run ended: the pane's death, the shell's exit, and the result's three facts
(status, exit code, whether the shell exited) from what the follow loop saw."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import TYPE_CHECKING, NamedTuple

from sane import errors, procfs
from sane.ops.context import Context
from sane.ops.run.liveness import LIVENESS_INTERVAL
from sane.poll import poll
from sane.protocol import scanner as sc
from sane.tmux import panes
from sane.tmux.control import ControlClient

if TYPE_CHECKING:
    from sane.models import RunStatus
    from sane.ops.prompts import Waiting

EXIT_SETTLE = 5.0
# The least time between two SIGCHLD nudges of the tmux server for one dead pane
# (nudge_reaper): a second one if the first is missed too, never a stream of them.
NUDGE_INTERVAL = LIVENESS_INTERVAL


class Follow(NamedTuple):
    """How waiting ended: a marker outcome, the deadline, a prompt, or the pane's death."""

    kind: str  # "outcome" | "timeout" | "waiting" | "dead" | "lost" | "cancelled" (Ctrl-C)
    state: panes.PaneState | None = None
    waiting: Waiting | None = None
    # "lost" with the run's end seen live though its recording had died: the status
    # the shell reported, and whether the command ended the shell.
    code: int | None = None
    exited: bool = False
    # A screen-checked shell's prompt drawn after the run's end: the tmux commands
    # keeping it (sane.ops.has_input.prompt_after_run); empty when not read.
    prompt: tuple[str, ...] = ()


def dead_state(ctx: Context, pane_id: str) -> panes.PaneState | None:
    """The pane's state if it is dead, once tmux knows how its process ended (it marks
    a pane dead on the pty's end of file, and records the status a moment later, when
    it reaps the process: the status decides the run's exit code)."""
    try:
        state = ctx.pane_state(pane_id)
    except errors.PaneNotFound:
        return panes.PaneState(
            pane_id, "", None, True, None, None, False, False, None, None, None, None, None, ""
        )
    if not state.dead:
        return None
    if state.dead_status is None and state.dead_signal is None:
        seen = [state]
        nudged = [-NUDGE_INTERVAL]  # when the last nudge went (monotonic)

        def reaped() -> bool:
            with contextlib.suppress(errors.PaneNotFound):
                seen.append(ctx.pane_state(pane_id))
            if seen[-1].dead_status is not None or seen[-1].dead_signal is not None:
                return True
            # Again while the process stays a zombie: the nudge can be missed as the
            # process's own SIGCHLD was (another pane's utempter helper at that moment).
            now = time.monotonic()
            if now - nudged[0] >= NUDGE_INTERVAL and nudge_reaper(ctx, seen[-1].pid):
                nudged[0] = now
            return False

        poll(reaped, EXIT_SETTLE)
        state = seen[-1]
    return state


def nudge_reaper(ctx: Context, pid: int | None) -> bool:
    """Make tmux reap a pane's process it has missed; whether it was asked to.

    tmux as Debian builds it (with libutempter) can miss the SIGCHLD of a pane's
    process that ends within moments of its start, while utempter's helper has its
    own handler in place (tmux/tmux#311): the process stays a zombie, and the pane
    dead with no status, until another child of tmux ends, perhaps never. Measured:
    an ssh refused at once left a zombie with its tmux server asleep and no signal
    pending for 60 s. The maintainers' remedy is a SIGCHLD to the server, which then
    reaps whatever has ended (a spare one costs it a ``waitpid``). Sent only when the
    pane's process is a zombie whose parent is the process tmux names as its server,
    so never to anyone else (another pid namespace, a pid reused)."""
    if pid is None:
        return False
    zombie, parent = procfs.state(pid) == "Z", procfs.field(pid, procfs.PPID)
    if not zombie:
        return False  # still ending: tmux's own SIGCHLD is yet to come
    try:
        server = int(ctx.tmux(["display-message", "-p", "#{pid}"])[0])
    except (errors.SaneError, IndexError, ValueError):
        return True  # no tmux to ask: nothing to nudge
    if server == parent:
        with contextlib.suppress(OSError):
            os.kill(server, signal.SIGCHLD)
    return True


def status_of(
    follow: Follow, scanner: sc.RunScanner, interrupted: bool
) -> tuple[RunStatus, int | None, bool]:
    """(status, exit_code, shell_exited) for a finished or dead run."""
    outcome = scanner.outcome
    if follow.kind == "outcome" and outcome is not None:
        if outcome.kind == sc.OUTCOME_REPLACED:
            # `exec bash`: the run's shell is gone, a new one sits at its prompt; the
            # old shell's status is unknown. The next run installs sane's runner anew.
            return "lost", None, True
        exited = outcome.kind == sc.OUTCOME_EXITED
        if outcome.kind == sc.OUTCOME_ABORTED or interrupted:
            return "interrupted", outcome.exit_code, exited
        return "completed", outcome.exit_code, exited
    state = follow.state
    if (
        follow.kind == "dead"
        and state is not None
        and state.dead_status is not None
        and state.dead_signal is None
        and scanner.exit_pending()
    ):
        # The command's own `exit N` ran (its EXIT-trap marker had begun to arrive)
        # and the rest of the marker died with the pane: tmux recorded the status
        # (for an ssh pane, ssh passes the remote shell's status on).
        scanner.end_before_partial_marker()
        return "completed", state.dead_status, True
    if (
        follow.kind == "dead"
        and state is not None
        and state.dead_status is not None
        and state.dead_signal is None
        and not (
            state.dead_status == 255
            and (state.server is not None or state.current_command == "ssh")
        )
    ):
        # The shell ended during the run without sane's EXIT marker: the command
        # replaced sane's EXIT trap with its own (`trap 'cleanup' EXIT; exit 4`), or
        # `set -e` ended the shell. The shell's exit status, which tmux keeps, is the
        # command's (an ssh pane's 255 is ssh's own failure: lost). Without the trap's
        # wait for a key the shell dies at once, and tmux drops what it had not yet
        # sent of the pane's output (and the kernel what tmux had not yet read): the
        # output may miss its tail, even its begin marker, and nothing tells whether
        # it does. So the run is `lost` (its output not known whole), with the exit
        # status the shell did report: exact where known, never a claim it was all.
        scanner.end_before_partial_marker()
        return "lost", state.dead_status, True
    scanner.end_before_partial_marker()
    if follow.kind == "lost" and follow.code is not None:
        return "lost", follow.code, follow.exited
    return "lost", None, follow.kind == "dead"


def acknowledge_exit(ctx: Context, client: ControlClient, pane_id: str) -> None:
    """Let a shell that ran ``exit`` finish dying, once its marker has been read.

    The runner's EXIT trap waits for a line on the tty (see the runner's docs); type
    it, then wait for tmux to see the pane dead so the next run respawns it.
    """
    try:
        client.command(f"send-keys -t {pane_id} Enter")
    except errors.SaneError:
        return
    # No tmux event announces a pane's death to a waiter: poll.
    poll(lambda: dead_state(ctx, pane_id) is not None, EXIT_SETTLE)


def settle(ctx: Context, client: ControlClient, pane_id: str, scanner: sc.RunScanner) -> None:
    if scanner.outcome is not None and scanner.outcome.kind == sc.OUTCOME_EXITED:
        acknowledge_exit(ctx, client, pane_id)

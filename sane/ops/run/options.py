"""What a run is asked to do (:class:`RunOptions`), its defaults, and new run ids."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from sane.protocol import scanner as sc
from sane.tmux.control import ControlClient

if TYPE_CHECKING:
    import threading

INTERRUPT_GRACE = 5.0
DEFAULT_MAX_OUTPUT = 1 << 20
# A run quiet this long is asked whether it waits for terminal input (sane.ops.prompts).
DEFAULT_QUIET_PERIOD = 0.3
# After sane sent C-c, the shell is asked about sooner: it is expected back at its prompt.
INTERRUPT_QUIET = 0.05

OutputHook = Callable[[ControlClient, str, sc.RunScanner], None]


class RunOptions(NamedTuple):
    timeout: float = 30.0
    interrupt_on_timeout: bool = False
    keep_ansi: bool = False
    max_output: int | None = DEFAULT_MAX_OUTPUT
    interrupt_grace: float = INTERRUPT_GRACE
    # Called after each chunk of output while the run is followed in-process: lets an
    # operation talk to its own command (create-file pastes its data on a marker).
    on_output: OutputHook | None = None
    # Quiet this many seconds, the run is checked for a prompt (``waiting_input``);
    # None or 0: never.
    quiet_period: float | None = DEFAULT_QUIET_PERIOD
    # The run's id, when the caller must know it before the run starts (a deploy
    # journals it first, so a crash mid-run can still find the run's record).
    run_id: str | None = None
    # Record the run, and pipe the pane's output to the record, before the command is
    # typed: if this process is killed mid-run, another can still `run_wait` it and
    # learn its exact output and exit code. Costs a pipe-pane and a record per run.
    durable: bool = False
    # Set from another thread to stop following the run at once and hand it over, as
    # at a timeout but never interrupted (an MCP call cancelled by its client, or a
    # run_wait of the same run from another call): the run stays resumable.
    stop: threading.Event | None = None
    # Set with ``stop`` when the caller is gone for good and never reads this call's
    # result (an MCP call cancelled by its client): a hand-over then leaves the output
    # followed so far to the next call on the run, which returns it (not lost).
    unread: threading.Event | None = None
    # Who the run belongs to (a deploy: its id, step, server), kept in the run's record
    # so another caller finding the pane busy can be told, and not interrupt it blindly.
    owner: dict[str, str] | None = None
    # The command is a POSIX sh script (sane's own, like create-file's): in a shell of
    # another kind (fish) it runs through `sh -c`, a child of that shell.
    posix_script: bool = False
    # A person's text on the pane's command line is discarded (never run) instead of
    # refusing the run with pane_has_input (sane.ops.has_input).
    clear_input: bool = False


def new_run_id() -> str:
    return "r" + os.urandom(6).hex()

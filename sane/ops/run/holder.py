"""Who holds a pane's busy flag (the ``@sane_run`` pane option): one typed value.

The flag names its owner completely: the run, the process that started it, and the
``$SANE_HOME`` that keeps the run's record (hex of its absolute path, so any value
fits the option's ``run:pid:home`` shape). With only ``run:pid`` a second home on the
same tmux server found no record of the other home's run, saw its starter gone after
the hand-over, called the flag stale and typed into the running command. Now every
home reads the owner's own record to decide; stale means provably over.

Flags written before the home was added (``run:pid``) read as the caller's own home.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from sane.tmux import panes


class Holder(NamedTuple):
    run_id: str
    pid: int | None
    home: str | None  # the owner's $SANE_HOME (absolute), None for a legacy flag

    @classmethod
    def parse(cls, value: str) -> Holder:
        run_id, _, rest = value.partition(":")
        pid, _, home_hex = rest.partition(":")
        home: str | None = None
        if home_hex:
            try:
                home = bytes.fromhex(home_hex).decode("utf-8", "surrogateescape")
            except ValueError:
                home = None
        return cls(run_id, int(pid) if pid.isdigit() else None, home)

    @classmethod
    def mine(cls, run_id: str, home: str) -> Holder:
        return cls(run_id, os.getpid(), os.path.abspath(home))

    @property
    def value(self) -> str:
        home = (self.home or "").encode("utf-8", "surrogateescape").hex()
        return f"{self.run_id}:{self.pid if self.pid is not None else ''}:{home}"


def run_of(value: str | None) -> str | None:
    """The run id a flag's value names (None for no flag)."""
    return (Holder.parse(value).run_id or None) if value else None


def claim_line(pane_id: str, holder: Holder) -> str:
    """Set the flag only if it is unset (``-o``): tmux refuses with "already set"."""
    return f"set-option -p -o -t {pane_id} {panes.OPT_RUN} {holder.value}"


def release_line(pane_id: str) -> str:
    """Clear the flag. Only after reading that it still holds the clearer's value
    (:func:`sane.ops.run.busy.release`): an error path never clears another run's flag.
    (tmux's ``if-shell -F`` would compare and clear in one command, but its inner
    command answers with a reply block of its own, which a control client cannot
    tell from the next command's.)"""
    return f"set-option -p -u -t {pane_id} {panes.OPT_RUN}"

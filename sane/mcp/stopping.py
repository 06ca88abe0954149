"""SIGTERM and SIGINT while ``sane mcp`` winds down: noted at once, obeyed once the
wind-down is over.

Why: hosts stop a stdio MCP server by closing its stdin and then, a moment later,
sending SIGTERM (the TypeScript SDK's ``StdioClientTransport.close()``: 2 s after the
close, SIGKILL 2 s after that); a person stops ``sane mcp --http`` (or a stdio server
in a terminal) with Ctrl-C, and a supervisor with SIGTERM, maybe twice. The wind-down
(:data:`sane.handlers.CALLS` interrupting a cancelled call's run, background deploys
finishing and journalled) can take seconds; killed in the middle, it left the
cancelled command running in its pane, the pane ``pane_busy`` for the next client with
a run id no tool accepted, or a deploy's journal mid-step. So the first signal stops
the serving (as an end of stdin does), later ones are only noted, the wind-down
completes, and then the process dies by the first signal (its default action), so the
exit status still says which. The hard stops: SIGKILL, or a third Ctrl-C (as the CLI's
third Ctrl-C), which kills the process by SIGINT at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HARD_STOP_PRESSES = 3  # the Ctrl-C that no longer waits for the wind-down


def _die_by(sig: signal.Signals) -> None:
    """End the process by ``sig``'s default action (its status: killed by ``sig``)."""
    signal.signal(sig, signal.SIG_DFL)
    signal.raise_signal(sig)


class Termination:
    """The first deferred signal that came (``None``: none) and what to do on one:
    ``on_signal``, set while something can be stopped early (the serving loop)."""

    def __init__(self) -> None:
        self.came: signal.Signals | None = None
        self.on_signal: Callable[[], object] | None = None
        self.presses = 0  # Ctrl-Cs so far

    def note(self, signum: int, _frame: FrameType | None) -> None:
        """The handler: runs in the main thread between two bytecodes, so it only
        records the signal and calls ``on_signal`` (which must be as short)."""
        sig = signal.Signals(signum)
        if sig == signal.SIGINT:
            self.presses += 1
            if self.presses >= HARD_STOP_PRESSES:
                _die_by(sig)
        if self.came is None:
            self.came = sig
        if self.on_signal is not None:
            self.on_signal()


@contextlib.contextmanager
def deferred(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[Termination]:
    """``signals`` are noted, not obeyed, inside the block; on leaving it the previous
    handlers are back and the process dies by the first signal that came. Off the main
    thread (where handlers cannot be set) the block runs with the handlers as they are."""
    termination = Termination()
    if threading.current_thread() is not threading.main_thread():
        yield termination
        return
    before = {sig: signal.signal(sig, termination.note) for sig in signals}
    try:
        yield termination
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        if termination.came is not None:
            _die_by(termination.came)

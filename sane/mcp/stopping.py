"""SIGTERM while ``sane mcp`` winds down: noted at once, obeyed once the wind-down is over.

Why: hosts stop a stdio MCP server by closing its stdin and then, a moment later,
sending SIGTERM (the TypeScript SDK's ``StdioClientTransport.close()``: 2 s after the
close, SIGKILL 2 s after that). The wind-down (:data:`sane.handlers.CALLS` interrupting
a cancelled call's run, background deploys finishing) can take longer than 2 s; killed
in the middle, it left the cancelled command running in its pane, the pane
``pane_busy`` for the next client with a run id no tool accepted. So a SIGTERM stops
the serving (as an end of stdin does), the wind-down completes, and then the signal is
raised again with the previous handler in place, so the exit status still says
SIGTERM. SIGKILL stays the hard stop.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType


class Termination:
    """The first deferred signal that came (``None``: none) and what to do on one:
    ``on_signal``, set while something can be stopped early (the serving loop)."""

    def __init__(self) -> None:
        self.came: signal.Signals | None = None
        self.on_signal: Callable[[], object] | None = None

    def note(self, signum: int, _frame: FrameType | None) -> None:
        """The handler: runs in the main thread between two bytecodes, so it only
        records the signal and calls ``on_signal`` (which must be as short)."""
        if self.came is None:
            self.came = signal.Signals(signum)
        if self.on_signal is not None:
            self.on_signal()


@contextlib.contextmanager
def deferred(signals: tuple[signal.Signals, ...] = (signal.SIGTERM,)) -> Iterator[Termination]:
    """``signals`` are noted, not obeyed, inside the block; on leaving it the previous
    handlers are back and the first signal that came is raised again. Off the main
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
            signal.raise_signal(termination.came)

"""Which panes are alive, asked of tmux once for every run a process follows.

A followed run that has been quiet for a while checks that its pane did not die
silently (LIVENESS_INTERVAL). Asked pane by pane that was one tmux command per
run every quarter second: a warm fleet run on 200 servers under load asked tmux about
a pane 170-400 times, and the longer the fleet took the more each server asked (issue
17: cost per server grew with the number of servers). Here one listing of every
pane's id and ``pane_dead`` answers all of them; only a pane the listing does not show
alive is then asked about by itself (``ending.dead_state``: how it ended).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from sane import errors

if TYPE_CHECKING:
    from sane.ops.context import Context

# While a pane is quiet, how often to check that it is still alive. Output wakes the
# waiter at once; this only bounds how late a silently dead pane is noticed.
LIVENESS_INTERVAL = 0.25


class Liveness:
    """One shared, recent listing of the live panes of a tmux server.

    ``maybe_dead`` answers from a listing at most ``max_age`` seconds old; when there
    is none, one caller asks tmux while the others wait for its answer (so a fleet of
    runs checking at once costs one command, not one each). A pane alive in a listing
    ``max_age`` old may have died since: it is noticed at the next check, so a death
    is seen at most ``max_age`` later than by asking at each check.
    """

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._cond = threading.Condition()
        self._alive: frozenset[str] | None = None
        self._taken = float("-inf")  # when the listing in _alive was asked for
        self._asking = False
        self._answers = 0  # listings answered so far

    def maybe_dead(self, pane_id: str, tmux: Callable[[list[str]], list[str]]) -> bool:
        """False if a recent listing shows ``pane_id`` alive; True if it shows it dead
        or not at all, or tmux could not be asked (the caller then asks exactly).
        ``tmux`` runs one tmux command (``Context.tmux``) when a listing is due."""
        alive = self._recent(tmux)
        return alive is None or pane_id not in alive

    def _recent(self, tmux: Callable[[list[str]], list[str]]) -> frozenset[str] | None:
        with self._cond:
            # A caller that waited for another's listing takes its answer, however old
            # it is by then: it was asked at most one round trip before this caller
            # came. Checking its age again made every waiter ask anew whenever a round
            # trip to tmux took longer than max_age (0.3-1 s under load): a listing of
            # every pane always in flight, one after another, for as long as anyone
            # waited.
            answers = self._answers
            while True:
                if self._answers != answers or time.monotonic() - self._taken <= self.max_age:
                    return self._alive
                if not self._asking:
                    break
                self._cond.wait(self.max_age)
            self._asking = True
        asked = time.monotonic()
        alive: frozenset[str] | None = None
        try:
            lines = tmux(["list-panes", "-a", "-F", "#{pane_id} #{pane_dead}"])
            alive = frozenset(
                pane for pane, _, dead in (line.partition(" ") for line in lines) if dead == "0"
            )
        except errors.SaneError:
            pass  # no answer: every caller asks about its own pane, as before
        finally:
            with self._cond:
                self._asking = False
                self._alive, self._taken = alive, asked
                self._answers += 1
                self._cond.notify_all()
        return alive


_boards: weakref.WeakKeyDictionary[Context, Liveness] = weakref.WeakKeyDictionary()
_boards_lock = threading.Lock()


def liveness_of(ctx: Context, max_age: float) -> Liveness:
    """The listing shared by every run followed through ``ctx`` (one per context, so
    one per tmux server: a fleet run's workers share theirs)."""
    with _boards_lock:
        board = _boards.get(ctx)
        if board is None:
            board = _boards[ctx] = Liveness(max_age)  # nothing of ctx: a weak key
        return board


def pane_dead(ctx: Context, pane_id: str) -> bool:
    """Whether pane ``pane_id`` is dead, for a waiter that saw no output for a while:
    the shared listing answers (one tmux command for every waiter of the process);
    only a pane it does not show alive is asked about by itself. A cold connect's
    waits (for ssh's first output, the shell probe's answer, the runner's READY) asked
    tmux about their pane every 0.1-0.25 s each: 50 servers connecting at once under
    load sent tmux hundreds of queries a second, on the one process every server's
    next step queues behind."""
    board = liveness_of(ctx, LIVENESS_INTERVAL)
    return board.maybe_dead(pane_id, ctx.tmux) and ctx.pane_state(pane_id).dead

"""The one listing of live panes that every waiter of a process shares."""

from __future__ import annotations

import threading

from sane.ops.run.liveness import Liveness


class _Watched(threading.Condition):
    """A condition that says when someone waits on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def test_a_waiter_takes_the_listing_it_waited_for_even_when_tmux_was_slow() -> None:
    """A caller that came while another's listing was in flight takes that answer,
    though the round trip took longer than max_age: before, it found the answer stale
    and asked again, so under load (round trips of 0.3-1 s against 0.25 s) a listing
    of every pane was always in flight while anyone waited."""
    board = Liveness(max_age=1e-9)  # any answer is older than this when it comes
    cond = _Watched()
    board._cond = cond
    asked: list[int] = []
    release = threading.Event()

    def slow_tmux(argv: list[str]) -> list[str]:
        asked.append(len(asked))
        if len(asked) == 1:  # the first listing answers once the second caller waits
            assert release.wait(30)
        return ["%1 0", "%2 1"]

    first = threading.Thread(target=lambda: board.maybe_dead("%1", slow_tmux))
    first.start()
    answer: list[bool] = []
    second = threading.Thread(target=lambda: answer.append(board.maybe_dead("%2", slow_tmux)))
    second.start()
    assert cond.waiting.wait(30)  # the second caller waits for the first's listing
    release.set()
    first.join(30)
    second.join(30)
    assert answer == [True]  # %2 is dead in that listing
    assert len(asked) == 1, "the second caller asked tmux again"

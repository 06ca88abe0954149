"""sane.parallel.bounded_map: order, the bound, and failures."""

from __future__ import annotations

import threading

import pytest

from sane.parallel import bounded_map


def test_results_in_order_never_more_than_the_bound() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()

    def work(item: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 3:
                release.set()
        release.wait(5)
        with lock:
            running -= 1
        return item * 2

    assert bounded_map(work, list(range(10)), 3) == [i * 2 for i in range(10)]
    assert peak == 3


def test_every_item_runs_and_the_first_failure_is_raised() -> None:
    done: list[int] = []

    def work(item: int) -> int:
        done.append(item)
        if item in (2, 5):
            raise ValueError(f"bad {item}")
        return item

    with pytest.raises(ValueError, match="bad"):
        bounded_map(work, list(range(8)), 2)
    assert sorted(done) == list(range(8))
    assert bounded_map(work, [], 4) == []

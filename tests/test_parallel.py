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


def test_threads_are_reused_by_the_next_call() -> None:
    barrier = threading.Barrier(4, timeout=10)

    def ident(_: int) -> int:
        barrier.wait()  # each of the 4 items on its own worker
        return threading.get_ident()

    bounded_map(ident, list(range(4)), 4)
    before = threading.active_count()
    first = set(bounded_map(ident, list(range(4)), 4))
    second = set(bounded_map(ident, list(range(4)), 4))
    assert len(first) == 4 and threading.get_ident() not in first
    assert first == second  # the same workers answered again
    assert threading.active_count() == before  # and none were started for it


def test_a_call_inside_a_worker_gets_its_own_workers() -> None:
    def inner(item: int) -> int:
        return sum(bounded_map(lambda x: x + item, [1, 2, 3], 3))

    assert bounded_map(inner, list(range(6)), 6) == [6 + 3 * i for i in range(6)]


def test_a_forked_child_starts_its_own_workers() -> None:
    import os

    bounded_map(lambda x: x, [1, 2], 2)  # idle workers in this process
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        import signal

        signal.alarm(20)  # a child waiting on its parent's workers dies instead of hanging
        try:
            ok = bounded_map(lambda x: x * 3, [1, 2, 3], 3) == [3, 6, 9]
            os.write(write, b"ok" if ok else b"bad")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 8) == b"ok" and status == 0
    os.close(read)


def test_idle_workers_keep_nothing_of_the_last_call() -> None:
    import gc
    import weakref

    class Output:
        pass

    results = bounded_map(lambda _: Output(), [1, 2, 3], 3)
    refs = [weakref.ref(r) for r in results]
    del results
    gc.collect()
    assert [r() for r in refs] == [None, None, None]


def test_workers_beyond_the_idle_bound_serve_the_next_call_then_leave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More workers than MAX_IDLE (a fleet run on 200 servers) are reused by the next
    call while it comes within IDLE_LINGER, and leave once unused that long. Before,
    all but MAX_IDLE exited at once and each call on 200 servers started 136 threads
    again (~0.4 ms of CPU per server)."""
    import time

    from sane import parallel

    monkeypatch.setattr(parallel, "MAX_IDLE", 1)
    monkeypatch.setattr(parallel, "IDLE_LINGER", 0.2)
    barrier = threading.Barrier(4, timeout=10)

    def worker(_: int) -> threading.Thread:
        barrier.wait()  # each of the 4 items on its own worker
        return threading.current_thread()  # (an ident is reused once a thread ends)

    first = set(bounded_map(worker, list(range(4)), 4))
    second = set(bounded_map(worker, list(range(4)), 4))
    assert first == second  # all 4 answered again, none started anew
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(t.is_alive() for t in first) > 1:
        time.sleep(0.05)
    alive = [t for t in first if t.is_alive()]
    assert len(alive) <= 1, alive  # the ones beyond MAX_IDLE left (one may be kept)

"""Follow a run's output until it ends, times out, waits for input or its pane dies."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sane.ops.context import Context
from sane.ops.run.ending import Follow, acknowledge_exit, dead_state
from sane.ops.run.options import INTERRUPT_QUIET, OutputHook
from sane.ops.run.quiet import QuietWatch
from sane.protocol import markers
from sane.protocol import scanner as sc
from sane.protocol.runner import exit_status
from sane.tmux.control import ControlClient, PaneStream

if TYPE_CHECKING:
    import threading
    from pathlib import Path

# While a pane is quiet, how often to check that it is still alive. Output wakes the
# waiter at once; this only bounds how late a silently dead pane is noticed.
LIVENESS_INTERVAL = 0.25


def follow_stream(
    ctx: Context,
    client: ControlClient,
    pane_id: str,
    stream: PaneStream,
    scanner: sc.RunScanner,
    deadline: float,
    on_output: OutputHook | None = None,
    quiet: float | None = None,
    stop: threading.Event | None = None,
) -> Follow:
    acknowledged = False
    watch = QuietWatch(client, pane_id, quiet)
    raced = b""
    while True:
        data, raced = raced, b""
        if not data:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0 or (stop is not None and stop.is_set()):
                return Follow("timeout")
            data = stream.take(min(remaining, LIVENESS_INTERVAL, watch.wait_time(now)))
        if data:
            watch.output()
            if scanner.feed(data) is not None:
                return Follow("outcome")
            if on_output is not None:
                on_output(client, pane_id, scanner)
            continue
        if stream.closed:
            return Follow("lost")
        if scanner.exit_pending() and not acknowledged:
            acknowledged = True
            acknowledge_exit(ctx, client, pane_id)
            continue
        waiting = watch.check(scanner, deadline)
        if waiting is not None:
            # The probe's tmux round trips let output that raced it arrive (the
            # command may have ended that very moment): output wins over the probe.
            raced = stream.take(0)
            if not raced:
                return Follow("waiting", waiting=waiting)
            continue
        dead = dead_state(ctx, pane_id)
        if dead is not None:
            if scanner.feed(stream.take(0)) is not None:
                return Follow("outcome")
            return Follow("dead", dead)


def follow_file(
    ctx: Context,
    client: ControlClient,
    pane_id: str,
    scanner: sc.RunScanner,
    stream_path: Path,
    offset: int,
    deadline: float,
    interrupt: bool,
    grace: float,
    quiet: float | None = None,
) -> Follow:
    """Follow a handed-over run through its pipe-pane file.

    The control client's ``%output`` for the pane wakes us when there is news; the
    file may lag the notification by a moment (``cat`` writes it), so a quiet wait
    backs off from 2 ms to 50 ms rather than trusting a single wake-up.
    """
    if scanner.outcome is not None:
        return Follow("outcome")
    # The file's size before the watch begins: from there on it receives at least every
    # byte the watch does (pipe-pane and %output carry the same pane output), so it has
    # caught up once it grew by as much as the watch received.
    base = stream_path.stat().st_size
    wake = client.watch(pane_id)
    watch = QuietWatch(
        client, pane_id, min(quiet or INTERRUPT_QUIET, INTERRUPT_QUIET) if interrupt else quiet
    )
    # Whether anything tmux sent since the watch began looks like one of sane's markers.
    # Only such bytes make a lagging file matter when a prompt is found: without this,
    # bytes cat wrote to the file before `base` but that reached the watch after it
    # (the control client lags under load) kept the file "behind" forever.
    sent = _MarkerSeen()
    live = _LiveEnd(scanner)
    try:
        if interrupt:
            scanner.mark_interrupt()
            client.command(f"send-keys -t {pane_id} C-c")
            deadline = max(deadline, time.monotonic() + grace)
        backoff = 0.002
        acknowledged = False
        last_check = time.monotonic()
        with open(stream_path, "rb") as fh:
            fh.seek(offset)
            while True:
                data = fh.read()
                if data:
                    backoff = 0.002
                    watch.output()
                    if scanner.feed(data) is not None:
                        return Follow("outcome")
                    continue
                now = time.monotonic()
                if now >= deadline:
                    return Follow("timeout")
                if wake.closed:
                    return Follow("lost")
                if now - last_check >= LIVENESS_INTERVAL:
                    last_check = now
                    if scanner.exit_pending() and not acknowledged:
                        acknowledged = True
                        acknowledge_exit(ctx, client, pane_id)
                        continue
                    dead = dead_state(ctx, pane_id)
                    if dead is not None:
                        if scanner.feed(fh.read()) is not None:
                            return Follow("outcome")
                        return Follow("dead", dead)
                    if live.end is not None and not ctx.pane_state(pane_id).piped:
                        # The run's end went by on the live stream, and the pipe that
                        # records it is gone (its writer died; tmux closes a pipe on
                        # its first failed write): the file will not get it.
                        if scanner.feed(fh.read()) is not None:
                            return Follow("outcome")
                        end = live.end
                        replaced = end.kind == markers.NEW_SHELL
                        return Follow(
                            "lost",
                            exited=end.kind == markers.EXITED or replaced,
                            code=None if end.arg is None or replaced else exit_status(end.arg),
                        )
                waiting = watch.check(scanner, deadline)
                if waiting is not None:
                    # Output that raced the probe wins, as in follow_stream; and the file
                    # (written by pipe-pane's cat, which may lag) must hold everything
                    # tmux sent, or an end marker may still be on its way into it.
                    data = fh.read()
                    fresh = live.note(sent.note(wake.take(0)))
                    if fresh or data or (sent.marker and fh.tell() - base < wake.pushed):
                        watch.output()  # look again after another quiet period
                        if data and scanner.feed(data) is not None:
                            return Follow("outcome")
                        continue
                    return Follow("waiting", waiting=waiting)
                if live.note(
                    sent.note(wake.take(min(backoff, deadline - now, watch.wait_time(now) + 0.001)))
                ):
                    backoff = 0.002
                    watch.output()
                else:
                    backoff = min(backoff * 2, 0.05)
    finally:
        client.unwatch(pane_id, wake)


class _LiveEnd:
    """The end of a run (its own end or exit marker, or the answer of a status probe),
    as the live stream shows it: what tells a run over whose recording died."""

    def __init__(self, scanner: sc.RunScanner) -> None:
        self.scanner = scanner
        self.end: markers.Marker | None = None
        self._buf = bytearray()

    def note(self, data: bytes) -> bytes:
        if data and self.end is None:
            self._buf += data
            found, resume = markers.scan(self._buf, 0)
            for m in found:
                if self.scanner.ends_run(m):
                    self.end = m
                    break
            del self._buf[:resume]
        return data


class _MarkerSeen:
    """Remembers whether a marker prefix passed in a byte stream fed in pieces."""

    def __init__(self) -> None:
        self.marker = False
        self._tail = b""

    def note(self, data: bytes) -> bytes:
        if data and not self.marker:
            joined = self._tail + data
            self.marker = markers.PREFIX in joined
            self._tail = joined[-(len(markers.PREFIX) - 1) :]
        return data

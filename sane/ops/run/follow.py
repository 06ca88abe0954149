"""Follow a run's output until it ends, times out, waits for input or its pane dies.

One loop (:func:`follow_run`) over a byte source: the live control-mode stream of the
process that typed the command (:class:`StreamSource`), or the stream file pipe-pane
writes for a run handed over to later calls (:class:`FileSource`). The loop decides
everything a run's end depends on (markers, the deadline, prompts, the pane's death,
the shell's exit); a source only says how its bytes arrive.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, BinaryIO, Protocol

from sane import errors
from sane.ops.context import Context
from sane.ops.has_input import prompt_after_run
from sane.ops.run.ending import Follow, acknowledge_exit, dead_state
from sane.ops.run.liveness import LIVENESS_INTERVAL, liveness_of
from sane.ops.run.options import OutputHook
from sane.ops.run.quiet import QuietWatch
from sane.protocol import markers
from sane.protocol import scanner as sc
from sane.protocol.runner import exit_status
from sane.tmux.control import ControlClient, PaneStream

if TYPE_CHECKING:
    import threading
    from pathlib import Path

# How often a durable run's follower looks whether its busy flag still names it.
OWNER_INTERVAL = 1.0


class Source(Protocol):
    """Where a followed run's bytes come from."""

    @property
    def closed(self) -> bool:
        """The source ended (the control client is gone): the run is lost to us."""
        ...

    def read(self, wait: float) -> tuple[bytes, bool]:
        """The run's next bytes, waiting up to ``wait`` seconds for any, and whether
        the pane showed any output (which may be on its way into the bytes)."""
        ...

    def raced(self) -> tuple[bytes, bool]:
        """After a probe found a prompt: bytes that arrived meanwhile, and whether
        anything (those, or output not yet in them) means the probe may be stale."""
        ...

    def unrecorded_end(self, ctx: Context, pane_id: str) -> Follow | None:
        """How the run ended if its end went by but can never reach its bytes."""
        ...


class StreamSource:
    """The pane's live output, as the control client delivers it to this process."""

    def __init__(self, stream: PaneStream) -> None:
        self.stream = stream

    @property
    def closed(self) -> bool:
        return self.stream.closed

    def read(self, wait: float) -> tuple[bytes, bool]:
        data = self.stream.take(wait)
        return data, bool(data)

    def raced(self) -> tuple[bytes, bool]:
        # The probe's tmux round trips let output that raced it arrive (the command
        # may have ended that very moment): output wins over the probe.
        data = self.stream.take(0)
        return data, bool(data)

    def unrecorded_end(self, ctx: Context, pane_id: str) -> Follow | None:
        return None  # every byte tmux sends is in the stream


class FileSource:
    """A handed-over run's stream file, written by pipe-pane's ``cat``.

    The control client's ``%output`` for the pane (``wake``) says when there is news;
    the file may lag it by a moment, so a quiet wait backs off from 2 ms to 50 ms
    rather than trusting a single wake-up.
    """

    def __init__(self, fh: BinaryIO, base: int, wake: PaneStream, scanner: sc.RunScanner) -> None:
        self.fh = fh
        # The file's size before the watch began: from there on it receives at least
        # every byte the watch does (pipe-pane and %output carry the same pane output),
        # so it has caught up once it grew by as much as the watch received.
        self.base = base
        self.wake = wake
        self.backoff = 0.002
        # Whether anything tmux sent since the watch began looks like one of sane's
        # markers. Only such bytes make a lagging file matter when a prompt is found:
        # without this, bytes cat wrote to the file before `base` but that reached the
        # watch after it (the control client lags under load) kept the file "behind"
        # forever.
        self.sent = _MarkerSeen()
        self.live = _LiveEnd(scanner)

    @property
    def closed(self) -> bool:
        return self.wake.closed

    def _news(self, wait: float) -> bool:
        return bool(self.live.note(self.sent.note(self.wake.take(wait))))

    def read(self, wait: float) -> tuple[bytes, bool]:
        data = self.fh.read()
        if data:
            self.backoff = 0.002
            return data, True
        if wait <= 0:
            return b"", False
        if self._news(min(self.backoff, wait + 0.001)):
            self.backoff = 0.002
            return self.fh.read(), True
        self.backoff = min(self.backoff * 2, 0.05)
        return b"", False

    def take(self, timeout: float) -> bytes:
        """Bytes the file received within ``timeout`` (the shape of
        :meth:`PaneStream.take`, for :func:`sane.ops.has_input.await_prompt`)."""
        return self.read(timeout)[0]

    def raced(self) -> tuple[bytes, bool]:
        # Output that raced the probe wins, as live; and the file must hold everything
        # tmux sent, or an end marker may still be on its way into it.
        data = self.fh.read()
        fresh = self._news(0)
        behind = self.sent.marker and self.fh.tell() - self.base < self.wake.pushed
        return data, bool(data or fresh or behind)

    def unrecorded_end(self, ctx: Context, pane_id: str) -> Follow | None:
        end = self.live.end
        if end is None or ctx.pane_state(pane_id).piped:
            return None
        # The run's end went by on the live stream, and the pipe that records it is
        # gone (its writer died; tmux closes a pipe on its first failed write): the
        # file will not get it.
        replaced = end.kind == markers.NEW_SHELL
        return Follow(
            "lost",
            exited=end.kind == markers.EXITED or replaced,
            code=None if end.arg is None or replaced else exit_status(end.arg),
        )


def follow_run(
    ctx: Context,
    client: ControlClient,
    pane_id: str,
    source: Source,
    scanner: sc.RunScanner,
    deadline: float,
    on_output: OutputHook | None = None,
    quiet: float | None = None,
    stop: threading.Event | None = None,
    remote: bool | None = None,
    owned: str | None = None,
    watch: QuietWatch | None = None,
) -> Follow:
    """Feed ``source``'s bytes to ``scanner`` until the run's outcome, the deadline (or
    ``stop``), a prompt found by a quiet-period probe, or the pane's death. ``remote``:
    True for a server's (ssh) pane, None when not known (see QuietWatch).

    ``owned``: the run's id, for a durable run whose busy flag this follower set: when
    the flag stops naming it, another process ended the run (a forced ``run_interrupt``
    of a deploy's step: it followed the run to its end through the record, released the
    flag and saved the ending there) and this follower stops with ``released``. Before,
    a run ended so was followed on to its own timeout (a deploy hung for the step's
    whole timeout, the pane already free for others).

    ``watch``: the run's quiet watch so far (a fleet's loop followed it until now)."""
    acknowledged = False
    watch = watch or QuietWatch(client, pane_id, quiet, remote)
    liveness = liveness_of(ctx, LIVENESS_INTERVAL)
    last_check = owner_check = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= deadline or (stop is not None and stop.is_set()):
            return Follow("timeout")
        data, news = source.read(min(deadline - now, LIVENESS_INTERVAL, watch.wait_time(now)))
        if news:
            watch.output()
        if data:
            if scanner.feed(data) is not None:
                return Follow("outcome")
            if on_output is not None:
                on_output(client, pane_id, scanner)
            continue
        if source.closed:
            if client.detached:
                raise errors.Detached(f"following a run in pane {pane_id}")
            return Follow("lost")
        if scanner.exit_pending() and not acknowledged:
            acknowledged = True
            acknowledge_exit(ctx, client, pane_id)
            last_check = 0.0  # the pane should be dead now: look at once
            continue
        now = time.monotonic()
        if now - last_check >= LIVENESS_INTERVAL:
            last_check = now
            # One listing of every pane answers all the runs followed at once; only a
            # pane it does not show alive is asked about (how did it end?) by itself.
            dead = dead_state(ctx, pane_id) if liveness.maybe_dead(pane_id, ctx.tmux) else None
            ended = (
                Follow("dead", dead) if dead is not None else source.unrecorded_end(ctx, pane_id)
            )
            if ended is None and owned is not None and now - owner_check >= OWNER_INTERVAL:
                owner_check = now
                if _released(ctx, pane_id, owned):
                    ended = Follow("released")
            if ended is not None:
                if scanner.feed(source.read(0)[0]) is not None:
                    return Follow("outcome")
                return ended
        waiting = watch.check(scanner, deadline)
        if waiting is not None:
            data, news = source.raced()
            if not news:
                return Follow("waiting", waiting=waiting)
            watch.output()  # look again after another quiet period
            if data:
                if scanner.feed(data) is not None:
                    return Follow("outcome")
                if on_output is not None:
                    on_output(client, pane_id, scanner)


def _released(ctx: Context, pane_id: str, run_id: str) -> bool:
    """Has the pane's busy flag stopped naming ``run_id`` (another process ended it)?"""
    from sane.ops.run.holder import run_of

    try:
        return run_of(ctx.pane_state(pane_id).busy_flag) != run_id
    except errors.PaneNotFound:
        return False  # the pane's death is the liveness check's to report


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
    on_output: OutputHook | None = None,
    stop: threading.Event | None = None,
    screen: bool = False,
) -> Follow:
    """Follow a handed-over run through its pipe-pane file from ``offset`` on; with
    ``interrupt``, send C-c first and wait at least ``grace`` for its end. ``on_output``
    and ``stop``: as for :func:`follow_run`. ``screen``: the shell's command line is
    checked on the screen (sane.ops.has_input), so once the run ended, the prompt
    drawn after it is read from the file too (the pipe still records it) and returned
    as ``Follow.prompt``: commands keeping it."""
    if scanner.outcome is not None and not screen:
        return Follow("outcome")
    base = stream_path.stat().st_size
    wake = client.watch(pane_id)
    try:
        with open(stream_path, "rb") as fh:
            fh.seek(offset)
            source = FileSource(fh, base, wake, scanner)
            if scanner.outcome is not None:
                follow = Follow("outcome")
            else:
                watch = None
                if interrupt:
                    scanner.mark_interrupt()
                    client.command(f"send-keys -t {pane_id} C-c")
                    deadline = max(deadline, time.monotonic() + grace)
                    watch = QuietWatch.after_interrupt(client, pane_id)
                follow = follow_run(
                    ctx,
                    client,
                    pane_id,
                    source,
                    scanner,
                    deadline,
                    on_output,
                    quiet,
                    stop,
                    watch=watch,
                )
            if screen and follow.kind == "outcome":
                follow = follow._replace(prompt=tuple(prompt_after_run(source, scanner, pane_id)))
            return follow
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

"""A tmux control-mode client: commands in, every pane's raw output out, live.

Why control mode: a ``%output`` notification reaches us ~0.25 ms after the program
wrote it, against 500 ms polling of ``capture-pane`` in the best-known agent runtime,
and it is the raw byte stream, so nothing is lost to screen rendering or scrollback.
Measured pitfalls this client avoids (``shared/notes/protocol-spike.md``):

* read binary and buffered, decode tmux's ``\\ooo`` escapes to bytes *before* any
  UTF-8 decoding (bytes >= 0x80 arrive raw);
* drain the stream continuously in a reader thread, never use ``pause-after`` (tmux
  then drops data) and send no client size: attach with ``ignore-size`` so this
  client never shrinks or wraps anyone's panes;
* the first ``%begin/%end`` block answers the attach itself.

``%output`` only arrives for panes of the session the client is attached to, so
there is one client per (server, session); :class:`ControlHub` keeps them.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from sane import errors
from sane.tmux.command import TmuxServer, cannot_run_tmux
from sane.tmux.process import PipedProcess, ProcessTimeout

_escape_decode = codecs.escape_decode


class Reply:
    """The answer to one command line: its output lines, or tmux's error."""

    def __init__(self, line: str, blocks: int = 1, marks: tuple[PaneStream, ...] = ()) -> None:
        self.line = line
        self.blocks = blocks  # commands in the line: tmux answers each with a block
        self.lines: list[str] = []
        self.error = False
        self.done = threading.Event()
        # Bytes each stream in ``marks`` had received when tmux finished answering:
        # tmux sends a pane's %output in order with command replies, so this is the
        # exact split between output from before the command and from after it. Only
        # for the streams asked for: noting every watched stream at every reply cost
        # the reader thread O(panes watched) per command, O(N^2) per fleet run.
        self.marks = marks
        self.positions: dict[PaneStream, int] = {}
        # Called (in the reader thread) once the answer is complete: how one thread
        # following many runs (sane.fleet.loop) learns of it without a wait per reply.
        self.notify: Callable[[Reply], None] | None = None
        self.held = False  # its line waits in the client for the next write
        # Never answered by tmux: the client closed first (see ControlClient.detached).
        self.dropped = False

    def finish(self) -> None:
        self.done.set()
        if self.notify is not None:
            self.notify(self)


# A place in a pane's output as this client saw it: (generation, %output lines of the
# pane). Equal places mean no %output for the pane came between them, and nothing that
# could have hidden one (see ControlClient.quiet).
Seen = tuple[int, int]

# Notifications after which a pane's output may not all have reached this client (its
# pane moved to another session or back, the client's session changed, its output was
# paused), or whose meaning this client does not know: every quiet mark is void. Only
# the ones below are known to leave every pane's output flowing here.
_HARMLESS = frozenset(
    {
        b"%window-renamed",
        b"%session-window-changed",
        b"%window-pane-changed",
        b"%client-session-changed",
        b"%client-detached",
        b"%session-renamed",
        b"%sessions-changed",
        b"%paste-buffer-changed",
        b"%paste-buffer-deleted",
        b"%subscription-changed",
        b"%message",
        b"%config-error",
    }
)


class PaneStream:
    """Bytes a pane printed since it was watched, handed out as they arrive."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._chunks: list[bytes] = []
        self.activity = 0  # bumped on every %output: a cheap "something happened"
        self.closed = False
        self.pushed = 0  # bytes received in all
        self._taken = 0  # bytes handed out
        # Called (in the reader thread) after each push and at close: one thread
        # follows many panes' streams by being told which have news (sane.fleet.loop).
        self.waker: Callable[[PaneStream], None] | None = None
        # Where in the pane's output (ControlClient.seen) the last chunk pushed, and the
        # last chunk handed out, came; None once a take split a chunk.
        self._pushed_at: Seen | None = None
        self.taken_at: Seen | None = None

    def push(self, data: bytes, at: Seen | None = None) -> None:
        with self._cond:
            self._chunks.append(data)
            self.pushed += len(data)
            self.activity += 1
            self._pushed_at = at
            self._cond.notify_all()
        if self.waker is not None:
            self.waker(self)

    def take_until(self, position: int) -> bytes:
        """Hand out what arrived before byte ``position`` (see Reply.positions); keep
        the rest for later takes."""
        with self._cond:
            data = b"".join(self._chunks)
            cut = max(0, min(len(data), position - self._taken))
            self._chunks = [data[cut:]] if cut < len(data) else []
            self._taken += cut
            self.taken_at = None
            return data[:cut]

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        if self.waker is not None:
            self.waker(self)

    def take(self, timeout: float) -> bytes:
        """Wait up to ``timeout`` seconds for output; return all of it (maybe b'')."""
        with self._cond:
            if not self._chunks and not self.closed and timeout > 0:
                self._cond.wait(timeout)
            data = b"".join(self._chunks)
            self._chunks.clear()
            self._taken += len(data)
            self.taken_at = self._pushed_at
            return data


class ControlClient:
    """One ``tmux -C attach`` process with a reader thread."""

    def __init__(self, server: TmuxServer, session: str, timeout: float = 10.0) -> None:
        self.server = server
        self.session = session
        self._lock = threading.Lock()  # the queue of replies, the watched streams
        self._write_lock = threading.Lock()  # writes to tmux, in their queue's order
        self._pending: deque[Reply] = deque()
        self._held: list[Reply] = []  # queued, not written yet (send's hold)
        # Changed under the lock one key at a time, each value a tuple replaced whole:
        # the reader thread looks one key up for every line without the lock, which a
        # store or removal of one key by another thread cannot tear (nothing iterates
        # it without the lock). It was copied whole at every watch and unwatch: O(panes
        # watched) each, O(N^2) per fleet run of N servers (issue 17).
        self._streams: dict[str, tuple[PaneStream, ...]] = {}
        # %output lines seen per pane (every pane of the session, watched or not), and
        # a generation bumped by any notification that may hide a pane's output: see
        # quiet(). Counted by the reader thread only; a gone pane's entry is dropped
        # by forget().
        self._seen: dict[str, int] = {}
        self._generation = 0
        self._quiet: dict[str, Seen] = {}
        self._closed = threading.Event()
        # close() was called: this process let go of the session (tmux did not drop
        # it). Runs still followed through this client are then not over, nor lost:
        # see ``detached``.
        self._detaching = False
        attach = Reply("attach")
        self._pending.append(attach)
        with attach_detach_lock(server):
            try:
                self._proc = PipedProcess(
                    server.argv("-C", "attach-session", "-f", "ignore-size", "-t", session)
                )
            except OSError as exc:
                raise cannot_run_tmux(exc) from exc
            with _live_lock:
                _live.add(self)
            self._reader = threading.Thread(
                target=self._read, name="sane-tmux-control", daemon=True
            )
            self._reader.start()
            attached = attach.done.wait(timeout)
        if not attached or attach.error:
            message = "\n".join(attach.lines) or self._stderr_text() or "attach failed"
            self.close()
            raise server.error_from(message, ["attach-session", "-t", session])

    # -- commands -----------------------------------------------------------------

    def send(
        self,
        *commands: str,
        mark: PaneStream | None = None,
        notify: Callable[[Reply], None] | None = None,
        blocks: int | None = None,
        hold: bool = False,
    ) -> Reply:
        """Queue commands as one line; tmux runs them in order and skips the rest of
        the line after the first one that fails (which makes ``set-option -o`` then
        ``send-keys`` an atomic claim-and-type). ``mark``: a stream whose position at
        the answer the reply keeps (``Reply.positions``); ``notify``: called with the
        reply once it is complete (``Reply.notify``); ``blocks``: the reply blocks tmux
        answers the line with when it is not one per command (an ``if-shell -F`` whose
        commands, run, answer with blocks of their own: sane.tmux.panes.if_unchanged).
        ``hold``: the line waits for the next write (:meth:`flush`, or any line sent
        without ``hold``, by any thread: lines go to tmux in the order sent), so lines
        sent together cost tmux one read. Each line written alone costs tmux a turn of
        its event loop, which polls every pane's descriptor and passes over every pane:
        with 200 panes ~50-100 us of its CPU per line, against ~25 us for a line among
        many (issue 17: a fleet run of N servers wrote 2N lines one by one)."""
        count = len(commands) if blocks is None else blocks
        reply = Reply(" ; ".join(commands), count, () if mark is None else (mark,))
        reply.notify = notify
        self._write(reply, hold)
        return reply

    def flush(self) -> None:
        """Write the lines held (``send(..., hold=True)``), if any are."""
        self._write(None, False)

    def _write(self, reply: Reply | None, hold: bool) -> None:
        """Queue ``reply``'s line and, unless ``hold``, write every line held with it,
        in the order queued (the write lock); replies of lines that cannot be written
        are answered with an error. The reader thread is not held up meanwhile: a long
        write waits for tmux to read, while the reader only needs the queue's lock."""
        failed: list[Reply] = []
        with self._write_lock:
            with self._lock:
                stdin = self._proc.stdin
                closed = self._closed.is_set() or stdin is None or stdin.closed
                if reply is not None and closed:
                    failed.append(reply)
                elif reply is not None:
                    self._pending.append(reply)
                    self._held.append(reply)
                    reply.held = True
                lines: list[Reply] = []
                if not hold:
                    lines, self._held = self._held, []
                    for line in lines:
                        line.held = False
            data = b"".join(r.line.encode("utf-8", "surrogateescape") + b"\n" for r in lines)
            if stdin is not None and data:
                try:
                    stdin.write(data)
                    stdin.flush()
                except (OSError, ValueError):  # ValueError: closed by close() meanwhile
                    with self._lock:  # those the reader's end has not answered yet
                        lost = [r for r in lines if r in self._pending]
                        for line in lost:
                            self._pending.remove(line)
                    failed += lost
        for line in failed:
            line.error = line.dropped = True
            line.lines = ["control client is closed"]
            line.finish()

    def command(
        self, *commands: str, timeout: float = 10.0, blocks: int | None = None
    ) -> list[str]:
        """Run commands and return their output lines; tmux errors become exceptions."""
        reply = self.send(*commands, blocks=blocks)
        return self.result(reply, timeout)

    def result(self, reply: Reply, timeout: float = 10.0) -> list[str]:
        if reply.held:  # never wait for a line not yet written
            self.flush()
        if not reply.done.wait(timeout):
            raise errors.TmuxError(f"tmux did not answer within {timeout:g}s", command=reply.line)
        if reply.dropped and self._detaching:
            raise errors.Detached(f"waiting for tmux's answer to {reply.line[:60]!r}")
        if reply.error:
            raise self.server.error_from("\n".join(reply.lines), [reply.line])
        return reply.lines

    # -- output -------------------------------------------------------------------

    def watch(self, pane_id: str) -> PaneStream:
        """Start collecting a pane's output (before sending it anything)."""
        stream = PaneStream()
        with self._lock:
            self._streams[pane_id] = (*self._streams.get(pane_id, ()), stream)
            if self._closed.is_set():
                stream.close()
        return stream

    def unwatch(self, pane_id: str, stream: PaneStream) -> None:
        with self._lock:
            group = tuple(s for s in self._streams.get(pane_id, ()) if s is not stream)
            if group:
                self._streams[pane_id] = group
            else:
                self._streams.pop(pane_id, None)

    def printed(self, pane_id: str) -> bool:
        """Whether any ``%output`` of the pane reached this client. For a pane made
        while this client was attached to its session, and asked after :meth:`watch`,
        False means the pane has printed nothing yet, with no round trip to tmux: the
        reader counts a line before it looks for the pane's streams, so a line it
        counted after this answer reaches the stream watched before it."""
        return self._seen.get(pane_id, 0) > 0

    def note_quiet(self, pane_id: str, at: Seen) -> None:
        """Remember that the pane's output up to ``at`` (a ``PaneStream.taken_at``)
        ended with a state sane knows (the prompt it saw drawn after its run)."""
        self._quiet[pane_id] = at

    def quiet(self, pane_id: str) -> bool:
        """Whether the pane printed nothing since :meth:`note_quiet` (said once: the
        mark goes). Every key a person types into a shell that echoes it (all the
        screen-checked shells) is output, so a quiet pane's line holds no typed text.
        Output tmux shows but this client's reader has not read yet (it lags under
        load) is not seen here: a run skipping the look at the screen on this has tmux
        check the screen's place as it types (``sane.tmux.panes.mark_screen_place``)."""
        mark = self._quiet.pop(pane_id, None)
        return (
            mark is not None and self.alive and mark == (self._generation, self._seen.get(pane_id))
        )

    def panes_noted(self) -> frozenset[str]:
        """The panes this client keeps a count of output or a quiet mark for (a copy:
        ``dict.copy`` is one step the reader thread cannot tear)."""
        return frozenset(self._seen.copy()) | frozenset(self._quiet.copy())

    def noted_count(self) -> int:
        """How many entries :meth:`panes_noted` would give, at most (no copy)."""
        return len(self._seen) + len(self._quiet)

    def forget(self, pane_ids: Iterable[str]) -> None:
        """Drop what this client keeps for panes that are gone (sane.ops.context.Context
        .forget_panes): every pane of the session that ever printed has an entry, and a
        long-lived process (``sane mcp``) would keep them all. A pane id is never given
        again by the same tmux server, and a new server gets new control clients, so a
        gone pane's entry is never asked for again. (An ``%output`` line of the gone pane
        still in flight may count it again in the reader thread: one entry, dropped by
        the next sweep.)"""
        for pane_id in pane_ids:
            self._seen.pop(pane_id, None)
            self._quiet.pop(pane_id, None)

    @property
    def alive(self) -> bool:
        return not self._closed.is_set()

    @property
    def detached(self) -> bool:
        """Whether this process let go of tmux for good (``let_go``: its context
        ended), as opposed to tmux or its control process going away, or the hub
        swapping the client: a follower whose stream closed so, or a command tmux
        never answered because of it, decides nothing about its run
        (``errors.Detached``, raised in the thread that was using the client)."""
        return self._detaching

    def let_go(self) -> None:
        """Close for good, as the process's context ends (a Ctrl-C in the main thread,
        an error, a server stopping) while other threads may still follow runs through
        this client: those runs go on in their panes, undecided (``detached``)."""
        if self.alive:
            self._detaching = True
        self.close()

    def _read(self) -> None:
        out = self._proc.stdout
        assert out is not None
        block: Reply | None = None
        guard = b""
        attached = False
        try:
            for line in iter(out.readline, b""):
                if guard:
                    if line.startswith((b"%end ", b"%error ")) and line.split(b" ", 1)[1] == guard:
                        if block is not None:
                            block.positions = {s: s.pushed for s in block.marks}
                            block.blocks -= 1
                            if line.startswith(b"%error"):
                                block.error = True
                            if block.error or block.blocks <= 0:
                                with self._lock:
                                    if self._pending and self._pending[0] is block:
                                        self._pending.popleft()
                                block.finish()
                        block, guard = None, b""
                    elif block is not None:
                        block.lines.append(line[:-1].decode("utf-8", "replace"))
                    continue
                if line.startswith(b"%output "):
                    space = line.index(b" ", 8)
                    pane = line[8:space].decode()
                    count = self._seen[pane] = self._seen.get(pane, 0) + 1
                    streams = self._streams.get(pane)
                    if streams:
                        data = _escape_decode(line[space + 1 : -1])[0]
                        for stream in streams:
                            stream.push(data, (self._generation, count))
                elif line.startswith(b"%begin "):
                    guard = line.split(b" ", 1)[1]
                    flags = guard.split()[-1] if guard.split() else b"0"
                    # Blocks with flags 0 come from the server itself (hooks), not from
                    # our command lines, except the very first one: the attach.
                    if not attached or flags != b"0":
                        attached = True
                        with self._lock:
                            block = self._pending[0] if self._pending else None
                elif line.startswith(b"%exit"):
                    break
                elif line.split(b" ", 1)[0].rstrip() not in _HARMLESS:
                    self._generation += 1
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            self._closed.set()
            pending = list(self._pending)
            self._pending.clear()
            streams = [s for group in self._streams.values() for s in group]
        for reply in pending:
            reply.error = reply.dropped = True
            if not reply.lines:
                reply.lines = [self._stderr_text() or "tmux control client exited"]
            reply.finish()
        for stream in streams:
            stream.close()

    def _stderr_text(self) -> str:
        if self._proc.poll() is None or self._proc.stderr is None:
            return ""
        try:
            return self._proc.stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        """Detach: let queued commands finish, close stdin, reap the process."""
        with self._lock:
            last = self._pending[-1] if self._pending else None
        if last is not None:
            last.done.wait(5)
        with attach_detach_lock(self.server):
            with self._write_lock, self._lock:
                stdin = self._proc.stdin
                if stdin is not None and not stdin.closed:
                    with contextlib.suppress(OSError):
                        stdin.close()
            try:
                self._proc.wait(timeout=5)
            except ProcessTimeout:
                self._proc.kill()
                self._proc.wait()
        with _live_lock:
            _live.discard(self)
        self._reader.join(timeout=5)
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()


# Every control client of this process whose tmux process is not reaped yet: the ones
# ``end_every_client`` ends when the process stops without closing them.
_live: set[ControlClient] = set()
_live_lock = threading.Lock()


def end_every_client() -> None:
    """Kill and reap every control client this process still has, for a process about
    to end without closing them (``os._exit`` after a Ctrl-C, SIGTERM, interpreter
    exit with a context left open).

    Why not leave them to tmux: tmux 3.3a reads and writes a control client's stdin
    and stdout itself. When sane's ends of both pipes close at once while tmux still
    has output queued for the client (a busy pane in its session), tmux's write fails,
    the queue never drains, and tmux keeps the client attached for good, its process
    orphaned; ``kill-server`` on that socket then never finishes (issue 17, seen after
    2 of about 15 Ctrl-Cs). A client process that is gone is dropped by tmux at once.
    Killed under ``attach_detach_lock``, as a detach is (see there)."""
    with _live_lock:
        clients = list(_live)
        _live.clear()
    by_server: dict[str, list[ControlClient]] = {}
    for client in clients:
        by_server.setdefault(clients_lock_path(client.server), []).append(client)
    for group in by_server.values():
        with attach_detach_lock(group[0].server):
            for client in group:
                client._proc.kill()
    for client in clients:
        with contextlib.suppress(ProcessTimeout):
            client._proc.wait(timeout=5)


atexit.register(end_every_client)


# Longest anyone holds the lock below is one attach or one detach (milliseconds);
# past this a holder is taken to be stuck and the caller goes on without the lock.
ATTACH_DETACH_LOCK_TIMEOUT = 5.0


@contextlib.contextmanager
def attach_detach_lock(server: TmuxServer) -> Iterator[None]:
    """Attach and detach control clients of one tmux server one at a time, across
    sane's processes and threads.

    tmux 3.3a's server segfaults when a control client attaches while another one
    detaches (five threads attaching and detaching in a loop crashed it within a
    second in every trial, and concurrent one-shot commands do exactly that; with
    attach and detach under one lock, none did). The cause (tmux PR #4980): a client
    still attaching has no control state yet, and a notification sent to every
    control client at that moment dereferences it. A detach is one such notification;
    a session created or destroyed, a window selected or renamed are others, so sane
    also creates its session and removes its local pane under this lock. Other
    programs' changes to sessions can still meet a sane attach (docs/protocol.md).
    The lock is an ``flock`` on a file per tmux socket; each holder keeps it for a
    few ms.
    """
    from sane.flock import flock_within
    from sane.paths import open_private

    try:
        fd = open_private(clients_lock_path(server), os.O_RDWR | os.O_CREAT)
    except (OSError, errors.StateError):
        yield  # no lock file possible (a read-only directory): go on without it
        return
    try:
        with contextlib.suppress(OSError):  # flock unsupported there (ENOLCK): go on
            flock_within(fd, ATTACH_DETACH_LOCK_TIMEOUT, first=0.0005, cap=0.01)
        yield
    finally:
        os.close(fd)  # releases the flock


def clients_lock_path(server: TmuxServer) -> str:
    """The file ``attach_detach_lock`` locks: one per tmux server (see lock_file)."""
    return server.lock_file(".clients")


class ControlHub:
    """Control clients of one tmux server, one per session, opened on first use."""

    def __init__(self, server: TmuxServer) -> None:
        self.server = server
        self._clients: dict[str, ControlClient] = {}
        self._lock = threading.Lock()
        # One speculative attach at a time (see attach_first). tmux 3.3a segfaults now
        # and then when a control client detaches moments after attaching, which is
        # what the losers of a race of concurrent attaches used to do (five threads of
        # a fleet connect: dmesg showed the server's segfault, the callers "server
        # exited unexpectedly" and "control client exited").
        self._attach_lock = threading.Lock()

    def client(self, session_id: str) -> ControlClient:
        dead: ControlClient | None = None
        with self._lock:
            client = self._clients.get(session_id)
            if client is None or not client.alive:
                dead = client
                client = ControlClient(self.server, session_id)
                self._clients[session_id] = client
        if dead is not None:
            dead.close()  # reap the tmux client that exited
        return client

    def attached(self, session_id: str) -> bool:
        """Is a client of this hub attached to the session (no attach needed)?"""
        with self._lock:
            client = self._clients.get(session_id)
        return client is not None and client.alive

    def attach_first(self, target: str) -> None:
        """Attach a client for ``target`` unless one is attached already; concurrent
        callers wait for the first one's client instead of attaching their own."""
        with self._attach_lock:
            if self.any_client() is None:
                self.attach(target)

    def attach(self, target: str) -> ControlClient:
        """A client for the session holding ``target`` (a session name ``=NAME`` or a
        pane id), attached without asking tmux for the session id first: the first
        tmux process a one-shot call starts is then the one it keeps."""
        client = ControlClient(self.server, target)
        try:
            session_id = client.command("display-message -p '#{session_id}'")[0]
        except BaseException:
            client.close()
            raise
        with self._lock:
            existing = self._clients.get(session_id)
            spare: ControlClient | None
            if existing is not None and existing.alive:
                keep, spare = existing, client
            else:
                client.session = session_id
                self._clients[session_id] = keep = client
                spare = existing  # None, or a client whose tmux exited: reap it
        if spare is not None:
            spare.close()
        return keep

    def drop(self, session_id: str) -> None:
        """Detach this hub's client from a session (see ``respawn`` in ops.takeover)."""
        with self._lock:
            client = self._clients.pop(session_id, None)
        if client is not None:
            client.close()

    def clients(self) -> dict[str, ControlClient]:
        """This hub's live clients by session id, as they are now (a copy)."""
        with self._lock:
            return {sid: c for sid, c in self._clients.items() if c.alive}

    def any_client(self) -> ControlClient | None:
        with self._lock:
            for client in self._clients.values():
                if client.alive:
                    return client
        return None

    def close(self) -> None:
        """Let every client go for good (see ``ControlClient.let_go``)."""
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.let_go()


def monotonic_deadline(timeout: float | None) -> float:
    return float("inf") if timeout is None else time.monotonic() + timeout

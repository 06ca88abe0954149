"""Sessions, windows and panes sane creates, and the locks that keep two processes
from creating the same one.

Only cold paths come here (first use of a session, opening a pane); hot paths use
:mod:`sane.tmux.command` and the control client.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from sane import errors
from sane.poll import poll
from sane.tmux import panes
from sane.tmux.command import TmuxServer, command_list

if TYPE_CHECKING:
    from pathlib import Path

# Fixed size and `window-size manual`: no client (a person's small terminal, a control
# client) can shrink the panes sane reads from.
PANE_WIDTH = 200
PANE_HEIGHT = 50


_held = threading.local()  # lock path -> depth, per thread (the locks are re-entrant)
# Creation holds the lock for a few tmux commands; minutes mean a stuck process.
CREATION_LOCK_TIMEOUT = 60.0
PANE_LOCK_KIND = "-pane-"


def creation_lock_path(server: TmuxServer) -> Path:
    """The lock file serialising creation on ``server`` (one per tmux socket; whoever
    kills a tmux server for good, a test fixture say, may remove it)."""
    from pathlib import Path

    return Path(server.lock_file(""))


def pane_lock_path(server: TmuxServer, name: str) -> Path:
    """The lock file serialising the making of one named pane (a fleet server's) on
    ``server``: two processes never open two panes for one server, and panes for
    different servers are made at the same time."""
    from pathlib import Path

    plain = name.replace(".", "_").replace("-", "_").isalnum() and len(name) <= 64
    if not plain:
        import hashlib

        name = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return Path(server.lock_file(PANE_LOCK_KIND + name))


def kill_for_good(server: TmuxServer) -> None:
    """Kill ``server`` and remove what would outlive it: its socket (tmux 3.3a leaves
    the file behind) and sane's lock files for it. For whoever owns a server outright
    (``sane demo``, test fixtures); never for a person's server."""
    import glob

    from sane.tmux.control import clients_lock_path

    _kill_server_and_clients(server)
    pane_locks = glob.glob(glob.escape(server.lock_file(PANE_LOCK_KIND + "@")).replace("@", "*"))
    for path in (
        server.socket_file(),
        str(creation_lock_path(server)),
        clients_lock_path(server),
        *pane_locks,
    ):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _kill_server_and_clients(server: TmuxServer) -> None:
    """``kill-server``, then make sure the server and its clients are gone.

    Why: tmux 3.3a's server, told to exit, waits for every client to go, and a control
    client whose own process was killed (``kill -9`` of a sane command) can outlive it
    without ever reading the exit: the server then lived on for good once its socket
    was removed (seen after the create-file kill test of a loaded CI run). Each pid is
    checked to be a tmux process of this socket before it is signalled."""
    import signal
    import time

    pids: list[int] = []
    with contextlib.suppress(errors.SaneError):
        listed = server.run(
            "list-clients", "-F", "#{client_pid}", ";", "display-message", "-p", "#{pid}"
        )
        pids = [int(pid) for pid in listed.split() if pid.isdigit()]
    if not pids:
        # No answer: a server that cannot accept a client (out of descriptors: it
        # spins on accept for good, ~10% of a core) or is stopped. Its processes are
        # found by their command line instead, so the deadline below still ends them.
        pids = _tmux_processes_of(server)
    with contextlib.suppress(errors.SaneError):
        server.run("kill-server", check=False)
    deadline = time.monotonic() + 2.0
    for pid in pids:  # a process's exit has no event to wait on here: poll
        if not poll(_gone(pid, server), max(0.0, deadline - time.monotonic())):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _tmux_processes_of(server: TmuxServer) -> list[int]:
    """Every tmux process of ``server``'s socket on this host, from ``/proc``."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    return [int(e) for e in entries if e.isdigit() and _is_tmux_of(int(e), server)]


def _gone(pid: int, server: TmuxServer) -> Callable[[], bool]:
    return lambda: not _is_tmux_of(pid, server)


def _is_tmux_of(pid: int, server: TmuxServer) -> bool:
    """Whether ``pid`` is (still) a tmux process started for ``server``'s socket."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return (
        bool(argv)
        and os.path.basename(argv[0]) == b"tmux"
        and any(
            arg.decode(errors="replace") in (server.socket_name, server.socket_path) for arg in argv
        )
    )


def creation_lock(server: TmuxServer) -> contextlib.AbstractContextManager[None]:
    """Serialise creating sessions and windows across processes and threads, so two
    first runs make one session; re-entrant within a thread."""
    return _file_lock(
        creation_lock_path(server), f"creating tmux sessions or windows on {server.label}"
    )


def pane_lock(server: TmuxServer, name: str) -> contextlib.AbstractContextManager[None]:
    """Serialise making the pane of server ``name`` (see :func:`pane_lock_path`)."""
    return _file_lock(pane_lock_path(server, name), f"opening the pane of {name} on {server.label}")


def read_pane_record(server: TmuxServer, name: str, session: str) -> str | None:
    """The id of the last pane made for server ``name`` in ``session`` (written by
    :func:`write_pane_record`), or None. Read under that server's :func:`pane_lock`.

    Why: whoever holds the lock must know whether another process made the server's
    pane since it listed the session. Asking tmux for panes by option is a filter over
    every pane of the session (N² tmux work for a fleet); the record names the one
    pane to ask about, or that nobody made one. The pane it names may be gone, or (a
    new tmux server on the same socket) be another pane now: the caller checks it."""
    for line in _record_lines(str(pane_lock_path(server, name))):
        owner, _, pane_id = line.partition(" ")
        if owner == session and pane_id.startswith("%"):
            return pane_id
    return None


def write_pane_record(server: TmuxServer, name: str, session: str, pane_id: str) -> None:
    """Record ``pane_id`` as server ``name``'s pane in ``session`` (see
    :func:`read_pane_record`): one line per session, in the pane lock's own file (0600,
    in sane's private lock directory). Written under the lock; a failure to write
    leaves the record stale, which readers tolerate (they check what it names)."""
    from sane.paths import open_private

    path = str(pane_lock_path(server, name))
    lines = [ln for ln in _record_lines(path) if not ln.startswith(session + " ")]
    data = "".join(f"{ln}\n" for ln in [*lines[-15:], f"{session} {pane_id}"]).encode()
    with contextlib.suppress(OSError, errors.StateError):
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def _record_lines(path: str) -> list[str]:
    """The lines of a pane lock's record (none when it cannot be read)."""
    from sane.paths import open_private

    try:
        fd = open_private(path, os.O_RDONLY)
    except (OSError, errors.StateError):
        return []
    try:
        return os.read(fd, 4096).decode("ascii", "replace").splitlines()
    except OSError:
        return []
    finally:
        os.close(fd)


@contextlib.contextmanager
def _file_lock(path: Path, what: str) -> Iterator[None]:
    """An exclusive flock on ``path`` across processes and threads; re-entrant
    within a thread. Waiting longer than CREATION_LOCK_TIMEOUT is ``state_locked``."""
    held: dict[Path, int] = _held.__dict__.setdefault("paths", {})
    if held.get(path):
        held[path] += 1
        try:
            yield
        finally:
            held[path] -= 1
        return
    from sane.flock import flock_within
    from sane.paths import open_private

    try:
        fd = open_private(str(path), os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        from sane.state import os_failure

        raise os_failure("open the lock", path, exc) from exc
    try:
        if not flock_within(fd, CREATION_LOCK_TIMEOUT):
            raise errors.StateLocked(
                f"another sane process has been {what} for {CREATION_LOCK_TIMEOUT:g}s "
                f"(lock {path})",
                path=str(path),
            )
        held[path] = 1
        try:
            yield
        finally:
            del held[path]
    finally:
        os.close(fd)


def prepare_commands(pane_id: str, role: str, server_name: str | None = None) -> list[list[str]]:
    """The tmux commands that mark a pane as sane's and keep it around when its shell
    exits: sent together (one command list), never one tmux round trip each.

    As few ``set-option`` as the marks need: tmux 3.3a recomputes the size of every
    window of the server at any option change (``options_push_changes``), so each
    costs tmux O(windows), and a cold fleet connect makes one window per server. The
    window's size is made manual by ``resize-window`` itself (it sets the window's
    ``window-size`` to ``manual``), so no ``set-option -w window-size`` goes with it;
    the takeover leaves ``remain-on-exit`` alone on a pane marked here."""
    commands = [
        ["set-option", "-p", "-t", pane_id, panes.OPT_ROLE, role],
        ["set-option", "-p", "-t", pane_id, "remain-on-exit", "on"],
        ["resize-window", "-t", pane_id, "-x", str(PANE_WIDTH), "-y", str(PANE_HEIGHT)],
    ]
    if server_name is not None:
        commands.append(["set-option", "-p", "-t", pane_id, panes.OPT_SERVER, server_name])
    return commands


def prepare_pane(
    server: TmuxServer, pane_id: str, role: str, server_name: str | None = None
) -> None:
    """Mark a pane as sane's (see :func:`prepare_commands`): one tmux process."""
    server.run(*command_list(prepare_commands(pane_id, role, server_name)))


def ensure_local_pane(server: TmuxServer, session: str, window: str, role: str) -> str:
    """Return the id of the session's pane with ``role``, creating what is missing.

    Plain tmux commands, each with its deadline (``TmuxServer.run``): a tmux server that
    cannot answer (out of descriptors, stopped) is ``tmux_failed``, never a hang."""
    with creation_lock(server):
        try:
            lines: list[str] | None = server.run(
                "list-panes",
                "-s",
                "-t",
                f"={session}",
                "-F",
                "#{pane_id}\t#{" + panes.OPT_ROLE + "}",
            ).splitlines()
        except (errors.SessionNotFound, errors.PaneNotFound, errors.TmuxServerNotRunning):
            lines = None
        if lines is None:
            from sane.tmux.control import attach_detach_lock

            with attach_detach_lock(server):  # tmux 3.3a: see attach_detach_lock
                out = server.run(
                    "new-session",
                    "-d",
                    "-s",
                    session,
                    "-n",
                    window,
                    "-x",
                    str(PANE_WIDTH),
                    "-y",
                    str(PANE_HEIGHT),
                    "-P",
                    "-F",
                    "#{pane_id}",
                )
        else:
            for line in lines:
                pane_id, _, pane_role = line.partition("\t")
                if pane_role == role and pane_id.startswith("%"):
                    return pane_id
            out = server.run(
                "new-window", "-d", "-t", f"={session}:", "-n", window, "-P", "-F", "#{pane_id}"
            )
        pane_id = out.strip()
        if not pane_id.startswith("%"):
            raise errors.TmuxError(
                f"cannot create a {window} window in tmux session {session}: tmux answered {out!r}",
                session=session,
            )
        prepare_pane(server, pane_id, role)
        return pane_id

"""Sessions, windows and panes sane creates, through libtmux.

Only cold paths come here (first use of a session, opening a pane): importing libtmux
costs more than a whole warm run, so hot paths use :mod:`sane.tmux.command` and the
control client instead.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sane import errors
from sane.tmux import panes
from sane.tmux.command import TmuxServer, command_list

if TYPE_CHECKING:
    from pathlib import Path

# Fixed size and `window-size manual`: no client (a person's small terminal, a control
# client) can shrink the panes sane reads from.
PANE_WIDTH = 200
PANE_HEIGHT = 50


def _libtmux_server(server: TmuxServer):  # type: ignore[no-untyped-def]
    import libtmux

    return libtmux.Server(
        socket_name=server.socket_name,
        socket_path=server.socket_path,
        config_file=server.config_file,
    )


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

    server.run("kill-server", check=False)
    pane_locks = glob.glob(glob.escape(server.lock_file(PANE_LOCK_KIND + "@"))
                           .replace("@", "*"))
    for path in (server.socket_file(), str(creation_lock_path(server)),
                 clients_lock_path(server), *pane_locks):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def creation_lock(server: TmuxServer) -> contextlib.AbstractContextManager[None]:
    """Serialise creating sessions and windows across processes and threads, so two
    first runs make one session; re-entrant within a thread."""
    return _file_lock(creation_lock_path(server),
                      f"creating tmux sessions or windows on {server.label}")


def pane_lock(server: TmuxServer, name: str) -> contextlib.AbstractContextManager[None]:
    """Serialise making the pane of server ``name`` (see :func:`pane_lock_path`)."""
    return _file_lock(pane_lock_path(server, name),
                      f"opening the pane of {name} on {server.label}")


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
                f"(lock {path})", path=str(path))
        held[path] = 1
        try:
            yield
        finally:
            del held[path]
    finally:
        os.close(fd)


def prepare_commands(pane_id: str, role: str, server_name: str | None = None
                     ) -> list[list[str]]:
    """The tmux commands that mark a pane as sane's and keep it around when its shell
    exits: sent together (one command list), never one tmux round trip each."""
    commands = [
        ["set-option", "-p", "-t", pane_id, panes.OPT_ROLE, role],
        ["set-option", "-p", "-t", pane_id, "remain-on-exit", "on"],
        ["set-option", "-w", "-t", pane_id, "window-size", "manual"],
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
    """Return the id of the session's pane with ``role``, creating what is missing."""
    with creation_lock(server):
        import libtmux.exc

        srv = _libtmux_server(server)
        try:
            sess = srv.sessions.get(session_name=session, default=None)
        except libtmux.exc.LibTmuxException:
            sess = None
        if sess is None:
            from sane.tmux.control import attach_detach_lock

            try:
                with attach_detach_lock(server):  # tmux 3.3a: see attach_detach_lock
                    sess = srv.new_session(
                        session_name=session, window_name=window, x=PANE_WIDTH,
                        y=PANE_HEIGHT)
            except libtmux.exc.LibTmuxException as exc:
                raise errors.TmuxError(f"cannot create tmux session {session}: {exc}") from exc
            pane = sess.windows[0].panes[0]
        else:
            for pane in sess.panes:
                if pane.cmd("display-message", "-p", "#{" + panes.OPT_ROLE + "}").stdout == [role]:
                    assert pane.pane_id is not None
                    return str(pane.pane_id)
            pane = sess.new_window(window_name=window, attach=False).panes[0]
        assert pane.pane_id is not None
        pane_id = str(pane.pane_id)
        prepare_pane(server, pane_id, role)
        return pane_id

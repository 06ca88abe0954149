"""The handle every operation works through: one tmux server, its control clients,
and sane's state directory.

A CLI invocation makes one and closes it; a long-lived process (the MCP server, a
fleet run) keeps one, so control clients stay attached and a run costs milliseconds.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import threading
from typing import TYPE_CHECKING

from sane import errors, procfs
from sane.paths import sane_home, sane_home_dir
from sane.tmux import panes
from sane.tmux.command import TmuxServer
from sane.tmux.control import ControlClient, ControlHub

if TYPE_CHECKING:
    from collections.abc import Collection
    from pathlib import Path
    from types import TracebackType

# Entries kept for panes (Context.known_states, each control client's counts) at which
# a first sweep asks tmux which panes still exist; later sweeps come when the entries
# have doubled since the last one (so one sweep per new entry or fewer, amortized).
SWEEP_FLOOR = 64

DEFAULT_SESSION = "sane"
LOCAL_WINDOW = "local"
ROLE_LOCAL = "local"


class Context:
    def __init__(
        self,
        server: TmuxServer | None = None,
        home: Path | None = None,
        session_name: str | None = None,
    ) -> None:
        self.server = server or TmuxServer.from_env()
        self._home = home
        self.session_name = check_session_name(
            session_name or os.environ.get("SANE_SESSION") or DEFAULT_SESSION
        )
        self.hub = ControlHub(self.server)
        # Each pane's state as this process last read it for a run, with the text tmux
        # printed (sane.tmux.panes.if_unchanged): the next run there types with a
        # check of that state in the same tmux command instead of reading it first.
        # Each with the control client of the pane's session that was attached then:
        # a state is trusted only while that client lives (a tmux server started
        # again on the same socket gives pane ids from %0 again, to other panes).
        # An entry goes when its pane is found gone (forget_panes, sweep_if_grown).
        self.known_states: dict[str, tuple[panes.PaneState, str, ControlClient]] = {}
        self._sweep_at = SWEEP_FLOOR
        self._sweep_lock = threading.Lock()

    @property
    def home(self) -> Path:
        """``$SANE_HOME``, resolved on first use (pathlib is not needed by most runs)."""
        if self._home is None:
            self._home = sane_home()
        return self._home

    @property
    def home_dir(self) -> str:
        """``home`` as a string, without importing pathlib (~6 ms of a one-shot run's
        start) when nobody has needed the Path yet: every run's busy flag names it."""
        return sane_home_dir() if self._home is None else str(self._home)

    def __enter__(self) -> Context:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.hub.close()

    # -- tmux access ----------------------------------------------------------------

    def tmux(self, argv: list[str]) -> list[str]:
        """Run one tmux command through an attached control client if there is one
        (~0.1 ms), else as a process (~3 ms)."""
        client = self.hub.any_client()
        if client is not None:
            return client.command(" ".join(_quote_all(argv)))
        # Split at newlines only: splitlines() also splits at \r, \x1c-\x1e, \x85...,
        # which a pane's directory may hold.
        out = self.server.run(*argv)
        return out.removesuffix("\n").split("\n") if out else []

    def tmux_batch(self, commands: list[list[str]]) -> list[str]:
        """Run several tmux commands in one round trip (one control-mode line, else
        one process): tmux runs them in order and stops at the first that fails."""
        client = self.hub.any_client()
        if client is not None:
            return client.command(*(" ".join(_quote_all(argv)) for argv in commands))
        from sane.tmux.command import command_list

        return self.server.run(*command_list(commands)).splitlines()

    def client(self, session_id: str) -> ControlClient:
        return self.hub.client(session_id)

    def attach_first(self, target: str) -> None:
        """Before the first tmux query, attach the control client the call will need
        anyway and ask through it (saves a tmux process per one-shot command). When
        that fails, the plain query below reports why."""
        if self.hub.any_client() is None and self.server.socket_exists():
            with contextlib.suppress(errors.SaneError):
                self.hub.attach_first(target)

    def pane_state(self, target: str) -> panes.PaneState:
        return self.pane_state_text(target)[0]

    def pane_state_text(self, target: str) -> tuple[panes.PaneState, str]:
        """The pane's state and the text tmux printed for it (sane.tmux.panes)."""
        self.attach_first(target)
        try:
            return panes.read_state_text(self.tmux, target)
        except (errors.SessionNotFound, errors.PaneNotFound) as exc:
            if panes.is_pane_id(target):  # gone (tmux never gives its id again)
                self.forget_panes((target,))
            raise errors.PaneNotFound(f"can't find pane: {target}", pane=target) from exc

    # -- what this process keeps per pane ------------------------------------------

    def forget_panes(self, pane_ids: Collection[str]) -> None:
        """Drop everything kept for panes that are gone: their known states and each
        control client's counts (a long-lived ``sane mcp`` would otherwise keep one
        entry per pane it ever saw)."""
        if not pane_ids:
            return
        for pane_id in pane_ids:
            self.known_states.pop(pane_id, None)
        for client in self.hub.clients().values():
            client.forget(pane_ids)

    def sweep_if_grown(self) -> None:
        """Once the entries kept per pane reach the next bound (:data:`SWEEP_FLOOR`,
        then twice what a sweep left), ask tmux for every pane id in one listing and
        forget the panes gone: panes killed by another process, or by nobody's run,
        are never found gone by a run of this one. The ids are taken before the listing:
        an id that was there then and is not listed is gone for good (tmux never gives a
        pane id twice), while a pane made after the listing was asked keeps its entry.
        One sweep at a time; a failed listing leaves everything as it was."""
        if self._noted_count() < self._sweep_at or not self._sweep_lock.acquire(blocking=False):
            return
        try:
            before = set(self.known_states.copy())
            for client in self.hub.clients().values():
                before |= client.panes_noted()
            try:
                live = set(self.tmux(["list-panes", "-a", "-F", "#{pane_id}"]))
            except errors.SaneError:
                return
            self.forget_panes(before - live)
            self._sweep_at = max(SWEEP_FLOOR, 2 * self._noted_count())
        finally:
            self._sweep_lock.release()

    def _noted_count(self) -> int:
        """How many entries this process keeps for panes: known states, and each live
        control client's counts and quiet marks (what :meth:`sweep_if_grown` bounds)."""
        clients = self.hub.clients().values()
        return len(self.known_states) + sum(c.noted_count() for c in clients)

    def default_pane(self) -> panes.PaneState:
        """The local pane of the ``sane`` session, created on first use; never the pane
        sane is called from (typing there would type into the caller's own command)."""
        found = self._find_local_pane()
        if found is None:
            from sane.tmux.structure import ensure_local_pane  # cold path only

            target = ensure_local_pane(self.server, self.session_name, LOCAL_WINDOW, ROLE_LOCAL)
            found = self.pane_state(target)
        if self.is_callers_pane(found):
            caller = found.pane_id
            raise errors.PaneBusy(
                f"sane was called from {caller}, the local pane of session "
                f"{self.session_name}: it would type into its own caller",
                pane=caller,
                hint="name a pane with --pane, or set SANE_SESSION to another session",
            )
        return found

    def is_callers_pane(self, state: panes.PaneState) -> bool:
        """Whether sane runs inside this pane, so keys typed there would land in its
        caller's own command line: ``$TMUX_PANE`` on the server of ``$TMUX``, or the
        pane's process among this process's ancestors. The second is what finds it
        when a client passes the server it starts only a few variables (the
        TypeScript SDK's default: HOME, LOGNAME, PATH, SHELL, TERM, USER)."""
        caller = os.environ.get("TMUX_PANE")
        if caller == state.pane_id and self.server.is_callers():
            return True
        return state.pid is not None and state.pid in ancestors()

    def _find_local_pane(self) -> panes.PaneState | None:
        """The local pane's whole state in the same tmux call that finds it (a one-shot
        run starts with this: one tmux process fewer)."""
        self.attach_first(f"={self.session_name}")
        try:
            lines = self.tmux(
                ["list-panes", "-s", "-t", f"={self.session_name}", "-F", panes.STATE_FORMAT]
            )
        except (errors.SessionNotFound, errors.PaneNotFound, errors.TmuxServerNotRunning):
            return None
        except errors.TmuxError as exc:
            if "can't find" in exc.message:
                return None
            raise
        for state in panes.parse_states(lines):
            if state.role == ROLE_LOCAL:
                return state
        return None


def check_session_name(name: str) -> str:
    """``name`` if it is a plain tmux session name (letters, digits, ``_``, ``-``), else
    ``invalid_argument``: tmux expands formats in session names, so a ``#(cmd)`` in
    ``SANE_SESSION`` would run ``cmd``, and ``:``/``.`` mean window and pane there."""
    if (
        not name
        or len(name) > 64
        or not all(c.isascii() and (c.isalnum() or c in "_-") for c in name)
    ):
        raise errors.InvalidArgument(
            f"session name {name!r} must be 1-64 letters, digits, '_' or '-'",
            session=name,
            hint="check SANE_SESSION",
        )
    return name


def _quote_all(argv: list[str]) -> list[str]:
    from sane.tmux.command import quote

    return [quote(a) for a in argv]


@functools.cache
def ancestors() -> frozenset[int]:
    """The ids of this process's parent, its parent's parent... up to init: read once
    (a process's ancestry only changes when one of them dies, and a pane's process
    that died is no pane to type into). From ``/proc``, else ``ps``; empty when
    neither answers."""
    found: set[int] = set()
    pid = os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        pid = _parent(pid)
    return frozenset(found)


def _parent(pid: int) -> int:
    parent = procfs.field(pid, procfs.PPID)
    if parent is not None:
        return parent
    try:
        out = subprocess.run(
            ["ps", "-o", "ppid=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout
        return int(out.strip() or 0)
    except (OSError, ValueError):
        return 0

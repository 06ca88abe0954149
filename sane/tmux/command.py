"""Run tmux commands against one tmux server and map its failures to sane errors."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import NamedTuple

from sane import errors

# The environment variable naming the tmux server (as --socket does): every command,
# the MCP server and the test fixtures use it.
SOCKET_ENV = "SANE_TMUX_SOCKET"


# Characters written as double-quoted escapes by ``quote`` (NUL is refused).
_CONTROL = re.compile("([\x01-\x1f\x7f])")


def quote(arg: str) -> str:
    """Quote one argument for tmux's command parser (control mode lines, command lists).

    Single quotes are literal in tmux as in sh; an embedded quote closes the string,
    adds ``"'"`` and reopens it (tmux joins adjacent quoted parts). Newlines cannot
    appear in a control-mode line, so they are written as a double-quoted ``\\n``,
    and every other control character as a double-quoted octal escape (``"\\033"``),
    which tmux's parser turns back into the character: keys such as ESC or ^E can be
    typed as text (``send-keys -l``), and no raw control byte is in a command line.
    """
    errors.refuse_nul("a tmux argument", arg)  # tmux would end the argument there
    parts = _CONTROL.split(arg)  # text, control character, text, ...
    return "".join(
        "'" + part.replace("'", "'\"'\"'") + "'"
        if i % 2 == 0
        else ('"\\n"' if part == "\n" else f'"\\{ord(part):03o}"')
        for i, part in enumerate(parts)
    )


def no_formats(text: str) -> str:
    """``text`` safe from tmux's format expansion (``#`` -> ``##``).

    tmux expands formats in some arguments (``pipe-pane``'s command, ``load-buffer``'s
    path): a ``#{...}`` in a path would be replaced and a ``#(...)`` run as a shell
    command, so paths from ``$SANE_HOME`` or ``$TMPDIR`` go through this first.
    """
    return text.replace("#", "##")


def command_list(commands: Sequence[Sequence[str]]) -> list[str]:
    """Several tmux commands as one tmux process's arguments (``a ; b``): tmux runs
    them in order and stops at the first that fails."""
    args: list[str] = []
    for command in commands:
        args += [*([";"] if args else []), *command]
    return args


# What one tmux command may take as a process (the control client's commands have
# their own, see sane.tmux.control).
COMMAND_TIMEOUT = 10.0


def cannot_run_tmux(exc: OSError) -> errors.SaneError:
    """What a tmux process sane could not start says: sane out of descriptors is
    ``resource_limit`` (not tmux's absence: ours), anything else ``tmux_not_installed``."""
    return errors.out_of_files(exc, "cannot run tmux") or errors.TmuxNotInstalled(
        f"cannot run tmux: {exc}"
    )


_TMUX_PATH: dict[str, str | None] = {}


def find_tmux() -> str | None:
    """``shutil.which("tmux")``, cached per PATH (shutil costs a few ms to import)."""
    path = os.environ.get("PATH", os.defpath)
    if path not in _TMUX_PATH:
        found = None
        for directory in path.split(os.pathsep):
            candidate = os.path.join(directory or ".", "tmux")
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                found = candidate
                break
        _TMUX_PATH[path] = found
    return _TMUX_PATH[path]


class TmuxServer(NamedTuple):
    """One tmux server, chosen like tmux's own ``-L`` (socket name) or ``-S`` (path)."""

    socket_name: str | None = None
    socket_path: str | None = None
    config_file: str | None = None

    @classmethod
    def from_env(cls, socket: str | None = None) -> TmuxServer:
        """The one server every tmux command of a call goes to, resolved once:
        ``--socket``, then ``SANE_TMUX_SOCKET`` (a value with ``/`` is a path), then the
        server of the tmux sane is called from (``$TMUX``), then the default one.

        Named explicitly even when it comes from ``$TMUX``: tmux commands follow
        ``$TMUX`` but libtmux's ``new_session`` drops it, so a call from inside tmux
        used to create its session on the default server and then type into the
        caller's own server, into the caller's own pane."""
        value = socket or os.environ.get(SOCKET_ENV) or None
        if value is None:
            inside = os.environ.get("TMUX", "").split(",", 1)[0]
            return cls(socket_path=inside) if inside.startswith("/") else cls()
        if "/" in value:
            return cls(socket_path=value)
        return cls(socket_name=value)

    @property
    def label(self) -> str:
        return self.socket_path or self.socket_name or "default"

    def is_callers(self) -> bool:
        """Whether this is the tmux server sane was called from (``$TMUX``)."""
        inside = os.environ.get("TMUX", "").split(",", 1)[0]
        if not inside:
            return False
        try:
            return os.path.samefile(inside, self.socket_file())
        except OSError:
            return inside == self.socket_file()

    def socket_file(self) -> str:
        """The server's socket: ``-S``'s path, or where tmux puts a ``-L`` name."""
        if self.socket_path:
            return self.socket_path
        directory = os.environ.get("TMUX_TMPDIR") or "/tmp"
        return os.path.join(directory, f"tmux-{os.getuid()}", self.socket_name or "default")

    def lock_file(self, kind: str) -> str:
        """A per-server lock file of sane's (``kind``: what it locks).

        Beside the server's socket, in the directory tmux itself keeps private
        (``tmux-<uid>``, checked to be ours and closed to others), so every sane
        process of this user shares it whatever its ``$SANE_HOME``; for a ``-S`` socket
        in a directory others can write into, in :func:`sane.paths.runtime_dir`."""
        from sane.paths import check_private_dir, runtime_dir

        directory, name = os.path.split(self.socket_file())
        try:
            check_private_dir(directory, create=not self.socket_path, tighten=False)
        except errors.StateError:
            if not self.socket_path:
                raise
            directory = runtime_dir()
            name = "".join(c if c.isalnum() else "_" for c in self.socket_path)
        return os.path.join(directory, f".sane-{name}{kind}.lock")

    def argv(self, *args: str) -> list[str]:
        exe = find_tmux()
        if exe is None:
            raise errors.TmuxNotInstalled(
                "tmux is not installed or not on PATH", hint="install tmux (apt-get install tmux)"
            )
        base = [exe]
        if self.config_file:
            base += ["-f", self.config_file]
        if self.socket_path:
            base += ["-S", self.socket_path]
        elif self.socket_name:
            base += ["-L", self.socket_name]
        return base + list(args)

    def run(self, *args: str, check: bool = True, timeout: float | None = None) -> str:
        """Run one tmux command; return its stdout, or raise the matching sane error.

        Never waits forever: a tmux server that cannot answer (out of descriptors, or
        stopped) is ``tmux_failed`` after ``timeout`` (COMMAND_TIMEOUT by default)."""
        import subprocess  # not at the top: one-shot commands only start a control client

        limit = COMMAND_TIMEOUT if timeout is None else timeout
        try:
            proc = subprocess.run(
                self.argv(*args),
                capture_output=True,
                text=True,
                errors="replace",
                check=False,
                stdin=subprocess.DEVNULL,
                timeout=limit,
            )
        except subprocess.TimeoutExpired:
            raise errors.TmuxError(
                f"tmux did not answer within {limit:g}s", command=" ".join(args), socket=self.label
            ) from None
        except OSError as exc:
            raise cannot_run_tmux(exc) from exc
        if proc.returncode != 0 and check:
            raise self.error_from(proc.stderr.strip() or f"tmux exited {proc.returncode}", args)
        return proc.stdout

    def socket_exists(self) -> bool:
        """Whether a tmux server may be listening: its socket file is there.

        Checked before attaching a control client speculatively, because
        ``attach-session`` starts a server when none runs; that server, finding no
        session, exits at once, and a client racing it gets "server exited
        unexpectedly"."""
        return os.path.exists(self.socket_file())

    def error_from(self, message: str, args: Sequence[str] = ()) -> errors.SaneError:
        """Translate a tmux error message into the sane error a user can act on."""
        low = message.lower()
        if (
            "no server running" in low
            or "error connecting" in low
            or "no such file" in low
            or "server exited unexpectedly" in low
        ):
            return errors.TmuxServerNotRunning(
                f"no tmux server is running on socket {self.label}", socket=self.label
            )
        if "can't find pane" in low or "can't find window" in low or "no such pane" in low:
            return errors.PaneNotFound(message, socket=self.label)
        if "can't find session" in low:
            return errors.SessionNotFound(message, socket=self.label)
        return errors.TmuxError(message, command=" ".join(args))

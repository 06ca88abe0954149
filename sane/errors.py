"""One exception tree for the whole toolkit.

Every failure a user can see is a :class:`SaneError` subclass carrying the stable
``code`` string and the process exit status of the JSON contract, so the CLI never has
to guess how to report an error and no traceback ever reaches a user.
Codes never change once released; ``docs/errors.md`` lists each one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

# Exit statuses of the JSON contract (see DESIGN.md and docs/errors.md).
EXIT_OK = 0
EXIT_COMMAND_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_TIMEOUT = 4
EXIT_CONNECTION = 5
EXIT_TMUX = 6
EXIT_STATE = 7
EXIT_BUSY = 8
EXIT_INTERNAL = 70
EXIT_CANCELLED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


class SaneError(Exception):
    """Base of every error sane reports; ``code`` and ``exit_status`` are the contract."""

    code: ClassVar[str] = "internal_error"
    exit_status: ClassVar[int] = EXIT_INTERNAL

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InternalError(SaneError):
    """A bug in sane: still reported as JSON, never as a traceback."""


class UsageError(SaneError):
    code = "usage_error"
    exit_status = EXIT_USAGE


class InvalidArgument(SaneError):
    code = "invalid_argument"
    exit_status = EXIT_USAGE


class CommandFailed(SaneError):
    """The command ran and exited non-zero while ``--check`` was asked for."""

    code = "command_failed"
    exit_status = EXIT_COMMAND_FAILED


class NotFound(SaneError):
    code = "not_found"
    exit_status = EXIT_NOT_FOUND


class PaneNotFound(NotFound):
    code = "pane_not_found"


class SessionNotFound(NotFound):
    code = "session_not_found"


class RunNotFound(NotFound):
    code = "run_not_found"


class ConnectionFailed(SaneError):
    """ssh could not reach or log in to a server; subclasses say exactly why."""

    code = "connection_failed"
    exit_status = EXIT_CONNECTION


class AuthFailed(ConnectionFailed):
    code = "auth_failed"


class ConnectionRefused(ConnectionFailed):
    code = "connection_refused"


class HostKeyMismatch(ConnectionFailed):
    """The server's host key differs from the known one: nothing was sent to it."""

    code = "host_key_mismatch"


class HostKeyUnknown(ConnectionFailed):
    code = "host_key_unknown"


class HostUnreachable(ConnectionFailed):
    code = "host_unreachable"


class ConnectTimeout(ConnectionFailed):
    code = "timeout"


class ResourceLimit(ConnectionFailed):
    """A limit stopped the connection: an open-files limit (sane's, tmux's, the
    host's), sane's processes, the pseudo-terminals (the host's, or a devpts
    instance's own ``max=``), or the server refusing
    connections beyond its
    ``MaxStartups``; ``details.limit`` names it and ``details.value`` gives its value."""

    code = "resource_limit"


def out_of_files(exc: OSError, what: str, **details: Any) -> ResourceLimit | None:
    """``resource_limit`` for an ``OSError`` saying sane's process is out of open files
    (EMFILE: its ``nofile``, with its value) or the host is (ENFILE: ``fs.file-max``),
    ``what`` naming what sane could not do; None for any other failure. The one place
    that tells a limit from a real fault: a state file, a lock, tmux's control client
    or an ssh that could not be opened for want of a descriptor is not a corrupt home,
    a missing tmux or a bug (issue 17: ``state_invalid``, ``tmux_not_installed``)."""
    import errno  # built in: nothing to open (`resource` is a file, and none is free)
    import os

    if exc.errno == errno.EMFILE:
        soft = os.sysconf("SC_OPEN_MAX")  # the soft limit; -1 when unlimited
        return ResourceLimit(
            f"{what}: {exc.strerror} (nofile)",
            **details,
            limit="nofile",
            value=soft if soft > 0 else None,
            process="sane",
            hint="raise ulimit -n, or lower --max-parallel",
        )
    if exc.errno == errno.ENFILE:
        try:
            with open("/proc/sys/fs/file-max", encoding="ascii") as fh:
                value: int | None = int(fh.read().strip())
        except (OSError, ValueError):
            value = None
        return ResourceLimit(
            f"{what}: {exc.strerror} (fs.file-max)",
            **details,
            limit="fs.file-max",
            value=value,
            hint="the whole host is out of open files: raise fs.file-max or close programs",
        )
    return None


class TmuxError(SaneError):
    """tmux itself failed or refused a command."""

    code = "tmux_failed"
    exit_status = EXIT_TMUX


class TmuxNotInstalled(TmuxError):
    code = "tmux_not_installed"


class TmuxServerNotRunning(TmuxError):
    code = "tmux_server_not_running"


class RunnerUnavailable(TmuxError):
    """The pane's shell did not accept sane's runner (not a POSIX shell, or it hung)."""

    code = "runner_unavailable"


class RunNotResumable(TmuxError):
    """A timed-out run whose later output cannot be recorded exactly."""

    code = "run_not_resumable"


class RunFinished(SaneError):
    """Input for a run that has already ended: nothing was typed into the pane."""

    code = "run_finished"
    exit_status = EXIT_USAGE


class Cancelled(SaneError):
    """The user pressed Ctrl-C. The document names what goes on (the run or deploy id
    and how to follow it): a run is left resumable, a deploy ``interrupted``."""

    code = "cancelled"
    exit_status = EXIT_CANCELLED


class NotStarted(SaneError):
    """A run stopped before its command was typed: nothing ran, and the pane was left
    free (its claim, if it had one, released). ``details.reason``: ``cancelled`` (a
    Ctrl-C, a cancelled MCP call). In a fleet result it is the ``error`` of a
    ``not_started`` server."""

    code = "not_started"
    exit_status = EXIT_CANCELLED


class HandedOver(KeyboardInterrupt):
    """A Ctrl-C that raised inside a run's follow loop (a second one, or one where no
    soft stop was armed): the command was typed and may be running, so the run was
    handed over as at a timeout (its pane stays busy with it) before the interrupt goes
    on up. ``result`` is the hand-over's document: the Ctrl-C report names the run."""

    def __init__(self, result: Mapping[str, Any]) -> None:
        super().__init__()
        self.result = result


class Busy(SaneError):
    code = "busy"
    exit_status = EXIT_BUSY


class PaneBusy(Busy):
    code = "pane_busy"


class RunNotWaiting(Busy):
    """``run input`` while the kernel shows the run busy, not reading the terminal:
    typed-ahead text would run as a shell command if the command ends without it."""

    code = "run_not_waiting"


class RunOwned(Busy):
    """An interrupt of a run that belongs to a deploy (its step): refused unless forced,
    since the deploy would count the step failed and roll back."""

    code = "run_owned"


class PaneHasInput(Busy):
    """The pane's command line holds text a person typed (or its editor is in vi
    command mode with text): sane typed nothing into it and ran nothing; the caller
    may ask for ``clear_input`` to discard the text."""

    code = "pane_has_input"


class PaneNotShell(Busy):
    """The pane runs a program (an editor, a REPL) that sane must not type into."""

    code = "pane_not_shell"


class ShellUnsupported(PaneNotShell):
    """The pane runs a shell sane has no runner for (tcsh, csh, ...): refused at once."""

    code = "shell_unsupported"


class RemoteOperationFailed(SaneError):
    """An operation on the pane's host did not succeed (a file could not be written)."""

    code = "remote_operation_failed"
    exit_status = EXIT_COMMAND_FAILED


class PermissionDenied(RemoteOperationFailed):
    code = "permission_denied"


class FileExists(RemoteOperationFailed):
    code = "file_exists"


class IsDirectory(RemoteOperationFailed):
    code = "is_directory"


class ChecksumMismatch(RemoteOperationFailed):
    code = "checksum_mismatch"


class TransferFailed(RemoteOperationFailed):
    code = "transfer_failed"


class ShellRestricted(RemoteOperationFailed):
    """The pane's shell is restricted (rbash, ``set -r``): it refuses output redirections
    and commands named with a slash, so a probe cannot learn what it would report."""

    code = "shell_restricted"


class ParentMissing(NotFound):
    code = "parent_missing"


class StateError(SaneError):
    code = "state_invalid"
    exit_status = EXIT_STATE


class StateLocked(StateError):
    code = "state_locked"


class ConfigInvalid(StateError):
    """servers.json (or an imported file) does not validate; the message names where."""

    code = "config_invalid"


class ServerNotFound(NotFound):
    code = "server_not_found"


class NoServersSelected(NotFound):
    """A fleet command's selection matched no server (a misspelt tag, an empty
    registry): every command refuses it the same way rather than doing nothing."""

    code = "no_servers_selected"


class ServerExists(SaneError):
    code = "server_exists"
    exit_status = EXIT_USAGE


class PlanInvalid(SaneError):
    """A deploy plan does not validate; the message and ``field`` say where."""

    code = "plan_invalid"
    exit_status = EXIT_USAGE


class DeployNotFound(NotFound):
    code = "deploy_not_found"


class DeployRunning(Busy):
    """Another process is working on that deploy (it holds the deploy's lock)."""

    code = "deploy_running"


def refuse_nul(field: str, value: str) -> str:
    """``value``, unless it holds a NUL byte: then ``invalid_argument`` naming ``field``.

    No shell, tmux command or C string carries a NUL: bash drops it with a warning,
    dash cuts the line there, tmux ends the argument. The command that would run is
    not the one asked for, so it is refused before anything is typed."""
    at = value.find("\0")
    if at >= 0:
        raise InvalidArgument(
            f"{field} holds a NUL byte (at offset {at}): no shell or terminal can carry one",
            field=field,
            offset=at,
        )
    return value


def all_error_classes() -> list[type[SaneError]]:
    """Every concrete error class, for docs and the schema of the error contract."""
    seen: list[type[SaneError]] = []
    stack: list[type[SaneError]] = [SaneError]
    while stack:
        cls = stack.pop(0)
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


class Detached(BaseException):
    """This process closed its tmux connection (its ``Context``) while a run was still
    followed through it: the main thread stopping (a Ctrl-C, an error) while worker
    threads follow runs. The run goes on in its pane and nothing is decided, recorded or
    released for it here, as if the process had died at that moment: a durable run (a
    deploy's step) keeps the record it saved before its command was typed, so another
    process resumes it; any other run's busy flag names a process that is going away.
    Before, such a run was ended as ``lost`` and a deploy's step saved so (its rollback
    then forgot the run while the command still ran: ``pane_busy``, owner died).
    A BaseException: nothing that handles sane's errors may turn it into a result."""

    def __init__(self, doing: str) -> None:
        super().__init__(f"this process closed its tmux connection while {doing}")

"""Where sane keeps its state: ``$SANE_HOME`` (default ``~/.sane``)."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from sane import errors

if TYPE_CHECKING:
    from pathlib import Path


def sane_home() -> Path:
    from pathlib import Path

    return Path(sane_home_dir())


def sane_home_dir() -> str:
    """``sane_home`` as a string, for the hot path (importing pathlib costs ~6 ms)."""
    value = os.environ.get("SANE_HOME")
    return os.path.expanduser(value) if value else os.path.join(os.path.expanduser("~"), ".sane")


def temp_dir() -> str:
    """``tempfile.gettempdir()``'s choice of environment variables, without importing
    tempfile (~10 ms) on every start. Only for names nobody else can guess (mkdtemp):
    sane's own sockets, locks and spills live in :func:`runtime_dir`."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        value = os.environ.get(name)
        if value:
            return value
    return "/tmp"


_VERIFIED: set[str] = set()


def check_private_dir(path: str, create: bool = True, tighten: bool = True) -> str:
    """``path`` as a directory of this user's that nobody else can write into, or
    ``state_invalid``.

    Created 0700 when missing; a symlink or another user's directory is refused (a
    co-tenant who got there first must not choose where sane's locks and sockets go).
    Our own directory with a loose mode is tightened to 0700 (``tighten``: sane's own
    directories) or, when it is not sane's to change, refused if others can write
    into it. Checked once per process per path."""
    if path in _VERIFIED:
        return path
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _failure("create the directory", path, exc) from exc
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise _failure("open the directory", path, exc) from exc
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            raise _unsafe(path, f"it belongs to uid {info.st_uid}, not {os.getuid()}")
        if tighten and info.st_mode & 0o077:
            os.fchmod(fd, 0o700)
        elif info.st_mode & 0o022:
            raise _unsafe(path, f"others can write into it (mode {info.st_mode & 0o777:o})")
    except OSError as exc:
        raise _failure("secure the directory", path, exc) from exc
    finally:
        os.close(fd)
    _VERIFIED.add(path)
    return path


def runtime_dir() -> str:
    """sane's private per-user directory for spills and sockets: ``$XDG_RUNTIME_DIR/sane``
    when the session has a runtime directory of this user's, else ``$SANE_HOME/run``.
    Never a fixed name in a shared directory (``/tmp``): there another user can plant a
    symlink, a file or a held lock under the name first."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and _owned_private(xdg):
        return check_private_dir(os.path.join(xdg, "sane"))
    home = sane_home_dir()
    if home not in _VERIFIED:
        private_dir(sane_home())
        check_private_dir(home, create=False)
    return check_private_dir(os.path.join(home, "run"))


# ssh's ControlPath is a unix socket path (at most 107 bytes, and ssh adds 17 while
# it sets one up); with %C (40 hex digits) its directory may have 49 bytes.
CONTROL_DIR_MAX = 49


def control_socket_dir() -> str:
    """Private directory for ssh ControlMaster sockets: ``runtime_dir()/cm`` when that
    path is short enough for a socket, else a ``mkdtemp`` directory (an unguessable
    name) that ``runtime_dir()/cm`` links to, so every process of this home finds
    the same sockets."""
    base = runtime_dir()
    direct = os.path.join(base, "cm")
    if len(direct) <= CONTROL_DIR_MAX:
        return check_private_dir(direct)
    link = os.path.join(base, "cm-link")
    found = _linked_dir(link)
    if found is not None:
        return found
    from sane.flock import flock_within

    fd = open_private(os.path.join(base, "cm-link.lock"), os.O_RDWR | os.O_CREAT)
    try:
        flock_within(fd, 10.0)
        found = _linked_dir(link)
        if found is None:
            import tempfile

            found = tempfile.mkdtemp(prefix="sane-cm-")
            tmp = f"{link}.{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(found, tmp)
            os.replace(tmp, link)
            _VERIFIED.add(found)
        return found
    finally:
        os.close(fd)


def _linked_dir(link: str) -> str | None:
    try:
        target = os.readlink(link)
    except OSError:
        return None
    if len(target) > CONTROL_DIR_MAX or not os.path.isabs(target):
        return None
    try:
        return check_private_dir(target, create=False)
    except errors.StateError:  # gone or not ours any more: make a new one
        return None


def open_private(path: str, flags: int) -> int:
    """``os.open`` of a file in one of sane's private directories: never through a
    symlink (``O_NOFOLLOW``), 0600 when created, refused when another user owns it."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        owner = os.fstat(fd).st_uid
    except OSError:
        os.close(fd)
        raise
    if owner != os.getuid():
        os.close(fd)
        raise _unsafe(path, f"it belongs to uid {owner}, not {os.getuid()}")
    return fd


def _owned_private(path: str) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def _failure(action: str, path: str, exc: OSError) -> errors.SaneError:
    from pathlib import Path

    from sane.state import os_failure

    return os_failure(action, Path(path), exc)


def _unsafe(path: str, why: str) -> errors.StateError:
    return errors.StateError(
        f"{path} is not safe for sane's private files: {why}",
        path=path,
        hint="remove it or point SANE_HOME / XDG_RUNTIME_DIR elsewhere",
    )


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by the owner only; return it.

    A failure (a file in the way, a read-only or full file system) is ``state_invalid``
    naming the directory, not a bare OSError."""
    missing = []
    probe = path
    while not probe.is_dir() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        # Each missing level 0700 (mkdir(parents=True) would make the parents 0755: a
        # first run record made $SANE_HOME itself world-readable).
        for directory in reversed(missing):
            directory.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        from sane.state import os_failure

        raise os_failure("create the directory", path, exc) from exc
    return path

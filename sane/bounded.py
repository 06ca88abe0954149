"""Bounded reads of data sane does not control: local files named by a caller, stdin,
and documents from servers.

A path can name anything: ``/dev/zero`` (endless), a FIFO (blocks for ever without a
writer), a file of many gigabytes, a symlink to either. A document can nest thousands
of levels deep or expand a few YAML aliases into millions of nodes. Every such input
goes through here, with a size limit (and a shape limit for documents), and is refused
with an error that names the field, the path and why, before sane holds more than the
limit in memory.
"""

from __future__ import annotations

import os
import stat
from typing import Any, BinaryIO

from sane import errors

MiB = 1 << 20
# A plan, an imported inventory or ssh config: text a person writes.
DOCUMENT_MAX = 4 * MiB
# A file sane places (create-file --from/stdin, fleet put, a plan's files): read whole
# into memory, and sent as base64 or over ssh.
FILE_MAX = 256 * MiB
# A document's shape: nesting depth and node count (aliases expanded).
MAX_DEPTH = 64
MAX_NODES = 200_000

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_file(path: str, field: str, limit: int = FILE_MAX) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), at most ``limit``.

    Anything else is ``invalid_argument`` naming ``field`` (``details.reason``:
    ``not_regular``, ``too_large`` or the errno's name). Opened non-blocking, so a
    FIFO is refused at once instead of waiting for a writer."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _refused(field, path, f"cannot read it: {exc.strerror}", _errno_name(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a file")
            raise _refused(field, path, f"it is {kind}, not a regular file", "not_regular")
        if info.st_size > limit:
            raise _too_large(field, path, limit, info.st_size)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return read_stream(fh, field, limit, path)
    except OSError as exc:
        raise _refused(field, path, f"cannot read it: {exc.strerror}", _errno_name(exc)) from None
    finally:
        os.close(fd)


def read_text(path: str, field: str, limit: int = DOCUMENT_MAX) -> str:
    """:func:`read_file` as UTF-8 text."""
    data = read_file(path, field, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refused(
            field, path, f"it is not UTF-8 text (byte {exc.start})", "not_text"
        ) from None


def read_stream(
    stream: BinaryIO, field: str, limit: int = FILE_MAX, name: str = "standard input"
) -> bytes:
    """At most ``limit`` bytes from ``stream`` until its end; more is ``too_large``
    (only ``limit + 1`` bytes are ever read: stdin may be ``/dev/zero``)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(1 * MiB, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    raise _too_large(field, name, limit, None)


def check_shape(
    value: Any, field: str, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES
) -> Any:
    """``value`` (parsed JSON or YAML) if it nests at most ``max_depth`` levels and has at
    most ``max_nodes`` nodes counting every alias expansion; else ``invalid_argument``
    (``details.reason``: ``too_deep``, ``too_many_nodes``, ``cyclic``). Linear in the
    distinct objects: a shared sub-tree is measured once."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def measure(node: Any, depth: int) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if depth > max_depth:
            raise _too_deep(field, max_depth)
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise errors.InvalidArgument(
                f"{field}: refers to itself (a cyclic alias)", field=field, reason="cyclic"
            )
        active.add(key)
        items = node.values() if isinstance(node, dict) else node
        total = 1
        for item in items:
            total += measure(item, depth + 1)
            if total > max_nodes:
                raise errors.InvalidArgument(
                    f"{field}: has more than {max_nodes} values (aliases expanded)",
                    field=field,
                    reason="too_many_nodes",
                    limit=max_nodes,
                )
        active.discard(key)
        sizes[key] = total
        return total

    measure(value, 1)
    return value


def load_json(text: str | bytes, field: str) -> Any:
    """``json.loads`` whose result passes :func:`check_shape` (a nesting too deep for the
    parser itself is ``too_deep`` too). Syntax errors are ``ValueError`` as usual."""
    import json

    try:
        data = json.loads(text)
    except RecursionError:
        raise _too_deep(field) from None
    return check_shape(data, field)


def load_yaml(text: str, field: str) -> Any:
    """``yaml.safe_load`` whose result passes :func:`check_shape`: aliases may share a
    sub-tree, but its expansion counts against the limit (1.7 KB of nested aliases
    stand for billions of values). Syntax errors are ``yaml.YAMLError`` as usual."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise _too_deep(field) from None
    return check_shape(data, field)


def _too_deep(field: str, limit: int = MAX_DEPTH) -> errors.InvalidArgument:
    return errors.InvalidArgument(
        f"{field}: nests deeper than {limit} levels", field=field, reason="too_deep", limit=limit
    )


def _too_large(field: str, path: str, limit: int, size: int | None) -> errors.InvalidArgument:
    has = f"{size} bytes" if size is not None else "more"
    return _refused(
        field,
        path,
        f"it holds {has}, over the limit of {limit} bytes",
        "too_large",
        limit=limit,
        size=size,
    )


def _refused(
    field: str, path: str, why: str, reason: str, **details: Any
) -> errors.InvalidArgument:
    return errors.InvalidArgument(
        f"{field}: {path}: {why}", field=field, path=path, reason=reason, **details
    )


def _errno_name(exc: OSError) -> str:
    import errno

    return errno.errorcode.get(exc.errno or 0, "os_error")


class Captured:
    """What :func:`run_capped` got from a child: exit status (None: killed at the
    deadline or past the limit), at most ``limit`` bytes of stdout, stderr's tail."""

    def __init__(
        self, returncode: int | None, stdout: bytes, stderr: bytes, too_large: bool, timed_out: bool
    ) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.too_large = too_large
        self.timed_out = timed_out


def run_capped(argv: list[str], limit: int, timeout: float, stdin: bytes | None = None) -> Captured:
    """Run ``argv`` reading at most ``limit + 1`` bytes of its stdout within ``timeout``
    seconds; past either, the child is killed. For data a server sends (a health
    document): a hostile server may answer endlessly or never, and only this side's
    limits hold."""
    import selectors
    import subprocess
    import time

    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    if stdin is not None and proc.stdin is not None:
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    too_large = timed_out = False
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                key.data.extend(chunk)
                if len(err) > 65536:
                    del err[:-8192]
            if len(out) > limit:
                too_large = True
                break
    if too_large or timed_out:
        proc.kill()
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return Captured(
        None if too_large or timed_out else code,
        bytes(out[:limit]),
        bytes(err),
        too_large,
        timed_out,
    )

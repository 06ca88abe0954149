"""Create a file on the host behind a pane, byte for byte.

How: one run of a small POSIX-sh script. It resolves the path on the host, checks the
parent and the overwrite policy, creates a temp file beside the target, puts the tty
in non-canonical no-echo mode and prints a "send" marker; sane then pastes the content
as one base64 line (``load-buffer`` + ``paste-buffer``, ~20 MB/s here, where typing it
into a shell's line editor would crawl and hit line limits). ``head -c`` reads exactly
that many bytes, ``base64 -d`` writes the temp file, the script checks its sha256 and
only then renames it over the target, so the target is never half-written.
C-c keeps working during the transfer (``-icanon`` leaves signals on); the script's
INT trap removes the temp file and restores the tty.

The path and every other value reach the script through ``shlex.quote``: a file name
is data, never code.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shlex
import time
from collections.abc import Callable, Iterator
from typing import Any

from sane import errors
from sane.models import CreateFileResult
from sane.ops.context import Context
from sane.ops.run.command import run_command
from sane.ops.run.options import RunOptions
from sane.protocol import markers as mk
from sane.protocol.scanner import RunScanner
from sane.tmux.command import no_formats, quote
from sane.tmux.control import ControlClient

REPORT = "SANE-CF"
TMP_REPORT = "SANE-CF-TMP"
SEND = "T"  # marker kind: the host is ready for the content

# The host script reports a failure by its error's code (one name for both ends); a
# failed backup is a failed transfer.
_FAILING: tuple[type[errors.SaneError], ...] = (
    errors.ParentMissing,
    errors.PermissionDenied,
    errors.FileExists,
    errors.IsDirectory,
    errors.ChecksumMismatch,
    errors.TransferFailed,
)
_FAILURES = {cls.code: cls for cls in _FAILING} | {"backup_failed": errors.TransferFailed}


# How the content reaches the temp file: pasted into the tty as base64 and decoded;
# or written by sane over another channel (the pane's ssh ControlMaster), after which
# sane types "ok" (or anything else on failure). That line is read by ``head``, not the
# shell's ``read``: with the script's INT trap set, bash's ``read`` ignored C-c, so a
# script whose sane was killed during the upload held the pane for ever; C-c ends
# ``head`` (a process the kernel shows reading the tty), and the script fails cleanly.
#
# The paste is read with a read timer (``min 0 time N``): if sane dies before or while
# pasting (``kill -9``), ``head`` sees an end of input after IDLE_SECONDS of silence,
# the checksum fails and the script ends, so the pane does not stay inside it
# waiting for content (where the next command typed would become file data). ``>|``:
# the pane's shell may have ``set -o noclobber``, and the temp file exists already.
IDLE_SECONDS = 20
# Seconds for a whole transfer unless told (the library, create-file and its tool).
TIMEOUT = 600.0
# A mode as the tools take it: octal permission bits, "644" or "0644" (setuid and co. too).
MODE_PATTERN = r"^0?[0-7]{3,4}$"
_RECEIVE_PASTE = """\
stty -icanon -echo min 0 time {idle} 2>/dev/null
printf '{send}' {nonce}
head -c {size_b64} | base64 -d >| "$__cf_t"; __cf_k=$?"""
_RECEIVE_SIDE = """\
stty -echo 2>/dev/null
printf '{tmp} %s\\n' "$(printf %s "$__cf_t" | base64 | tr -d '\\n')"
printf '{send}' {nonce}
__cf_k=$(head -n 1); [ "$__cf_k" = ok ]; __cf_k=$?"""
# The content on the script's own stdin (the script runs as an ssh command: no pane,
# no tty), all of it, so an end short of the content fails the checksum.
_RECEIVE_STDIN = """cat >| "$__cf_t"; __cf_k=$?"""


def _script(
    path: str,
    size_b64: int,
    sha256: str,
    nonce: str,
    mode: int | None,
    parents: bool,
    no_overwrite: bool,
    backup: bool,
    side_channel: bool = False,
    idle: float = IDLE_SECONDS,
    stdin: bool = False,
    skip_same: bool = False,
) -> str:
    q = shlex.quote
    send = mk.printf_format(SEND, False)
    mode_text = f"{mode:04o}" if mode is not None else ""
    receive = (
        _RECEIVE_STDIN
        if stdin
        else (_RECEIVE_SIDE if side_channel else _RECEIVE_PASTE).format(
            send=send,
            nonce=nonce,
            tmp=TMP_REPORT,
            size_b64=size_b64,
            idle=max(1, min(255, round(idle * 10))),
        )
    )
    # The deployment cache: a file that already has these bytes is left alone.
    same = (
        f"""\
if [ -f "$__cf_p" ]; then
  __cf_h=$( (sha256sum -- "$__cf_p" || shasum -a 256 -- "$__cf_p") 2>/dev/null)
  if [ "${{__cf_h%% *}}" = {q(sha256)} ]; then __cf_r unchanged; return 0; fi
fi
"""
        if skip_same
        else ""
    )
    return f"""\
__cf_p={q(path)}
case $__cf_p in /*) ;; *) __cf_p=$PWD/$__cf_p ;; esac
__cf_r() {{ printf '{REPORT} %s %s %s\\n' "$1" "$(printf %s "$__cf_p" | base64 | tr -d '\\n')" "${{2-}}"; }}
if [ -L "$__cf_p" ]; then
  __cf_q=$(readlink -f -- "$__cf_p" 2>/dev/null) && [ -n "$__cf_q" ] || {{ __cf_r parent_missing; return 0; }}
  __cf_p=$__cf_q
fi
{same}__cf_d=${{__cf_p%/*}}; [ -n "$__cf_d" ] || __cf_d=/
if [ -d "$__cf_p" ]; then __cf_r is_directory; return 0; fi
if [ ! -d "$__cf_d" ]; then
  if [ {int(parents)} = 1 ]; then mkdir -p -- "$__cf_d" 2>/dev/null || {{ __cf_r permission_denied; return 0; }}
  else __cf_r parent_missing; return 0; fi
fi
__cf_x=0; __cf_m={q(mode_text)}
if [ -e "$__cf_p" ] || [ -L "$__cf_p" ]; then
  __cf_x=1
  if [ {int(no_overwrite)} = 1 ]; then __cf_r file_exists; return 0; fi
  [ -n "$__cf_m" ] || __cf_m=$(stat -c %a -- "$__cf_p" 2>/dev/null || stat -f %Lp -- "$__cf_p" 2>/dev/null)
fi
[ -n "$__cf_m" ] || __cf_m=0644
__cf_t=$__cf_d/.sane-{nonce}.tmp
( set -C; : > "$__cf_t" ) 2>/dev/null || {{ __cf_r permission_denied; return 0; }}
__cf_s=$(stty -g 2>/dev/null)
__cf_c() {{ [ -n "$__cf_s" ] && stty "$__cf_s" 2>/dev/null; rm -f -- "$__cf_t"; trap - INT TERM HUP; }}
trap '__cf_c' INT TERM HUP
{receive}
[ -n "$__cf_s" ] && stty "$__cf_s" 2>/dev/null
trap - INT TERM HUP
if [ "$__cf_k" != 0 ] || [ ! -f "$__cf_t" ]; then rm -f -- "$__cf_t"; __cf_r transfer_failed; return 0; fi
__cf_h=$( (sha256sum -- "$__cf_t" || shasum -a 256 -- "$__cf_t" || openssl dgst -sha256 -r "$__cf_t") 2>/dev/null)
__cf_h=${{__cf_h%% *}}
if [ "$__cf_h" != {q(sha256)} ]; then rm -f -- "$__cf_t"; __cf_r checksum_mismatch "$__cf_h"; return 0; fi
chmod "$__cf_m" -- "$__cf_t" 2>/dev/null || {{ rm -f -- "$__cf_t"; __cf_r permission_denied; return 0; }}
__cf_b=
if [ {int(backup)} = 1 ] && [ "$__cf_x" = 1 ]; then
  __cf_b=$__cf_p.sane-bak-$(date +%Y%m%d%H%M%S)-{nonce[:6]}
  cp -p -- "$__cf_p" "$__cf_b" 2>/dev/null || {{ rm -f -- "$__cf_t"; __cf_r backup_failed; return 0; }}
fi
mv -f -- "$__cf_t" "$__cf_p" 2>/dev/null || {{ rm -f -- "$__cf_t"; __cf_r permission_denied; return 0; }}
__cf_r ok "$__cf_x:$__cf_m:$(printf %s "$__cf_b" | base64 | tr -d '\\n')"
"""


SideChannel = Callable[[str, bytes], None]
"""Writes bytes to an absolute path on the pane's host by another way (fleet: ssh)."""


class _Sender:
    """Sends the content once the script's send marker shows up in the stream."""

    def __init__(
        self, nonce: str, payload: bytes, content: bytes, side_channel: SideChannel | None
    ) -> None:
        self.marker = mk.marker_bytes(nonce, SEND)
        self.payload = payload
        self.content = content
        self.side_channel = side_channel
        self.sent = False
        self.side_error: str | None = None
        self._scanned = 0

    def __call__(self, client: ControlClient, pane_id: str, scanner: RunScanner) -> None:
        if self.sent:
            return
        buf = scanner.buf
        if buf.find(self.marker, max(0, self._scanned - len(self.marker))) < 0:
            self._scanned = len(buf)
            return
        self.sent = True
        if self.side_channel is not None:
            self._send_aside(client, pane_id, scanner)
            return
        if not self.payload:
            return
        with spill_file(self.payload) as tmp:
            name = f"sane-cf-{os.urandom(6).hex()}"
            client.command(f"load-buffer -b {name} {quote(no_formats(tmp))}")
            client.command(f"paste-buffer -d -r -b {name} -t {pane_id}")

    def _send_aside(self, client: ControlClient, pane_id: str, scanner: RunScanner) -> None:
        assert self.side_channel is not None
        answer = "fail"
        match = re.search(
            rb"^" + TMP_REPORT.encode() + rb" ([A-Za-z0-9+/=]+)\r?$", scanner.region(), re.M
        )
        if match is not None:
            tmp = base64.b64decode(match.group(1)).decode("utf-8", "surrogateescape")
            try:
                self.side_channel(tmp, self.content)
                answer = "ok"
            except errors.SaneError as exc:
                self.side_error = exc.message
        client.command(f"send-keys -t {pane_id} -l {answer}")
        client.command(f"send-keys -t {pane_id} Enter")


SPILL_PREFIX = "cf-"
# A spill nobody holds a lock on and older than this is left over from a killed
# transfer (a fresh one is locked a moment after it is created).
SPILL_STALE_AFTER = 60.0


@contextlib.contextmanager
def spill_file(data: bytes) -> Iterator[str]:
    """``data`` in a private file for tmux's ``load-buffer`` (``runtime_dir()``, 0600,
    ``O_EXCL|O_NOFOLLOW``), locked while in use and removed afterwards. Spills of
    processes that died holding one (``kill -9``) are removed by the next
    create-file of this user."""
    import fcntl

    from sane.paths import open_private, runtime_dir

    directory = runtime_dir()
    prune_spills(directory)
    path = os.path.join(directory, f"{SPILL_PREFIX}{os.urandom(8).hex()}")
    fd = -1
    try:
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        _drop_spill(path, fd)
        from pathlib import Path

        from sane.state import os_failure

        raise os_failure("write the transfer spill", Path(path), exc) from exc
    try:
        yield path
    finally:
        _drop_spill(path, fd)


def _drop_spill(path: str, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
    if fd >= 0:
        os.close(fd)


def prune_spills(directory: str, stale_after: float = SPILL_STALE_AFTER) -> list[str]:
    """Remove spill files no live transfer holds (unlocked, older than
    ``stale_after`` seconds); their names."""
    import fcntl

    removed = []
    now = time.time()
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            if not name.startswith(SPILL_PREFIX):
                continue
            path = os.path.join(directory, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if now - os.fstat(fd).st_mtime < stale_after:
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(path)
                removed.append(name)
            except OSError:
                continue  # held by a live transfer
            finally:
                os.close(fd)
    return removed


def create_file(
    ctx: Context,
    path: str,
    content: bytes,
    pane: str | None = None,
    mode: int | None = None,
    parents: bool = False,
    no_overwrite: bool = False,
    backup: bool = False,
    expected_sha256: str | None = None,
    timeout: float = TIMEOUT,
    side_channel: SideChannel | None = None,
    idle: float = IDLE_SECONDS,
    clear_input: bool = False,
) -> CreateFileResult:
    """Write ``content`` to ``path`` on the pane's host; see the module docstring.

    A symlink at ``path`` is followed: its target is replaced (keeping the target's
    mode) and the link stays; the result's ``path`` is the target. ``idle``: seconds
    the host waits for the content before giving up (sane died)."""
    if not errors.refuse_nul("path", path):
        raise errors.InvalidArgument("the path must be a non-empty string", field="path")
    if mode is not None and not 0 <= mode <= 0o7777:
        raise errors.InvalidArgument(f"mode {mode:o} is out of range", mode=mode)
    started = time.perf_counter()
    sha256 = hashlib.sha256(content).hexdigest()
    payload = base64.b64encode(content) if side_channel is None else b""
    nonce = mk.new_nonce()
    script = _script(
        path,
        len(payload),
        expected_sha256 or sha256,
        nonce,
        mode,
        parents,
        no_overwrite,
        backup,
        side_channel is not None,
        idle,
    )
    sender = _Sender(nonce, payload, content, side_channel)
    result = run_command(
        ctx,
        script,
        pane=pane,
        options=RunOptions(
            timeout=timeout,
            interrupt_on_timeout=True,
            max_output=None,
            on_output=sender,
            quiet_period=None,
            posix_script=True,
            clear_input=clear_input,
        ),
    )
    report = _report(result["output"])
    if result["status"] != "completed" or report is None:
        raise errors.TransferFailed(
            f"creating {path} did not finish (status {result['status']}); "
            "no partial file was left in place",
            path=path,
            status=result["status"],
            output=result["output"][-2000:],
        )
    return _outcome(
        report,
        len(content),
        sha256,
        expected_sha256 or sha256,
        result["pane"],
        started,
        sender.side_error,
    )


def _outcome(
    report: tuple[str, str, str],
    size: int,
    sha256: str,
    expected: str,
    pane: str,
    started: float,
    side_error: str | None = None,
) -> CreateFileResult:
    """The result the script reported, or the error it names."""
    status, host_path, extra = report
    if status != "ok":
        details: dict[str, Any] = {"path": host_path}
        if status == "checksum_mismatch":
            details.update(expected=expected, actual=extra or None)
        if side_error is not None:
            details["reason"] = side_error
        raise _FAILURES.get(status, errors.TransferFailed)(
            f"{status.replace('_', ' ')}: {host_path}", **details
        )
    existed, mode_text, backup_b64 = extra.split(":", 2)
    backup_path = base64.b64decode(backup_b64).decode("utf-8", "replace") or None
    return CreateFileResult(
        path=host_path,
        pane=pane,
        bytes=size,
        sha256=sha256,
        mode=mode_text.zfill(4),
        action="replaced" if existed == "1" else "created",
        backup_path=backup_path,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )


RemoteScript = Callable[[str, bytes], str]
"""Runs a POSIX sh script on a host with the given bytes on its stdin; returns exactly
what the script printed, or raises the sane error for why it could not run it."""


def write_over(
    run: RemoteScript,
    path: str,
    content: bytes,
    pane: str,
    mode: int | None = None,
    parents: bool = False,
    skip_same: bool = False,
) -> CreateFileResult | dict[str, str]:
    """create-file in one remote command with the content on its stdin (fleet put
    over each server's ControlMaster: one ssh per server, as scp would be), the same
    script and the same checks as in a pane: temp file beside the target, sha256
    checked, then renamed over it. ``skip_same``: a file that already has these bytes
    is left alone, ``{"action": "unchanged", ...}`` (the deployment cache, in the
    same command)."""
    if not path or "\0" in path:
        raise errors.InvalidArgument("the path must be a non-empty string without NUL bytes")
    if mode is not None and not 0 <= mode <= 0o7777:
        raise errors.InvalidArgument(f"mode {mode:o} is out of range", mode=mode)
    started = time.perf_counter()
    sha256 = hashlib.sha256(content).hexdigest()
    body = _script(
        path,
        0,
        sha256,
        mk.new_nonce(),
        mode,
        parents,
        False,
        False,
        stdin=True,
        skip_same=skip_same,
    )
    text = run(f"__cf_main() {{\n{body}}}\n__cf_main", content)
    report = _report(text)
    if report is None:
        raise errors.TransferFailed(
            f"creating {path} did not finish; no partial file was left in place",
            path=path,
            output=text[-2000:],
        )
    if report[0] == "unchanged":
        return {"action": "unchanged", "path": report[1], "sha256": sha256}
    return _outcome(report, len(content), sha256, sha256, pane, started)


def _report(text: str) -> tuple[str, str, str] | None:
    for line in reversed(text.splitlines()):
        if line.startswith(REPORT + " "):
            parts = [*line.split(" ", 3), ""]
            host_path = base64.b64decode(parts[2]).decode("utf-8", "replace")
            return parts[1], host_path, parts[3]
    return None

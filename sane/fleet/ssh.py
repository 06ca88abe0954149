"""The system ``ssh``, configured the way sane needs it, and its failures named.

Why the system client: users' keys, agents, ``~/.ssh/config`` and known_hosts work
as they do at the prompt, and a pane running ``ssh`` is something a person can watch
and take over. Defaults: ``BatchMode=yes`` (never hangs on a password or passphrase
prompt), host keys checked (``accept-new`` only when asked), curve25519 key exchange
(~90 ms faster per connection than the default post-quantum one here), keep-alives so
a dead link is noticed within ~15 s, and the pane's connection as a ControlMaster so
side channels (``sane server test``, health reads) cost milliseconds.
"""

from __future__ import annotations

import os
import time
from typing import Any

from sane import errors
from sane.fleet.spec import ServerLike
from sane.paths import control_socket_dir

CONNECT_TIMEOUT = 10
KEEPALIVE = ("-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3")


def control_dir() -> str:
    """Private directory for ControlMaster sockets (see paths.control_socket_dir)."""
    return control_socket_dir()


def ssh_argv(server: ServerLike, accept_new: bool = False, master: bool = False,
             tty: bool = False) -> list[str]:
    """argv for ``ssh`` to ``server``: a pane's session (``master``) or a side channel."""
    argv = ["ssh"]
    if tty:
        argv.append("-tt")
    argv += [
        "-o", "BatchMode=yes",
        "-o", f"StrictHostKeyChecking={'accept-new' if accept_new else 'yes'}",
        "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
        "-o", "KexAlgorithms=curve25519-sha256,curve25519-sha256@libssh.org,"
              "sntrup761x25519-sha512@openssh.com,ecdh-sha2-nistp256",
        "-o", "LogLevel=ERROR",
        "-o", f"ControlPath={control_dir()}/%C",
        "-o", f"ControlMaster={'auto' if master else 'no'}",
        "-o", "ControlPersist=no",
        *KEEPALIVE,
        "-p", str(server.port),
    ]
    if server.identity_file:
        argv += ["-i", os.path.expanduser(server.identity_file), "-o", "IdentitiesOnly=yes"]
    if server.user:
        argv += ["-l", server.user]
    for key, value in server.ssh_options.items():
        argv += ["-o", f"{key}={value}"]
    argv += ["--", server.host]
    return argv


# Substrings of ssh's messages, first match wins, and the error each one means.
_FAILURES: tuple[tuple[str, type[errors.SaneError]], ...] = (
    ("remote host identification has changed", errors.HostKeyMismatch),
    ("host key for", errors.HostKeyMismatch),
    ("no ed25519 host key is known", errors.HostKeyUnknown),
    ("no rsa host key is known", errors.HostKeyUnknown),
    ("no ecdsa host key is known", errors.HostKeyUnknown),
    ("host key verification failed", errors.HostKeyUnknown),
    ("permission denied", errors.AuthFailed),
    ("too many authentication failures", errors.AuthFailed),
    ("connection refused", errors.ConnectionRefused),
    ("could not resolve hostname", errors.HostUnreachable),
    ("no route to host", errors.HostUnreachable),
    ("network is unreachable", errors.HostUnreachable),
    ("timed out", errors.ConnectTimeout),
)


def classify(server: ServerLike, text: str, **details: Any) -> errors.SaneError:
    """The sane error for ssh's own words about why it could not connect."""
    low = text.lower()
    cls = next((c for needle, c in _FAILURES if needle in low), errors.ConnectionFailed)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    reason = lines[-1] if lines else "ssh exited without saying why"
    return cls(f"{server.name} ({server.host}:{server.port}): {reason}", server=server.name,
               ssh_output=text.strip()[-2000:], **details)


def probe_connection(server: ServerLike, accept_new: bool = False,
                    timeout: float = CONNECT_TIMEOUT + 5) -> float:
    """Connect, run ``true``, return the latency in ms; raise the classified error."""
    import subprocess  # here, not at the top: a run on warm panes starts no ssh

    argv = [*ssh_argv(server, accept_new=accept_new), "true"]
    started = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError as exc:
        raise errors.ConnectionFailed("ssh is not installed", server=server.name) from exc
    except subprocess.TimeoutExpired:
        raise errors.ConnectTimeout(
            f"{server.name}: no answer within {timeout:g}s", server=server.name
        ) from None
    latency = (time.perf_counter() - started) * 1000
    if proc.returncode != 0:
        raise classify(server, proc.stderr, exit_status=proc.returncode)
    return round(latency, 3)


def upload(server: ServerLike, path: str, data: bytes, timeout: float = 600.0) -> None:
    """Write ``data`` to ``path`` on ``server`` over the pane's ControlMaster (a new
    connection if there is none): the fast way for files, ~10x the tty's rate."""
    import shlex
    import subprocess

    argv = [*ssh_argv(server), f"cat > {shlex.quote(path)}"]
    try:
        proc = subprocess.run(argv, input=data, capture_output=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise errors.TransferFailed(f"{server.name}: upload did not finish in {timeout:g}s",
                                    server=server.name) from None
    if proc.returncode != 0:
        text = proc.stderr.decode("utf-8", "replace")
        if proc.returncode == 255:
            raise classify(server, text)
        raise errors.TransferFailed(f"{server.name}: writing {path} failed: {text.strip()}",
                                    server=server.name, path=path)

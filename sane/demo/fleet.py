"""A local demo fleet: real OpenSSH servers on 127.0.0.1, run as you, no root needed.

Each server is a plain ``sshd`` on its own port with its own host key, accepting one
client key for the current user only, and giving the login its own home directory
(``SetEnv HOME=...``: ``cd``, ``~/`` paths and health.json all land there), so three
servers on one machine look like three machines to a deploy (every session starts in
that home). Host keys are checked: the fleet writes its own known_hosts. Stopping the
fleet ends each sshd and everything it started (connections, sessions, their jobs).

Unlike ``sane.testing.fleet`` (the test fleet: root, mount and PID namespaces), this
works for a normal user with no sudo, which is what ``sane demo`` needs.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

from sane import errors, procfs
from sane.fleet.registry import Server
from sane.poll import poll

SSHD = "/usr/sbin/sshd"
# sshd starts every session in the user's real home (the password database's), and
# SetEnv only changes $HOME: without this a pane's shell, and every command, would run
# in this machine's own home, where relative paths then land. So each session first
# goes to the server's home, then runs the command or a login shell, as sshd would.
_IN_HOME = (
    'exec /bin/sh -c \'cd "$HOME" || exit 1; if [ -n "${SSH_ORIGINAL_COMMAND+x}" ]; '
    'then exec "$SHELL" -c "$SSH_ORIGINAL_COMMAND"; fi; exec "$SHELL" -l\''
)
STATE = "fleet.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def start(base: Path, names: list[str], ready_timeout: float = 10.0) -> list[Server]:
    """Start one sshd per name under ``base``; the registry entries to reach them."""
    check_usable()
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privsep dir as root
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    user = getpass.getuser()
    client = base / "client"
    client.mkdir(mode=0o700, exist_ok=True)
    _keygen(client / "id_ed25519", "sane-demo-client")
    (client / "authorized_keys").write_bytes((client / "id_ed25519.pub").read_bytes())
    known: list[str] = []
    records: list[dict[str, Any]] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name in names:
            record, proc = _start_one(base, name, user, client, known)
            records.append(record)
            procs.append(proc)
    finally:
        _save(base, known, records)
    for index, record in enumerate(records):
        for _attempt in range(3):
            up = poll(
                functools.partial(_up_or_gone, record["port"], procs[index]),
                ready_timeout,
                cap=0.05,
            )
            if up == "up":
                break
            if up != "gone":
                break
            # The free port was taken between picking and binding it: pick another.
            known[:] = [line for line in known if f"]:{record['port']} " not in line]
            record, procs[index] = _start_one(base, record["name"], user, client, known)
            records[index] = record
            _save(base, known, records)
        if up != "up":
            log = Path(record["dir"], "sshd.log")
            detail = log.read_text(errors="replace")[-500:] if log.exists() else ""
            stop(base)
            raise errors.ConnectionFailed(
                f"demo sshd {record['name']} did not start: {detail}", server=record["name"]
            )
    return [
        Server(
            name=r["name"],
            host="127.0.0.1",
            port=r["port"],
            user=user,
            identity_file=str(client / "id_ed25519"),
            tags=["demo"],
            ssh_options={"UserKnownHostsFile": str(base / "known_hosts")},
        )
        for r in records
    ]


def _save(base: Path, known: list[str], records: list[dict[str, Any]]) -> None:
    (base / "known_hosts").write_text("".join(known))
    (base / STATE).write_text(json.dumps({"servers": records}, indent=2) + "\n")


def _up_or_gone(port: int, proc: subprocess.Popen[bytes]) -> str:
    """ "up" once sshd answers on ``port``; "gone" if it exited (it could not bind)."""
    if _listening(port):
        return "up"
    return "gone" if proc.poll() is not None else ""


def check_usable() -> None:
    """Raise the reason a demo fleet cannot run on this machine for this user (OpenSSH
    missing, ptys sshd cannot hand out), before anything starts; tests skip on it."""
    for tool in (SSHD, shutil.which("ssh-keygen"), shutil.which("ssh")):
        if not tool or not os.access(tool, os.X_OK):
            raise errors.UsageError(
                "the demo fleet needs OpenSSH (apt-get install openssh-server openssh-client)"
            )
    if os.geteuid() != 0:
        _check_ptys()


def _check_ptys() -> None:
    """sshd run as a normal user can only hand out a terminal if new ptys already
    belong to group tty (devpts mounted with gid=5, as systemd does): it may not
    chown them. Say so up front rather than failing every login."""
    import grp

    try:
        tty_gid = grp.getgrnam("tty").gr_gid
    except KeyError:
        return  # no tty group: sshd leaves the pty to the user
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    devpts = [
        line.split()
        for line in mounts
        if len(line.split()) > 4 and line.split()[4] == "/dev/pts" and "devpts" in line
    ]
    if not devpts:
        return
    options = devpts[-1][-1]  # the last mount at /dev/pts is the one in use
    if f"gid={tty_gid}" not in options.split(","):
        raise errors.UsageError(
            "sshd run as a normal user cannot give its logins a terminal here: "
            f"/dev/pts is mounted without gid={tty_gid} (options: {options}). "
            "Standard Debian/Ubuntu hosts mount it so; in a container, run as root "
            f"or mount devpts with -o gid={tty_gid},mode=620.",
            devpts_options=options,
        )


def _start_one(
    base: Path, name: str, user: str, client: Path, known: list[str]
) -> tuple[dict[str, Any], subprocess.Popen[bytes]]:
    directory = base / name
    home = directory / "home"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not (directory / "host_ed25519").exists():
        _keygen(directory / "host_ed25519", f"{name}-host")
    port = _free_port()
    config = directory / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory}/host_ed25519\n"
        f"PidFile {directory}/sshd.pid\nAuthorizedKeysFile {client}/authorized_keys\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nPrintMotd no\n"
        f"AllowUsers {user}\nSetEnv HOME={home} SANE_DEMO_SERVER={name}\n"
        f"ForceCommand {_IN_HOME}\n"
        "KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org\nLogLevel ERROR\n"
    )
    log = directory / "sshd.log"
    proc = subprocess.Popen(
        [SSHD, "-D", "-f", str(config), "-E", str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    key_type, key = (directory / "host_ed25519.pub").read_text().split()[:2]
    known.append(f"[127.0.0.1]:{port} {key_type} {key}\n")
    return {
        "name": name,
        "port": port,
        "pid": proc.pid,
        "dir": str(directory),
        "home": str(home),
    }, proc


def homes(base: Path) -> dict[str, Path]:
    """Each server's home directory on this machine (what the server calls ``~``)."""
    return {r["name"]: Path(r["home"]) for r in _records(base)}


def _records(base: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads((base / STATE).read_text())
    except (OSError, ValueError):
        return []
    servers: list[dict[str, Any]] = data.get("servers", [])
    return servers


def stop(base: Path) -> list[str]:
    """Stop every sshd of the fleet under ``base`` and everything it started; remove
    ``base``.

    Why more than the sshd's process group: sshd puts each connection, and each
    session's shell, in a session of its own (``setsid``), so killing the listener's
    group left connected sessions (and their panes' ssh on the client side) alive. So
    the listener's whole process tree is taken, with every process of the sessions
    started inside it (a job a session left running in the background included),
    before anything is killed. (A process that made a session of its own, a daemon,
    cannot be told apart from any other here and is left.)"""
    stopped = []
    for record in _records(base):
        pid = int(record["pid"])
        doomed = _started_by(pid)
        for victim in sorted(doomed, key=lambda p: p != pid):  # the listener first
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(victim, signal.SIGKILL if victim != pid else signal.SIGTERM)
        if pid in doomed:
            stopped.append(record["name"])
        poll(functools.partial(_all_gone, doomed), 5.0)
    shutil.rmtree(base, ignore_errors=True)
    return stopped


def _started_by(root: int) -> set[int]:
    """``root`` and every process it started: its descendants, and every member of a
    session one of them leads (a shell's background job outlives its parent)."""
    table: dict[int, tuple[int, int]] = {}  # pid -> (ppid, session id)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = procfs.stat_fields(entry)  # one read per process: all of /proc
        if fields is not None and len(fields) > procfs.SESSION:
            table[int(entry)] = (int(fields[procfs.PPID]), int(fields[procfs.SESSION]))
    if root not in table:
        return set()
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in table.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    own = os.getsid(0)
    leaders = {pid for pid in tree if table[pid][1] == pid and pid != own}
    return tree | {pid for pid, (_, sid) in table.items() if sid in leaders}


def _all_gone(pids: set[int]) -> bool:
    return not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    state = procfs.state(pid)
    return state is not None and state != "Z"  # a zombie nobody reaps is gone for us

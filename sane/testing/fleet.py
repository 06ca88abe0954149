"""Real OpenSSH servers for tests: N ``sshd`` on loopback (or in network namespaces).

Nothing is mocked. Each server ``sN`` gets its own ed25519 host key, ``authorized_keys``,
``sshd_config`` and home directory; it runs in its own mount and PID namespaces::

    unshare --pid --fork --kill-child --mount-proc --mount --propagation private \\
        sh -c "mount --bind HOME /root && exec /usr/sbin/sshd -D -f CFG -E LOG"

so a root login lands in that server's own ``~`` (the bind mount is private: the host's
``/root`` and the other servers never see it), and every process a server spawns (its
connection handlers, the sessions, anything a session left running in the background)
lives in that server's PID namespace. ``stop`` kills the namespace's init (the ``sshd``);
the kernel then kills the rest and the ``sshd``/``unshare`` pair reaps everything, before
``stop`` returns. The PID namespace is not decoration: with the plain ``unshare --mount``
of the notes, killing the sshd left its sessions (``sshd: root@notty``) and their
background jobs running, re-parented to PID 1, and PID 1 here (``process_api``) was seen
leaving such orphans as zombies.

Measured recipe, pitfalls and timings: ``/work/shared/notes/test-fleet.md``.

Modes:

- ``"ports"``: every server listens on ``127.0.0.1:<free port>``.
- ``"netns"``: every server runs in its own network namespace on a bridge the fleet
  creates, with its own address (``10.231.0.2`` ... for ``s1`` ...) on port 22 and its own
  hostname (``sN``). Raises :class:`FleetUnavailable` when ``ip netns`` is not permitted.
  With ``bastion="s1"`` every other server sits instead on an inner bridge the host has
  no address on and no route to (``10.232.K.0/24``, an ``unreachable`` route on the host
  makes a direct connection fail at once); the bastion alone has a leg there (its
  ``eth1``), and it forwards no packets, so ssh through it (``ProxyJump``) is the only way
  in, as for hosts behind a real bastion. The fleet's own ssh config jumps through it.

Clients use :attr:`Fleet.ssh_config_path` (``ssh -F CONFIG sN``) or :meth:`Fleet.ssh_argv`.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, Self, TypeVar

from sane import procfs
from sane.fleet.registry import Registry
from sane.fleet.registry import Server as RegistryServer

__all__ = [
    "Fleet",
    "FleetError",
    "FleetUnavailable",
    "Mode",
    "Server",
    "SshFleet",
    "SshFleetBase",
    "register",
    "registry_entries",
]

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")
NETNS_LOCK = Path("/run/sane-fleet.lock")
NETNS_PREFIX = "10.231"
INNER_PREFIX = "10.232"  # behind the bastion: never an address or a way in on the host
Mode = Literal["ports", "netns"]

_PATH_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


class FleetUnavailable(Exception):
    """This machine cannot run the fleet (not root, no sshd, unshare or netns not allowed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FleetError(RuntimeError):
    """A fleet operation failed on a machine that can otherwise run it."""


@dataclass
class Server:
    """One sshd of a fleet. Paths are absolute; ``pid`` is None while it is stopped."""

    name: str
    host: str
    port: int
    directory: Path
    netns: str | None = None
    hostname: str | None = None
    veth: str | None = None
    extra_config: str = ""
    login_shell: str | None = None  # root's shell inside this server (None: the host's)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _pid: int | None = field(default=None, repr=False)
    _log_start: int = field(default=0, repr=False)  # size of the log at the last launch

    @property
    def home(self) -> Path:
        """Mounted on ``/root`` inside this server: a root login's ``~``."""
        return self.directory / "home"

    @property
    def host_key(self) -> Path:
        return self.directory / "ssh_host_ed25519_key"

    @property
    def host_key_pub(self) -> Path:
        return self.directory / "ssh_host_ed25519_key.pub"

    @property
    def authorized_keys(self) -> Path:
        return self.directory / "authorized_keys"

    @property
    def config(self) -> Path:
        return self.directory / "sshd_config"

    @property
    def log(self) -> Path:
        """sshd's own log (``-E``)."""
        return self.directory / "sshd.log"

    @property
    def launch_log(self) -> Path:
        """stderr of the ``unshare``/``sh``/``mount`` launch chain."""
        return self.directory / "launch.err"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """PID (as seen from the host) of the listening sshd, the init of its PID namespace."""
        return self._pid if self.running else None

    @property
    def launcher_pid(self) -> int | None:
        """PID of the ``unshare`` process that holds the namespaces (our direct child)."""
        return self._proc.pid if self._proc is not None and self.running else None

    @property
    def known_hosts_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


_live: weakref.WeakSet[Fleet] = weakref.WeakSet()
_unshare_checked = False


@atexit.register
def _close_live_fleets() -> None:
    for fleet in list(_live):
        fleet.close()


def _run(argv: Sequence[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        env=_PATH_ENV,
    )


def _must(argv: Sequence[str]) -> str:
    proc = _run(argv)
    if proc.returncode != 0:
        raise FleetError(
            f"{shlex.join(argv)} failed ({proc.returncode}): "
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout


def _keygen(keys: Sequence[tuple[Path, str]]) -> None:
    """Generate ed25519 keys (path, comment) concurrently; existing files are replaced."""
    exe = shutil.which("ssh-keygen", path=_PATH_ENV["PATH"]) or "ssh-keygen"
    procs = []
    for path, comment in keys:
        for old in (path, path.with_name(path.name + ".pub")):
            old.unlink(missing_ok=True)
        procs.append(
            (
                path,
                subprocess.Popen(
                    [exe, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                ),
            )
        )
    errors = []
    for path, proc in procs:
        _, err = proc.communicate(timeout=30)
        if proc.returncode != 0:
            errors.append(f"{path}: {err.decode(errors='replace').strip()}")
    if errors:
        raise FleetError("ssh-keygen failed: " + "; ".join(errors))


def _free_port(taken: set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port


class _Address(Protocol):
    host: str
    port: int


_A = TypeVar("_A", bound=_Address)


def _answering(servers: Sequence[_A], timeout: float = 1.0) -> list[_A]:
    """Those of ``servers`` that accept a connection and send an ``SSH-`` banner.

    Connects to all first and then reads the banners together, so N servers cost one
    banner's latency, not N.
    """
    pending: dict[socket.socket, tuple[_A, bytes]] = {}
    for srv in servers:
        try:
            pending[socket.create_connection((srv.host, srv.port), timeout=timeout)] = (srv, b"")
        except OSError:
            continue
    ready = []
    deadline = time.monotonic() + timeout
    try:
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select(list(pending), [], [], left)
            for sock in readable:
                srv, data = pending[sock]
                try:
                    chunk = sock.recv(256)
                except OSError:
                    chunk = b""
                data += chunk
                if chunk and b"\n" not in data and len(data) < 256:
                    pending[sock] = (srv, data)
                    continue
                del pending[sock]
                sock.close()
                if data.startswith(b"SSH-"):
                    ready.append(srv)
    finally:
        for sock in pending:
            sock.close()
    return ready


class _NamedAddress(_Address, Protocol):
    name: str


class SshFleet(Protocol):
    """What registering a fleet needs of it: :class:`Fleet` and ``ContainerFleet``."""

    @property
    def servers(self) -> Sequence[_NamedAddress]: ...

    @property
    def client_key(self) -> Path: ...

    @property
    def known_hosts(self) -> Path: ...


def registry_entries(fleet: SshFleet, **fields: Any) -> list[RegistryServer]:
    """The fleet's servers as sane's registry entries: root, the fleet's client key and
    its known_hosts (the one way tests, benches and the demo reach a test fleet);
    ``fields`` sets more of every entry (tags, a shell...)."""
    return [
        RegistryServer(
            name=s.name,
            host=s.host,
            port=s.port,
            user="root",
            identity_file=str(fleet.client_key),
            ssh_options={"UserKnownHostsFile": str(fleet.known_hosts)},
            **fields,
        )
        for s in fleet.servers
    ]


def register(home: Path, fleet: SshFleet, **fields: Any) -> list[RegistryServer]:
    """:func:`registry_entries`, each added to ``home``'s registry (replacing one of
    the same name), in the fleet's order."""
    registry = Registry(home)
    servers = registry_entries(fleet, **fields)
    for server in servers:
        registry.add(server, replace=True)
    return servers


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]
    except OSError:
        pass
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _ppid(int(entry.name)) == pid:
            found.append(int(entry.name))
    return found


def _ppid(pid: int) -> int | None:
    return procfs.field(pid, procfs.PPID)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def _netns_lock() -> Iterator[None]:
    """Serialises subnet/name allocation between fleets in different processes."""
    with open(NETNS_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_S = TypeVar("_S", bound=_NamedAddress)


class SshFleetBase(Generic[_S]):
    """What both test fleets (sshd processes here, containers in
    :mod:`sane.testing.containers`) offer alike: their servers by name, the client key,
    known_hosts and an ssh_config that reach them, and ``with`` closing them."""

    base: Path
    _servers: dict[str, _S]
    _closed: bool
    _ssh = "ssh"  # the ssh client ssh_argv runs

    @property
    def servers(self) -> list[_S]:
        return list(self._servers.values())

    @property
    def names(self) -> list[str]:
        return list(self._servers)

    def server(self, name: str) -> _S:
        try:
            return self._servers[name]
        except KeyError:
            raise KeyError(
                f"no server {name!r} in this fleet ({', '.join(self._servers)})"
            ) from None

    def __getitem__(self, name: str) -> _S:
        return self.server(name)

    @property
    def client_key(self) -> Path:
        return self.base / "client" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.base / "known_hosts"

    @property
    def ssh_config_path(self) -> Path:
        return self.base / "ssh_config"

    def ssh_argv(self, name: str, *remote_cmd: str) -> list[str]:
        """argv for the system ``ssh`` to ``name`` through :attr:`ssh_config_path`."""
        self.server(name)
        return [self._ssh, "-F", str(self.ssh_config_path), name, *remote_cmd]

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _write_ssh_config(self) -> None:
        """One ``Host`` block a server: root with the fleet's key, only its known_hosts,
        strict checking, no prompt (``_ssh_config_extra`` adds a server's own lines)."""
        self.ssh_config_path.write_text(
            "\n".join(
                f"Host {srv.name}\n"
                f"    HostName {srv.host}\n"
                + self._ssh_config_extra(srv)
                + f"    Port {srv.port}\n"
                "    User root\n"
                f"    IdentityFile {self.client_key}\n"
                "    IdentitiesOnly yes\n"
                f"    UserKnownHostsFile {self.known_hosts}\n"
                "    GlobalKnownHostsFile /dev/null\n"
                "    StrictHostKeyChecking yes\n"
                "    UpdateHostKeys no\n"
                "    BatchMode yes\n"
                "    LogLevel ERROR\n"
                "    ConnectTimeout 10\n"
                for srv in self._servers.values()
            )
        )

    def _ssh_config_extra(self, srv: _S) -> str:
        return ""


class Fleet(SshFleetBase[Server]):
    """``count`` real sshd servers ``s1..sN``; close it (or use ``with``) to remove everything.

    Raises :class:`FleetUnavailable` when the machine cannot run it (not root, no
    ``/usr/sbin/sshd``, ``unshare`` or bind mounts refused, ``ip netns`` refused).
    """

    _counter = 0

    def __init__(
        self,
        count: int,
        mode: Mode = "ports",
        *,
        ready_timeout: float = 10.0,
        bastion: str | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if mode not in ("ports", "netns"):
            raise ValueError(f"unknown mode {mode!r} (ports or netns)")
        if mode == "netns" and count > 253:
            raise ValueError("netns mode supports at most 253 servers")
        if bastion is not None and (
            mode != "netns" or bastion not in {f"s{i}" for i in range(1, count + 1)}
        ):
            raise ValueError(f"bastion {bastion!r} needs netns mode and one of s1..s{count}")
        self.mode: Mode = mode
        self.bastion = bastion
        self.ready_timeout = ready_timeout
        self._servers: dict[str, Server] = {}
        self._trusted: dict[str, str] = {}
        self._closed = False
        self._bridge: str | None = None
        self._inner_bridge: str | None = None
        self._unreachable: str | None = None  # the host's route for the inner subnet
        self._veths: list[str] = []
        self._netns: list[str] = []
        self._tools = self._check_tools()
        self._ssh = self._tools["ssh"]
        self.base = Path(tempfile.mkdtemp(prefix="sane-fleet-"))
        _live.add(self)
        try:
            os.chmod(self.base, 0o755)
            self._check_unshare()
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
            self._create(count)
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- public API

    def stop(self, name: str) -> None:
        """Kill that sshd and every process it spawned (sessions included); no-op if stopped."""
        self._kill([self.server(name)])

    def start(self, name: str) -> None:
        """Start a stopped server again on the same address, port and keys; no-op if running."""
        srv = self.server(name)
        if not srv.running:
            self._start([srv], repick_ports=False)

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    def set_link(self, name: str, up: bool) -> None:
        """Cut (``up=False``) or restore a netns server's link: its veth on the bridge
        goes down or up. The server and its TCP connections stay alive, packets are
        simply not delivered meanwhile (a cable pulled, not a host gone)."""
        srv = self.server(name)
        if srv.veth is None:
            raise FleetError(f"{name} has no link to cut (only netns fleets have one)")
        _must([self._tools["ip"], "link", "set", srv.veth, "up" if up else "down"])

    def configure_sshd(self, name: str, extra: str) -> None:
        """Append ``extra`` (sshd_config lines, e.g. ``KexAlgorithms
        diffie-hellman-group14-sha256`` for an older server) to ``name``'s config and
        restart it; ``""`` goes back to the plain config. sshd keeps the first value of
        most keywords, so these lines only add what the base config does not set."""
        srv = self.server(name)
        self._kill([srv])
        srv.extra_config = extra if not extra or extra.endswith("\n") else extra + "\n"
        self._write_sshd_config(srv)
        self._start([srv], repick_ports=False)

    def set_login_shell(self, name: str, shell: str | None) -> None:
        """Make ``shell`` (an executable path) root's login shell inside ``name`` and
        restart it; None goes back to the host's. The server's mount namespace sees
        ``/etc`` through an overlay whose upper layer holds its own ``passwd`` (a copy
        with root's shell changed): the host's stays untouched and the other servers
        keep theirs. Not a bind mount on the file: the kernel detaches every mount on a
        file that is unlinked or renamed over in any namespace, which is what
        ``useradd`` and friends do to the host's ``/etc/passwd``."""
        srv = self.server(name)
        if shell is not None and not os.access(shell, os.X_OK):
            raise FleetError(f"login shell {shell} is not an executable")
        self._kill([srv])
        srv.login_shell = shell
        if shell is not None:
            lines = Path("/etc/passwd").read_text().splitlines()
            fields = [line.split(":") for line in lines]
            (srv.directory / "etc-upper").mkdir(exist_ok=True)
            (srv.directory / "etc-work").mkdir(exist_ok=True)
            (srv.directory / "etc-upper" / "passwd").write_text(
                "".join(
                    ":".join([*f[:6], shell] if f[0] == "root" and len(f) == 7 else f) + "\n"
                    for f in fields
                )
            )
        self._start([srv], repick_ports=False)

    def authorize(self, name: str, public_key: str) -> None:
        """Let ``public_key`` (one line of a ``.pub``) log in to ``name`` as well."""
        srv = self.server(name)
        with open(srv.authorized_keys, "a") as fh:
            fh.write(public_key.strip() + "\n")

    def regenerate_host_key(self, name: str, *, update_known_hosts: bool = False) -> None:
        """Give ``name`` a new host key and restart it.

        ``known_hosts`` keeps the old key unless ``update_known_hosts``, so a
        ``StrictHostKeyChecking yes`` client then fails with "REMOTE HOST IDENTIFICATION
        HAS CHANGED" (see :meth:`trust_host_key`).
        """
        srv = self.server(name)
        self._kill([srv])
        _keygen([(srv.host_key, f"{name}-host")])
        if update_known_hosts:
            self.trust_host_key(name)
        self._start([srv], repick_ports=False)

    def trust_host_key(self, name: str) -> None:
        """Write ``name``'s current host key into :attr:`known_hosts`."""
        srv = self.server(name)
        key_type, key = srv.host_key_pub.read_text().split()[:2]
        self._trusted[name] = f"{srv.known_hosts_name} {key_type} {key}"
        self._write_known_hosts()

    def close(self) -> None:
        """Stop every server, remove namespaces, veths and bridge, delete the temp dir."""
        if self._closed:
            return
        self._closed = True
        try:
            self._kill(list(self._servers.values()))
        finally:
            try:
                self._teardown_netns()
            finally:
                shutil.rmtree(self.base, ignore_errors=True)
                _live.discard(self)

    @property
    def bridge(self) -> str | None:
        """The bridge of a netns fleet (None in ports mode and once closed)."""
        return self._bridge

    @property
    def inner_bridge(self) -> str | None:
        """The bridge behind the bastion (None without one and once closed)."""
        return self._inner_bridge

    def is_behind(self, name: str) -> bool:
        """True when ``name`` is reachable only through the bastion (see the module doc)."""
        return self.bastion is not None and self.server(name).name != self.bastion

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._servers)} servers"
        return f"<Fleet {self.mode} {state} at {self.base}>"

    # ----------------------------------------------------------------- setup

    def _check_tools(self) -> dict[str, str]:
        if os.geteuid() != 0:
            raise FleetUnavailable(
                "the ssh test fleet needs root (euid is "
                f"{os.geteuid()}): it bind-mounts each server's /root"
            )
        if not os.access(SSHD, os.X_OK):
            raise FleetUnavailable(f"{SSHD} is not installed (apt-get install openssh-server)")
        tools = {}
        needed = ["unshare", "ssh", "ssh-keygen"] + (["ip"] if self.mode == "netns" else [])
        for tool in needed:
            found = shutil.which(tool, path=_PATH_ENV["PATH"])
            if found is None:
                raise FleetUnavailable(f"{tool} is not installed")
            tools[tool] = found
        return tools

    def _check_unshare(self) -> None:
        """Once per process: can we create mount + PID namespaces and bind-mount in them?"""
        global _unshare_checked
        if _unshare_checked:
            return
        probe = self.base / "probe"
        (probe / "a").mkdir(parents=True)
        (probe / "b").mkdir()
        argv = [
            *self._unshare_argv(),
            f"mount --bind {shlex.quote(str(probe / 'a'))} {shlex.quote(str(probe / 'b'))}",
        ]
        try:
            proc = _run(argv, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FleetUnavailable(f"unshare failed: {exc}") from exc
        if proc.returncode != 0:
            raise FleetUnavailable(
                f"unshare/mount namespaces are not permitted: {proc.stderr.strip()}"
            )
        shutil.rmtree(probe)
        _unshare_checked = True

    def _unshare_argv(self, uts: bool = False) -> list[str]:
        return [
            self._tools["unshare"],
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--mount",
            "--propagation",
            "private",
            *(["--uts"] if uts else []),
            "sh",
            "-c",
        ]

    def _create(self, count: int) -> None:
        (self.base / "client").mkdir()
        names = [f"s{i}" for i in range(1, count + 1)]
        taken: set[int] = set()
        for name in names:
            directory = self.base / name
            (directory / "home").mkdir(parents=True)
            os.chmod(directory / "home", 0o700)
            if self.mode == "ports":
                port = _free_port(taken)
                taken.add(port)
                srv = Server(name, "127.0.0.1", port, directory)
            else:
                srv = Server(name, "", 22, directory, hostname=name)
            self._servers[name] = srv
            # Something to tell the homes apart by: `ls -A ~` shows it.
            (srv.home / ".fleet-host").write_text(f"{name}\n")
        _keygen(
            [(self.client_key, "sane-fleet-client")]
            + [(s.host_key, f"{s.name}-host") for s in self._servers.values()]
        )
        if self.mode == "netns":
            self._setup_netns()
        client_pub = self.client_key.with_name("id_ed25519.pub").read_text()
        for srv in self._servers.values():
            srv.authorized_keys.write_text(client_pub)
            self._write_sshd_config(srv)
        self._start(list(self._servers.values()), repick_ports=self.mode == "ports")
        for name in names:
            srv = self._servers[name]
            key_type, key = srv.host_key_pub.read_text().split()[:2]
            self._trusted[name] = f"{srv.known_hosts_name} {key_type} {key}"
        self._write_known_hosts()
        self._write_ssh_config()

    def _write_sshd_config(self, srv: Server) -> None:
        srv.config.write_text(
            f"ListenAddress {srv.host}:{srv.port}\n"
            f"HostKey {srv.host_key}\n"
            "PidFile none\n"
            f"AuthorizedKeysFile {srv.authorized_keys}\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "StrictModes no\n"
            "UsePAM no\n"
            "PrintMotd no\n"
            "PrintLastLog no\n"
            "Subsystem sftp internal-sftp\n"
            f"SetEnv FLEET_HOST={srv.name}\n" + srv.extra_config
        )

    def _write_known_hosts(self) -> None:
        lines = [self._trusted[name] for name in self._servers if name in self._trusted]
        self.known_hosts.write_text("".join(line + "\n" for line in lines))

    def _ssh_config_extra(self, srv: Server) -> str:
        """Behind the bastion: jump through it; and the one fast key exchange."""
        jump = f"    ProxyJump {self.bastion}\n" if self.is_behind(srv.name) else ""
        return jump + "    KexAlgorithms curve25519-sha256\n"

    # ----------------------------------------------------------------- processes

    def _launch_argv(self, srv: Server) -> list[str]:
        layers = (
            f"lowerdir=/etc,upperdir={srv.directory / 'etc-upper'},"
            f"workdir={srv.directory / 'etc-work'}"
        )
        passwd = (
            f"mount -t overlay overlay -o {shlex.quote(layers)} /etc && "
            if srv.login_shell is not None
            else ""
        )
        script = (
            f"mount --bind {shlex.quote(str(srv.home))} /root && {passwd}"
            f"exec {SSHD} -D -f {shlex.quote(str(srv.config))} "
            f"-E {shlex.quote(str(srv.log))}"
        )
        if srv.netns is None:
            return [*self._unshare_argv(), script]
        script = f"hostname {shlex.quote(srv.hostname or srv.name)} && {script}"
        return [
            self._tools["ip"],
            "netns",
            "exec",
            srv.netns,
            *self._unshare_argv(uts=True),
            script,
        ]

    def _spawn(self, srv: Server) -> None:
        srv._log_start = srv.log.stat().st_size if srv.log.exists() else 0
        with open(srv.launch_log, "ab") as err:
            srv._proc = subprocess.Popen(
                self._launch_argv(srv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                env=_PATH_ENV,
            )
        srv._pid = None

    def _start(self, servers: Sequence[Server], *, repick_ports: bool) -> None:
        """Launch all of ``servers`` at once, then wait until each one sends its banner."""
        for srv in servers:
            self._spawn(srv)
        pending = list(servers)
        retries = dict.fromkeys((s.name for s in servers), 3)
        deadline = time.monotonic() + self.ready_timeout
        delay = 0.002
        while pending:
            for srv in list(pending):
                assert srv._proc is not None
                if srv._proc.poll() is not None:
                    log = _tail(srv.log)
                    if repick_ports and "Address already in use" in log and retries[srv.name] > 0:
                        retries[srv.name] -= 1
                        taken = {s.port for s in self._servers.values()}
                        srv.port = _free_port(taken)
                        self._write_sshd_config(srv)
                        self._spawn(srv)
                        continue
                    status = srv._proc.returncode
                    srv._proc = None
                    raise FleetError(
                        f"sshd {srv.name} exited with status {status}"
                        f"\nlaunch: {_tail(srv.launch_log)}\nsshd log: {log}"
                    )
            hidden = [s for s in pending if self.is_behind(s.name)]
            for srv in _answering([s for s in pending if s not in hidden]) + [
                s for s in hidden if self._listening(s)
            ]:
                srv._pid = self._init_pid(srv)
                pending.remove(srv)
            if not pending:
                break
            if time.monotonic() >= deadline:
                names = ", ".join(s.name for s in pending)
                raise FleetError(
                    f"sshd {names} not ready after {self.ready_timeout:g}s: "
                    + "; ".join(_tail(s.log, 5) for s in pending)
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    @staticmethod
    def _listening(srv: Server) -> bool:
        """For a server the host cannot reach (behind the bastion): its sshd has said,
        since this launch, that it listens (from then on it answers connections)."""
        if not srv.log.exists():
            return False
        with open(srv.log, "rb") as fh:
            fh.seek(srv._log_start)
            return f"Server listening on {srv.host} port {srv.port}".encode() in fh.read()

    def _init_pid(self, srv: Server) -> int | None:
        """The unshare child: PID 1 of the server's PID namespace, i.e. the sshd."""
        assert srv._proc is not None
        deadline = time.monotonic() + 2.0
        while True:
            children = _children(srv._proc.pid)
            if children:
                return children[0]
            if srv._proc.poll() is not None or time.monotonic() >= deadline:
                return None
            time.sleep(0.002)

    def _kill(self, servers: Sequence[Server]) -> None:
        """SIGKILL each server's namespace init; the kernel takes the whole PID namespace
        down with it, and ``unshare`` (our child, reaped here) waits for all of that."""
        procs = []
        for srv in servers:
            proc = srv._proc
            if proc is None:
                continue
            procs.append((srv, proc))
            if proc.poll() is not None:
                continue
            pid = srv._pid or self._init_pid(srv)
            target = pid if pid is not None and _ppid(pid) == proc.pid else proc.pid
            with suppress(ProcessLookupError):
                os.kill(target, signal.SIGKILL)
        for srv, proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            srv._proc = None
            srv._pid = None

    # ----------------------------------------------------------------- netns

    def _setup_netns(self) -> None:
        ip = self._tools["ip"]
        tag_base = os.getpid() % 10000
        with _netns_lock():
            used = _run([ip, "-4", "-o", "addr", "show"]).stdout
            octet = next((k for k in range(256) if f" {NETNS_PREFIX}.{k}." not in used), None)
            if octet is None:
                raise FleetError(f"no free /24 left in {NETNS_PREFIX}.0.0/16")
            existing_links = _run([ip, "-o", "link", "show"]).stdout
            existing_ns = _run([ip, "netns", "list"]).stdout
            while True:
                n = Fleet._counter
                Fleet._counter += 1
                tag = f"{tag_base}" if n == 0 else f"{tag_base}-{n}"
                bridge = f"sfb{tag}"
                if f" {bridge}:" not in existing_links and f"sfn{tag}-" not in existing_ns:
                    break
            subnet = f"{NETNS_PREFIX}.{octet}"
            proc = _run([ip, "link", "add", bridge, "type", "bridge"])
            if proc.returncode != 0:
                raise FleetUnavailable(f"cannot create a bridge: {proc.stderr.strip()}")
            self._bridge = bridge
            _must([ip, "addr", "add", f"{subnet}.1/24", "dev", bridge])
            _must([ip, "link", "set", bridge, "up"])
            inner = f"{INNER_PREFIX}.{octet}"
            if self.bastion is not None:
                # No address on this bridge: the host cannot reach what is on it, and the
                # unreachable route answers a direct connection with "No route to host".
                self._inner_bridge = f"sfi{tag}"
                _must([ip, "link", "add", self._inner_bridge, "type", "bridge"])
                _must([ip, "link", "set", self._inner_bridge, "up"])
                _must([ip, "route", "add", "unreachable", f"{inner}.0/24"])
                self._unreachable = f"{inner}.0/24"
            for index, srv in enumerate(self._servers.values()):
                ns = f"sfn{tag}-{srv.name}"
                veth = f"sfv{tag}-{index + 1}"
                proc = _run([ip, "netns", "add", ns])
                if proc.returncode != 0:
                    raise FleetUnavailable(f"ip netns is not permitted: {proc.stderr.strip()}")
                self._netns.append(ns)
                _must(
                    [ip, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]
                )
                self._veths.append(veth)
                srv.veth = veth
                behind = self.is_behind(srv.name)
                _must(
                    [
                        ip,
                        "link",
                        "set",
                        veth,
                        "master",
                        self._inner_bridge if behind and self._inner_bridge else bridge,
                        "up",
                    ]
                )
                srv.host = f"{inner if behind else subnet}.{index + 2}"
                srv.netns = ns
                if srv.name == self.bastion and self._inner_bridge is not None:
                    leg = f"sfj{tag}"
                    _must(
                        [
                            ip,
                            "link",
                            "add",
                            leg,
                            "type",
                            "veth",
                            "peer",
                            "name",
                            "eth1",
                            "netns",
                            ns,
                        ]
                    )
                    self._veths.append(leg)
                    _must([ip, "link", "set", leg, "master", self._inner_bridge, "up"])
                    _must([ip, "-n", ns, "addr", "add", f"{inner}.1/24", "dev", "eth1"])
                    _must([ip, "-n", ns, "link", "set", "eth1", "up"])
                _must([ip, "-n", ns, "addr", "add", f"{srv.host}/24", "dev", "eth0"])
                _must([ip, "-n", ns, "link", "set", "eth0", "up"])
                _must([ip, "-n", ns, "link", "set", "lo", "up"])

    def _teardown_netns(self) -> None:
        ip = self._tools.get("ip")
        if ip is None:
            return
        errors = []
        # Processes first (there should be none left), then veths before namespaces
        # (namespace deletion is asynchronous), then the bridge.
        for ns in self._netns:
            for pid in _run([ip, "netns", "pids", ns]).stdout.split():
                with suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        for veth in self._veths:
            proc = _run([ip, "link", "del", veth])
            if proc.returncode != 0 and "Cannot find device" not in proc.stderr:
                errors.append(proc.stderr.strip())
        self._veths.clear()
        for ns in self._netns:
            proc = _run([ip, "netns", "del", ns])
            if proc.returncode != 0:
                errors.append(proc.stderr.strip())
        self._netns.clear()
        for bridge in (self._bridge, self._inner_bridge):
            if bridge is not None:
                proc = _run([ip, "link", "del", bridge])
                if proc.returncode != 0:
                    errors.append(proc.stderr.strip())
        self._bridge = self._inner_bridge = None
        if self._unreachable is not None:
            proc = _run([ip, "route", "del", "unreachable", self._unreachable])
            if proc.returncode != 0:
                errors.append(proc.stderr.strip())
            self._unreachable = None
        if errors:
            raise FleetError("netns teardown: " + "; ".join(errors))

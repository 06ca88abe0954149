"""The container engine behind sane's container fleet: Docker where one answers, else podman.

testcontainers speaks the Docker API. Where a Docker engine answers (``DOCKER_HOST`` or
``/var/run/docker.sock``) it is used as it is. Elsewhere sane runs Debian's podman with a
private configuration (its own image store under :func:`state_dir`, cgroupfs, runc, the
file events logger, ulimits within this machine's hard limits: podman's defaults are
refused here) and serves the Docker API with a private ``podman system service`` on a
socket in a fresh temporary directory, stopped with the fleet and killed by the kernel if
the process that started it dies (``PR_SET_PDEATHSIG``). Measured recipe and pitfalls:
``/work/shared/notes/containers.md`` and ``docs/containers.md``.

Every container sane starts carries the label :data:`OWNER_LABEL` (``pid:start-time`` of
the process that started it): :func:`sweep` removes those whose owner is gone, which is
what cleans up after a crashed or killed test run. The temporary directories sane makes
for them (a fleet's keys, the service's socket, an image build's tree) name their owner
the same way (:func:`owned_tempdir`), and :func:`sweep_dirs` removes those of the dead.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sane import procfs

__all__ = [
    "OWNER_LABEL",
    "ContainersUnavailable",
    "Engine",
    "EngineError",
    "Service",
    "find_engine",
    "owned_tempdir",
    "owner_token",
    "state_dir",
    "sweep",
    "sweep_dirs",
]

OWNER_LABEL = "sane.testing.owner"
# The temporary directories of the container fleet (keys, the podman service's socket,
# image builds): each holds OWNER_FILE with its owner's token.
TEMP_PREFIXES = ("sane-containers-", "sane-podman-", "sane-image-")
OWNER_FILE = ".sane-owner"
DOCKER_SOCKET = Path("/var/run/docker.sock")
PODMAN_PACKAGES = "podman runc slirp4netns uidmap"
EngineKind = Literal["docker", "podman"]


class ContainersUnavailable(Exception):
    """No container engine can run here; ``reason`` says exactly what is missing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EngineError(RuntimeError):
    """An engine command failed on a machine that can otherwise run containers."""


def state_dir() -> Path:
    """Where sane keeps podman's configuration and image store (``SANE_CONTAINERS_DIR``,
    default ``$XDG_CACHE_HOME/sane-containers`` or ``~/.cache/sane-containers``)."""
    explicit = os.environ.get("SANE_CONTAINERS_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sane-containers"


def _write_if_changed(path: Path, text: str) -> None:
    """Atomically replace ``path`` when its text differs (other processes read it)."""
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _podman_env() -> dict[str, str]:
    """The environment that points podman at sane's private configuration (written here)."""
    base = state_dir()
    for sub in ("storage", "run", "tmp"):
        (base / sub).mkdir(mode=0o700, parents=True, exist_ok=True)

    # Within this process's hard limits, and modest: here runc could not set nproc above
    # ~16k (even below the hard limit of 96363: "error setting rlimit type 6").
    def cap(kind: int, limit: int) -> int:
        hard = resource.getrlimit(kind)[1]
        return limit if hard == resource.RLIM_INFINITY else min(hard, limit)

    nofile = cap(resource.RLIMIT_NOFILE, 65536)
    nproc = cap(resource.RLIMIT_NPROC, 16384)

    _write_if_changed(
        base / "storage.conf",
        (
            "# written by sane.testing.engine: the container fleet's own image store\n"
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{base / "storage"}"\n'
            f'runroot = "{base / "run"}"\n'
        ),
    )
    _write_if_changed(
        base / "containers.conf",
        (
            "# written by sane.testing.engine: podman's defaults do not run on this kind of host\n"
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{base / "run" / "events.log"}"\n'
            'runtime = "runc"\n'
            f'tmp_dir = "{base / "tmp"}"\n'
        ),
    )
    return {
        **os.environ,
        "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
        "CONTAINERS_CONF": str(base / "containers.conf"),
    }


@dataclass
class Engine:
    """A container engine's command-line client (``docker`` or sane's podman)."""

    kind: EngineKind
    exe: str
    env: dict[str, str] = field(repr=False)
    docker_host: str | None = None  # the Docker engine's API, when kind is docker

    def run(
        self, *args: str, timeout: float = 120.0, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [self.exe, *args],
            env=self.env,
            capture_output=True,
            timeout=timeout,
            check=False,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )

    def must(self, *args: str, timeout: float = 120.0) -> str:
        proc = self.run(*args, timeout=timeout)
        if proc.returncode != 0:
            raise EngineError(
                f"{self.kind} {' '.join(args[:2])} failed ({proc.returncode}): "
                f"{proc.stderr.decode(errors='replace').strip()}"
            )
        return proc.stdout.decode(errors="replace")

    def image_id(self, ref: str) -> str | None:
        """The id of the image ``ref`` names, None when there is none."""
        proc = self.run("image", "inspect", "--format", "{{.Id}}", ref)
        if proc.returncode != 0:
            return None
        return proc.stdout.decode(errors="replace").strip() or None

    def image_exists(self, ref: str) -> bool:
        return self.image_id(ref) is not None


def _docker_engine() -> tuple[Engine | None, str]:
    """The Docker engine if one answers, else why not."""
    host = os.environ.get("DOCKER_HOST")
    if not host and not DOCKER_SOCKET.exists():
        return None, f"no Docker engine (DOCKER_HOST is unset and {DOCKER_SOCKET} is absent)"
    where = host or f"unix://{DOCKER_SOCKET}"
    try:
        import docker

        client = docker.DockerClient(base_url=where, timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # docker-py raises many kinds; all mean "not usable"
        return None, f"the Docker engine at {where} does not answer ({exc})"
    exe = shutil.which("docker")
    if exe is None:
        return None, f"a Docker engine answers at {where} but the docker CLI is not installed"
    return Engine("docker", exe, {**os.environ, "DOCKER_HOST": where}, where), ""


def _podman_engine() -> tuple[Engine | None, str]:
    exe = shutil.which("podman")
    if exe is None:
        return None, f"podman is not installed (apt-get install {PODMAN_PACKAGES})"
    if os.geteuid() != 0:
        return None, (
            "sane runs podman as root only (its private store and cgroupfs "
            f"setup are not rootless); euid is {os.geteuid()}"
        )
    if shutil.which("runc") is None:
        return None, "podman is installed but runc is not (apt-get install runc)"
    return Engine("podman", exe, _podman_env()), ""


def find_engine(kind: str | None = None) -> Engine:
    """The engine to use: ``kind`` or ``SANE_CONTAINER_ENGINE`` if set, else a Docker
    engine that answers, else podman. Raises :class:`ContainersUnavailable`."""
    wanted = kind or os.environ.get("SANE_CONTAINER_ENGINE") or None
    if wanted not in (None, "docker", "podman"):
        raise ContainersUnavailable(f"unknown container engine {wanted!r} (docker or podman)")
    reasons = []
    if wanted in (None, "docker"):
        engine, reason = _docker_engine()
        if engine is not None:
            return engine
        reasons.append(reason)
    if wanted in (None, "podman"):
        engine, reason = _podman_engine()
        if engine is not None:
            return engine
        reasons.append(reason)
    raise ContainersUnavailable("; ".join(reasons))


def _start_time(pid: int) -> str | None:
    started = procfs.field(pid, procfs.START_TIME)
    return None if started is None else str(started)


def owner_token(pid: int | None = None) -> str:
    """``pid:start-time`` of a process: unique even when PIDs are reused."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_time(pid)}"


def _owner_alive(token: str) -> bool:
    pid, _, started = token.partition(":")
    return pid.isdigit() and _start_time(int(pid)) == started


def labelled(engine: Engine, label: str) -> dict[str, str]:
    """Container id -> value of ``label`` for every container (running or not) that has it.

    Another test run sharing the engine may remove a container between the listing and
    the inspect (its sweep of a dead owner's fleet): then list again."""
    fmt = f'{{{{.Id}}}} {{{{index .Config.Labels "{label}"}}}}'
    for _ in range(10):
        ids = engine.must("ps", "-a", "-q", "--no-trunc", "--filter", f"label={label}").split()
        if not ids:
            return {}
        proc = engine.run("inspect", "--format", fmt, *ids)
        if proc.returncode == 0:
            return _label_values(proc.stdout.decode(errors="replace"))
        reason = proc.stderr.decode(errors="replace").strip()
        if "no such object" not in reason.lower() and "no such container" not in reason.lower():
            raise EngineError(f"{engine.kind} inspect failed ({proc.returncode}): {reason}")
    raise EngineError(f"{engine.kind} inspect: containers kept vanishing while listed")


def _label_values(out: str) -> dict[str, str]:
    found = {}
    for line in out.splitlines():
        cid, _, value = line.partition(" ")
        if cid:
            found[cid] = value
    return found


def remove(engine: Engine, ids: Sequence[str]) -> None:
    """Remove these containers at once, running or not (no grace period)."""
    if ids:
        proc = engine.run("rm", "-f", *(["-t", "0"] if engine.kind == "podman" else []), *ids)
        if proc.returncode != 0 and b"no such container" not in proc.stderr.lower():
            raise EngineError(
                f"{engine.kind} rm failed: {proc.stderr.decode(errors='replace').strip()}"
            )


def sweep(engine: Engine) -> list[str]:
    """Remove the containers of sane fleets whose owning process is gone; their ids."""
    dead = [cid for cid, owner in labelled(engine, OWNER_LABEL).items() if not _owner_alive(owner)]
    remove(engine, dead)
    return dead


def owned_tempdir(prefix: str) -> Path:
    """A fresh 0700 temporary directory (``prefix`` one of :data:`TEMP_PREFIXES`) that
    names its owner, so :func:`sweep_dirs` can remove it if the owner dies without
    cleaning up (SIGKILL: no ``finally``, no atexit)."""
    if prefix not in TEMP_PREFIXES:
        raise ValueError(f"unknown prefix {prefix!r} (one of {', '.join(TEMP_PREFIXES)})")
    path = Path(tempfile.mkdtemp(prefix=prefix))
    (path / OWNER_FILE).write_text(owner_token())
    return path


def sweep_dirs(root: Path | None = None) -> list[Path]:
    """Remove the owned temporary directories in ``root`` (default: the temporary
    directory) whose owner is gone; the paths removed. A directory without an owner file
    (someone else's, or one being made right now) is left alone."""
    base = root if root is not None else Path(tempfile.gettempdir())
    removed = []
    for prefix in TEMP_PREFIXES:
        for path in sorted(base.glob(prefix + "*")):
            try:
                token = (path / OWNER_FILE).read_text()
            except OSError:
                continue
            if not _owner_alive(token):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _pdeathsig() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Service:
    """The Docker-compatible API testcontainers talks to.

    For Docker, the engine's own socket. For podman, a private ``podman system service``
    on a socket in a fresh 0700 directory, started here and stopped by :meth:`close`.
    """

    def __init__(self, engine: Engine, ready_timeout: float = 30.0) -> None:
        self.engine = engine
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        if engine.kind == "docker":
            assert engine.docker_host is not None
            self.docker_host = engine.docker_host
            return
        self._dir = owned_tempdir("sane-podman-")
        socket_path = self._dir / "podman.sock"
        self.docker_host = f"unix://{socket_path}"
        log = self._dir / "service.log"
        try:
            with open(log, "wb") as err:
                self._proc = subprocess.Popen(
                    [engine.exe, "system", "service", "--time=0", self.docker_host],
                    env=engine.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    preexec_fn=_pdeathsig,
                )
            self._wait_ready(socket_path, log, ready_timeout)
        except BaseException:
            self.close()
            raise

    @property
    def directory(self) -> Path | None:
        """The private service's directory (its socket and log); None for Docker."""
        return self._dir

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _wait_ready(self, socket_path: Path, log: Path, timeout: float) -> None:
        import socket

        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ContainersUnavailable(
                    f"podman system service exited ({self._proc.returncode}): "
                    f"{log.read_text(errors='replace')[-800:].strip()}"
                )
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(str(socket_path))
                sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1."):
                    return
            if time.monotonic() >= deadline:
                raise EngineError(f"podman system service not answering after {timeout:g}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def close(self) -> None:
        """Stop the private service (a Docker engine is left alone); idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

"""A fleet of real containers for tests and the demo, started with testcontainers.

Beside the loopback fleet (:mod:`sane.testing.fleet`: the host's own sshd, so every host is
this Debian with bash), :class:`ContainerFleet` starts servers of other systems: Debian
with OpenSSH and a bash login shell (bookworm, trixie), and an Alpine-like busybox +
Dropbear image whose login shell is busybox ash, with busybox coreutils and no Python.
Each container is a server with its own hostname (its name), its own ed25519 host key
(made here, copied in before the start, and written to :attr:`ContainerFleet.known_hosts`
from that real key, so clients check it), its own ``/root`` and login shell, and its
sshd reachable on ``127.0.0.1`` only (port 22 published on loopback from the container's
own network namespace; never podman's default bridge).

The engine is a Docker engine that answers or a private podman service
(:mod:`sane.testing.engine`); images come from ``containers/build-images``
(:mod:`sane.testing.images`). Containers carry the owner label: :meth:`close` removes them
(also at exit), and the next fleet's :func:`~sane.testing.engine.sweep` and
:func:`~sane.testing.engine.sweep_dirs` remove the containers and files of a process that
died. Raises :class:`ContainersUnavailable` with the exact reason when no
engine can run here or an image is not built.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import re
import shutil
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sane.testing.engine import (
    OWNER_LABEL,
    ContainersUnavailable,
    EngineError,
    Service,
    find_engine,
    labelled,
    owned_tempdir,
    owner_token,
    remove,
    sweep,
    sweep_dirs,
)
from sane.testing.fleet import SshFleetBase, _answering, _free_port, _keygen
from sane.testing.images import IMAGES, reference

__all__ = [
    "FLEET_LABEL",
    "ContainerFleet",
    "ContainerServer",
    "ContainersUnavailable",
    "EngineError",
    "Network",
]

FLEET_LABEL = "sane.testing.fleet"
Network = Literal["published", "host"]
_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
_live: weakref.WeakSet[ContainerFleet] = weakref.WeakSet()
_fleet_ids = itertools.count(1)
# testcontainers logs each pull/start at INFO on the root logger's handlers: keep it quiet.
logging.getLogger("testcontainers").setLevel(logging.WARNING)


@atexit.register
def _close_live_fleets() -> None:
    for fleet in list(_live):
        fleet.close()


@dataclass
class ContainerServer:
    """One container of a fleet: reach it with ``ssh -p PORT root@127.0.0.1``."""

    name: str
    image: str
    login_shell: str
    host: str = "127.0.0.1"
    port: int = 0
    container_id: str = ""
    host_key_pub: str = field(default="", repr=False)

    @property
    def known_hosts_name(self) -> str:
        return f"[{self.host}]:{self.port}"


class ContainerFleet(SshFleetBase[ContainerServer]):
    """``count`` containers of ``image`` (or one per entry of ``images``); ``close`` it.

    ``images`` names entries of :data:`sane.testing.images.IMAGES`; servers are named
    PREFIX1, PREFIX2, ... per image (``deb1``, ``bb1``, ``trixie1``) unless ``names``
    gives one name (and hostname) per server. ``service`` shares one
    engine connection between fleets (the pytest fixtures do); without it the fleet starts
    and stops its own. ``network="published"`` (default) gives each container its own
    network namespace with port 22 published on 127.0.0.1 (podman: slirp4netns; Docker: its
    bridge); ``"host"`` shares the host's network with sshd bound to 127.0.0.1:PORT.
    """

    def __init__(
        self,
        count: int = 0,
        image: str = "debian",
        *,
        images: Sequence[str] | None = None,
        names: Sequence[str] | None = None,
        service: Service | None = None,
        network: Network = "published",
        ready_timeout: float = 60.0,
    ) -> None:
        wanted = list(images) if images is not None else [image] * count
        if not wanted:
            raise ValueError("a container fleet needs at least one server")
        if names is not None and (
            len(names) != len(wanted)
            or len(set(names)) != len(names)
            or not all(_NAME.fullmatch(n) for n in names)
        ):
            raise ValueError("names: one distinct hostname-like name per server")
        unknown = sorted({name for name in wanted if name not in IMAGES})
        if unknown:
            raise ValueError(f"unknown image {', '.join(unknown)} (known: {', '.join(IMAGES)})")
        if network not in ("published", "host"):
            raise ValueError(f"unknown network {network!r} (published or host)")
        self.network: Network = network
        self.ready_timeout = ready_timeout
        self.fleet_id = f"{os.getpid()}-{next(_fleet_ids)}"
        self._own_service = service is None
        self.service = service if service is not None else Service(find_engine())
        self.engine = self.service.engine
        self._closed = False
        self._servers: dict[str, ContainerServer] = {}
        self.base = owned_tempdir("sane-containers-")
        _live.add(self)
        try:
            refs = {name: reference(IMAGES[name]) for name in set(wanted)}
            missing = [ref for ref in refs.values() if not self.engine.image_exists(ref)]
            if missing:
                raise ContainersUnavailable(
                    f"image {', '.join(sorted(missing))} is not built in the "
                    f"{self.engine.kind} store: run containers/build-images"
                )
            counters: dict[str, int] = {}
            for index, name in enumerate(wanted):
                spec = IMAGES[name]
                counters[spec.prefix] = counters.get(spec.prefix, 0) + 1
                server_name = (
                    names[index] if names is not None else f"{spec.prefix}{counters[spec.prefix]}"
                )
                server = ContainerServer(server_name, name, spec.login_shell)
                self._servers[server.name] = server
            self._start(refs)
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- public API

    def exec(self, name: str, *argv: str, timeout: float = 60.0) -> str:
        """Run ``argv`` in the container, beside sshd (not over ssh): what it printed.

        For out-of-band checks of what a test did over ssh."""
        return self.engine.must("exec", self.server(name).container_id, *argv, timeout=timeout)

    def container_ids(self) -> list[str]:
        """Ids of this fleet's containers as the engine lists them now (by label)."""
        return list(labelled_fleet(self))

    def close(self) -> None:
        """Remove every container of the fleet (by its label), its own service, its files."""
        if self._closed:
            return
        self._closed = True
        try:
            with contextlib.suppress(EngineError, OSError):
                remove(
                    self.engine, [s.container_id for s in self._servers.values() if s.container_id]
                )
            remove(self.engine, list(labelled_fleet(self)))
        finally:
            if self._own_service:
                self.service.close()
            shutil.rmtree(self.base, ignore_errors=True)
            _live.discard(self)

    def __repr__(self) -> str:
        state = (
            "closed"
            if self._closed
            else ", ".join(f"{s.name}={s.image}" for s in self._servers.values())
        )
        return f"<ContainerFleet {self.engine.kind} {state}>"

    # ----------------------------------------------------------------- setup

    def _start(self, refs: dict[str, str]) -> None:
        (self.base / "client").mkdir(mode=0o700)
        keys_dir = self.base / "keys"
        keys_dir.mkdir(mode=0o700)
        _keygen(
            [(self.client_key, "sane-container-fleet-client")]
            + [(keys_dir / s.name, f"{s.name}-host") for s in self._servers.values()]
        )
        client_pub = self.client_key.with_name("id_ed25519.pub").read_bytes()
        sweep(self.engine)  # containers of fleets whose process died, and their files
        sweep_dirs()
        with ThreadPoolExecutor(max_workers=min(8, len(self._servers))) as pool:
            for future in [
                pool.submit(self._start_one, s, refs[s.image], keys_dir, client_pub)
                for s in self._servers.values()
            ]:
                future.result()
        self._wait_ready()
        self.known_hosts.write_text(
            "".join(f"{s.known_hosts_name} {s.host_key_pub}\n" for s in self._servers.values())
        )
        self._write_ssh_config()

    def _start_one(
        self, server: ContainerServer, ref: str, keys_dir: Path, client_pub: bytes
    ) -> None:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer

        testcontainers_config.ryuk_disabled = True  # its image needs a registry; we sweep
        host_key = keys_dir / server.name
        server.host_key_pub = " ".join(
            host_key.with_name(server.name + ".pub").read_text().split()[:2]
        )
        kwargs: dict[str, Any] = {
            "hostname": server.name,
            "labels": {
                OWNER_LABEL: owner_token(),
                FLEET_LABEL: self.fleet_id,
                "sane.testing.server": server.name,
            },
            # a "network" key keeps testcontainers from guessing one; we set the mode
            "network": None,
        }
        container = DockerContainer(
            ref, docker_client_kw={"environment": {"DOCKER_HOST": self.service.docker_host}}
        )
        if self.network == "host":
            server.port = _free_port(set())
            kwargs["network_mode"] = "host"
            container.with_env("SSH_LISTEN", "127.0.0.1").with_env("SSH_PORT", str(server.port))
        else:
            kwargs["network_mode"] = "slirp4netns" if self.engine.kind == "podman" else "bridge"
            container.ports["22/tcp"] = ("127.0.0.1",)  # type: ignore[assignment]
        container.with_kwargs(**kwargs)
        # The seed goes in as a read-only bind mount: copying it in before the start
        # (put_archive) failed now and then under podman 4.3 ("write |1: broken pipe").
        seed = self.base / "seed" / server.name
        seed.mkdir(mode=0o700, parents=True)
        (seed / "host_key").write_bytes(host_key.read_bytes())
        (seed / "host_key").chmod(0o600)
        (seed / "authorized_keys").write_bytes(client_pub)
        container.with_volume_mapping(str(seed), "/sane-seed", "ro")
        try:
            container.start()
        except Exception as exc:  # docker-py's APIError and friends; close() sweeps by label
            raise EngineError(
                f"container {server.name} ({server.image}) did not start: {exc}"
            ) from exc
        wrapped = container.get_wrapped_container()
        server.container_id = str(wrapped.id)
        if self.network == "published":
            wrapped.reload()
            bindings = wrapped.attrs["NetworkSettings"]["Ports"]["22/tcp"]
            found = [b for b in bindings or [] if b.get("HostIp") == "127.0.0.1"]
            if len(found) != len(bindings or []) or not found:
                raise EngineError(
                    f"{server.name}: port 22 is published beyond 127.0.0.1: {bindings}"
                )
            server.port = int(found[0]["HostPort"])

    def _wait_ready(self) -> None:
        pending = list(self._servers.values())
        deadline = time.monotonic() + self.ready_timeout
        delay = 0.01
        while pending:
            for server in _answering(pending):
                pending.remove(server)
            if not pending:
                return
            for server in pending:
                state = self.engine.must(
                    "inspect", "--format", "{{.State.Status}}", server.container_id
                ).strip()
                if state not in ("running", "created"):
                    logs = self.engine.run("logs", server.container_id)
                    raise EngineError(
                        f"container {server.name} ({server.image}) is {state}: "
                        f"{(logs.stdout + logs.stderr).decode(errors='replace')[-800:]}"
                    )
            if time.monotonic() >= deadline:
                raise EngineError(
                    f"{', '.join(s.name for s in pending)} not answering ssh "
                    f"after {self.ready_timeout:g}s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def labelled_fleet(fleet: ContainerFleet) -> dict[str, str]:
    """The engine's containers carrying this fleet's label (id -> fleet id)."""
    return {
        cid: value
        for cid, value in labelled(fleet.engine, FLEET_LABEL).items()
        if value == fleet.fleet_id
    }

"""``sane demo --containers``: the demo's servers as real containers of other systems.

The same story as the loopback demo on a mixed fleet started with testcontainers
(:class:`sane.testing.containers.ContainerFleet`): ``server1`` Debian 12 with OpenSSH
and bash, ``server2`` busybox ash behind Dropbear (no Python, busybox coreutils),
``server3`` Debian 13 with bash. Each container's hostname is its server name, so the
story's first run tells them apart by ``hostname``. Needs a Docker engine or podman and
the images of ``containers/build-images``; where they are missing, a usage error says
exactly what is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sane import errors
from sane.fleet.registry import Server

if TYPE_CHECKING:
    from sane.testing.containers import ContainerFleet

IMAGES = ["debian", "busybox", "debian-trixie"]
_fleets: dict[Path, ContainerFleet] = {}


def start(base: Path, names: list[str]) -> tuple[list[Server], list[str]]:
    """Start one container per name; the registry entries and a line on each server."""
    from sane.testing.containers import ContainerFleet, ContainersUnavailable, EngineError
    from sane.testing.fleet import registry_entries

    images = [IMAGES[i % len(IMAGES)] for i in range(len(names))]
    try:
        fleet = ContainerFleet(images=images, names=names)
    except ContainersUnavailable as exc:
        raise errors.UsageError(
            f"sane demo --containers needs a Docker engine or podman with sane's images: "
            f"{exc.reason}",
            missing=exc.reason,
        ) from None
    except EngineError as exc:
        raise errors.ConnectionFailed(f"the demo's containers did not start: {exc}") from None
    _fleets[base] = fleet
    servers = [
        entry.model_copy(update={"tags": ["demo", s.image]})
        for entry, s in zip(registry_entries(fleet), fleet.servers, strict=True)
    ]
    lines = [
        f"{s.name}: {s.image} container {s.container_id[:12]}, login shell "
        f"{s.login_shell}, ssh root@127.0.0.1 -p {s.port}"
        for s in fleet.servers
    ]
    return servers, lines


def stop(base: Path) -> list[str]:
    """Remove the containers (and the engine service) of the fleet started for ``base``."""
    fleet = _fleets.pop(base, None)
    if fleet is None:
        return []
    fleet.close()
    return fleet.names

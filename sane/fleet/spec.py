"""What the fleet layer needs to know of a server, without pydantic.

``Server`` (sane.fleet.registry) is the validated pydantic model every change to
servers.json goes through. Running on servers that are already validated must not pay
for importing pydantic (~150 ms here, more than a whole warm fleet run), so the
functions on that path take any object with these read-only fields (``ServerLike``):
a ``Server``, or a ``ServerSpec`` built from servers.json bytes that were validated
before (see ``sane.fleet.quick``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:

    class ServerLike(Protocol):
        @property
        def name(self) -> str: ...
        @property
        def host(self) -> str: ...
        @property
        def port(self) -> int | None: ...
        @property
        def user(self) -> str | None: ...
        @property
        def identity_file(self) -> str | None: ...
        @property
        def extra_identity_files(self) -> Sequence[str]: ...
        @property
        def ssh_options(self) -> Mapping[str, str]: ...
        @property
        def tags(self) -> Sequence[str]: ...
        @property
        def health_path(self) -> str: ...

else:
    # Only the type checker needs the protocol; creating it (and a NamedTuple below)
    # at every start costs ~3 ms, a tenth of a warm fleet run.
    ServerLike = object


class ServerSpec:
    """A server entry of a servers.json already validated by ``Server``; an unknown
    field is a TypeError, as for any keyword the constructor does not take."""

    __slots__ = (
        "extra_identity_files",
        "health_path",
        "host",
        "identity_file",
        "name",
        "port",
        "ssh_options",
        "tags",
        "user",
    )

    def __init__(
        self,
        name: str,
        host: str,
        port: int | None,
        user: str | None,
        identity_file: str | None,
        ssh_options: Mapping[str, str],
        tags: Sequence[str],
        health_path: str,
        extra_identity_files: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.user = user
        self.identity_file = identity_file
        self.extra_identity_files = extra_identity_files
        self.ssh_options = ssh_options
        self.tags = tags
        self.health_path = health_path

    def __repr__(self) -> str:
        return f"ServerSpec(name={self.name!r}, host={self.host!r}, port={self.port!r})"

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
from typing import NamedTuple, Protocol


class ServerLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def user(self) -> str | None: ...
    @property
    def identity_file(self) -> str | None: ...
    @property
    def ssh_options(self) -> Mapping[str, str]: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def health_path(self) -> str: ...


class ServerSpec(NamedTuple):
    """A server entry of a servers.json already validated by ``Server``."""

    name: str
    host: str
    port: int
    user: str | None
    identity_file: str | None
    ssh_options: Mapping[str, str]
    tags: Sequence[str]
    health_path: str

"""servers.json: the fleet's registry, validated, locked, written atomically.

Why so careful: many sane processes (parallel CLI calls from an agent, a watcher)
read and change the registry at once. Every change is read-modify-write under an
exclusive ``flock`` on a side lock file, written to a temp file, fsynced and renamed,
so 50 concurrent ``sane server add`` give 50 entries and a crash never leaves half a
file. The registry holds no secret by construction: keys are referenced by path, and
ssh options are an allow-list (``sane.fleet.ssh.ALLOWED_OPTIONS``): nothing that runs a
local program, forwards anything or sends local data can be stored.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from sane import errors
from sane.paths import private_dir, sane_home
from sane.state import file_lock, write_atomic
from sane.strict import Strict

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


# Where a server keeps its health.json unless registered otherwise.
HEALTH_PATH = "~/.sane/health.json"


class Server(Strict):
    """One server as the registry stores it."""

    name: str = Field(pattern=NAME_PATTERN)
    host: str = Field(min_length=1, max_length=255)
    # None: ssh's own choice (the user's config for that host, else 22).
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$")
    identity_file: str | None = None
    # Further keys offered after identity_file, in order (an ssh config's several
    # IdentityFile lines, as imported).
    extra_identity_files: list[str] = Field(default_factory=list)
    ssh_options: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    health_path: str = HEALTH_PATH

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if value.startswith("-") or any(c.isspace() or c in "'\"`$;&|<>\\" for c in value):
            raise ValueError("must be a hostname or address (no spaces, quotes or leading '-')")
        return value

    @field_validator("extra_identity_files")
    @classmethod
    def _extra_keys(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if value and not info.data.get("identity_file"):
            raise ValueError("further key files need identity_file first")
        if any(not key or any(c in key for c in "\n\r\0") for key in value):
            raise ValueError("a key file path is empty or holds a line break or NUL")
        return value

    @field_validator("ssh_options")
    @classmethod
    def _options(cls, value: dict[str, str]) -> dict[str, str]:
        from sane.fleet.ssh import check_option

        checked: dict[str, str] = {}
        for key, item in value.items():
            name = check_option(key, item)
            if name in checked:
                raise ValueError(f"option {name} is given twice")
            checked[name] = item
        return checked

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not re.fullmatch(NAME_PATTERN, tag):
                raise ValueError(f"tag {tag!r} must match {NAME_PATTERN}")
        return sorted(set(value))


class RegistryFile(Strict):
    version: Literal[1] = 1
    servers: list[Server] = Field(default_factory=list)

    @field_validator("servers")
    @classmethod
    def _unique(cls, value: list[Server]) -> list[Server]:
        seen: set[str] = set()
        for server in value:
            if server.name in seen:
                raise ValueError(f"server {server.name!r} appears twice")
            seen.add(server.name)
        return value


class Registry:
    """The registry under ``home`` (``$SANE_HOME`` by default)."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or sane_home()
        self.path = self.home / "servers.json"

    # -- reading ---------------------------------------------------------------------

    def load(self) -> RegistryFile:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return RegistryFile()
        except OSError as exc:
            raise errors.StateError(
                f"cannot read {self.path}: {exc.strerror}", path=str(self.path)
            ) from exc
        registry = parse_registry(raw, str(self.path))
        if raw == _serialize(registry):
            self._stamp(raw)
        return registry

    def _stamp(self, raw: bytes) -> None:
        """Keep a copy of bytes just validated (see ``sane.fleet.quick``). Only the
        form sane itself writes is kept, so a kept entry has every field."""
        from sane.fleet.quick import STAMP_SUFFIX

        stamp = self.path.with_name(self.path.name + STAMP_SUFFIX)
        try:
            if stamp.read_bytes() == raw:
                return
        except OSError:
            pass
        with contextlib.suppress(errors.StateError):  # a read-only home: just no copy
            write_atomic(stamp, raw)

    def servers(self) -> list[Server]:
        return self.load().servers

    def get(self, name: str) -> Server:
        for server in self.load().servers:
            if server.name == name:
                return server
        raise errors.ServerNotFound(f"no server named {name!r} in {self.path}", server=name)

    def select(
        self, names: list[str] | None = None, tag: str | None = None, all_servers: bool = False
    ) -> list[Server]:
        """Servers by name (in the order given), by tag, or all of them. The one
        selection rule of every fleet command (CLI, MCP, deploy): an unknown name is
        ``server_not_found``; a choice that leaves no server is ``no_servers_selected``
        naming what was asked, never a command that quietly does nothing."""
        servers = self.load().servers
        if names:
            by_name = {s.name: s for s in servers}
            missing = [n for n in names if n not in by_name]
            if missing:
                raise errors.ServerNotFound(
                    f"no server named {', '.join(missing)}", servers=missing
                )
            return [by_name[n] for n in names]
        if tag is not None:
            tagged = [s for s in servers if tag in s.tags]
            if not tagged:
                known = sorted({t for s in servers for t in s.tags})
                raise errors.NoServersSelected(
                    f"no server has the tag {tag!r} in {self.path}"
                    + (f" (tags in use: {', '.join(known)})" if known else " (no tags in use)"),
                    tag=tag,
                    tags=known,
                )
            return tagged
        if all_servers:
            if not servers:
                raise errors.NoServersSelected(
                    f"no servers selected: {self.path} has no servers (sane server add)",
                    tag=None,
                    tags=[],
                )
            return servers
        raise errors.UsageError("name servers, or use --tag or --all (MCP: servers, tag, all)")

    # -- changing --------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[RegistryFile]:
        """Read-modify-write: yields the current registry; saves it if no exception."""
        private_dir(self.home)
        with file_lock(self.path):
            registry = self.load()
            yield registry
            data = _serialize(registry)
            write_atomic(self.path, data)
            self._stamp(data)

    def add(self, server: Server, replace: bool = False) -> Server:
        with self.locked() as registry:
            existing = [s for s in registry.servers if s.name == server.name]
            if existing and not replace:
                raise errors.ServerExists(
                    f"server {server.name!r} already exists (use --replace; MCP: replace)",
                    server=server.name,
                )
            registry.servers = [s for s in registry.servers if s.name != server.name]
            registry.servers.append(server)
        return server

    def remove(self, name: str) -> Server:
        with self.locked() as registry:
            for server in registry.servers:
                if server.name == name:
                    registry.servers.remove(server)
                    return server
        raise errors.ServerNotFound(f"no server named {name!r}", server=name)


def select_servers(
    home: Path | None, names: Iterable[str] | None, tag: str | None, all_servers: bool
) -> list[Server]:
    """What ``--servers``/``--tag``/``--all`` (or the MCP ``servers``/``tag``/``all``)
    choose: the servers named, else those with ``tag``, else every server when nothing
    narrows the choice (see ``Registry.select`` for what an empty choice gives, and
    ``sane.fleet.selection`` for an empty list of names)."""
    from sane.fleet.selection import narrow

    picked, every = narrow(names, tag, all_servers)
    return Registry(home).select(picked or None, tag, every)


def _serialize(registry: RegistryFile) -> bytes:
    return (json.dumps(registry.model_dump(mode="json"), indent=2) + "\n").encode()


def parse_registry(raw: bytes, source: str) -> RegistryFile:
    """Validate servers.json; errors name the line or the field."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise errors.ConfigInvalid(
            f"{source}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            path=source,
            line=exc.lineno,
            column=exc.colno,
        ) from None
    except UnicodeDecodeError as exc:
        raise errors.ConfigInvalid(f"{source}: not UTF-8 text", path=source) from exc
    try:
        return RegistryFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise errors.ConfigInvalid(
            f"{source}: {field}: {first['msg']}",
            path=source,
            field=field,
            problems=[
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()
            ],
        ) from None

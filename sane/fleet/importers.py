"""Import servers from where users already keep them: OpenSSH config, Ansible inventory.

Only concrete hosts are imported (``Host`` patterns with ``*``, ``?`` or ``!`` are
defaults, not servers). Anything that does not fit the registry's rules (a password,
a ProxyCommand) is reported per host instead of failing the whole import.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pydantic import ValidationError

from sane import errors
from sane.fleet.registry import Server

_SSH_FIELDS = {"hostname": "host", "port": "port", "user": "user", "identityfile": "identity_file"}


class Imported:
    def __init__(self) -> None:
        self.servers: list[Server] = []
        self.skipped: list[dict[str, str]] = []

    def add(self, name: str, values: dict[str, Any]) -> None:
        try:
            self.servers.append(Server.model_validate({"name": name, **values}))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "server"
            self.skipped.append({"name": name, "reason": f"{field}: {first['msg']}"})


def from_ssh_config(text: str) -> Imported:
    """``Host`` blocks of an OpenSSH client config (no ``Include`` or ``Match``)."""
    result = Imported()
    blocks: list[tuple[list[str], dict[str, Any]]] = []
    current: dict[str, Any] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"(\S+?)\s*(?:=\s*|\s+)(.*)$", line)
        if match is None:
            raise errors.ConfigInvalid(f"ssh config line {number}: cannot parse {line!r}",
                                       line=number)
        key, value = match.group(1).lower(), match.group(2).strip()
        if key == "host":
            current = {"ssh_options": {}}
            blocks.append((shlex.split(value), current))
        elif key == "match":
            current = None  # conditional blocks are not servers
        elif current is not None:
            value = value.strip('"')
            field = _SSH_FIELDS.get(key)
            if field is not None:
                current[field] = value
            else:
                current["ssh_options"][match.group(1)] = value
    for patterns, values in blocks:
        for pattern in patterns:
            if any(c in pattern for c in "*?!"):
                continue
            entry = dict(values, ssh_options=dict(values["ssh_options"]))
            entry.setdefault("host", pattern)
            result.add(pattern, entry)
    return result


def _ansible_values(name: str, hostvars: dict[str, Any], tags: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {"host": str(hostvars.get("ansible_host", name)), "tags": tags}
    if "ansible_port" in hostvars:
        values["port"] = int(hostvars["ansible_port"])
    if "ansible_user" in hostvars:
        values["user"] = str(hostvars["ansible_user"])
    key = hostvars.get("ansible_ssh_private_key_file") or hostvars.get("ansible_private_key_file")
    if key:
        values["identity_file"] = str(key)
    if any(k in hostvars for k in ("ansible_password", "ansible_ssh_pass", "ansible_become_pass")):
        raise ValueError("holds a password; sane stores keys only")
    return values


def from_ansible_inventory(text: str) -> Imported:
    """An Ansible inventory, INI or YAML; groups become tags."""
    stripped = text.lstrip()
    if stripped.startswith(("all:", "---")) or re.match(r"^[\w-]+:\s*$", stripped.split("\n")[0]):
        return _ansible_yaml(text)
    return _ansible_ini(text)


def _collect(result: Imported, hosts: dict[str, tuple[dict[str, Any], list[str]]]) -> Imported:
    for name, (hostvars, tags) in hosts.items():
        try:
            values = _ansible_values(name, hostvars, sorted(set(tags)))
        except (ValueError, TypeError) as exc:
            result.skipped.append({"name": name, "reason": str(exc)})
            continue
        result.add(name, values)
    return result


def _ansible_ini(text: str) -> Imported:
    hosts: dict[str, tuple[dict[str, Any], list[str]]] = {}
    group_vars: dict[str, dict[str, str]] = {}
    group = "ungrouped"
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        section = re.fullmatch(r"\[([^\]]+)\]", line)
        if section:
            group = section.group(1)
            continue
        if group.endswith(":children"):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise errors.ConfigInvalid(f"inventory line {number}: {exc}", line=number) from exc
        if group.endswith(":vars"):
            key, _, value = line.partition("=")
            group_vars.setdefault(group[:-5], {})[key.strip()] = value.strip()
            continue
        name, pairs = words[0], words[1:]
        hostvars, tags = hosts.setdefault(name, ({}, []))
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise errors.ConfigInvalid(f"inventory line {number}: expected key=value, "
                                           f"got {pair!r}", line=number)
            hostvars[key] = value
        if group not in ("ungrouped", "all"):
            tags.append(group)
    for hostvars, tags in hosts.values():
        for tag in tags:
            for key, value in group_vars.get(tag, {}).items():
                hostvars.setdefault(key, value)
    return _collect(Imported(), hosts)


def _ansible_yaml(text: str) -> Imported:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise errors.ConfigInvalid(f"inventory is not valid YAML (line {line}): {exc}",
                                   line=line) from None
    if not isinstance(data, dict):
        raise errors.ConfigInvalid("inventory YAML must be a mapping of groups")
    hosts: dict[str, tuple[dict[str, Any], list[str]]] = {}

    def walk(group: str, body: Any, inherited: dict[str, Any]) -> None:
        if not isinstance(body, dict):
            return
        gvars = {**inherited, **(body.get("vars") or {})}
        for name, hvars in (body.get("hosts") or {}).items():
            hostvars, tags = hosts.setdefault(str(name), ({}, []))
            for key, value in gvars.items():
                hostvars.setdefault(key, value)
            hostvars.update(hvars or {})
            if group not in ("all", "ungrouped"):
                tags.append(group)
        for child, child_body in (body.get("children") or {}).items():
            walk(str(child), child_body, gvars)

    for group, body in data.items():
        walk(str(group), body, {})
    return _collect(Imported(), hosts)

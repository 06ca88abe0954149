"""Import servers from where users already keep them: OpenSSH config, Ansible inventory.

An ssh config is read as ssh itself reads it: each concrete host is resolved with
``ssh -G`` (``Host *`` defaults, ``Include``, ``Match``, ``%h`` tokens, several
``IdentityFile`` lines), and only what the file sets is kept (values equal to ssh's own
defaults are left to ssh). ``Host`` patterns (``*``, ``?``, ``!``) and ``Match`` blocks
are defaults, not servers: they are listed in ``skipped`` with the reason. Anything that
does not fit the registry's rules (a password, a ProxyCommand, a RemoteCommand, an
option off the allow-list) is reported per host or per option instead of failing the
whole import.
"""
from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sane import errors
from sane.fleet.registry import Server

# ssh -G keywords that make a host unusable by sane (it runs its own shell session,
# and never runs a local program to connect): the host is skipped, saying which.
_HOST_REFUSED = {
    "remotecommand": "RemoteCommand replaces the login shell sane drives (it runs its own "
                     "session)",
    "proxycommand": "ProxyCommand runs a local program: use ProxyJump",
}
# The entry's own fields, read from ssh -G apart from the options (``host`` is the alias).
_FIELD_KEYWORDS = {"host", "hostname", "port", "user", "identityfile"}
# What ssh -G prints for a yes/no of StrictHostKeyChecking, as the config spells it.
_SPELLING = {"stricthostkeychecking": {"true": "yes", "false": "no"}}
_INCLUDE_DEPTH = 16  # ssh's own limit on nested Include


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


def _config_lines(path: Path, depth: int = 0) -> Iterator[tuple[Path, int, str, str]]:
    """(file, line number, keyword in lower case, value) of an ssh config and of the
    files it ``Include``s, in ssh's order (relative includes are under ~/.ssh)."""
    if depth > _INCLUDE_DEPTH:
        raise errors.ConfigInvalid(f"{path}: Include nested more than {_INCLUDE_DEPTH} deep",
                                   path=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.ConfigInvalid(f"cannot read ssh config {path}: {exc}",
                                   path=str(path)) from None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"(\S+?)\s*(?:=\s*|\s+)(.*)$", line)
        if match is None:
            raise errors.ConfigInvalid(f"{path} line {number}: cannot parse {line!r}",
                                       path=str(path), line=number)
        key, value = match.group(1).lower(), match.group(2).strip()
        yield path, number, key, value
        if key == "include":
            for word in shlex.split(value):
                pattern = os.path.expanduser(word)
                if not os.path.isabs(pattern):
                    pattern = os.path.join(os.path.expanduser("~/.ssh"), pattern)
                for included in sorted(glob.glob(pattern)):
                    yield from _config_lines(Path(included), depth + 1)


def _ssh_g(config: str, name: str) -> dict[str, list[str]]:
    """What ``ssh -G -F config name`` resolves, keyword -> values (ssh's own words on
    failure, as ValueError)."""
    proc = subprocess.run(["ssh", "-G", "-F", config, "--", name], capture_output=True,
                          text=True, errors="replace", timeout=30,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        from sane.fleet.ssh import meaningful_lines

        said = "; ".join(meaningful_lines(proc.stderr)) or f"status {proc.returncode}"
        raise ValueError(f"ssh -G refuses it: {said}")
    values: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key:
            values.setdefault(key, []).append(value)
    return values


def _entry(name: str, resolved: dict[str, list[str]], default: dict[str, list[str]],
           skipped: list[dict[str, str]]) -> dict[str, Any]:
    """The registry fields of a host as ssh resolved it: what differs from ssh's own
    defaults (``default``); options sane cannot keep go to ``skipped``."""
    from sane.fleet.ssh import ALLOWED_OPTIONS, sane_owned

    for key, why in _HOST_REFUSED.items():
        if resolved.get(key, ["none"]) != default.get(key, ["none"]):
            raise ValueError(why)
    values: dict[str, Any] = {"host": resolved["hostname"][0], "ssh_options": {}}
    if resolved.get("port") != default.get("port"):
        values["port"] = int(resolved["port"][0])
    if resolved.get("user") != default.get("user"):
        values["user"] = resolved["user"][0]
    keys = resolved.get("identityfile", [])
    if keys != default.get("identityfile", []):
        values["identity_file"], values["extra_identity_files"] = keys[0], keys[1:]
    by_lower = {option.lower(): option for option in ALLOWED_OPTIONS}
    for key, found in resolved.items():
        if key in _FIELD_KEYWORDS or found == default.get(key):
            continue
        option = by_lower.get(key)
        if option is None or len(found) > 1:
            why = ("set by sane itself" if sane_owned(key) else
                   "given more than once" if option is not None else
                   "not on sane's allow-list of ssh options (docs/security.md)")
            skipped.append({"name": name, "option": key,
                            "reason": f"option {key} {' '.join(found)!r} not imported: {why}"})
            continue
        value = found[0]
        values["ssh_options"][option] = _SPELLING.get(key, {}).get(value, value)
    return values


def from_ssh_config(path: str | os.PathLike[str]) -> Imported:
    """The concrete hosts of an OpenSSH client config, each as ``ssh -G`` resolves it."""
    result = Imported()
    config = Path(path)
    names: list[str] = []
    for source, number, key, value in _config_lines(config):
        if key == "match":
            if re.search(r"(^|\s)!?exec(\s|=|$)", value, re.IGNORECASE):
                raise errors.InvalidArgument(
                    f"{source} line {number}: Match exec runs a local command whenever ssh "
                    "resolves a host: sane does not import such a file", path=str(source),
                    line=number)
            result.skipped.append({"name": f"Match {value}",
                                   "reason": "a Match block: conditions, not a server"})
        elif key == "host":
            for pattern in shlex.split(value):
                if any(c in pattern for c in "*?!"):
                    result.skipped.append({
                        "name": pattern, "reason": "a Host pattern: defaults for the hosts it "
                        "matches (they are imported with them), not a server"})
                elif pattern not in names:
                    names.append(pattern)
    try:
        default = _ssh_g("none", "sane-import-defaults")
    except FileNotFoundError as exc:
        raise errors.ConnectionFailed("ssh is not installed") from exc
    except ValueError as exc:
        raise errors.InvalidArgument(str(exc)) from None
    for name in names:
        try:
            resolved = _ssh_g(str(config), name)
            default["hostname"] = [name]
            values = _entry(name, resolved, default, result.skipped)
        except ValueError as exc:
            result.skipped.append({"name": name, "reason": str(exc)})
            continue
        result.add(name, values)
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

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

from sane import bounded, errors
from sane.fleet.registry import Server

# ssh -G keywords that make a host unusable by sane (it runs its own shell session,
# and never runs a local program to connect): the host is skipped, saying which.
_HOST_REFUSED = {
    "remotecommand": "RemoteCommand replaces the login shell sane drives (it runs its own session)",
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
        raise errors.ConfigInvalid(
            f"{path}: Include nested more than {_INCLUDE_DEPTH} deep", path=str(path)
        )
    try:  # bounded: a regular file (a FIFO or /dev/zero refused at once), 4 MiB
        text = bounded.read_text(str(path), "ssh config")
    except errors.InvalidArgument as exc:
        raise errors.ConfigInvalid(
            f"cannot read ssh config: {exc.message}", **{**exc.details, "path": str(path)}
        ) from None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"(\S+?)\s*(?:=\s*|\s+)(.*)$", line)
        if match is None:
            raise errors.ConfigInvalid(
                f"{path} line {number}: cannot parse {line!r}", path=str(path), line=number
            )
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
    proc = subprocess.run(
        ["ssh", "-G", "-F", config, "--", name],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
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


def _entry(
    name: str,
    resolved: dict[str, list[str]],
    default: dict[str, list[str]],
    skipped: list[dict[str, str]],
) -> dict[str, Any]:
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
            why = (
                "set by sane itself"
                if sane_owned(key)
                else "given more than once"
                if option is not None
                else "not on sane's allow-list of ssh options (docs/security.md)"
            )
            skipped.append(
                {
                    "name": name,
                    "option": key,
                    "reason": f"option {key} {' '.join(found)!r} not imported: {why}",
                }
            )
            continue
        value = found[0]
        values["ssh_options"][option] = _SPELLING.get(key, {}).get(value, value)
    return values


# What a jump hop needs from a config to be the same host at connect time.
_HOP_FIELDS = ("hostname", "port", "user", "identityfile")
_HOP = re.compile(r"(?:(?P<user>[^@]+)@)?(?P<host>\[[^\]]+\]|[^:]+)(?::(?P<port>[0-9]+))?")


def _portable_jump(config: Path, name: str, value: str, skipped: list[dict[str, str]]) -> str:
    """``ProxyJump`` hops that reach at connect time what they reach in ``config``.

    At connect time a hop resolves through the user's ssh config (``ssh -J`` semantics),
    not through the imported file: a hop alias the user's config resolves alike is kept,
    any other becomes ``user@host:port`` as ``config`` resolves it. The hop's own
    IdentityFile cannot travel in a ProxyJump: that loss is listed in ``skipped``."""
    from sane.fleet.ssh import user_config

    own = os.path.expanduser(user_config())
    own = own if os.path.isfile(own) else "none"
    hops = []
    for hop in value.split(","):
        match = _HOP.fullmatch(hop)
        if match is None:
            hops.append(hop)  # the registry's ProxyJump rule refuses it, naming it
            continue
        here, there = _ssh_g(str(config), match["host"]), _ssh_g(own, match["host"])
        if all(here.get(k) == there.get(k) for k in _HOP_FIELDS):
            hops.append(hop)
            continue
        host = here["hostname"][0]
        resolved = (
            f"{match['user'] or here['user'][0]}@"
            f"{f'[{host}]' if ':' in host else host}:{match['port'] or here['port'][0]}"
        )
        hops.append(resolved)
        note = (
            f"jump host {hop!r} stored as {resolved!r}: your ssh config, which sane "
            "reads at connect time, does not resolve it as this file does"
        )
        if here.get("identityfile") != there.get("identityfile"):
            note += (
                f"; its IdentityFile {' '.join(here.get('identityfile', []))!r} is not "
                "carried (a hop takes its keys from your ssh config or agent)"
            )
        skipped.append({"name": name, "option": "proxyjump", "reason": note})
    return ",".join(hops)


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
                    "resolves a host: sane does not import such a file",
                    path=str(source),
                    line=number,
                )
            result.skipped.append(
                {"name": f"Match {value}", "reason": "a Match block: conditions, not a server"}
            )
        elif key == "host":
            for pattern in shlex.split(value):
                if any(c in pattern for c in "*?!"):
                    result.skipped.append(
                        {
                            "name": pattern,
                            "reason": "a Host pattern: defaults for the hosts it "
                            "matches (they are imported with them), not a server",
                        }
                    )
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
            jump = values["ssh_options"].get("ProxyJump")
            if jump is not None and jump.lower() != "none":
                values["ssh_options"]["ProxyJump"] = _portable_jump(
                    config, name, jump, result.skipped
                )
        except ValueError as exc:
            result.skipped.append({"name": name, "reason": str(exc)})
            continue
        result.add(name, values)
    return result


# Ansible variables sane reads; a template in one of them cannot be evaluated here.
_ANSIBLE_FIELDS = (
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
)
_ANSIBLE_PASSWORDS = (
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_become_pass",
    "ansible_become_password",
)
_ANSIBLE_SSH = {"ssh", "smart", "paramiko", "paramiko_ssh"}
_ANSIBLE_VARS_DIRS = ("group_vars", "host_vars")  # beside the inventory: not read
_ANSIBLE_ARGS = ("ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args")


def _ansible_values(
    name: str, hostvars: dict[str, Any], tags: list[str], skipped: list[dict[str, str]]
) -> dict[str, Any]:
    """The registry fields of one host from its merged Ansible variables."""
    if any(k in hostvars for k in _ANSIBLE_PASSWORDS):
        raise ValueError("holds a password; sane stores keys only")
    connection = hostvars.get("ansible_connection")
    if connection is not None and str(connection) not in _ANSIBLE_SSH:
        raise ValueError(f"ansible_connection is {connection!r}: sane reaches hosts by ssh")
    for key in _ANSIBLE_FIELDS:
        if "{{" in str(hostvars.get(key, "")) or "{%" in str(hostvars.get(key, "")):
            raise ValueError(
                f"{key} is a Jinja template ({hostvars[key]!r}): sane does not evaluate templates"
            )
    values: dict[str, Any] = {"host": str(hostvars.get("ansible_host", name)), "tags": tags}
    if "ansible_port" in hostvars:
        try:
            values["port"] = int(hostvars["ansible_port"])
        except (TypeError, ValueError):
            raise ValueError(f"ansible_port {hostvars['ansible_port']!r} is not a port") from None
    if "ansible_user" in hostvars:
        values["user"] = str(hostvars["ansible_user"])
    key_file = hostvars.get("ansible_ssh_private_key_file") or hostvars.get(
        "ansible_private_key_file"
    )
    if key_file:
        values["identity_file"] = str(key_file)
    for option in _ANSIBLE_ARGS:
        if hostvars.get(option):
            skipped.append(
                {
                    "name": name,
                    "option": option,
                    "reason": f"{option} not imported: raw ssh arguments (use "
                    "--ssh-option with an allowed option)",
                }
            )
    return values


def from_ansible_inventory(path: str | os.PathLike[str]) -> Imported:
    """An Ansible inventory (INI or YAML) as ``ansible-inventory --list`` reads it (see
    ``sane.fleet.ansible_inventory``); every group a host is in, directly or through
    ``children``, becomes a tag (``all`` and ``ungrouped`` aside)."""
    from sane.fleet.ansible_inventory import listing

    document = listing(str(path))
    hostvars: dict[str, dict[str, Any]] = document.get("_meta", {}).get("hostvars", {})
    parents: dict[str, set[str]] = {}
    direct: dict[str, list[str]] = {}
    for group, body in document.items():
        if group == "_meta" or not isinstance(body, dict):
            continue
        for child in body.get("children", []):
            parents.setdefault(child, set()).add(group)
        for host in body.get("hosts", []):
            direct.setdefault(host, []).append(group)
    result = Imported()
    for folder in _ANSIBLE_VARS_DIRS:  # ansible-inventory merges these; sane does not
        if (Path(path).parent / folder).is_dir():
            result.skipped.append(
                {
                    "name": f"{folder}/",
                    "reason": f"{folder}/ next to the inventory is not "
                    "read: its variables (ansible_host, ansible_port, ansible_user, keys) are "
                    "not imported; set them in the inventory file or fix the entries after",
                }
            )
    for host in [*direct, *(h for h in hostvars if h not in direct)]:
        groups, stack = set(), list(direct.get(host, []))
        while stack:
            group = stack.pop()
            if group not in groups:
                groups.add(group)
                stack.extend(parents.get(group, ()))
        tags = sorted(groups - {"all", "ungrouped"})
        try:
            values = _ansible_values(host, hostvars.get(host, {}), tags, result.skipped)
        except ValueError as exc:
            result.skipped.append({"name": host, "reason": str(exc)})
            continue
        result.add(host, values)
    return result

"""An Ansible inventory (INI or YAML) read as ``ansible-inventory -i FILE --list`` reads it.

Why a reader of its own: sane must import a user's inventory without Ansible installed.
Why it follows Ansible rather than guessing: the issue measured what guessing gave
(``[g:children]`` with ``[g:vars]`` ignored, ``[all:vars]`` ignored, YAML ``vars``
dropped, a YAML file starting with a comment read as INI). So this module produces the
very document ``ansible-inventory --list`` prints (``_meta.hostvars`` with every host's
merged variables, each group's own ``hosts`` and ``children``), and
``tests/test_import_ansible.py`` holds it equal to ansible-core's on a corpus of
inventories from Ansible's documentation. When ansible-core is installed, ``listing``
also asks it, once this module has read the file within its bounds (only its ``ini``
and ``yaml`` plugins: never a script inventory).

Ansible's rules kept here: the first lines of an INI file belong to ``ungrouped``; a
host line is ``NAME[:PORT] key=value ...`` (values through ``ast.literal_eval``, else the
text), ``[g:vars]`` lines ``key=value`` likewise; ``[g:children]`` names groups declared
anywhere in the file; ``name[01:10:2]`` and ``db-[a:f]`` are ranges. A host's variables
are its groups' (by depth, ``ansible_group_priority``, name; ``all`` first), then its
own. A file named ``*.yml``/``*.yaml``/``*.json`` or without extension is tried as YAML
first (as Ansible does): a mapping of groups with ``hosts``, ``vars`` and ``children``;
anything else is INI.

Hostile input is bounded: the file's size, the hosts a range may make, and the nodes a
YAML document may hold (aliases counted each time used) are capped; past a cap it is
``config_invalid``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import string
import subprocess
import sys
import warnings
from typing import Any

from sane import bounded, errors

MAX_BYTES = bounded.DOCUMENT_MAX  # an inventory larger than this is not one a person keeps
MAX_HOSTS = 20_000  # hosts (after ranges) in one inventory
MAX_NODES = bounded.MAX_NODES  # YAML nodes visited, aliases counted each time they are used
_GROUP_KEYS = {"hosts", "vars", "children"}


class _Group:
    def __init__(self, name: str) -> None:
        self.name = name
        self.hosts: list[str] = []
        self.children: list[str] = []
        self.parents: list[str] = []
        self.vars: dict[str, Any] = {}


class Inventory:
    """Groups and hosts as Ansible's ``InventoryData`` holds them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.groups: dict[str, _Group] = {}
        self.hosts: dict[str, dict[str, Any]] = {}
        self.host_groups: dict[str, list[str]] = {}
        self.add_group("all")
        self.add_group("ungrouped")

    def fail(self, message: str, line: int | None = None) -> errors.ConfigInvalid:
        where = f"{self.source} line {line}" if line is not None else self.source
        return errors.ConfigInvalid(f"{where}: {message}", path=self.source, line=line)

    def add_group(self, name: str) -> _Group:
        if name not in self.groups:
            self.groups[name] = _Group(name)
            if name == "ungrouped":
                self.add_child("all", name)
        return self.groups[name]

    def add_child(self, parent: str, child: str) -> None:
        if child == parent or parent in self._descendants(child):
            raise self.fail(f"group {child!r} under {parent!r} makes a loop")
        group, sub = self.groups[parent], self.groups[child]
        if child not in group.children:
            group.children.append(child)
            sub.parents.append(parent)

    def add_host(self, name: str, group: str, port: int | None = None) -> None:
        if name not in self.hosts:
            if len(self.hosts) >= MAX_HOSTS:
                raise self.fail(f"more than {MAX_HOSTS} hosts")
            self.hosts[name] = {}
            self.host_groups[name] = []
        if group != "all" and name not in self.groups[group].hosts:
            self.groups[group].hosts.append(name)
            self.host_groups[name].append(group)
        if port is not None:
            self.hosts[name]["ansible_port"] = port

    # -- what ansible-inventory --list prints ---------------------------------------

    def _walk(self, name: str, edge: str) -> set[str]:
        found: set[str] = set()
        stack = [name]
        while stack:
            for other in getattr(self.groups[stack.pop()], edge):
                if other not in found:
                    found.add(other)
                    stack.append(other)
        return found

    def _ancestors(self, name: str) -> set[str]:
        return self._walk(name, "parents")

    def _descendants(self, name: str) -> set[str]:
        return self._walk(name, "children")

    def _depth(self, name: str) -> int:
        """The longest path from ``all`` (Ansible's ``Group.depth``)."""
        if name == "all":
            return 0
        return max(self._depth(parent) + 1 for parent in self.groups[name].parents)

    def groups_of(self, host: str) -> list[str]:
        """Every group ``host`` is in, directly or through a parent (``all`` included)."""
        names: set[str] = {"all"}
        for group in self.host_groups[host]:
            names |= {group} | self._ancestors(group)
        return sorted(names)

    def host_vars(self, host: str) -> dict[str, Any]:
        def order(name: str) -> tuple[int, int, str]:
            priority = self.groups[name].vars.get("ansible_group_priority", 1)
            return self._depth(name), priority if isinstance(priority, int) else 1, name

        merged: dict[str, Any] = {}
        for name in sorted(self.groups_of(host), key=order):
            # ansible_group_priority orders the groups; Ansible keeps it as no variable
            merged.update(
                (k, v) for k, v in self.groups[name].vars.items() if k != "ansible_group_priority"
            )
        merged.update(self.hosts[host])
        return merged

    def reconcile(self) -> None:
        """Ansible's ``reconcile_inventory``: a group nobody contains is a child of
        ``all``; a host in no group is ``ungrouped``, and in another group it is not."""
        for name, group in list(self.groups.items()):
            if name != "all" and not group.parents:
                self.add_child("all", name)
        ungrouped = self.groups["ungrouped"]
        for host, groups in self.host_groups.items():
            if not groups:
                self.add_host(host, "ungrouped")
            elif "ungrouped" in groups and len(groups) > 1:
                groups.remove("ungrouped")
                ungrouped.hosts.remove(host)

    def listing(self) -> dict[str, Any]:
        """What ``ansible-inventory --list`` prints (its ``_meta.profile`` aside)."""
        self.reconcile()
        document: dict[str, Any] = {"_meta": {"hostvars": {}}}
        for host in self.hosts:
            merged = self.host_vars(host)
            if merged:
                document["_meta"]["hostvars"][host] = merged
        for group in self.groups.values():
            body: dict[str, Any] = {}
            if group.hosts and group.name != "all":
                body["hosts"] = list(group.hosts)
            if group.children:
                body["children"] = list(group.children)
            if body:
                document[group.name] = body
        return document


# -- host names -------------------------------------------------------------------------


def _address(pattern: str) -> tuple[str, int | None]:
    """``host[:port]`` (``[v6]:port`` for IPv6) as Ansible's parse_address splits it."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)", pattern) or re.fullmatch(
        r"((?:[^:\[\]]|\[[^\]]*\])+):(\d+)", pattern
    )
    if match:
        return match.group(1), int(match.group(2))
    return pattern, None


def expand(pattern: str, inventory: Inventory, line: int | None = None) -> list[str]:
    """``web[01:03]`` -> web01..web03; ``db-[a:c]``; a step as ``[1:9:2]``; nested."""
    if "[" not in pattern:
        return [pattern]
    head, _, rest = pattern.partition("[")
    body, sep, tail = rest.partition("]")
    bounds = body.split(":")
    if not sep or len(bounds) not in (2, 3) or not bounds[1]:
        raise inventory.fail(
            f"host range {pattern!r} must be [begin:end] or [begin:end:step]", line
        )
    begin, end = bounds[0] or "0", bounds[1]
    try:
        step = int(bounds[2]) if len(bounds) == 3 else 1
        if begin in string.ascii_letters and end in string.ascii_letters:
            first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
            if first > last:
                raise inventory.fail(f"host range {pattern!r}: begin after end", line)
            items = list(string.ascii_letters[first : last + 1 : step])
        else:
            width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
            if width and width != len(end):
                raise inventory.fail(
                    f"host range {pattern!r}: begin and end must have the same width", line
                )
            numbers = range(int(begin), int(end) + 1, step)
            if len(numbers) > MAX_HOSTS:
                raise inventory.fail(
                    f"host range {pattern!r} makes more than {MAX_HOSTS} hosts", line
                )
            items = [str(n).zfill(width) for n in numbers]
    except ValueError:
        raise inventory.fail(f"host range {pattern!r} is not numbers or letters", line) from None
    names: list[str] = []
    for item in items:
        names.extend(expand(f"{head}{item}{tail}", inventory, line))
        if len(names) > MAX_HOSTS:
            raise inventory.fail(f"host range {pattern!r} makes more than {MAX_HOSTS} hosts", line)
    return names


# -- INI --------------------------------------------------------------------------------

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")


def _value(text: str) -> Any:
    """An INI value as Ansible reads it: a Python literal, else the text itself."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def parse_ini(text: str, source: str) -> Inventory:
    inventory = Inventory(source)
    group, state = "ungrouped", "hosts"
    pending: dict[str, tuple[int, str, list[str]]] = {}  # group -> (line, state, parents)
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        section = _SECTION.match(line)
        if section:
            group, state = section.group(1), section.group(2) or "hosts"
            if state not in ("hosts", "children", "vars"):
                raise inventory.fail(f"section [{line[1:-1]}] has unknown type {state!r}", number)
            if group not in inventory.groups:
                if state == "vars" and group not in pending:
                    pending[group] = (number, "vars", [])
                inventory.add_group(group)
            if group in pending and state != "vars":
                _declared(inventory, group, pending)
            continue
        if line.startswith("[") and line.endswith("]"):
            raise inventory.fail(f"invalid section {line!r} (no spaces in a section name)", number)
        if state == "hosts":
            try:
                words = shlex.split(line, comments=True)
            except ValueError as exc:
                raise inventory.fail(f"cannot parse host line: {exc}", number) from None
            name, port = _address(words[0])
            if words[0].endswith(":") and port is None:
                raise inventory.fail(f"host {words[0]!r} ends in ':'", number)
            variables = {}
            for word in words[1:]:
                key, sep, value = word.partition("=")
                if not sep:
                    raise inventory.fail(f"expected key=value, got {word!r}", number)
                variables[key] = _value(value)
            for host in expand(name, inventory, number):
                inventory.add_host(host, group, port)
                inventory.hosts[host].update(variables)
        elif state == "vars":
            key, sep, value = line.partition("=")
            if not sep:
                raise inventory.fail(f"expected key=value, got {line!r}", number)
            inventory.groups[group].vars[key.strip()] = _value(value.strip())
        else:
            child = line.split()[0]
            if child not in inventory.groups:
                entry = pending.setdefault(child, (number, "children", []))
                entry[2].append(group)
            else:
                inventory.add_child(group, child)
    for name, (number, state, parents) in pending.items():
        if state == "vars":
            raise inventory.fail(f"section [{name}:vars] is for a group declared nowhere", number)
        raise inventory.fail(
            f"section [{parents[-1]}:children] names group {name!r}, declared nowhere", number
        )
    return inventory


def _declared(
    inventory: Inventory, group: str, pending: dict[str, tuple[int, str, list[str]]]
) -> None:
    _, state, parents = pending.pop(group)
    if state != "children":
        return
    for parent in parents:
        inventory.add_child(parent, group)
        if parent in pending and pending[parent][1] == "children":
            _declared(inventory, parent, pending)


# -- YAML -------------------------------------------------------------------------------


def _bounded(value: Any, budget: list[int]) -> Any:
    """``value`` as plain data, counting every node (an alias each time it is used)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"more than {MAX_NODES} YAML nodes (aliases counted)")
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _bounded(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_bounded(v, budget) for v in value]
    return value


def parse_yaml(data: dict[str, Any], source: str) -> Inventory:
    """Ansible's YAML plugin: each group's keys in the document's order; ``hosts``,
    ``vars``, ``children`` mappings (a plain string is one name); other keys, and groups
    that are not mappings, are skipped as Ansible skips them (with a warning there)."""
    inventory = Inventory(source)

    def group(name: str, body: Any) -> str | None:
        if body is not None and not isinstance(body, dict):
            return None
        inventory.add_group(name)
        for key, value in (body or {}).items():
            if isinstance(value, str) and key in _GROUP_KEYS:
                value = {value: None}
            if value is None or not isinstance(value, dict):
                if key in _GROUP_KEYS and value is not None:
                    raise inventory.fail(f"{key} of group {name!r} must be a mapping")
                continue
            if key == "vars":
                inventory.groups[name].vars.update(value)
            elif key == "children":
                for child, child_body in value.items():
                    added = group(str(child), child_body)
                    if added is not None:
                        inventory.add_child(name, added)
            elif key == "hosts":
                for pattern, host_vars in value.items():
                    if host_vars is not None and not isinstance(host_vars, dict):
                        raise inventory.fail(f"host {pattern!r} must map to its variables")
                    address, port = _address(str(pattern))
                    for host in expand(address, inventory):
                        inventory.add_host(host, name, port)
                        inventory.hosts[host].update(host_vars or {})
        return name

    for name, body in data.items():
        group(str(name), body)
    return inventory


def _as_yaml(text: str) -> dict[str, Any] | None:
    """The document when ``text`` is a YAML mapping (Ansible's YAML plugin), else None."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def own_listing(text: str, source: str) -> dict[str, Any]:
    """What ``ansible-inventory -i SOURCE --list`` prints, without Ansible."""
    if len(text.encode("utf-8", "surrogateescape")) > MAX_BYTES:
        raise errors.ConfigInvalid(f"{source}: larger than {MAX_BYTES} bytes", path=source)
    # Ansible's YAML plugin takes only these files, and leaves what it cannot read to INI.
    yaml_file = os.path.splitext(source)[1] in ("", ".yaml", ".yml", ".json")
    data = _as_yaml(text) if yaml_file else None
    if data is not None:
        try:
            data = _bounded(data, [MAX_NODES])
        except (ValueError, RecursionError) as exc:
            raise errors.ConfigInvalid(f"{source}: {exc}", path=source) from None
        return parse_yaml(data, source).listing()
    return parse_ini(text, source).listing()


# -- ansible-core, when installed -------------------------------------------------------


def ansible_inventory() -> str | None:
    """``ansible-inventory`` of ansible-core, if installed (beside this Python first)."""
    beside = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    return beside if os.access(beside, os.X_OK) else shutil.which("ansible-inventory")


def ansible_listing(path: str, program: str, shown: str | None = None) -> dict[str, Any]:
    """``ansible-inventory -i PATH --list``, with only the ini and yaml plugins (a script
    or plugin inventory is never run) and an empty ansible.cfg (not the user's or the
    current directory's)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sane-ansible-") as scratch:
        config = os.path.join(scratch, "ansible.cfg")
        with open(config, "w", encoding="utf-8") as fh:
            fh.write("[defaults]\n")
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": config,
            "ANSIBLE_HOME": scratch,
            "ANSIBLE_INVENTORY_ENABLED": "yaml,ini",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true",
        }
        proc = subprocess.run(
            [program, "-i", os.path.abspath(path), "--list"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=120,
            env=env,
            cwd=scratch,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    if proc.returncode != 0:
        said = " ".join(proc.stderr.replace(path, shown or path).split())[-500:]
        raise errors.ConfigInvalid(
            f"{shown or path}: ansible-inventory refuses it: {said}", path=shown or path
        )
    document: dict[str, Any] = json.loads(proc.stdout)
    document["_meta"].pop("profile", None)
    return document


def listing(path: str) -> dict[str, Any]:
    """The inventory at ``path`` as ``ansible-inventory --list`` gives it.

    Always read and parsed here first, bounded (a regular file only: a FIFO or
    /dev/zero is refused at once; its size, hosts and YAML nodes capped), so hostile
    input is refused before anything else sees it (ansible-inventory took minutes on a
    YAML alias bomb and waited forever on a FIFO). When ansible-core is installed, its
    answer for exactly those bytes (a private copy) is the one used."""
    try:
        text = bounded.read_text(path, "inventory", MAX_BYTES)
    except errors.InvalidArgument as exc:
        raise errors.ConfigInvalid(
            f"cannot read inventory: {exc.message}", **{**exc.details, "path": path}
        ) from None
    own = own_listing(text, path)
    program = ansible_inventory()
    if program is None:
        return own
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sane-inventory-") as scratch:
        copy = os.path.join(scratch, "inventory" + os.path.splitext(path)[1])
        with open(copy, "w", encoding="utf-8") as fh:
            fh.write(text)
        return ansible_listing(copy, program, shown=path)

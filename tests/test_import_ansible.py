"""Ansible import as Ansible reads it (issue 18, repro 7): sane's own inventory reader
gives exactly what ``ansible-inventory -i FILE --list`` gives, on a corpus of inventories
after Ansible's documentation (children, group and ``all`` vars, ranges, host vars,
ports, comments first, priorities), and the import built on it keeps what Ansible
means. The comparison needs ansible-core (the test extra installs it); without it those
cases are skipped, saying so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sane import errors
from sane.fleet import ansible_inventory
from sane.fleet.ansible_inventory import own_listing
from sane.fleet.importers import from_ansible_inventory

INI_BASICS = """\
# Ansible docs, "How to build your inventory": INI
mail.example.com

[webservers]
foo.example.com
bar.example.com ansible_user=web http_port=80 maxRequestsPerChild=808 flag=True

[dbservers]
one.example.com
two.example.com
three.example.com:2222
db-[a:c].example.com

[atlanta]
host1
host2 ansible_port=5555 lst="[1, 2]"

[raleigh]
host2
host3

[southeast:children]
atlanta
raleigh

[southeast:vars]
some_server=foo.southeast.example.com
halon_system_timeout=30
ansible_port=2222

[usa:children]
southeast
northeast

[northeast]
ne1  # a comment

[www]
www[01:05:2].example.com

[all:vars]
ansible_user=admin
ntp_server=ntp.atlanta.example.com
"""

INI_PRECEDENCE = """\
[a]
h1
h2 x=host

[b]
h1

[a:vars]
x=a
ansible_group_priority=5
[b:vars]
x=b
[parent:children]
b
[parent:vars]
x=parent
"""

YAML_BASICS = """\
# Ansible docs: the same inventory in YAML (a comment first)
ungrouped:
  hosts:
    mail.example.com:
webservers:
  hosts:
    foo.example.com:
    bar.example.com:
dbservers:
  hosts:
    one.example.com:
    two.example.com:
    three.example.com:
east:
  hosts:
    foo.example.com:
    one.example.com:
    two.example.com:
west:
  hosts:
    bar.example.com:
    three.example.com:
prod:
  children:
    east:
test:
  children:
    west:
  vars:
    ansible_user: tester
"""

YAML_NESTED = """\
---
all:
  vars:
    ansible_user: admin
    ntp: ntp.example.com
  hosts:
    solo.example.com:
      ansible_port: 2200
  children:
    atlanta:
      hosts:
        host1:
          http_port: 80
        host2:
          http_port: 303
      vars:
        ansible_group_priority: 10
        ansible_user: atl
    www:
      hosts:
        www[01:05:2].example.com:
        "db-[a:b]:2222":
      children:
        atlanta:
leafs:
  hosts:
    leaf[01:02]:
      ansible_host: 10.0.0.1
  vars:
    ansible_port: 2022
"""

CORPUS = {
    "basics.ini": INI_BASICS,
    "precedence": INI_PRECEDENCE,
    "basics.yml": YAML_BASICS,
    "nested.yaml": YAML_NESTED,
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_sanes_reader_equals_ansible_inventory_list(tmp_path: Path, name: str) -> None:
    program = ansible_inventory.ansible_inventory()
    if program is None:
        pytest.skip("ansible-core is not installed (pip install 'tmux-sane[test]')")
    path = tmp_path / name
    path.write_text(CORPUS[name])
    expected = ansible_inventory.ansible_listing(str(path), program)
    assert own_listing(CORPUS[name], str(path)) == expected


def _servers(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The import with sane's own reader (as on a machine without Ansible)."""
    monkeypatch.setattr(ansible_inventory, "ansible_inventory", lambda: None)
    imported = from_ansible_inventory(path)
    return {s.name: s for s in imported.servers}


def test_the_import_keeps_what_ansible_means(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the issue measured: [southeast:children] + [southeast:vars] ansible_port=2222
    imported on port 22; [all:vars] ignored; YAML vars gave user null; a YAML file
    starting with a comment read as INI and refused."""
    (tmp_path / "hosts").write_text(INI_BASICS)
    by_name = _servers(tmp_path / "hosts", monkeypatch)
    assert (by_name["host1"].port, by_name["host2"].port) == (2222, 5555)
    assert by_name["host1"].tags == ["atlanta", "southeast", "usa"]
    assert by_name["mail.example.com"].user == "admin"  # [all:vars]
    assert by_name["bar.example.com"].user == "web"  # the host's own wins
    assert by_name["three.example.com"].port == 2222  # host:port
    assert {"db-a.example.com", "db-c.example.com", "www03.example.com"} <= set(by_name)
    assert "www02.example.com" not in by_name  # [01:05:2]
    (tmp_path / "test.yml").write_text(YAML_BASICS)
    by_name = _servers(tmp_path / "test.yml", monkeypatch)
    assert by_name["bar.example.com"].user == "tester"
    assert by_name["foo.example.com"].tags == ["east", "prod", "webservers"]


def test_what_sane_cannot_keep_is_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "inv.ini").write_text(
        "ok1 ansible_host=10.0.0.1 ansible_ssh_common_args='-o ProxyCommand=\"nc %h %p\"'\n"
        "pw ansible_password=hunter2\n"
        "win ansible_connection=winrm\n"
        "tpl ansible_host='{{ inventory_hostname }}.example.com'\n"
    )
    monkeypatch.setattr(ansible_inventory, "ansible_inventory", lambda: None)
    imported = from_ansible_inventory(tmp_path / "inv.ini")
    assert [s.name for s in imported.servers] == ["ok1"]
    reasons = {(s["name"], s.get("option")): s["reason"] for s in imported.skipped}
    assert "password" in reasons[("pw", None)]
    assert "winrm" in reasons[("win", None)]
    assert "template" in reasons[("tpl", None)]
    assert "raw ssh arguments" in reasons[("ok1", "ansible_ssh_common_args")]
    assert not any(s["name"].endswith("_vars/") for s in imported.skipped)
    # group_vars/ and host_vars/ next to the inventory (ansible-inventory merges them):
    # not read by sane, and said so rather than imported without their variables silently.
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("ansible_user: deploy\n")
    (tmp_path / "host_vars").mkdir()
    imported = from_ansible_inventory(tmp_path / "inv.ini")
    listed = {s["name"]: s["reason"] for s in imported.skipped}
    assert "not read" in listed["group_vars/"] and "not read" in listed["host_vars/"]


@pytest.mark.parametrize(
    "text,why",
    [
        (
            "a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
            "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
            "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
            "g: {vars: {x: [*f,*f,*f,*f,*f,*f,*f,*f,*f]}}\n",
            "YAML nodes",
        ),
        ("[web]\nweb[0:99999999]\n", "more than"),
        ("[a:children]\nb\n[b:children]\na\n", "loop"),
        ("[a:children]\nnope\n", "declared nowhere"),
    ],
)
def test_hostile_inventories_are_refused_and_bounded(tmp_path: Path, text: str, why: str) -> None:
    name = "inv.yml" if text.startswith("a:") else "inv.ini"
    with pytest.raises(errors.ConfigInvalid) as info:
        own_listing(text, str(tmp_path / name))
    assert why in info.value.message

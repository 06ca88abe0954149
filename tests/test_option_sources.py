"""ssh options from every place they can come from meet the same allow-list
(``sane.fleet.ssh.check_option``), applied last where they become ssh's argv: the
registry (tested in test_user_ssh), an entry changed after it was validated, a
servers.json read the quick way (its ``.validated`` copy agreeing), and deploy plans
(which have no place for options: refused by name). Before, an option added to a
validated entry or to a servers.json with a matching copy reached ssh: ``ProxyCommand``
ran a local program.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sane import errors
from sane.deploy.plan import parse_plan
from sane.fleet.quick import STAMP_SUFFIX
from sane.fleet.run import fleet_run
from sane.ops.context import Context
from sane.testing.fleet import register

from .conftest import cli


def test_an_option_added_to_a_validated_entry_is_refused_when_ssh_starts(
    sane_ctx: Context, ssh_fleet: Any, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    [server, *_] = register(sane_ctx.home, ssh_fleet)
    server.ssh_options["ProxyCommand"] = f"touch {canary}"  # after validation
    result = fleet_run(sane_ctx, [server], "true", 5, 20)
    [one] = result["results"]
    assert one["error"]["code"] == "invalid_argument", one
    assert one["error"]["details"]["option"] == "ProxyCommand"
    assert "touch" not in json.dumps(one)  # named, never its value
    assert not canary.exists()


def test_a_servers_json_read_the_quick_way_meets_the_allow_list(
    cli_env: dict[str, str], sane_home: Path, ssh_fleet: Any, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    register(sane_home, ssh_fleet)
    path = sane_home / "servers.json"
    doc = json.loads(path.read_text())
    for entry in doc["servers"]:
        entry["ssh_options"]["LocalCommand"] = f"touch {canary}"
        entry["ssh_options"]["PermitLocalCommand"] = "yes"
    raw = json.dumps(doc).encode()
    path.write_bytes(raw)
    Path(str(path) + STAMP_SUFFIX).write_bytes(raw)  # as if validated
    code, answer, _ = cli(["sane.cli.main", "fleet", "run", "--all", "true"], cli_env)
    assert code != 0, answer
    for result in answer["results"]:
        assert result["error"]["code"] == "invalid_argument", result
        assert result["error"]["details"]["option"] in ("LocalCommand", "PermitLocalCommand")
    assert not canary.exists()


@pytest.mark.parametrize(
    "plan",
    [
        {"ssh_options": {"ProxyCommand": "touch x"}, "steps": [{"name": "a", "run": "true"}]},
        {"steps": [{"name": "a", "run": "true", "ssh_options": {"SendEnv": "*"}}]},
        {"servers": [{"name": "a", "ssh_options": {"ForwardAgent": "yes"}}], "files": []},
    ],
)
def test_a_plan_has_no_place_for_ssh_options(plan: dict[str, Any]) -> None:
    plan.setdefault("policy", {"rollback": "none"})
    with pytest.raises(errors.PlanInvalid) as caught:
        parse_plan(json.dumps(plan), "plan.json")
    where = caught.value.details.get("field", "") + str(caught.value)
    assert "ssh_options" in where or "servers" in where, caught.value

"""Health reads and conditions as the user means them (issue 18, repros 8-10): a chatty
``.bashrc`` changes nothing, a condition must be a boolean, unknown health never meets
one, ``health set`` fields are typed as written, ``~/`` paths work in ``fleet put`` as in
plans. Real sshd servers (sane.testing.fleet), real ssh."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sane import errors
from sane.deploy import api
from sane.fleet.health import Condition, check, set_health, wait
from sane.fleet.run import fleet_put
from sane.fleet.ssh import path_on, run_remote
from sane.ops.context import Context
from sane.testing.fleet import register

from .conftest import cli

CHATTY = (
    'echo "Welcome to $(hostname), $USER!"\necho "{not json"\n'
    'echo "rc noise on stderr: No such file or directory" >&2\n'
)


@pytest.fixture
def chatty_fleet(make_fleet: Callable[..., Any]) -> Any:
    """Two servers whose root's ``.bashrc`` prints, on stdout and stderr, in every
    session (bash reads it for an ssh command too)."""
    fleet = make_fleet(2)
    for server in fleet.servers:
        (Path(server.home) / ".bashrc").write_text(CHATTY)
    return fleet


def test_a_chatty_bashrc_does_not_reach_what_sane_reads(
    sane_ctx: Context, chatty_fleet: Any
) -> None:
    """#18.8: health.json is valid, the rc file prints: the read is still healthy."""
    servers = register(sane_ctx.home, chatty_fleet)
    result = run_remote(servers[0], "printf 'exact\\n'; echo err >&2; exit 3")
    assert (result.status, result.stdout, result.stderr) == (3, b"exact\n", "err\n")
    set_health(servers[0], "healthy", {"version": "1.0"})
    assert (
        json.loads((Path(chatty_fleet.servers[0].home) / ".sane/health.json").read_text())[
            "version"
        ]
        == "1.0"
    )
    by_name = {r["server"]: r for r in check(sane_ctx.home, servers)["servers"]}
    assert (by_name["s1"]["status"], by_name["s1"]["reason"]) == ("healthy", None)
    assert by_name["s1"]["data"]["version"] == "1.0"
    # s2 has no file: "missing", not a message made of the rc file's noise.
    assert (by_name["s2"]["status"], by_name["s2"]["reason"]) == ("unknown", "missing")
    assert path_on(servers[0], "~/app/x") == "/root/app/x"


def test_fleet_put_takes_home_paths_like_plans(
    sane_ctx: Context, chatty_fleet: Any, tmp_path: Path
) -> None:
    """#18.10: ``fleet put FILE ~/app.conf`` (refused before) lands in each login's home,
    as a plan's ``~/`` file does; the sha256 cache works despite a chatty .bashrc."""
    servers = register(sane_ctx.home, chatty_fleet)
    first = fleet_put(sane_ctx, servers, "~/conf/app.conf", b"port = 1\n", parents=True)
    assert first["status"] == "completed", first
    assert [r["path"] for r in first["results"]] == ["/root/conf/app.conf"] * 2
    for server in chatty_fleet.servers:
        assert (Path(server.home) / "conf/app.conf").read_bytes() == b"port = 1\n"
    again = fleet_put(sane_ctx, servers, "~/conf/app.conf", b"port = 1\n")
    assert [r["action"] for r in again["results"]] == ["unchanged"] * 2
    with pytest.raises(errors.InvalidArgument):
        fleet_put(sane_ctx, servers, "conf/app.conf", b"x")
    plan = tmp_path / "plan.yaml"
    (tmp_path / "app.conf").write_text("port = 2\n")
    plan.write_text(
        yaml.safe_dump({"name": "t", "files": [{"source": "app.conf", "path": "~/conf/app.conf"}]})
    )
    report = api.deploy(sane_ctx, str(plan), servers)
    assert report["status"] == "completed", report
    assert (Path(chatty_fleet.servers[1].home) / "conf/app.conf").read_text() == "port = 2\n"


@pytest.mark.parametrize(
    "expression", ['.version = "x"', ".version", ".status | length", '"healthy"']
)
def test_a_condition_that_is_not_a_boolean_is_invalid_argument(
    sane_home: Path, expression: str
) -> None:
    """#18.9: ``.version = "x"`` (a typo for ``==``) was met everywhere; now it is
    refused before any server is read, naming the expression."""
    with pytest.raises(errors.InvalidArgument) as info:
        wait(sane_home, [], expression, "all", timeout=5, interval=0.1)
    assert info.value.details["expression"] == expression
    assert expression in info.value.message


def test_unknown_health_never_meets_a_condition(sane_ctx: Context, ssh_fleet: Any) -> None:
    """#18.9: ``.status != "unhealthy"`` was met by servers with no health.json."""
    servers = register(sane_ctx.home, ssh_fleet)
    for server in ssh_fleet.servers:
        (Path(server.home) / ".sane" / "health.json").unlink(missing_ok=True)
    try:
        set_health(servers[0], "degraded", {})
        result = wait(
            sane_ctx.home, servers, '.status != "unhealthy"', "all", timeout=0, interval=0.1
        )
        assert not result["met"] and result["waiting_for"] == ["s2", "s3"]
        assert Condition('.status != "unhealthy"').met(result["servers"][0])
        unknown = {"server": "s2", "status": "unknown", "reason": "missing", "data": None}
        assert not Condition("true").met(unknown)
        assert not Condition('.reason == "missing"').met(unknown)
    finally:
        for server in ssh_fleet.servers:
            (Path(server.home) / ".sane" / "health.json").unlink(missing_ok=True)


def test_a_deploy_gate_that_is_not_a_boolean_is_plan_invalid(
    sane_ctx: Context, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "name": "t",
                "steps": [{"name": "a", "run": "true", "undo": "true"}],
                "health": {"until": ".version = $VERSION"},
                "env": {"VERSION": "2"},
            }
        )
    )
    with pytest.raises(errors.PlanInvalid) as info:
        api.dry_run(str(plan), [])
    assert info.value.details["field"] == "health.until"


# `sane health set` marking s1 healthy: the start of every such call below.
SET_S1_HEALTHY = ["sane.cli.main", "health", "set", "--server", "s1", "--status", "healthy"]


def test_health_set_types_fields_as_written(
    cli_env: dict[str, str], sane_home: Path, ssh_fleet: Any
) -> None:
    """#18.9: ``--field version=1.2`` gave internal_error (exit 70) with a pydantic
    traceback; it is the string "1.2". ``--json-field`` takes JSON values."""
    register(sane_home, ssh_fleet)
    try:
        status, doc, _ = cli(
            [
                *SET_S1_HEALTHY,
                *("--field", "version=1.2", "--json-field", "replicas=3"),
                *("--json-field", 'tags=["a"]', "--field", "note=true"),
            ],
            cli_env,
        )
        assert status == 0, doc
        health = doc["health"]
        assert (health["version"], health["replicas"], health["tags"], health["note"]) == (
            "1.2",
            3,
            ["a"],
            "true",
        )
        status, doc, _ = cli([*SET_S1_HEALTHY, "--json-field", "version=1.2"], cli_env)
        assert (status, doc["error"]["code"]) == (2, "invalid_argument")
        assert doc["error"]["details"]["field"] == "version"
        assert "Traceback" not in doc["error"]["message"]
        status, doc, _ = cli([*SET_S1_HEALTHY, "--json-field", "replicas=three"], cli_env)
        assert (status, doc["error"]["code"]) == (2, "invalid_argument")
        status, doc, _ = cli(
            [
                "sane.cli.main",
                "health",
                "wait",
                "--servers",
                "s1",
                "--until",
                '.version = "x"',
                "--timeout",
                "0",
            ],
            cli_env,
        )
        assert (status, doc["error"]["code"]) == (2, "invalid_argument")
    finally:
        for server in ssh_fleet.servers:
            (Path(server.home) / ".sane" / "health.json").unlink(missing_ok=True)

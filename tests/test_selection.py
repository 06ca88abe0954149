"""One selection rule for every fleet command: a choice that leaves no server (a misspelt
``--tag``, ``--all`` on an empty registry) is ``no_servers_selected`` naming what was
asked, in the CLI, the MCP tools and deploy alike; never a command that quietly does
nothing (issue 18, repro 10: ``fleet run``/``deploy``/``health`` each reacted
differently to a misspelt tag)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sane import tools
from sane.fleet.registry import Registry, Server
from sane.ops.context import Context

from .conftest import cli

PLAN = {"name": "t", "steps": [{"name": "hello", "run": "true"}]}

# Every CLI command that acts on a selection of servers; {plan} is a valid plan file.
CLI_COMMANDS = [
    ["fleet", "run", "{sel}", "true"],  # the click-free fast path (sane.cli.fast)
    ["fleet", "run", "--max-parallel", "2", "{sel}", "--", "true"],
    ["fleet", "put", "{sel}", "{plan}", "/tmp/x"],
    ["fleet", "detect", "{sel}"],
    ["up", "{sel}"],
    ["connect", "{sel}"],
    ["health", "{sel}"],
    ["health", "wait", "--until", '.status == "healthy"', "--timeout", "0", "{sel}"],
    ["deploy", "run", "{plan}", "{sel}"],
    ["deploy", "run", "{plan}", "--dry-run", "{sel}"],
]

MCP_CALLS = ["fleet_run", "health", "health_wait", "deploy", "deploy_plan_check"]


def _argv(words: list[str], selection: list[str], plan: str) -> list[str]:
    argv = ["sane.cli.main"]
    for word in words:
        if word == "{sel}":
            argv += selection
        else:
            argv.append(plan if word == "{plan}" else word)
    return argv


def _mcp_args(name: str, selection: dict[str, object], plan: str) -> dict[str, object]:
    extra: dict[str, object] = {
        "fleet_run": {"command": "true"},
        "health": {},
        "health_wait": {"until": '.status == "healthy"', "timeout": 0},
        "deploy": {"plan": plan, "wait": True},
        "deploy_plan_check": {"plan": plan},
    }[name]  # type: ignore[assignment]
    return {**extra, **selection}


@pytest.fixture
def plan(tmp_path: Path) -> str:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(PLAN))
    return str(path)


@pytest.mark.parametrize("words", CLI_COMMANDS, ids=lambda w: " ".join(w[:2]))
def test_a_misspelt_tag_is_no_servers_selected_in_every_cli_command(
    cli_env: dict[str, str], sane_home: Path, plan: str, words: list[str]
) -> None:
    reg = Registry(sane_home)
    reg.add(Server(name="web1", host="127.0.0.1", port=9, tags=["web"]))
    reg.add(Server(name="db1", host="127.0.0.1", port=9, tags=["db"]))
    status, doc, _ = cli(_argv(words, ["--tag", "wbe"], plan), cli_env)
    error = doc["error"]
    assert (status, error["code"]) == (3, "no_servers_selected"), doc
    assert "'wbe'" in error["message"] and "db, web" in error["message"]
    assert error["details"] == {"tag": "wbe", "tags": ["db", "web"]}


@pytest.mark.parametrize(
    "words", [w for w in CLI_COMMANDS if "deploy" not in w], ids=lambda w: " ".join(w[:2])
)
def test_an_empty_registry_is_no_servers_selected(
    cli_env: dict[str, str], sane_home: Path, plan: str, words: list[str]
) -> None:
    status, doc, _ = cli(_argv(words, ["--all"] if "health" not in words else [], plan), cli_env)
    assert (status, doc["error"]["code"]) == (3, "no_servers_selected"), doc
    assert "has no servers" in doc["error"]["message"]


@pytest.mark.parametrize("name", MCP_CALLS)
def test_mcp_tools_follow_the_same_rule(sane_ctx: Context, plan: str, name: str) -> None:
    Registry(sane_ctx.home).add(Server(name="web1", host="127.0.0.1", port=9, tags=["web"]))
    document, status = tools.call(sane_ctx, name, _mcp_args(name, {"tag": "wbe"}, plan))
    assert (status, document["error"]["code"]) == (3, "no_servers_selected"), document
    assert document["error"]["details"]["tag"] == "wbe"
    Registry(sane_ctx.home).remove("web1")
    everything: dict[str, object] = {} if name.startswith("health") else {"all": True}
    document, status = tools.call(sane_ctx, name, _mcp_args(name, everything, plan))
    assert (status, document["error"]["code"]) == (3, "no_servers_selected"), document


def test_a_tag_that_matches_still_selects(sane_home: Path) -> None:
    reg = Registry(sane_home)
    reg.add(Server(name="web1", host="h", tags=["web"]))
    assert [s.name for s in reg.select(tag="web")] == ["web1"]


@pytest.mark.parametrize("words", CLI_COMMANDS, ids=lambda w: " ".join(w[:2]))
@pytest.mark.parametrize("given", ["--servers=", "--servers=,"])
def test_an_empty_list_of_servers_is_no_servers_selected_not_every_server(
    cli_env: dict[str, str], sane_home: Path, plan: str, words: list[str], given: str
) -> None:
    """Issue #16 item 7: `fleet run --servers ''` ran on every server (nothing named
    read as "nothing narrows the choice")."""
    Registry(sane_home).add(Server(name="web1", host="127.0.0.1", port=9, tags=["web"]))
    positional = words[0] in ("up", "connect")  # `sane up [SERVERS]...`: `sane up ''`
    status, doc, _ = cli(_argv(words, [""] if positional else [given], plan), cli_env)
    assert (status, doc["error"]["code"]) == (3, "no_servers_selected"), doc
    assert "list of servers is empty" in doc["error"]["message"]


@pytest.mark.parametrize("name", MCP_CALLS)
@pytest.mark.parametrize("given", [[], [""]])
def test_an_empty_servers_list_in_a_tool_call_is_no_servers_selected(
    sane_ctx: Context, plan: str, name: str, given: list[str]
) -> None:
    """Issue #16 item 7: MCP `fleet_run` with `servers: []` ran on every server."""
    Registry(sane_ctx.home).add(Server(name="web1", host="127.0.0.1", port=9, tags=["web"]))
    document, status = tools.call(sane_ctx, name, _mcp_args(name, {"servers": given}, plan))
    assert (status, document["error"]["code"]) == (3, "no_servers_selected"), document
    assert document["error"]["details"]["servers"] == given

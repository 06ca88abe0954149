"""The click-free front door (sane.cli.fast) parses exactly as click would.

Every command the fast table knows is compared with its click command: the same
options, kinds, defaults and environment variables; then a corpus of command lines is
parsed both ways. Where the fast parser answers, click must give the same parameters;
where it is not sure, it must say so (None) rather than guess.
"""

from __future__ import annotations

from typing import Any

import click
import pytest

from sane.cli import fast
from sane.cli.group import cli


def click_command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    ctx = click.Context(cli)
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(ctx, name)
        assert found is not None, name
        command = found
    return command


def click_params(spec: fast.FastCommand, args: list[str]) -> dict[str, Any]:
    ctx = click_command(spec.path).make_context(" ".join(spec.path), list(args))
    return dict(ctx.params)


def kind_of(option: click.Option) -> str:
    if option.is_flag:
        return fast.FLAG
    kind = option.type
    if isinstance(kind, click.IntRange) and kind.min == 1 and kind.max is None:
        return fast.INT_AT_LEAST_1
    if isinstance(kind, click.IntRange) and kind.min == 0 and kind.max is None:
        return fast.INT_AT_LEAST_0
    if isinstance(kind, click.FloatRange) and kind.min == 0 and kind.max is None:
        return fast.FLOAT_AT_LEAST_0
    if kind is click.STRING:
        return fast.TEXT
    raise AssertionError(f"no fast kind for {option.name}: {kind!r}")


@pytest.mark.parametrize("spec", fast.COMMANDS, ids=lambda s: " ".join(s.path))
def test_the_table_matches_the_click_command(
    spec: fast.FastCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    for envvar in spec.envvars.values():
        monkeypatch.delenv(envvar, raising=False)
    defaults = click_params(spec, ["x"])
    del defaults[spec.argument]
    assert spec.defaults == defaults
    command = click_command(spec.path)
    options = [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    table = {}
    for option in options:
        assert option.name is not None and not option.secondary_opts and not option.multiple
        for name in option.opts:
            table[name] = (option.name, kind_of(option))
        assert spec.envvars.get(option.name) == option.envvar, option.name
    assert table == spec.options
    (argument,) = arguments
    assert (argument.name, argument.nargs, argument.required) == (spec.argument, -1, True)


FAST_LINES = [
    ["true"],
    ["--all", "true"],
    ["--all", "--max-parallel", "20", "true"],
    ["uptime", "-p"][:1],
    ["echo", "hello", "world", "--tag", "web"],
    ["--servers", "a,b", "--timeout", "2.5", "sleep 1"],
    ["--servers=a,b", "--max-parallel=3", "--timeout=0", "--stream", "x"],
    ["--timeout", "7", "x"],
    ["--timeout", "0.", "x"],
    ["--socket", "/tmp/s/sock", "--all", "x"],
    ["--all", "--", "ls", "-la", "--all"],
    ["--max-parallel", "1", "--max-parallel", "4", "x"],  # the last one wins, as in click
    ["--tag", "", "x"],
    ["x", "--stream", "y"],
    ["-"],
]

CLICK_LINES = [
    [],  # COMMAND is required
    ["--all"],
    ["-h"],
    ["--help"],
    ["ls", "-la"],  # click: no such option -l
    ["--max-parallel", "0", "x"],
    ["--max-parallel", "-3", "x"],
    ["--max-parallel", "+3", "x"],
    ["--max-parallel", "3.0", "x"],
    ["--max-parallel", "٣", "x"],  # a non-ASCII digit: click's int() would take it
    ["--timeout", "-1", "x"],
    ["--timeout", "1e3", "x"],
    ["--timeout", "inf", "x"],
    ["--timeout", ".5", "x"],
    ["--servers"],
    ["--servers", "--all", "x"],
    ["--stream=1", "x"],
    ["--bogus", "x"],
    ["--all", "--"],
    ["--max-parallel", "9" * 5000, "x"],  # past int()'s digit limit: click's error
    ["--timeout", "1" * 400, "x"],
]


RUN_FAST_LINES = [
    ["true"],
    ["-"],  # the command from stdin
    ["--pane", "%3", "printf 'a\\nb'; exit 3"],
    ["-t", "%3", "--timeout", "0.5", "sleep", "600"],
    ["-s", "web1", "uptime"],
    ["--server=web1", "--check", "--keep-ansi", "--interrupt-on-timeout", "x"],
    ["--max-output", "0", "--quiet-period", "0", "cat big"],
    ["--max-output=65536", "--quiet-period=1.5", "--socket", "work", "x"],
    ["x", "-t", "%1"],
    ["--", "-t", "%1"],
]

RUN_CLICK_LINES = [
    [],
    ["-h"],
    ["-t%3", "x"],  # click: -t with the value %3 attached
    ["-t=%3", "x"],  # click: the value is "=%3"
    ["-st", "x"],
    ["--max-output", "-1", "x"],
    ["--quiet-period", "1e-1", "x"],
    ["--check=yes", "x"],
    ["--pane"],
    ["--max-output", "9" * 5000, "x"],
]

CASES = [(fast.FLEET_RUN, args, True) for args in FAST_LINES]
CASES += [(fast.FLEET_RUN, args, False) for args in CLICK_LINES]
CASES += [(fast.RUN_COMMAND, args, True) for args in RUN_FAST_LINES]
CASES += [(fast.RUN_COMMAND, args, False) for args in RUN_CLICK_LINES]


@pytest.mark.parametrize(
    ("spec", "args", "fast_path"),
    CASES,
    ids=[f"{' '.join(c[0].path)}: {' '.join(c[1])}" for c in CASES],
)
def test_lines_parse_as_click_parses_them_or_are_left_to_click(
    spec: fast.FastCommand, args: list[str], fast_path: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANE_TMUX_SOCKET", "from-env")
    parsed = fast.parse(spec, args)
    if fast_path:
        assert parsed is not None, "the fast parser should take this line"
        assert parsed == click_params(spec, args)
    else:
        assert parsed is None


def test_route_only_takes_the_commands_in_the_table() -> None:
    routed = fast.route(["fleet", "run", "--all", "true"])
    assert routed is not None and routed[0] is fast.FLEET_RUN
    assert routed[1]["command"] == ("true",)
    assert fast.route(["fleet", "put", "a", "b"]) is None
    routed = fast.route(["run-command", "-t", "%1", "true"])
    assert routed is not None and routed[0] is fast.RUN_COMMAND and routed[1]["pane"] == "%1"
    assert fast.route(["fleet"]) is None
    assert fast.route([]) is None


def test_socket_comes_from_the_environment_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANE_TMUX_SOCKET", raising=False)
    parsed = fast.parse(fast.FLEET_RUN, ["x"])
    assert parsed is not None and parsed["socket"] is None
    assert parsed == click_params(fast.FLEET_RUN, ["x"])
    monkeypatch.setenv("SANE_TMUX_SOCKET", "")
    assert fast.parse(fast.FLEET_RUN, ["x"]) == click_params(fast.FLEET_RUN, ["x"])
    monkeypatch.setenv("SANE_TMUX_SOCKET", "env")
    parsed = fast.parse(fast.FLEET_RUN, ["--socket", "given", "x"])
    assert parsed is not None and parsed["socket"] == "given"

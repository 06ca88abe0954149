"""Every command's --help ends with a real example (captured from a real run)."""

from __future__ import annotations

from collections.abc import Iterator

import click

from sane.cli.group import cli


def _commands(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        with click.Context(command) as ctx:
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, name
                yield from _commands(sub, f"{path} {name}")


def test_every_command_help_shows_an_example() -> None:
    missing = []
    for path, command in _commands(cli, "sane"):
        with click.Context(command, info_name=path) as ctx:
            text = command.get_help(ctx)
        example = text.partition("Example")[2]
        if not any(line.lstrip().startswith("$ ") for line in example.splitlines()):
            missing.append(path)
    assert missing == []


def test_help_documents_output_exit_statuses_and_completion_which_works() -> None:
    """`sane --help` says how to get JSON, what each exit status means and how to turn
    on completion; the completion it documents is what `sane` prints."""
    import os
    import subprocess
    import sys

    from sane import errors

    with click.Context(cli, info_name="sane") as ctx:
        text = cli.get_help(ctx)
    for piece in ("--json", "--jq", "Exit status", "_SANE_COMPLETE=bash_source sane"):
        assert piece in text, piece
    for status in (errors.EXIT_USAGE, errors.EXIT_NOT_FOUND, errors.EXIT_INTERNAL):
        assert f"{status} " in text
    sane = os.path.join(os.path.dirname(sys.executable), "sane")  # the name completes
    if not os.path.exists(sane):
        import pytest

        pytest.skip("the sane entry point is not installed (pip install -e .)")
    proc = subprocess.run(
        [sane],
        capture_output=True,
        text=True,
        env={**os.environ, "_SANE_COMPLETE": "bash_source"},
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0 and "complete -o nosort -F _sane_completion" in proc.stdout, (
        proc.stdout + proc.stderr
    )


def test_a_misspelt_command_or_option_gets_a_suggestion() -> None:
    """At every level, the lazily loaded commands included (`sane helth`)."""
    import json
    import subprocess
    import sys

    for argv, hint in (
        (["helth"], "'health'"),
        (["flet", "run"], "'fleet'"),
        (["fleet", "rn", "x"], "'run'"),
        (["server", "ad"], "'add'"),
        (["run-command", "--tmeout", "1", "x"], "'--timeout'"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "sane.cli.main", *argv],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert proc.returncode == 2, (argv, proc.stderr)
        error = json.loads(proc.stdout)["error"]
        assert error["code"] == "usage_error" and hint in error["message"], (argv, error)

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

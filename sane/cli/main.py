"""The console commands' front doors: the hottest command lines go straight to their
action without click (see ``sane.cli.fast``); everything else goes to the click
commands, which answer ``--help`` and every usage error."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from sane.cli.fast import FastCommand


def _front_door(
    fast_route: Callable[[list[str]], tuple[FastCommand, dict[str, Any]] | None],
    click_command: tuple[str, str],
) -> NoReturn:
    from sane.cli._emit import for_person, guarded, take_jq

    def body() -> None:
        import importlib

        args = take_jq(sys.argv[1:])
        routed = fast_route(args)
        if routed is None:
            from sane.cli._output import run_cli

            module, name = click_command
            run_cli(getattr(importlib.import_module(module), name), args)
        spec, params = routed
        if for_person():  # no click context to name the command for its human view
            from sane.cli.human import set_command_path

            set_command_path(spec.path)
        from sane.cli.invoke import invoke

        invoke(" ".join(spec.path), params)

    guarded(body)


def main() -> NoReturn:
    """``sane``."""
    from sane.cli.fast import route

    _front_door(route, ("sane.cli.group", "cli"))


def run_command_main() -> NoReturn:
    """``sane-run-command``."""
    from sane.cli.fast import RUN_COMMAND, parse

    def fast_route(args: list[str]) -> tuple[FastCommand, dict[str, Any]] | None:
        params = parse(RUN_COMMAND, args)
        return None if params is None else (RUN_COMMAND, params)

    _front_door(fast_route, ("sane.cli.run_command", "run_command_cli"))


if __name__ == "__main__":
    main()

"""``sane``'s front door: the hottest command lines go straight to their action without
click (see ``sane.cli.fast``); everything else goes to the click group."""

from __future__ import annotations

import sys
from typing import NoReturn


def main() -> NoReturn:
    from sane.cli._emit import guarded, take_jq

    def body() -> None:
        import importlib

        from sane.cli.fast import route

        args = take_jq(sys.argv[1:])
        routed = route(args)
        if routed is None:
            from sane.cli._output import run_cli
            from sane.cli.group import cli

            run_cli(cli, args)
        spec, params = routed
        module, function = spec.action
        getattr(importlib.import_module(module), function)(**params)

    guarded(body)


if __name__ == "__main__":
    main()

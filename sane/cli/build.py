"""Click commands built from the command table (``sane.cli.table``, generated from
``sane.tools.TOOLS``): options, arguments, types, limits, defaults and help all come
from the input models, so the CLI cannot drift from ``sane mcp``. Only a command's
``--help`` example (its epilog) is written by hand, in the module that registers it."""

from __future__ import annotations

from typing import Any

import click

from sane.cli.spec import Param

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _number(param: Param, base: Any, ranged: Any) -> Any:
    low, high = param.get("min"), param.get("max")
    return base if low is None and high is None else ranged(min=low, max=high)


def _type(param: Param) -> Any:
    kind = param["kind"]
    if kind == "int":
        return _number(param, click.INT, click.IntRange)
    if kind == "float":
        return _number(param, click.FLOAT, click.FloatRange)
    if kind == "choice":
        return click.Choice(param["choices"])
    return click.STRING


_METAVAR = {"csv": "A,B,...", "pairs": "KEY=VALUE"}


def params(param: Param) -> list[click.Parameter]:
    """``param`` as click parameters (a choice spelt as flags is one option per value)."""
    name, kind = param["name"], param["kind"]
    if "flags" in param:
        # The default is the default flag's own value, the others have none: a False
        # default on another flag of the switch made click 8.2+ give the field False
        # (`sane health wait` printed "mode": "False", a document its schema rejects).
        return [
            click.Option(
                [opt, name],
                flag_value=value,
                help=f"{param['help']} ({value})",
                **({"default": value} if value == param["default"] else {}),
            )
            for value, opt in param["flags"].items()
        ]
    if not param["opts"]:
        if kind in ("words", "names"):
            return [click.Argument([name], nargs=-1, required=kind == "words")]
        # A required parameter gets no default at all (here and for options below):
        # click 8.3+ takes an explicit None as a value given, and `sane deploy status`
        # with no id reached the handler ("not a deploy id: None"), `sane fleet put`
        # with no path an internal error, instead of click's usage error naming it.
        required = param.get("required", False)
        return [
            click.Argument(
                [name], required=required, **({} if required else {"default": param["default"]})
            )
        ]
    if kind == "flag":
        return [click.Option([*param["opts"], name], is_flag=True, help=param["help"])]
    multiple = kind in ("multiple", "pairs")
    default = param["default"]
    required = param.get("required", False)
    given: dict[str, Any] = {} if required else {"default": () if multiple else default}
    return [
        click.Option(
            [*param["opts"], name],
            type=_type(param),
            multiple=multiple,
            **given,
            required=required,
            show_default=default is not None and not multiple,
            help=param["help"],
            envvar=param.get("envvar"),
            metavar=param.get("metavar", _METAVAR.get(kind)),
        )
    ]


def command(path: str, epilog: str, name: str | None = None) -> click.Command:
    """The click command for table row ``path`` (``fleet run``), named ``name`` (default:
    the path's last word), with ``epilog`` (its example) under ``--help``."""
    from sane.cli.table import COMMANDS

    entry = COMMANDS[path]

    def callback(**values: Any) -> None:
        from sane.cli.invoke import invoke

        invoke(path, values)

    return click.Command(
        name or path.split()[-1],
        callback=callback,
        params=[p for param in entry["params"] for p in params(param)],
        help=entry["help"],
        epilog=epilog,
        context_settings=CONTEXT,
    )


def group(path: str, epilog: str, name: str | None = None) -> click.Group:
    """A command that also has subcommands (``sane health`` and ``sane health wait``):
    table row ``path`` runs when no subcommand is named."""
    from sane.cli.table import COMMANDS

    entry = COMMANDS[path]

    def callback(**values: Any) -> None:
        if click.get_current_context().invoked_subcommand is None:
            from sane.cli.invoke import invoke

            invoke(path, values)

    return click.Group(
        name or path.split()[-1],
        callback=callback,
        params=[p for param in entry["params"] for p in params(param)],
        help=entry["help"],
        epilog=epilog,
        invoke_without_command=True,
        context_settings=CONTEXT,
    )

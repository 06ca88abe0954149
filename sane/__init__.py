"""tmux-sane: drive tmux panes, locally and over SSH, with exact results as JSON.

The library API is the names in ``__all__`` (defined in ``sane.api``, docs/library.md):
a :class:`Context` on a tmux server, ``run_command``/``run_wait``/``run_input``/
``run_interrupt``, ``create_file``, ``detect_platform``, ``list_panes``, the fleet's
``servers``/``fleet_run``/``fleet_put``/``fleet_health``, ``run_deploy``, the error
tree and the typed results. They load on first use, so ``import sane`` (and every
command-line tool, which imports this package) stays as cheap as it was.
"""

import os
import typing  # (the command-line tools import it anyway; __future__ they need not)

__version__ = "0.1.0"
_public: list[str] | None = None  # the public names, read once (_public_names)

if typing.TYPE_CHECKING:  # what type checkers see: sane.api's names, typed
    from sane import api
    from sane.api import *  # noqa: F403

    __all__ = ["__version__"]
    __all__ += api.__all__


def _public_names() -> list[str]:
    """``sane.api.__all__`` (the one list of public names) and ``__version__``.

    Read from ``api.py``'s text, not by importing it: the import system asks
    ``hasattr(sane, "errors")`` before it loads a submodule, so ``__getattr__`` answers
    for every ``from sane import <module>`` in the package, and importing the API there
    would load all of it into every command-line tool. ``ruff format`` keeps the list
    one quoted name a line; tests/test_library.py checks this reading against the module.
    """
    global _public
    if _public is None:
        with open(os.path.join(os.path.dirname(__file__), "api.py"), encoding="utf-8") as f:
            text = f.read()
        start = text.index("[\n", text.index("\n__all__")) + 2
        lines = text[start : text.index("\n]\n", start)].split("\n")
        _public = [line.strip().strip(",").strip('"') for line in lines] + ["__version__"]
    return _public


def __getattr__(name: str) -> typing.Any:
    """A public name (``__all__`` itself included), imported from ``sane.api`` on first
    use: ``import sane`` alone loads none of the API."""
    if name == "__all__":
        value: typing.Any = list(_public_names())
    elif name in _public_names():
        from sane import api

        value = getattr(api, name)
    else:
        raise AttributeError(f"module 'sane' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_public_names()})

"""The console commands' first code: a Ctrl-C while Python still loads sane.

Until :func:`sane.cli._emit.guarded` puts sane's own SIGINT handler in place, Python's
default turns a Ctrl-C into a KeyboardInterrupt wherever the loading is (importlib,
click, pydantic: 0.3 s and more on a loaded machine), and the user got a traceback
instead of the one JSON document every outcome must be. Here, before anything heavy is
imported, a Ctrl-C is only noted; ``guarded`` then answers it as ``cancelled`` (exit
130) before the command does anything. The console scripts of ``pyproject.toml`` point
here; ``python -m sane.cli.main`` and library users are left as they are.
"""

from __future__ import annotations

import signal
from typing import NoReturn

_pressed: list[int] = []


def _note(signum: int, frame: object) -> None:
    _pressed.append(signum)


def pressed_early() -> bool:
    """Did a Ctrl-C come before sane's own handler was in place?"""
    return bool(_pressed)


def _arm() -> None:
    signal.signal(signal.SIGINT, _note)


def sane() -> NoReturn:
    """``sane``."""
    _arm()
    from sane.cli.main import main

    main()


def sane_run_command() -> NoReturn:
    """``sane-run-command``."""
    _arm()
    from sane.cli.main import run_command_main

    run_command_main()


def sane_list_panes() -> NoReturn:
    """``sane-list-panes``."""
    _arm()
    from sane.cli.list_panes import main

    main()


def sane_create_file() -> NoReturn:
    """``sane-create-file``."""
    _arm()
    from sane.cli.create_file import main

    main()


def sane_detect_platform() -> NoReturn:
    """``sane-detect-platform``."""
    _arm()
    from sane.cli.detect_platform import main

    main()

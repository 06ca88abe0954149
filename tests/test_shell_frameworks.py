"""The shell matrix's exactness suite in each prompt framework's config.

Issue #14 asks for each prompt framework (a prompt rebuilt by PROMPT_COMMAND, starship,
zsh's precmd, oh-my-zsh, powerlevel10k's instant prompt, the system bashrc) to be a
config *in* the matrix: the same suite as every shell gets, not only the idle and abort
checks ``test_shells.py`` runs for them (``test_framework_*``). So the suite's tests are
collected here a second time, their ``pane`` a framework's pane (``test_shells``'s
``framework_pane``: the config as a local pane's rc file, and in root's rc file on the
loopback sshd whose login shell is that shell) and their ``shell`` the shell it runs in
(the reference outputs, the syntax, the shell detect-platform must name).
"""

from __future__ import annotations

import pytest

from sane.ops.context import Context

from . import test_shells as matrix
from .test_run_command import HAZARDS

# The fixtures the suite's tests and the framework panes need, from the matrix.
where = matrix.where
login_fleet = matrix.login_fleet
framework_pane = matrix.framework_pane


@pytest.fixture
def shell(request: pytest.FixtureRequest, framework_pane: str) -> str:
    """The shell the framework's config runs in (bash or zsh)."""
    return matrix.FRAMEWORKS[str(request.node.callspec.params["framework_pane"])][0]


@pytest.fixture
def pane(framework_pane: str) -> str:
    return framework_pane


# The matrix's suite, each test as test_shells defines it (collected here again with the
# fixtures above). test_exit_codes is parametrized by shell there; its POSIX cases are
# below.
test_no_trailing_newline = matrix.test_no_trailing_newline
test_child_killed_by_sigint = matrix.test_child_killed_by_sigint
test_output_imitating_markers_ends_nothing = matrix.test_output_imitating_markers_ends_nothing
test_five_thousand_character_line = matrix.test_five_thousand_character_line
test_utf8 = matrix.test_utf8
test_heredoc = matrix.test_heredoc


def test_quoting_hazards(
    request: pytest.FixtureRequest, sane_ctx: Context, pane: str, shell: str, index: int
) -> None:
    """The matrix's test, whose expected output is plain ``shell -c``'s. yash's sample
    config sets ``ECHO_STYLE=RAW`` (echo prints backslashes as they are), so its echo
    of ``\\033`` differs from plain yash's by design, not by sane: that one hazard
    is skipped there."""
    framework = str(request.node.callspec.params["framework_pane"])
    if framework.startswith("yash-sample") and "\\033" in HAZARDS[index]:
        pytest.skip("yash's sample config echoes backslashes raw (ECHO_STYLE=RAW)")
    matrix.test_quoting_hazards(sane_ctx, pane, shell, index)


test_quoting_hazards = pytest.mark.parametrize("index", range(len(HAZARDS)))(test_quoting_hazards)
test_cwd_and_env_persist = matrix.test_cwd_and_env_persist
test_timeout_then_wait = matrix.test_timeout_then_wait
test_prompt_then_input = matrix.test_prompt_then_input
test_interrupt = matrix.test_interrupt
test_interrupt_after_a_partial_line = matrix.test_interrupt_after_a_partial_line
test_detect_platform = matrix.test_detect_platform
test_create_file = matrix.test_create_file


test_half_typed_text_is_never_run = matrix.test_half_typed_text_is_never_run


test_terminal_queries_neither_show_nor_wedge = matrix.test_terminal_queries_neither_show_nor_wedge


@pytest.mark.parametrize("command,code", matrix._EXIT_COMMON + matrix._EXIT_POSIX)
def test_exit_codes(sane_ctx: Context, pane: str, shell: str, command: str, code: int) -> None:
    matrix.test_exit_codes(sane_ctx, pane, shell, command, code)

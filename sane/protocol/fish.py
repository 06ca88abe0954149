"""sane's runner in fish: the same markers and guarantees as the POSIX runner, in fish.

fish is not a POSIX shell (no ``${x:-y}``, no heredocs, ``$status`` for ``$?``), but it
has what the runner needs: ``eval`` (a builtin: the command's ``set``, ``cd`` and
functions stay in the shell), ``$status``, functions and events. The differences
from ``sane.protocol.runner``, and why:

* The command is ``eval``ed at the top level of the typed line, not inside a function:
  in fish a ``set`` without a scope inside a function makes a variable local to it,
  and the command's variables must outlive the run. ``__sane_pre`` checks the length
  (and decodes base64), prints BEGIN and returns the previous ``$status``, which
  ``eval`` then starts with; ``__sane_post`` prints END with the command's status.
* The typed line is one word: fish's line editor is slow per typed key. Each space,
  ``;``, ``|``, ``&``, ``<``, ``>`` or ``)`` is a key binding (expand abbreviations)
  that ends a batch of typed characters: a repaint and new highlighting and
  autosuggestion threads each; and every byte is read and matched on its own. A line
  of ~30 words cost fish 2.5x bash's time. The line is
  ``{eval,"$__sane_h"TEXT"$__sane_t"}``: a brace word whose other characters are
  written as ``\\xHH`` escapes (:func:`word`), holding only keys that insert
  themselves. It evaluates ``__sane_pre printf FMT NONCE ...;eval
  $__sane_c 7</dev/zero;__sane_post`` where the runner set ``__sane_h`` and
  ``__sane_t``; in a fish without the runner (one a person started in the pane) the
  two variables are empty and the same word evaluates ``printf FMT NONCE ...``, which
  prints the MISSING_RUNNER marker (once per argument: printf reuses its format; the
  other copies carry tags that are not the nonce): the guard costs no typing of its
  own. ``eval`` at the top level is still the top level.
* fish applies a redirection of a builtin in its own process at the first free fd,
  not at the fd named: ``eval ... 7</dev/zero`` keeps ``/dev/zero`` open exactly while
  the command runs, which is how the kernel tells the runner from fish's prompt
  (:data:`RUN_TARGET`, ``sane.ops.prompts.in_runner``).
* ``exit`` prints the EXITED marker from a ``fish_exit`` event handler, which then
  waits for a line on the tty, as the POSIX runner's EXIT trap does.
* The prompt marker is printed by a ``fish_prompt`` event handler, before each prompt.
* A long command travels as base64 in lines of ``set -ga __sane_p CHUNK`` (fish has no
  heredoc; its line editor takes long lines).
* Typed lines start with a space: fish keeps them out of its history.
"""

from __future__ import annotations

from sane.protocol import editor
from sane.protocol.markers import (
    BEGIN,
    DECODE_FAILED,
    EDITOR,
    END,
    EXITED,
    LENGTH_MISMATCH,
    MISSING_RUNNER,
    NEW_SHELL,
    PROMPT,
    READY,
    STATUS,
    printf_format,
)

# Open in fish exactly while a command runs (at whatever fd fish picks).
RUN_TARGET = "/dev/zero"
RUN_FD = 7
PASTE_CHUNK = 4000
MAX_TYPED_LINE = 4000
# The runner's globals holding the typed word's head and tail (see call()).
HEAD, TAIL = "__sane_h", "__sane_t"


def quote(text: str) -> str:
    """``text`` as one fish word: inside fish's single quotes only ``\\`` and ``'``
    are special (POSIX quoting would hand a ``\\\\`` over as one backslash)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def takeover_lines(nonce: str, token: str) -> list[str]:
    """The lines that install the runner in fish; the last prints READY with the pid."""
    lm, df = printf_format(LENGTH_MISMATCH, True), printf_format(DECODE_FAILED, False)
    b, e, x = printf_format(BEGIN, False), printf_format(END, True), printf_format(EXITED, True)
    p = printf_format(PROMPT, False).replace("%s", token)
    helpers = (
        " set -g __sane_q $status; set -g __sane_p;"
        " function __sane_rc; return $argv[1]; end;"
        " function __sane_x --on-event fish_exit; set -l s $status; set -q __sane_n; or return;"
        f" printf '{x}' $__sane_n $s; read -l -P ' ' __sane_y; end;"
        f" function __sane_ps --on-event fish_prompt; printf '{p}'; end;"
        # A handler for SIGURG, as the POSIX runner's `trap : URG`: an exec'd fish
        # keeps the runner's /dev/zero but not the handler (sane.ops.prompts.in_runner).
        " function __sane_u --on-signal SIGURG; end;"
        " __sane_rc $__sane_q"
    )
    pre = (
        # argv: printf FMT NONCE LENGTH MODE [ARG] (the first two: see call()). A pasted
        # command's line saved $status before its chunks: not saved again here.
        " function __sane_pre; set -l s $status; test $argv[5] = p; or set -g __sane_q $s;"
        " set -g __sane_c; set -g __sane_b;"
        # A person's text held from the command line (sane.protocol.editor): run nothing.
        ' if test -n "$__sane_held"; __sane_hc $argv[3]; return $__sane_q; end;'
        " switch $argv[5]; case -; set -g __sane_b $argv[6]; set -g __sane_c $argv[6];"
        " case b; set -g __sane_b $argv[6]; case '*'; set -g __sane_b (string join '' $__sane_p);"
        " end; set -g __sane_p;"
        # The usual case (a short command typed in place) is checked by a regex, not a
        # command substitution (a pipe and a thread hand-off in fish: slow under load);
        # any other, or a regex that fails, by the exact count.
        ' if test $argv[5] = -; and string match -qr -- "^(?s).{$argv[4]}\\z" "$__sane_b";'
        ' else if test (string length -- "$__sane_b") != $argv[4];'
        f" printf '{lm}' $argv[3] (string length -- \"$__sane_b\"); set -g __sane_c;"
        " return $__sane_q; end;"
        " if test $argv[5] != -;"
        " set -g __sane_c (printf %s $__sane_b | base64 -d | string collect -N);"
        f" if test $pipestatus[2] != 0; printf '{df}' $argv[3]; set -g __sane_c;"
        " return $__sane_q; end; end;"
        f" set -g __sane_b; set -g __sane_n $argv[3]; printf '{b}' $argv[3];"
        " return $__sane_q; end;"
        # The typed word's head and tail (call()): unset in a fish without the runner.
        f" set -g {HEAD} '__sane_pre ';"
        f" set -g {TAIL} ';eval $__sane_c {RUN_FD}<{RUN_TARGET};__sane_post';"
        " __sane_rc $__sane_q"
    )
    post = (
        " function __sane_post; set -l r $status; set -q __sane_n; or return $r;"
        f" printf '{e}' $__sane_n $r; set -e __sane_n; set -g __sane_c; return $r; end;"
        " __sane_rc $__sane_q"
    )
    ready = f" printf '{printf_format(READY, True)}' {nonce} $fish_pid; __sane_rc $__sane_q"
    widgets = editor.fish_line(nonce, EDITOR) + " __sane_rc $__sane_q"
    return [helpers, pre, post, widgets, title_line(), ready]


# How fish_title receives sane's own lines (a run's call, a long command's paste lines,
# the status probe; see call(), paste_lines(), status_probe()), as patterns of a fish
# ``switch``.
SANE_LINES = (
    f' {{eval,"${HEAD}"*',
    " set -g* __sane_*",
    # The takeover's READY line (the status probe starts with `set -g __sane_z`).
    " printf '" + printf_format(STATUS, True).split("%s")[0] + "*",
)


def title_line() -> str:
    """The takeover line wrapping the pane's ``fish_title`` so that sane's lines leave
    the window title alone and cost fish next to nothing for it.

    fish computes the title (``fish_title CMD``) right before it runs each command
    line and again before each prompt; fish's own function runs ``prompt_pwd`` in
    seven command substitutions: ~1.5 M instructions a call, two fifths of what a sane
    ``true`` cost fish (docs/performance.md). Before a sane line the title it gave was
    sane's internals (`` {eval,"$__sane_h"pr ~``), shown in tmux's status line for as
    long as the run ran. Now:

    * a sane line (:data:`SANE_LINES`) gets no title (the wrapper prints nothing, and
      fish then writes none): the person's stays as their last prompt left it;
    * the prompt after a sane line gets the person's function's title, exactly: when
      that function is fish's own (``__sane_td``) and so are the two it calls
      (``prompt_pwd``, ``prompt_hostname``), its title only depends on ``$PWD``,
      ``$HOME``, ``$SSH_TTY`` and ``$INSIDE_EMACS`` (fish 3.6's
      ``share/functions/fish_title.fish``), so the title computed after an earlier
      sane line is printed again while those are the same (a ``cd`` by sane computes
      it anew); any other function is called;
    * every other call (a person's line, the prompt after it, a repaint, ``fg``) goes
      to their function as before, copied as ``__sane_ut``; a person's line also
      drops the kept title.

    Installed only over a function that is not already the wrapper (a second takeover
    wraps nothing twice); a person who later defines ``fish_title`` replaces the
    wrapper, and their function then gets every call, sane's lines included."""
    cases = " ".join(quote(pattern) for pattern in SANE_LINES)
    own = "$__fish_data_dir/functions"
    return (
        " if functions -q fish_title; and not functions fish_title | string match -q '*__sane_ut*';"
        " set -e __sane_td; set -e __sane_tk;"
        f" functions --details fish_title | string match -q -- {own}/fish_title.fish;"
        " and set -g __sane_td 1;"
        " functions -e __sane_ut; functions -c fish_title __sane_ut;"
        f' function fish_title; switch "$argv[1]"; case {cases}; set -g __sane_tl 1; return;'
        " case ''; if set -q __sane_tl; set -e __sane_tl; if set -q __sane_td;"
        f" and functions --details prompt_pwd | string match -q -- {own}/prompt_pwd.fish;"
        f" and functions --details prompt_hostname | string match -q -- {own}/prompt_hostname.fish;"
        ' set -l k "$PWD"\\n"$HOME"\\n"$SSH_TTY"\\n"$INSIDE_EMACS";'
        ' if test "$k" != "$__sane_tk"; set -g __sane_tv (__sane_ut); set -g __sane_tk $k; end;'
        " printf '%s\\n' $__sane_tv; return; end; end;"
        " case '*'; set -e __sane_tk; set -e __sane_tl; end;"
        " __sane_ut $argv; end; end; __sane_rc $__sane_q"
    )


# Characters typed as themselves inside the brace word: keys no fish binding takes over,
# special nowhere inside a word (not first in it).
_WORD_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@+=-%")
# The keys fish binds (space ; | & < > and ``)`` expand abbreviations) are never typed:
# they are written ``\xHH``. Other punctuation is typed after a backslash, which fish
# reads as the character itself: two keys, not four (fish reads and matches each typed
# byte on its own).
_WORD_ESCAPED = frozenset("!\"#$'(*,?[\\]^`{}~")


def word(text: str) -> str:
    """``text`` (printable ASCII, tabs) as characters of an unquoted fish word that
    fish's parser turns back into ``text``: the safe ones as themselves, other
    punctuation after a backslash, a tab as ``\\t``, the rest as ``\\xHH`` (at most
    two hex digits are read, so a digit that follows stays itself)."""
    return "".join(_word_char(ch) for ch in text)


def _word_char(ch: str) -> str:
    if ch in _WORD_SAFE:
        return ch
    if ch in _WORD_ESCAPED:
        return "\\" + ch
    return "\\t" if ch == "\t" else f"\\x{ord(ch):02x}"


def call(nonce: str, length: int, mode: str, arg: str | None) -> str:
    """The typed line of one run (see the module docs): one word, a leading space (fish
    keeps the line out of its history). ``__sane_pre`` receives ``printf FMT NONCE
    LENGTH MODE [ARG]``; the first two are the missing-runner fallback's."""
    # In fish's single quotes a backslash before anything but \\ or ' is itself.
    missing = printf_format(MISSING_RUNNER, False).replace("\\033", "\\e").replace("\\007", "\\a")
    fmt = "'" + missing + "'"
    # Tabs between the arguments: ``\\t`` is two typed keys, a space ``\\x20`` four.
    tail = f"\t{arg}" if arg is not None else ""
    text = f"printf\t{fmt}\t{nonce}\t{length}\t{mode}{tail}"
    return f' {{eval,"${HEAD}"{word(text)}"${TAIL}"}}'


def paste_lines(nonce: str, b64: str) -> str:
    """Paste text for a long command: its base64 in chunks, then the call."""
    chunks = [b64[i : i + PASTE_CHUNK] for i in range(0, len(b64), PASTE_CHUNK)] or [""]
    sets = "".join(f" set -ga __sane_p {chunk}\n" for chunk in chunks)
    return f" set -g __sane_q $status; set -g __sane_p\n{sets}{call(nonce, len(b64), 'p', None)}\n"


def status_probe(nonce: str) -> str:
    """fish's form of the status probe line (``$status`` for ``$?``): of kind
    NEW_SHELL when the fish has no runner (an ``exec fish`` replaced the run's)."""
    answer = printf_format("%s", True)
    return (
        f" set -g __sane_z $status; set -g __sane_k {NEW_SHELL};"
        f" functions -q __sane_pre; and set __sane_k {STATUS};"
        f" printf '{answer}' {nonce} $__sane_k $__sane_z"
    )

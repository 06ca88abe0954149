"""The POSIX-sh runner sane installs in a pane's shell, and the input that drives it.

Why a runner: the command travels as base64 and is ``eval``ed by a shell function, so
no quoting, heredoc delimiter, ``!`` history expansion or line-length limit of the
shell ever touches the user's command text. Every pitfall measured in
``shared/notes/protocol-spike.md`` is handled here:

* ``command eval`` (``builtin eval`` in zsh) inside an inner function keeps dash
  from abandoning the runner (and its end marker) on ``return``, syntax errors,
  ``${x?}`` or ``set -u``.
* ``exit`` in the command prints an ``X`` marker from sane's EXIT trap (set once at
  takeover, acting only while a run is going, so a user's own EXIT trap set later is
  never replaced or removed by a run); the trap then waits for one line on
  the tty, which sane types once it has seen the marker. Without that wait the shell
  dies at once and tmux drops the dying pane's last output (the command's tail and
  the marker) now and then. (zsh skips its EXIT trap when ``set -e`` ends it in a
  function: a ZERR trap does the same there.) A command that sets its own EXIT trap
  and exits ends with the pane's death, its output's tail maybe dropped: the run is
  ``lost``, with tmux's exit status of the shell as its exit code.
  (zsh keeps an EXIT trap set in a function to that function: there the runner
  hands a run's trap, or its ``trap - EXIT``, to sane's trap, which keeps it.)
* C-c is not trapped. The runner is called with fd 7 open on ``/dev/null``
  (``RUN_FD``): every shell undoes a redirection of a function call when the call ends,
  by return or by an abort (C-c, ``${x?}``) alike. So the kernel tells an aborted run
  (the shell blocked reading the tty at its prompt, fd 7 closed) from a run whose
  ``read`` waits for input (same syscall, fd 7 open); the status of an aborted run is
  then asked with a probe line (:func:`status_probe`) carrying a fresh nonce.
* The prompt marker at the start of ``PS1`` only tells where the prompt begins: it is
  put back after every run and, in bash and zsh, before every prompt (last in
  ``PROMPT_COMMAND`` / ``precmd_functions``), so prompts rebuilt by a framework keep it.
* The length of the base64 text is passed along and checked, since dash silently
  truncates typed lines at 4095 bytes (busybox ash at 1023, and then waits for the
  rest of a cut quote: so no typed line is longer than MAX_TYPED_LINE).
* Typed lines start with a space and ``ignorespace`` is enforced, so nothing sane
  types lands in shell history; the takeover line deletes itself from it.
"""

from __future__ import annotations

import shlex
from typing import NamedTuple

from sane.protocol import editor, fish
from sane.protocol.markers import (
    BASH_EXIT_LINE,
    BEGIN,
    BOOTSTRAP,
    DECODE_FAILED,
    DISCARDED,
    EDITOR,
    END,
    EXITED,
    IMAGE,
    LENGTH_MISMATCH,
    MISSING_RUNNER,
    NEW_SHELL,
    PROMPT,
    PROMPT_END,
    READY,
    RIGHT_PROMPT_END,
    SHELL,
    STATUS,
    USER_EXIT,
    printf_format,
    scan,
)
from sane.protocol.queries import drop_all_answers

RUNNER_VERSION = "1"
# The kinds of shell sane drives: POSIX shells (this module) and fish (its own runner,
# sane.protocol.fish). A pane records the kind its runner was installed for.
SHELL_POSIX = "posix"
SHELL_FISH = "fish"
# busybox ash cuts a typed line at 1023 bytes (dash at 4095); stay below both.
MAX_TYPED_LINE = 1000
HEREDOC_WIDTH = 76
# Open (on /dev/null) in the shell exactly while sane's runner runs: see the docs above.
RUN_FD = 7
RUN_FD_TARGET = "/dev/null"
# Caught by the shell exactly while sane's runner runs a command (``trap :``). exec
# resets caught signals but keeps fds: a shell that `exec`s another leaves RUN_FD open
# in the new one, at its own prompt; this tells it from the runner's shell.
RUN_SIGNAL = "URG"
RUN_SIGNAL_NUMBER = 23  # Linux


# dash's and posh's PS2 as sane sets it (``> `` with a bold space: the same to the eye;
# sane.ops.has_input tells it on the screen), as a printf format.
TTY_PS2_PRINTF = ">\\033[1m \\033[22m"

# The shell probe's printf format: also how the takeover finds the probe's lines in
# bash's history.
_SHELL_PROBE_FORMAT = printf_format(SHELL, True)


def _fmt(kind: str, with_arg: bool = False) -> str:
    return printf_format(kind, with_arg)


def takeover_lines(nonce: str, token: str, kind: str = SHELL_POSIX) -> list[str]:
    """The lines that install the runner in the pane's shell; the last prints READY.

    Works in bash, dash, zsh, ksh93, mksh, busybox ash, yash and posh, where they are
    read by :func:`bootstrap_line`'s loop (fish's are pasted at its prompt). Each is
    printable ASCII (a tty in canonical mode reads it unchanged: no ESC, no control
    byte) and stays under MAX_TYPED_LINE (busybox ash's line editor cuts typed lines
    at 1023 bytes and then waits for the rest of the quote it cut). ``$?`` is kept
    across the lines, as for a person typing.
    """
    if kind == SHELL_FISH:
        return fish.takeover_lines(nonce, token)
    b, e, x, u = _fmt(BEGIN), _fmt(END, True), _fmt(EXITED, True), _fmt(USER_EXIT)
    y = _fmt(BASH_EXIT_LINE)
    lm, df = _fmt(LENGTH_MISMATCH, True), _fmt(DECODE_FAILED)
    helpers = (
        " __sane_q=$?; __sane_p=;"
        ' __sane_ev(){ eval "$__sane_c"; };'
        ' __sane_rc(){ return "$1"; };'
        # A long command's heredoc lines start with a space, which keeps them out of
        # history where space-led lines are (run_input): dropped here.
        " __sane_put(){ __sane_p=$(tr -d ' '); };"
        # `command eval` keeps dash's runner alive through a special builtin's error;
        # zsh's `command` only runs external programs (there it is `builtin`).
        ' __sane_e=command; [ -z "${ZSH_VERSION-}" ] || __sane_e=builtin;'
        # History: this first line deletes itself, and before it the shell probe's
        # lines (an ssh pane's, typed before this: they stayed in history too); the
        # later lines start with a space. The loop ends when `history -d` fails (a bash
        # older than 5.0 has no negative offsets).
        ' if [ -n "${BASH_VERSION-}" ]; then'
        " case :${HISTCONTROL-}: in *:ignorespace:*|*:ignoreboth:*) ;;"
        " *) HISTCONTROL=ignorespace${HISTCONTROL:+:$HISTCONTROL};"
        " history -d -1 2>/dev/null;"
        f' while case $(fc -ln -1 2>/dev/null) in *"{_SHELL_PROBE_FORMAT}"*)'
        " history -d -1 2>/dev/null;; *) false;; esac; do :; done;; esac;"
        ' elif [ -n "${ZSH_VERSION-}" ]; then setopt histignorespace 2>/dev/null;'
        # yash keeps every line in history, each line of a heredoc an entry of its own,
        # unless `histspace` is on (its sample config sets it): then as bash does.
        ' elif [ -n "${YASH_VERSION-}" ]; then set -o histspace; history -d -1 2>/dev/null;'
        f' while case $(fc -ln -1 2>/dev/null) in *"{_SHELL_PROBE_FORMAT}"*)'
        " history -d -1 2>/dev/null;; *) false;; esac; do :; done; fi;"
        ' __sane_rc "$__sane_q"'
    )
    run = (
        # A person's text held from the command line (sane.protocol.editor): run nothing.
        ' __sane_run(){ [ -z "${__sane_held-}" ] || { __sane_hc "$1"; return "$3"; };'
        " __sane_n=$1;"
        " case $4 in -) __sane_c=$5; __sane_b=$5;; b) __sane_b=$5;; *) __sane_b=$__sane_p;; esac;"
        " __sane_p=;"
        f' if [ "${{#__sane_b}}" != "$2" ]; then printf \'{lm}\' "$1" "${{#__sane_b}}";'
        ' __sane_b=; __sane_c=; return "$3"; fi;'
        ' if [ "$4" != - ]; then'
        ' __sane_c=$(printf %s "$__sane_b" | base64 -d && echo .)'
        f' || {{ printf \'{df}\' "$1"; __sane_b=; return "$3"; }};'
        " __sane_c=${__sane_c%.}; fi; __sane_b=;"
        f' printf \'{b}\' "$1"; trap : {RUN_SIGNAL}; __sane_rc "$3";'
        f' "$__sane_e" eval __sane_ev; __sane_r=$?; trap - {RUN_SIGNAL};'
        f' __sane_c=; __sane_ps; printf \'{e}\' "$__sane_n" "$__sane_r"; __sane_n=;'
        ' return "$__sane_r"; }; __sane_go=__sane_run; __sane_gx=;'
        ' __sane_rc "$__sane_q"'
    )
    traps = (
        # The traps the shell has before the takeover (set by hand or in an rc file),
        # listed into a private file, since `trap` in $(...) shows no EXIT trap in
        # dash, zsh, mksh and posh (a subshell has its own): there sane's trap replaced
        # the user's, which then never ran. bash and yash show it there: they keep the
        # one subshell (the file costs three processes more); without mktemp, $(...)
        # is all there is. A user's EXIT trap found there is kept by sane's, which runs
        # its action first (__sane_ua, read back by evaluating the listing with
        # `trap -- ` turned into __sane_ta): so an `exit` stays exact. A listing with
        # EXIT in it but no action read (no sed) gets no trap of sane's (__sane_ux).
        # A second takeover of the same shell lists sane's own trap: the user's action
        # it keeps (__sane_ua, from the first) is carried over; a listing without any
        # EXIT trap (the user's `trap - EXIT` took both) keeps none, so an action the
        # user removed never comes back.
        " __sane_uo=${__sane_ua-}; __sane_ua=;"
        ' __sane_ut=; __sane_ux=; __sane_ta(){ [ "$3" = EXIT ] || return 0; __sane_ux=;'
        " case $2 in *__sane_z=*) __sane_ua=$__sane_uo;; *) __sane_ua=$2;; esac; };"
        ' if [ -z "${BASH_VERSION-}${YASH_VERSION-}" ] &&'
        ' __sane_f=$(command mktemp 2>/dev/null); then trap >| "$__sane_f";'
        ' __sane_ut=$(command cat "$__sane_f"); command rm -f "$__sane_f";'
        " else __sane_ut=$(trap); fi; __sane_f=; case $__sane_ut in *EXIT*) __sane_ux=1;"
        " eval \"$(printf '%s\\n' \"$__sane_ut\" | command sed 's/^trap -- /__sane_ta -- /')\";;"
        ' esac; __sane_uo=; __sane_rc "$__sane_q"'
    )
    zsh_traps = (
        # zsh keeps an EXIT trap set inside a function to that function: it runs when
        # the function returns, and `trap - EXIT` there leaves the shell's own. sane's
        # runner evals every command in one (__sane_ev), so a user's `trap ... EXIT`
        # ran at the end of its run and `trap - EXIT` removed nothing. Where sane's
        # EXIT trap is set (no __sane_ux) and $functions loads, zsh's __sane_ev gives
        # its eval a placeholder exit trap of its own (a TRAPEXIT function: checked
        # without a fork) and, in an `always` block (run after a `return`, an error or
        # an `exit` too), reads what the command left: the placeholder (nothing
        # changed), a TRAPEXIT function of the user's, a `trap` (listed into a private
        # file, its action read back with `trap` a function in a subshell), or none
        # (`trap - EXIT`). Then it drops it from the function, and the action becomes
        # the one sane's trap keeps (__sane_ua, run at the shell's exit, as for a trap
        # from before the takeover), or none. Under `setopt posixtraps` a user's EXIT
        # trap is the shell's anyway: nothing is done.
        ' [ -z "${ZSH_VERSION-}" ] || [ -n "$__sane_ux" ] ||'
        " { zmodload zsh/parameter 2>/dev/null && eval '__sane_ev(){"
        # ($? is 0 after the placeholder: a call restores any other, and zsh's calls
        # are dear: ~20k instructions, a third of a run's eval.)
        " __sane_ts=$? __sane_tw=; [[ -o posixtraps ]] ||"
        " { __sane_tw=1; TRAPEXIT(){ : __sane_te; }; }; (( ! __sane_ts )) || __sane_rc $__sane_ts;"
        ' { eval "$__sane_c"; } always { if [[ -z $__sane_tw ]]; then :;'
        " elif [[ ${functions[TRAPEXIT]-} == *__sane_te ]]; then trap - EXIT;"
        " elif (( ${+functions[TRAPEXIT]} )); then"
        ' functions[__sane_uf]=${functions[TRAPEXIT]}; __sane_ua="__sane_uf 0"; trap - EXIT;'
        ' elif __sane_f=$(command mktemp 2>/dev/null); then trap >| "$__sane_f";'
        ' __sane_ua=$(trap(){ [[ $3 != EXIT ]] || print -rn -- "$2"; };'
        ' eval "$(<$__sane_f)"); command rm -f "$__sane_f"; __sane_f=; trap - EXIT;'
        " fi; }; }'; };"
        ' __sane_rc "$__sane_q"'
    )
    exit_trap = (
        # One EXIT trap for the shell's life, set at takeover and never touched again, so
        # a trap the user sets later (in a run or by hand) stays theirs. It acts only
        # while a run is going (__sane_n set: cleared when a run ends, and by the status
        # probe after an abort; not RUN_FD, which dash closes before the trap runs):
        # prints the X marker, waits for sane's key. A user's trap the shell already
        # had runs first, with the exit status as $? (the line before), after a U
        # marker. bash's own `exit` line, printed before any EXIT trap, is told apart
        # by a Y marker (sane.protocol.output.clean): only bash prints either.
        ' [ -n "$__sane_ux" ] || trap \'__sane_z=$?;'
        f' [ -z "${{BASH_VERSION-}}" ] || [ -z "${{__sane_n-}}" ] || printf "{y}" "$__sane_n";'
        ' if [ -n "${__sane_ua-}" ]; then'
        f' [ -z "${{__sane_n-}}" ] || printf "{u}" "$__sane_n";'
        ' __sane_rc "$__sane_z"; eval "$__sane_ua"; fi; if [ -n "${__sane_n-}" ]; then'
        f' __sane_x=$(printf "{x}" "$__sane_n" "$__sane_z"); printf %s "$__sane_x";'
        " read -r __sane_x; fi' EXIT;"
        # zsh runs no EXIT trap when `set -e` ends it inside a function (the runner
        # evals every command in one), and tmux then drops what it had not yet sent of
        # the dying pane: the run's output, even its begin marker. zsh runs ZERR just
        # before that exit: there, with errexit on, in the shell itself (not a
        # subshell, which inherits the trap and would only end itself), the same X.
        ' [ -z "${ZSH_VERSION-}" ] || case $__sane_ut in *ZERR*) ;; *) trap \'__sane_z=$?;'
        ' if [[ -o errexit && ${ZSH_SUBSHELL:-0} == 0 && -n "${__sane_n-}" ]]; then'
        f' __sane_x=$(printf "{x}" "$__sane_n" "$__sane_z"); printf %s "$__sane_x";'
        " read -r __sane_x; fi' ZERR;; esac; __sane_ut=; __sane_ux=;"
        ' __sane_rc "$__sane_q"'
    )
    p = printf_format(PROMPT, False).replace("%s", token)
    q = printf_format(PROMPT_END, False).replace("%s", token)
    # yash: its prompt's end with arg 1 (its right prompt follows), and that one's end.
    q_right = printf_format(PROMPT_END, True).replace("%s", token, 1).replace("%s", "1")
    g = printf_format(RIGHT_PROMPT_END, False).replace("%s", token)
    prompt = (
        # The user's prompt stays as it is, behind an invisible prefix: the prompt
        # marker (see the module docs), put back whenever something removed it.
        # (bash: the continuation flag and PS2's prefix, sane.protocol.editor.)
        ' __sane_ps(){ __sane_s=$?; __sane_pc=; [ -z "${__sane_p2-}" ] || __sane_p2s;'
        ' case $PS1 in "$__sane_pp"*) ;;'
        " *) PS1=$__sane_pp$PS1;; esac;"
        # Where there are no editor widgets (sane.ops.has_input) a suffix marks the
        # prompt's end, so sane learns the prompt as drawn.
        ' case $PS1 in *"$__sane_pq") ;; *) PS1=$PS1$__sane_pq;; esac;'
        # yash draws YASH_PS1 instead of PS1 when it is set (its sample config, which
        # yash loads for every user without a ~/.yashrc, sets it): the same markers.
        ' [ -z "${YASH_PS1+x}" ] || { case $YASH_PS1 in "$__sane_pp"*) ;;'
        ' *) YASH_PS1=$__sane_pp$YASH_PS1;; esac; case $YASH_PS1 in *"$__sane_pq") ;;'
        " *) YASH_PS1=$YASH_PS1$__sane_pq;; esac; };"
        # yash's right prompt (YASH_PS1R where set, else PS1R) is drawn after the
        # prompt's end marker, on the line the screen check compares: it gets its own
        # end marker, and a space before the user's, so that yash draws it (and the
        # marker) also when the user's expands to nothing (yash draws no right prompt
        # of width 0): the prompt-end marker says one follows (sane.protocol.editor).
        ' [ -z "$__sane_pr" ] || if [ -n "${YASH_PS1R+x}" ]; then'
        ' case $YASH_PS1R in *"$__sane_pr") ;; *) YASH_PS1R=" $YASH_PS1R$__sane_pr";; esac;'
        ' else case ${PS1R-} in *"$__sane_pr") ;; *) PS1R=" ${PS1R-}$__sane_pr";; esac; fi;'
        ' return "$__sane_s"; };'
        ' __sane_rc "$__sane_q"'
    )
    yash_marks = (
        # yash: its prompt's end says that its right prompt follows, whose own end is
        # marked too (__sane_ps; sane.protocol.editor.drawn_prompt).
        ' __sane_pr=; __sane_qy=; [ -z "${YASH_VERSION-}" ] ||'
        f" {{ __sane_qy=\"\\[$(printf '{q_right}')\\]\";"
        f" __sane_pr=\"\\[$(printf '{g}')\\]\"; }};"
        ' __sane_rc "$__sane_q"'
    )
    prompt_set = (
        ' __sane_pq=; if [ -n "${BASH_VERSION-}" ]; then'
        f" __sane_pp='\\[{p}\\]';"
        # bash-only syntax inside eval: dash parses the whole line first.
        " __sane_nl=$(printf '\\nx'); __sane_nl=${__sane_nl%x};"
        # __sane_pa: also called at every run's end where bash has line editing (the
        # continuation flag's reset, sane.protocol.editor), so a run that set
        # PROMPT_COMMAND (`. ~/.bashrc`) does not leave the hook out.
        ' eval \'__sane_pa(){ case "${PROMPT_COMMAND[*]-}" in *__sane_ps*) ;;'
        ' *) if [[ $(declare -p PROMPT_COMMAND 2>/dev/null) == "declare -a"* ]];'
        " then PROMPT_COMMAND+=(__sane_ps);"
        ' else PROMPT_COMMAND="${PROMPT_COMMAND:+$PROMPT_COMMAND$__sane_nl}__sane_ps"; fi;;'
        " esac; }'; __sane_pa;"
        ' elif [ -n "${ZSH_VERSION-}" ]; then'
        f" __sane_pp=\"%{{$(printf '{p}')%}}\";"
        " eval '(( ${precmd_functions[(I)__sane_ps]} )) || precmd_functions+=(__sane_ps)';"
        f" else __sane_pp=$(printf '{p}'); __sane_pq=$(printf '{q}');"
        # yash and busybox ash (no version variable, but $RANDOM, unlike dash and
        # posh) count a prompt's width without what \\[ \\] encloses: the markers.
        ' if [ -n "${YASH_VERSION-}" ] || { [ -z "${KSH_VERSION-}" ] && [ -n "${RANDOM-}" ]; };'
        ' then __sane_pp="\\[$__sane_pp\\]"; __sane_pq="\\[$__sane_pq\\]"; fi;'
        ' [ -z "$__sane_qy" ] || __sane_pq=$__sane_qy; fi; __sane_ps;'
        ' __sane_rc "$__sane_q"'
    )
    yash_hook = (
        # yash runs PROMPT_COMMAND (a string or an array) before each prompt, as bash
        # does: a framework rebuilding the prompt there would drop the markers, so
        # sane's hook goes last (eval: dash and posh parse the whole line first).
        ' [ -z "${YASH_VERSION-}" ] || case "${PROMPT_COMMAND-}" in *__sane_ps*) ;;'
        " *) eval 'PROMPT_COMMAND=(\"${PROMPT_COMMAND-}\" __sane_ps)';; esac;"
        ' __sane_rc "$__sane_q"'
    )
    # READY carries $$: the shell's pid as its own host sees it (for an ssh pane,
    # the remote pid), so prompt detection can read that host's /proc. IMAGE before it:
    # which exec of that pid holds the runner (field 28 of /proc/$$/stat, cut by
    # parameter expansion alone: no word splitting, which zsh does not do; ksh93 needs
    # the `) ` quoted), so a shell that `exec`s another is told from the runner even
    # where the new shell catches RUN_SIGNAL itself (ksh93 catches nearly every signal:
    # sane.ops.prompts.in_runner).
    ready = (
        # dash and posh (no $RANDOM, unlike every other shell sane drives): a default
        # PS2 gets a bold space, which looks the same and tells the screen check a
        # continuation from a `> ` prompt (sane.ops.has_input.TTY_PS2).
        f' [ -n "${{RANDOM+x}}" ] || [ "${{PS2-}}" != "> " ] || PS2=$(printf \'{TTY_PS2_PRINTF}\');'
        " __sane_i=; { read -r __sane_i </proc/$$/stat; } 2>/dev/null;"
        ' __sane_i=${__sane_i##*") "}; __sane_j=25; while [ $__sane_j -gt 0 ]; do'
        " __sane_i=${__sane_i#* }; __sane_j=$((__sane_j-1)); done; __sane_i=${__sane_i%% *};"
        f" case $__sane_i in ?????????*) printf '{_fmt(IMAGE, True)}' {nonce}"
        ' "${__sane_i#"${__sane_i%?????????}"}";; esac;'
        f' printf \'{_fmt(READY, True)}\' {nonce} "$$"; __sane_rc "$__sane_q"'
    )
    widgets = [line + ' __sane_rc "$__sane_q"' for line in editor.posix_lines(nonce, EDITOR)]
    first = [helpers, run, traps, zsh_traps, exit_trap, prompt, yash_marks, prompt_set, yash_hook]
    return [*first, *widgets, ready]


# The line after the takeover's lines: ends the bootstrap's read loop. Should the loop
# have ended early (a special builtin's error ends a whole typed line in an interactive
# shell), the shell reads the remaining lines at its prompt, this one too: it then puts
# the tty's modes back itself.
END_TAG = "#sane-takeover-end"
TAKEOVER_END = (
    ' [ -z "${__sane_tty-}" ] || stty "$__sane_tty" 2>/dev/null; __sane_tty=;'
    f' __sane_rc "$__sane_q" {END_TAG}'
)


# Around a discarded line's text: an OSC sequence no terminal shows (tmux ignores
# unknown numbers), so the person's blind keys are not drawn as sane's output.
_HIDE_START = b"\x1b]7771;"
_HIDE_END = b"\x07"


def line_tag(nonce: str) -> str:
    """What starts each line sane sends to the bootstrap's loop of ``nonce``: the
    loop runs only what follows it (see :func:`bootstrap_line`). A command in itself
    (``$?`` kept), so the line still runs alone should the loop have ended early and
    the shell read it at its prompt."""
    return f' __sane_rc "$__sane_q" {nonce};'


def loop_lines(nonce: str, lines: list[str]) -> list[str]:
    """``lines`` as sent to the bootstrap's loop of ``nonce``: each carries its tag."""
    return [line_tag(nonce) + line for line in lines]


def bootstrap_line(nonce: str) -> str:
    """The one line pasted at a POSIX shell's prompt at takeover: it turns the tty's
    echo off, says so (a BOOTSTRAP marker), reads the takeover's lines from the tty
    and ``eval``s each in the shell itself until TAKEOVER_END, then puts the tty's
    modes back as they were.

    Why: pasted at the prompt, the ~5 KB of takeover lines came back as ~11 KB of
    echo (readline draws a paste twice, highlighted then plain), through the
    shell's editor, sshd, ssh, tmux and sane's control client, for every server of a
    fleet; read by ``read`` with echo off, none of it is drawn. sane sends the lines
    only once the marker shows echo off and the editor done with the tty (never typed
    ahead into an editor, which may buffer them). Each line is ``eval``ed with
    the ``$?`` the shell had before this line, as if typed at the prompt. Without
    ``stty`` the lines are echoed once by the tty, and still run.

    Only sane's own lines run: each carries :func:`line_tag` (this nonce), and only
    what follows the tag is ``eval``ed. Keys a person typed into the pane meanwhile
    (read here as lines, blind: echo is off) are never run: a line without the tag,
    or the text a line holds before it (typed without Enter, joined to sane's line),
    is discarded and reported between two DISCARDED markers, itself inside an OSC
    sequence no terminal shows (sane.ops.takeover then refuses the run, naming it).
    A copy of this line (typed again while the first was slow to start, read by its
    loop) holds another nonce's tag: discarded silently, so one loop never starts
    another. Keys a terminal query's answer left on the line may garble the start of
    this line (seen in busybox ash): its ``__sane_rc`` takes an empty status as 0,
    never the error that would end the loop.
    """
    t = _fmt(DISCARDED)
    hide = _HIDE_START.decode().replace("\x1b", "\\033")
    return (
        ' __sane_q=$?; __sane_rc(){ return "${1:-0}"; };'
        " __sane_tty=$(stty -g 2>/dev/null); stty -echo 2>/dev/null;"
        f" __sane_bt='{line_tag(nonce)}';"
        f" printf '{_fmt(BOOTSTRAP)}' {nonce};"
        " while IFS= read -r __sane_bl; do case $__sane_bl in"
        ' *"$__sane_bt"*) __sane_bd=${__sane_bl%%"$__sane_bt"*};'
        ' __sane_bl=${__sane_bl#*"$__sane_bt"};;'
        " *__sane_bl*) continue;; *) __sane_bd=$__sane_bl; __sane_bl=;; esac;"
        f' [ -z "$__sane_bd" ] || printf \'{t}{hide}%s\\007{t}\' {nonce} "$__sane_bd" {nonce};'
        f" case $__sane_bl in *'{END_TAG}') break;; esac;"
        ' [ -z "$__sane_bl" ] || { __sane_rc "$__sane_q"; eval "$__sane_bl"; }; done;'
        " __sane_bl=; __sane_bd=; __sane_bt=;"
        ' [ -z "$__sane_tty" ] || stty "$__sane_tty" 2>/dev/null; __sane_tty=;'
        ' __sane_rc "$__sane_q"'
    )


def bootstrapped(buf: bytes | bytearray, nonces: list[str]) -> str | None:
    """The nonce of the bootstrap line whose loop is reading (its marker is in
    ``buf``), if any."""
    found, _ = scan(buf, 0)
    return next((m.tag for m in found if m.kind == BOOTSTRAP and m.tag in nonces), None)


def discarded(buf: bytes | bytearray, nonce: str) -> list[bytes]:
    """What the bootstrap's loop of ``nonce`` read and did not run (its DISCARDED
    pairs in ``buf``), each as the tty gave it to ``read``."""
    found, _ = scan(buf, 0)
    marks = [m for m in found if m.kind == DISCARDED and m.tag == nonce]
    texts = []
    for first, second in zip(marks[::2], marks[1::2], strict=False):
        text = bytes(buf[first.end : second.start])
        texts.append(text.removeprefix(_HIDE_START).removesuffix(_HIDE_END))
    return texts


def typed_meanwhile(seen: bytes | bytearray, nonce: str) -> str:
    """What a person typed into the pane while the bootstrap's loop of ``nonce`` read
    the takeover's lines (it ran none of it): the discarded lines, without tmux's
    answers to terminal queries (typed into the pane by tmux, not a person), joined
    by newlines; empty if there was none."""
    texts = (
        drop_all_answers(text).decode("utf-8", "replace").strip() for text in discarded(seen, nonce)
    )
    return "\n".join(text for text in texts if text)


def shell_probe(nonce: str) -> str:
    """A line every shell parses the same (POSIX shells, fish, csh/tcsh): a child ``sh``
    prints a SHELL marker with its parent's pid, then the parent's program name (the
    shell that read the line) up to the end of the line. Single quotes hold the
    script whole in all of them; it holds no ``!`` or ``\'``.

    The name is read with ``sh``'s own ``read`` from ``/proc`` (``ps`` only where there
    is none): a ``$(cat ...)`` cost a fork and an exec of ``cat`` on every server a
    fleet connects, ~1 ms of the server's CPU each."""
    script = (
        "n=; { read -r n </proc/$PPID/comm; } 2>/dev/null || n=$(ps -o comm= -p $PPID);"
        f' printf "{_SHELL_PROBE_FORMAT}%s\\n" {nonce} "$PPID" "$n"'
    )
    return f" sh -c '{script}'"


def shell_name(buf: bytes | bytearray, nonce: str) -> tuple[int, str] | None:
    """The shell probe's answer in ``buf``: (pid, program name), once its line is whole."""
    found, _ = scan(buf, 0)
    for m in found:
        if m.tag == nonce and m.kind == SHELL and m.arg is not None:
            end = buf.find(b"\n", m.end)
            if end < 0:
                return None
            name = bytes(buf[m.end : end]).decode("utf-8", "replace").strip()
            return m.arg, name.rsplit("/", 1)[-1].lstrip("-")
    return None


def exit_status(code: int) -> int:
    """A shell's ``$?`` as the 0..255 exit status every caller expects.

    Shells report a command killed by signal n as 128+n, except ksh93 (256+n) and
    yash (384+n); and ksh93 lets a function return more than 255, which becomes its
    low byte once the shell exits with it, as everywhere else.
    """
    if 256 < code <= 256 + 64 or 384 < code <= 384 + 64:
        return 128 + code % 128
    return code & 0xFF


class RunInput(NamedTuple):
    """What to type into the pane: a short line of keys, or a paste for long commands."""

    kind: str  # "keys" (send-keys -l, then Enter) or "paste" (paste-buffer, ends in \n)
    text: str


def _call(nonce: str, length: int, prev: str, mode: str, arg: str | None) -> str:
    """The typed call of the runner.

    ``${__sane_go:-printf} ${__sane_gx-'...'}`` expands to the runner where it is
    installed (``__sane_gx`` set and empty: no word); in a shell without it (a nested
    shell the user started, a new one exec'd in place of the runner's) the same words
    print a MISSING_RUNNER marker instead of "command not found". Two expansions, each
    one word, because zsh does not split an unquoted expansion into words. ``prev``
    carries the previous command's ``$?`` into the command, as for a person typing.
    """
    missing = _fmt(MISSING_RUNNER)
    tail = f" {arg}" if arg is not None else ""
    return (
        f"${{__sane_go:-printf}} ${{__sane_gx-'{missing}'}} {nonce} {length} {prev}"
        f" {mode}{tail} {RUN_FD}<{RUN_FD_TARGET}"
    )


def status_probe(nonce: str, kind: str = SHELL_POSIX) -> str:
    """The line sane types at a prompt the kernel showed idle: it prints a status
    marker with ``$?``, the status the aborted run left (of kind NEW_SHELL when the
    shell has no runner: the run's shell was replaced), and ends the run for sane's
    EXIT trap (``__sane_n``). Needs nothing of the runner (the shell may have lost
    it); starts with a space, so it stays out of history."""
    if kind == SHELL_FISH:
        return fish.status_probe(nonce)
    # N instead of S when the shell has no runner: a new shell took the run's place.
    fmt = _fmt("%s", True)
    return (
        f' __sane_z=$?; __sane_k={NEW_SHELL}; [ -z "${{__sane_go-}}" ] ||'
        f" __sane_k={STATUS};"
        # The prompt marker put back, as the runner does at a run's end (the abort
        # skipped that): a run that set PS1 (`PS1='x> '; sleep 30`, interrupted) left
        # a prompt without it, and where only the runner puts it back (every shell but
        # bash, zsh and fish) the prompt after this line was never seen: the screen
        # check's record of it stayed stale and the next run was refused pane_has_input
        # (mksh, ksh93, yash, ash: always; dash, posh: when the kernel's echo of the
        # line was slow). __sane_pp is set once __sane_ps is defined (the takeover).
        # `|| :`: __sane_ps returns the status it found (the test's 1), which would
        # set off zsh's ZERR trap (sane's own overwrote __sane_z) or a user's ERR trap.
        ' [ -z "${__sane_pp-}" ] || __sane_ps || :;'
        f' printf \'{fmt}\' {nonce} "$__sane_k" "$__sane_z"; __sane_n='
    )


def _plain(command: str) -> bool:
    """Printable ASCII on one line: safe to type as a single-quoted word.

    Each such byte is a self-inserting key for readline and every POSIX shell, and
    single quotes stop all expansion (bash's ``!`` included), so the shell receives
    the text unchanged; the runner still checks its length. This skips a base64
    decode (a fork and an exec, ~2.5 ms) for the commands agents type most.
    """
    return all(" " <= ch <= "~" for ch in command)


def run_input(
    nonce: str,
    command: str,
    force_paste: bool = False,
    kind: str = SHELL_POSIX,
    posix_script: bool = False,
) -> RunInput:
    """Frame ``command`` for the runner: one typed line, or a heredoc when long.

    ``posix_script``: the command is POSIX sh (sane's own scripts): fish runs it
    through ``sh -c``, a child that shares its terminal, cwd and exported variables.
    """
    if kind == SHELL_FISH:
        if posix_script:
            command = f"sh -c {fish.quote(command)} sh"
        return _fish_input(nonce, command, force_paste)
    if not force_paste and _plain(command):
        line = " " + _call(nonce, len(command), '"$?"', "-", shlex.quote(command))
        if len(line) <= MAX_TYPED_LINE:
            return RunInput("keys", line)
    import base64  # only for commands that are not plain ASCII (~1.5 ms to import)

    b64 = base64.b64encode(command.encode("utf-8")).decode("ascii")
    line = " " + _call(nonce, len(b64), '"$?"', "b", f'"{b64}"')
    if len(line) <= MAX_TYPED_LINE and not force_paste:
        return RunInput("keys", line)
    chunks = [b64[i : i + HEREDOC_WIDTH] for i in range(0, len(b64), HEREDOC_WIDTH)] or [""]
    body = "\n".join(chunks)
    # Every line starts with a space (the runner's __sane_put drops them): bash, zsh
    # and yash keep no space-led line in history (the takeover sets them so), and
    # yash keeps each heredoc line as an entry of its own. The delimiter too, quoted.
    delim = f" __SANE_{nonce}"
    call = _call(nonce, len(body), '"$__sane_q"', "p", None)
    lines = "\n ".join(chunks)
    text = f" __sane_q=$?; __sane_put <<'{delim}'\n {lines}\n{delim}\n {call}\n"
    return RunInput("paste", text)


def _fish_input(nonce: str, command: str, force_paste: bool) -> RunInput:
    """The same framing for fish: a quoted word or base64 on one line, else chunks."""
    if not force_paste and _plain(command):
        line = fish.call(nonce, len(command), "-", fish.quote(command))
        if len(line) <= fish.MAX_TYPED_LINE:
            return RunInput("keys", line)
    import base64

    b64 = base64.b64encode(command.encode("utf-8")).decode("ascii")
    line = fish.call(nonce, len(b64), "b", b64)
    if len(line) <= fish.MAX_TYPED_LINE and not force_paste:
        return RunInput("keys", line)
    return RunInput("paste", fish.paste_lines(nonce, b64))

"""The person's command line: what sane does before it types into a shell's line editor.

A pane is shared: a person may have typed part of a command (``rm -rf DIR #``) and
left it, or pressed Esc in vi mode. Keys sane typed then would be appended to that
text (the person's command runs, sane's is commented out or mangled), or read as vi
commands. So sane never types its line into an editor's buffer blindly.

Where the line editor is programmable (bash's ``bind -x``, zsh's zle widgets, fish's
``bind`` functions), the runner installs, at takeover, key bindings on key sequences
nobody types (``ESC [ 7770 ~`` and neighbours, bound in every keymap: emacs, vi
insert, vi command). sane types one of them right before its line:

* **hold** (:data:`HOLD_KEY`): the widget moves the buffer, the cursor and whether the
  editor was in vi command mode into shell variables, empties the buffer and leaves
  the editor in insert mode, so sane's line arrives alone. The runner, seeing held
  text, runs nothing: it prints the text (base64, in a marker of kind
  :data:`PAYLOAD_KIND`) and a :data:`HELD` marker, and returns. sane reports
  ``pane_has_input`` naming the text and types :data:`BACK_KEY`, whose widget puts
  the text and cursor back as the person left them.
* **drop** (:data:`DROP_KEY`, the caller's ``clear_input``): the same, but the text is
  discarded, so the run goes ahead.

A continuation (the person pressed Enter on an unfinished command: ``PS2``) holds
earlier lines the widget does not see in its buffer: zsh's hold finds them in
``$PREBUFFER``; bash's learns of the continuation from a flag its ``PS2`` sets (see
:func:`posix_lines`) and takes sane's line back off the editor's line at Enter.

The key sequences are whole escape sequences, read as one key by every editor, and
run nothing on their own. Shells whose editor cannot be programmed this way (dash,
posh, ksh93, mksh, busybox ash, yash) do not get them (``EDITOR_SCREEN``).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from sane.protocol.markers import (
    HELD,
    PREFIX,
    PROMPT,
    PROMPT_END,
    RIGHT_PROMPT_END,
    TERMINATOR,
    Marker,
    printf_format,
    scan,
)
from sane.protocol.output import strip_escapes

# The escape sequences sane types into a programmable editor (see the module docs).
HOLD_KEY = "\x1b[7770~"
BACK_KEY = "\x1b[7771~"
DROP_KEY = "\x1b[7772~"
# Yanks the editor's last kill back onto the line (the takeover's guard, below).
YANK_KEY = "\x1b[7774~"
# Typed at the end of the line before the takeover's kill, so the kill is never empty
# (a yank then brings back this kill, not an older one); the hold widgets drop it.
TAKEOVER_SENTINEL = " #sane-takeover"
# fish gets the sentinel as a bracketed paste (sane.ops.has_input.takeover_guard), whose
# leading space fish drops on an empty line (self-insert-notfirst): its widgets take
# the sentinel with or without it (a regular expression).
_FISH_SENTINEL = " ?" + TAKEOVER_SENTINEL.lstrip()
# bash only: from vi command mode, the hold and drop keys are macros that enter
# insert mode (`i`) and then type this key, bound in the insert keymap.
_BASH_VI_HOLD = "\x1b[7773~"

# Pane option values (sane.tmux.panes.OPT_EDITOR): how the shell's command line is
# checked before sane types into it.
EDITOR_HOLD = "hold"  # programmable: the hold/drop keys above
EDITOR_SCREEN = "screen"  # not programmable: the screen is checked
# The same, for an editor with a vi mode whose command mode is left before sane types
# (mksh, ksh93, yash: sane.ops.has_input.INSERT_KEYS).
EDITOR_SCREEN_VI = "screen-vi"
EDITOR_TTY = "tty"  # no line editor (the kernel's line, dash and posh): screen, then kernel
# The editors checked on the screen (and after that by their abort key, C-c).
SCREEN_EDITORS = frozenset({EDITOR_SCREEN, EDITOR_SCREEN_VI})


def _rl(key: str) -> str:
    """A key sequence as readline's and zsh's bind syntax writes it (``\\e`` for ESC)."""
    return key.replace("\x1b", "\\e")


def _fish(key: str) -> str:
    """A key sequence as fish's ``bind`` takes it (one word, ``\\e`` for ESC)."""
    return key.replace("\x1b", "\\e").replace("[", "\\[")


def _report(kind: str) -> str:
    """The shell code printing the held text (base64, in one OSC string) and then the
    HELD marker with 1 when the editor was in vi command mode; ``$1``: the nonce."""
    payload = printf_format(PAYLOAD_KIND, True)
    held = printf_format(HELD, True)
    if kind == "fish":
        return (
            f" printf '{payload}' $argv[1] (printf %s $__sane_held | base64 | string join '');"
            f" printf '{held}' $argv[1] $__sane_hk;"
        )
    return (
        f' printf \'{payload}\' "$1" "$(printf %s "$__sane_held" | base64 | tr -d \'\\n\')";'
        f' printf \'{held}\' "$1" "${{__sane_hk:-0}}";'
    )


# The HELD marker's argument: what the hold found (the runner prints ``__sane_hk``).
HELD_VI_COMMAND = 1  # a line of text (0) held in vi command mode
HELD_CONTINUATION = 2  # bash: a continuation, left as it was (see posix_lines)

# printf_format builds ``ESC ] 7770 ; SANE ; tag ; KIND [; arg] BEL``; the payload
# uses the kind letter below with the base64 text as its argument.
PAYLOAD_KIND = "T"


def posix_lines(ready_nonce: str, widget_marker: str) -> list[str]:
    """The takeover lines installing the widgets in bash or zsh (no-ops elsewhere);
    each prints ``widget_marker`` (with ``ready_nonce``) when it installed them, so
    sane knows which check the pane takes. No line holds an ESC byte (the key
    sequences are written ``\\e``, which bind and bindkey read as ESC), and each stays
    under the runner's typed-line limit: every shell reads them all."""
    hold, back, drop, vi = _rl(HOLD_KEY), _rl(BACK_KEY), _rl(DROP_KEY), _rl(_BASH_VI_HOLD)
    yank = _rl(YANK_KEY)
    w = printf_format(widget_marker, False)
    report = " __sane_hc(){" + _report("posix") + " };"
    bash = (
        # bash with line editing on (emacs or vi): bind -x widgets in every keymap.
        ' if [ -n "${BASH_VERSION-}" ]; then case :${SHELLOPTS-}: in *:emacs:*|*:vi:*)'
        f" __sane_hh(){{ __sane_held=${{READLINE_LINE%'{TAKEOVER_SENTINEL}'}};"
        " __sane_hp=$READLINE_POINT;"
        " READLINE_LINE=; READLINE_POINT=0; };"
        " __sane_hb(){ READLINE_LINE=$__sane_held; READLINE_POINT=$__sane_hp; __sane_held=; };"
        " for __sane_m in emacs vi-insert; do"
        f" bind -m $__sane_m -x '\"{hold}\": __sane_h0';"
        f" bind -m $__sane_m -x '\"{vi}\": __sane_h1';"
        f" bind -m $__sane_m -x '\"{drop}\": __sane_hd';"
        f' bind -m $__sane_m -x \'"{back}": __sane_hb\'; bind -m $__sane_m \'"{yank}": "\\C-y"\';'
        f' done; bind -m vi-command \'"{hold}": "i{vi}"\';'
        f' bind -m vi-command \'"{yank}": "i\\C-y"\';'
        f" bind -m vi-command '\"{drop}\": \"i{drop}\"'; printf '{w}' {ready_nonce};;"
        " esac; fi;"
    )
    bash_ps = (
        # bash: a continuation (PS2: the person pressed Enter on an unfinished command)
        # keeps its earlier lines in the parser, out of the widgets' reach, and sane's
        # line would join them. A flag tells: PS2 gets a prefix, PS1 a suffix, that
        # print nothing and set __sane_pc to 1 and 0 (a side effect of their
        # expansion), put back by __sane_ps (last in PROMPT_COMMAND, and at every
        # run's end, which clears the flag too, and puts itself back in
        # PROMPT_COMMAND: __sane_pa) if a prompt lost them; taken away with
        # promptvars off (they would show), and kept out of an exported prompt (a
        # child dash or zsh would show it). (In eval: dash parses the whole line.)
        ' if [ -n "${BASH_VERSION-}" ]; then case :${SHELLOPTS-}: in *:emacs:*|*:vi:*)'
        " __sane_p2='${BASH_VERSION:(__sane_pc=1):0}'; __sane_p1='${BASH_VERSION:(__sane_pc=0):0}';"
        """ eval '__sane_p2s(){ __sane_pa; if shopt -q promptvars && [[ ${PS2@a} != *x* ]]; then"""
        ' [[ $PS2 == "$__sane_p2"* ]] || PS2=$__sane_p2$PS2; else PS2=${PS2#"$__sane_p2"}; fi;'
        " if shopt -q promptvars && [[ ${PS1@a} != *x* ]]; then"
        ' [[ $PS1 == *"$__sane_p1"* ]] || PS1=$PS1$__sane_p1;'
        ' else PS1=${PS1%"$__sane_p1"}; fi; }\';'
        " __sane_p2s;; esac; fi;"
    )
    bash_cont = (
        # At a continuation the hold (__sane_hq) binds Enter to __sane_hl, which takes
        # sane's line (every line of a paste) off readline's line before the parser
        # reads it, reports the hold with the line's nonce (kind 2: the person's line
        # is put back here, not by the back key) and gives Enter back to accept-line;
        # the drop ends the continuation unrun (SIGINT, as C-c does), so sane's line
        # arrives at a new prompt.
        ' if [ -n "${BASH_VERSION-}" ]; then case :${SHELLOPTS-}: in *:emacs:*|*:vi:*)'
        " __sane_ke(){ for __sane_m in emacs vi-insert; do for __sane_k in '\"\\C-m\"' '\"\\C-j\"';"
        ' do bind -m $__sane_m $1 "$__sane_k: $2"; done; done; };'
        " __sane_hl(){ case $READLINE_LINE in *'${__sane_go:-printf} '*) __sane_ke '' accept-line;"
        ' __sane_t=${READLINE_LINE#*"\'} "}; __sane_hk=2; __sane_hc "${__sane_t%% *}";'
        " READLINE_LINE=$__sane_held; READLINE_POINT=$__sane_hp; __sane_held=;;"
        " *) READLINE_LINE=;; esac; };"
        ' __sane_hq(){ [ "${__sane_pc-}" != 1 ] || __sane_ke -x __sane_hl; };'
        " __sane_h0(){ __sane_hk=0; __sane_hh; __sane_hq; };"
        " __sane_h1(){ __sane_hk=1; __sane_hh; __sane_hq; };"
        ' __sane_hd(){ __sane_hh; __sane_held=; [ "${__sane_pc-}" != 1 ] || kill -INT $$; };'
        " esac; fi;"
    )
    zsh = (
        # zsh with its line editor: zle widgets in the emacs, viins and vicmd keymaps.
        # (zsh's `[ -o zle ]` reads -o as "or": its $- holds Z while zle is on.)
        ' if [ -n "${ZSH_VERSION-}" ]; then case $- in *Z*)'
        # A continuation (PS2: the person pressed Enter on an unfinished command)
        # holds its earlier lines in $PREBUFFER, where sane's line would join them:
        # the whole construct is held (or, for the drop key, dropped) and send-break
        # ends it unrun, so sane's line arrives at a new prompt (send-break ends the
        # widget too: everything is set before it).
        f" __sane_hh(){{ __sane_held=${{BUFFER%'{TAKEOVER_SENTINEL}'}};"
        " __sane_hp=$CURSOR; __sane_hk=0;"
        ' [ "$KEYMAP" = vicmd ] && __sane_hk=1;'
        ' if [ -n "$PREBUFFER" ]; then __sane_held=$PREBUFFER$BUFFER;'
        " __sane_hp=${#__sane_held}; __sane_hk=0;"
        ' [ -n "${__sane_hx-}" ] && __sane_held=; __sane_hx=; zle send-break; return 0; fi;'
        " BUFFER=; zle -K main; return 0; };"
        " __sane_hd(){ __sane_hx=1; __sane_hh; __sane_hx=; __sane_held=; };"
        " __sane_hb(){ BUFFER=$__sane_held; CURSOR=$__sane_hp; __sane_held=;"
        ' [ "$__sane_hk" = 1 ] && zle -K vicmd; return 0; };;'
        " esac; fi;"
    )
    zsh_keys = (  # a second line: every typed line fits busybox ash's editor
        ' if [ -n "${ZSH_VERSION-}" ]; then case $- in *Z*)'
        # The yank takes the kill that ends in the sentinel, not simply the last one:
        # zsh also keeps a bracketed paste (the takeover's own lines) in its kill ring.
        # (In eval: dash parses the whole line, and cannot parse an array.)
        ' eval \'__sane_hy(){ zle -K main; local k; for k in "$CUTBUFFER" "${killring[@]}"; do'
        f' case $k in *"{TAKEOVER_SENTINEL}") BUFFER=${{k%"{TAKEOVER_SENTINEL}"}};'
        " CURSOR=${#BUFFER}; return 0;; esac; done; return 0; }';"
        " zle -N __sane_hh; zle -N __sane_hd; zle -N __sane_hb; zle -N __sane_hy;"
        " for __sane_m in emacs viins vicmd; do"
        f" bindkey -M $__sane_m '{hold}' __sane_hh; bindkey -M $__sane_m '{drop}' __sane_hd;"
        f" bindkey -M $__sane_m '{back}' __sane_hb; bindkey -M $__sane_m '{yank}' __sane_hy;"
        f" done; printf '{w}' {ready_nonce};;"
        " esac; fi;"
    )
    return [report, bash, bash_ps, bash_cont, zsh, zsh_keys]


def fish_line(ready_nonce: str, widget_marker: str) -> str:
    """The same widgets in fish (its modes: default, the emacs and vi normal mode;
    insert, visual, replace); ``__sane_pre`` checks ``__sane_held``."""
    hold, back, drop, yank = _fish(HOLD_KEY), _fish(BACK_KEY), _fish(DROP_KEY), _fish(YANK_KEY)
    w = printf_format(widget_marker, False)
    return (
        " function __sane_hc;" + _report("fish") + " end;"
        # The hold key comes before every run: an empty line (the usual case) costs one
        # command substitution, not five (each a pipe and a hand-off to a thread in fish).
        " function __sane_hh; set -g __sane_held ''; set -g __sane_hk 0;"
        ' if test "$fish_key_bindings" = fish_vi_key_bindings;'
        ' and test "$fish_bind_mode" != insert;'
        " set -g __sane_hk 1; set fish_bind_mode insert; end;"
        ' set -l t (commandline); test -n "$t"; or return 0;'
        " set -g __sane_held (commandline | string collect);"
        f" set -g __sane_held (string replace -r -- '{_FISH_SENTINEL}$' '' \"$__sane_held\""
        " | string collect);"
        " set -g __sane_hp (commandline -C); commandline -r ''; end;"
        " function __sane_hd; __sane_hh; set -g __sane_held ''; end;"
        " function __sane_hb; commandline -r -- $__sane_held; commandline -C $__sane_hp;"
        ' if test "$__sane_hk" = 1; set fish_bind_mode default; end;'
        " set -g __sane_held ''; commandline -f repaint; end;"
        " for __sane_m in default insert visual replace replace_one;"
        f" bind -M $__sane_m {hold} __sane_hh; bind -M $__sane_m {drop} __sane_hd;"
        f" bind -M $__sane_m {back} __sane_hb; bind -M $__sane_m {yank} yank; end;"
        f" printf '{w}' {ready_nonce};"
    )


def held_text(buf: bytes | bytearray, nonce: str, before: int) -> str | None:
    """The text the runner reported held (its payload for ``nonce``, which it prints
    right before the HELD marker at ``before``), decoded; None if absent or damaged."""
    import base64
    import binascii

    head = PREFIX + nonce.encode() + b";" + PAYLOAD_KIND.encode() + b";"
    start = buf.rfind(head, 0, before)
    if start < 0:
        return None
    end = buf.find(TERMINATOR, start, before)
    if end < 0:
        return None
    try:
        raw = base64.b64decode(bytes(buf[start + len(head) : end]), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.decode("utf-8", "replace")


class DrawnPrompt(NamedTuple):
    """A screen-checked shell's prompt as the screen shows its last line."""

    line: str  # that line up to the prompt's end (what a person's text follows)
    # What yash draws after it on that line: the spaces up to its right prompt and the
    # right prompt (``YASH_PS1R``); empty where none is drawn.
    right: str = ""


# yash moves the cursor right before its right prompt (``cuf``, or ``cuf1`` for one
# column) over the cells it has just cleared (``el``): blanks on the screen.
_CURSOR_RIGHT = re.compile(rb"\x1b\[([0-9]*)C")


def _right_prompt(buf: bytes | bytearray, after: int, before: int) -> str | None:
    """The rest of the prompt's line between the end of yash's prompt (``after``) and
    its right prompt's end marker (``before``), as the screen shows it; None where that
    is not the right prompt of the prompt's own drawing.

    yash draws a prompt in one write: the prompt, the line editor's clearing and
    styler (escape sequences alone, as the edit line is empty), a cursor move right,
    the right prompt. A right prompt drawn later, once a person's typing made room for
    it (a line wrapped onto a new row), comes after that text: never taken, or the
    person's text would become part of the prompt sane compares against."""
    seg = bytes(buf[after:before])
    move = _CURSOR_RIGHT.search(seg)
    if move is None or strip_escapes(seg[: move.start()]):
        return None
    text = _CURSOR_RIGHT.sub(lambda m: b" " * int(m.group(1) or b"1"), seg[move.start() :])
    shown = strip_escapes(text)
    if any(c < 0x20 or c == 0x7F for c in shown):
        return None  # a control (a CR, a newline) in it: not one row as rendered here
    return shown.decode("utf-8", "replace")


def drawn_prompt(
    buf: bytes | bytearray, start: int, tokens: frozenset[str], settled: bool = False
) -> DrawnPrompt | None:
    """The line of the first prompt drawn in ``buf`` after ``start`` as it shows on the
    screen: its last line up to the prompt-end marker of the same shell, with what the
    run left before it on that line, escape sequences removed. None until both the
    prompt and prompt-end markers have arrived.

    Shells without editor widgets print the end marker (``EDITOR_SCREEN``): their
    command line is checked against this text on the screen before sane types.

    yash's prompt-end marker says that its right prompt may follow (sane gives it one
    always: a space, then the user's). Its own end marker then completes the line; until
    it comes the prompt is not complete (None), unless ``settled``: then the right
    prompt is taken as not drawn (yash draws none where it has no room), as it is once
    another prompt follows."""
    found, _ = scan(buf, start)
    opened: Marker | None = None
    ended: Marker | None = None
    left = ""
    for m in found:
        if m.tag not in tokens:
            continue
        if m.kind == PROMPT:
            if ended is not None:
                return DrawnPrompt(left)  # the next prompt came: none was drawn
            opened = m
        elif m.kind == PROMPT_END and opened is not None and ended is None:
            # From the last line break before the prompt: a run whose output ends
            # without a newline leaves that text on the prompt's line (``printf x``
            # shows ``x~ # ``), and the screen is checked against the whole line.
            line_start = max(buf.rfind(b"\n", 0, opened.start), 0)
            text = strip_escapes(bytes(buf[line_start : m.start]))
            last = text.replace(b"\r\n", b"\n").rsplit(b"\n", 1)[-1].rsplit(b"\r", 1)[-1]
            left = last.decode("utf-8", "replace")
            if m.arg != 1:
                return DrawnPrompt(left)
            ended = m
        elif m.kind == RIGHT_PROMPT_END and ended is not None:
            right = _right_prompt(buf, ended.end, m.start)
            return DrawnPrompt(left, right or "")
    return DrawnPrompt(left) if ended is not None and settled else None

#!/usr/bin/env bash
# README's first command: install everything, then drive a tmux pane through sane's
# commands and show the JSON they print. Uses a private tmux server, removed at the end.
set -euo pipefail
here=$(cd -- "$(dirname -- "$0")/.." && pwd)
"$here/bin/sane-bootstrap"
export PATH="$here/.venv/bin:$PATH"
export SANE_TMUX_SOCKET="sane-demo-$$"
export SANE_HOME="$(mktemp -d)"
trap 'tmux -L "$SANE_TMUX_SOCKET" kill-server 2>/dev/null || true; rm -rf "$SANE_HOME"' EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step sane-run-command "'echo hello from tmux; uname -s'"
sane-run-command 'echo hello from tmux; uname -s'

step sane-run-command "'cd /tmp && export GREETING=hi'"
sane-run-command 'cd /tmp && export GREETING=hi'
step sane-run-command "'echo \$GREETING from \$(pwd); exit 7'   # state persists; exit is reported"
sane-run-command 'echo $GREETING from $(pwd); exit 7' || true

step sane-run-command --timeout 1 "'for i in 1 2 3; do echo tick \$i; sleep 0.6; done'"
out=$(sane-run-command --timeout 1 'for i in 1 2 3; do echo tick $i; sleep 0.6; done' || true)
echo "$out"
run_id=$(printf '%s' "$out" | jq -r .run_id)
step sane run wait "$run_id"
sane run wait "$run_id"

step sane-list-panes
sane-list-panes | jq .

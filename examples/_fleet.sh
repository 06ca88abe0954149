# Shared by the bash examples (source it): a private SANE_HOME, tmux server and local
# fleet of real sshd servers under a temp dir, removed on exit; `expect` checks a
# JSON document on stdin with a jq condition and stops the script when it fails.
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
export PATH="$here/../.venv/bin:$here/../bin:$PATH"
work=$(mktemp -d -t sane-example-XXXXXX)
# tmux's socket and sane's lock files for it go under $work too: removed with it
export SANE_HOME="$work/home" SANE_TMUX_SOCKET="sane-example-$$" TMUX_TMPDIR="$work"
cleanup() {
  sane demo fleet stop --dir "$work/fleet" >/dev/null 2>&1 || true
  tmux -L "$SANE_TMUX_SOCKET" kill-server 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# a command that fails stops the script (set -e) and says which one, never silently
trap 'status=$?; [[ $- != *e* ]] || echo "  FAIL  line $LINENO: \`$BASH_COMMAND\` exited $status" >&2' ERR
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
expect() {  # expect DESCRIPTION JQ-CONDITION  (the JSON document on stdin)
  local doc
  doc=$(cat)
  if jq -e "$2" >/dev/null <<<"$doc"; then echo "  ok    $1" >&2; return; fi
  echo "  FAIL  $1" >&2
  jq -c . <<<"$doc" 2>/dev/null | cut -c1-4000 >&2 || printf '%s\n' "$doc" >&2
  exit 1
}
start_fleet() {  # start_fleet N: servers server1..N, registered; details in $work/fleet.json
  local doc
  if ! doc=$(sane demo fleet start --dir "$work/fleet" --servers "$1"); then
    echo "  FAIL  sane demo fleet start: $(jq -r '.error | "\(.code): \(.message)"' <<<"$doc" 2>/dev/null || printf '%s' "$doc")" >&2
    exit 1
  fi
  printf '%s\n' "$doc" > "$work/fleet.json"
  expect "$1 servers started" "(.servers | length) == $1" < "$work/fleet.json"
}

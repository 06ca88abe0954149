#!/usr/bin/env bash
# Blue-green deploy on a local 3-server fleet: v1 goes live in blue, v2 in green; a v3
# whose smoke test fails on server3 switches *every* server back to green (rollback: all).
set -euo pipefail
source "$(dirname -- "$0")/_fleet.sh"
plan="$here/deploy/blue-green.yaml"
live() {  # what each server's bg/live points to, read from its own disk
  jq -r '.servers[].home' "$work/fleet.json" | while read -r home; do readlink "$home/bg/live"; done | paste -sd, -
}

start_fleet 3
sane deploy "$plan" --env VERSION=1.0.0 --all | expect "v1 live" '.status == "completed"'
[ "$(live)" = blue,blue,blue ] || { echo "  FAIL  expected blue everywhere, got $(live)" >&2; exit 1; }
sane deploy "$plan" --env VERSION=2.0.0 --all | expect "v2 live" '.status == "completed"'
[ "$(live)" = green,green,green ] || { echo "  FAIL  expected green everywhere, got $(live)" >&2; exit 1; }
echo "== v3 breaks on server3: everyone goes back to green" >&2
sane deploy "$plan" --env VERSION=3.0.0 --env BREAK_ON=server3 --all > "$work/v3.json" || true
jq -c '.servers[] | {server, state, undone}' "$work/v3.json"
expect "all rolled back" '.status == "rolled_back"' < "$work/v3.json"
[ "$(live)" = green,green,green ] || { echo "  FAIL  expected green everywhere, got $(live)" >&2; exit 1; }
echo "blue-green example: all checks passed" >&2

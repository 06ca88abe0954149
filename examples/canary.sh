#!/usr/bin/env bash
# Canary deploy on a local 3-server fleet: a release whose health is bad stops at the
# canary (rolled back; server2 and server3 never touched), a good one goes everywhere.
set -euo pipefail
source "$(dirname -- "$0")/_fleet.sh"
plan="$here/deploy/canary.yaml"

start_fleet 3
echo "== a release that comes up unhealthy" >&2
sane deploy "$plan" --env STATUS=unhealthy --all > "$work/bad.json" || true
jq -c '.servers[] | {server, state, reason}' "$work/bad.json"
expect "canary rolled back, nobody else touched" \
  '.aborted == "the canary failed" and ([.servers[].state] == ["rolled_back", "untouched", "untouched"])' < "$work/bad.json"
for n in 2 3; do  # asserted on the servers' own disks too
  home=$(jq -r ".servers[$((n-1))].home" "$work/fleet.json")
  [ ! -e "$home/canary" ] || { echo "  FAIL  server$n was touched" >&2; exit 1; }
done
echo "== a healthy release" >&2
sane deploy "$plan" --env STATUS=healthy --all | expect "canary passed, all deployed" '.status == "completed"'
sane health --query .version | expect "all on 3.0.0" '[.servers[].query] == ["3.0.0", "3.0.0", "3.0.0"]'
echo "canary example: all checks passed" >&2

#!/usr/bin/env bash
# The demo workflow with nothing but sane's commands (each prints one JSON document;
# jq picks fields out). Starts its own 3-server local fleet (real sshd on 127.0.0.1),
# a private tmux server and a temporary SANE_HOME, and removes them at the end.
#
#   bash examples/deploy_demo.sh          # from a checkout, after bin/sane-bootstrap
#
# Exits non-zero as soon as something is not as expected, so it doubles as a test
# (tests/test-multi-server-deploy.sh runs it).
set -euo pipefail
source "$(dirname -- "$0")/_fleet.sh"
plan="$here/deploy/plan.yaml"

say "a local fleet of 3 real sshd servers, registered in servers.json"
start_fleet 3 && jq -c '.servers[] | {name, port}' "$work/fleet.json"

say "one ssh pane per server, then the same command everywhere"
sane up --all | expect "every pane connected" '(.servers | length) == 3 and ([.servers[] | .ok] | all)'
sane fleet run 'echo "$SANE_DEMO_SERVER is up"' --all | tee "$work/hello.json" | jq -c '.results[] | {server, output}'
expect "three exact answers" '[.results[].output] == ["server1 is up\n", "server2 is up\n", "server3 is up\n"]' < "$work/hello.json"

say "deploy v1.0.0 everywhere"
sane deploy "$plan" --env VERSION=1.0.0 --all | expect "completed on all three" '.status == "completed"'
sane health --query .version | expect "all healthy on 1.0.0" '(.servers | length) == 3 and ([.servers[] | .status == "healthy" and .query == "1.0.0"] | all)'

say "server2's migration will fail (a file the plan's migrate step checks)"
sane-run-command --server server2 'cd && echo "database locked" > app/FAULT' | expect "fault planted" '.exit_code == 0'

say "deploy v2.0.0: server2 fails and is rolled back, the others move on"
set +e
sane deploy "$plan" --env VERSION=2.0.0 --all > "$work/v2.json"
status=$?
set -e
jq -c '.servers[] | {server, state, failed_item, undone}' "$work/v2.json"
[ "$status" -eq 1 ] || { echo "  FAIL  expected exit 1 for a partial deploy, got $status" >&2; exit 1; }
expect "server2 rolled back, others deployed" \
  '[.servers[] | .state] == ["deployed", "rolled_back", "deployed"]' < "$work/v2.json"
expect "app.sh was not sent again (same sha256)" \
  '[.servers[].steps[] | select((.item | startswith("file:")) and .phase == "do") | .action] == ["unchanged", "unchanged", "unchanged"]' < "$work/v2.json"
deploy_id=$(jq -r .deploy_id "$work/v2.json")
sane deploy status "$deploy_id" | expect "status tells the same story" '.status == "partial" and .counts == {"deployed": 2, "rolled_back": 1}'
sane health --query .version | expect "server2 still healthy on 1.0.0" '[.servers[] | .query] == ["2.0.0", "1.0.0", "2.0.0"]'

say "fix server2 and retry it alone"
sane-run-command --server server2 'cd && rm app/FAULT' | expect "fault removed" '.exit_code == 0'
sane deploy "$plan" --env VERSION=2.0.0 --servers server2 | expect "server2 deployed" '.status == "completed"'

say "verify: wait (cheaply) until every server reports 2.0.0"
sane health wait --until '.version == "2.0.0"' --all --timeout 10 | expect "fleet on 2.0.0" '.met == true'
sane deploy list | jq -c '.deploys[] | {deploy_id, status}'
echo "deploy workflow: all checks passed" >&2

#!/usr/bin/env bash
# The multi-server deploy workflow, end to end, with only sane's commands: runs
# examples/deploy_demo.sh (its own local fleet of real sshd servers, a private tmux
# server, a temporary SANE_HOME). Exit 0 only if every check in it held.
# pytest runs this script (tests/test_examples.py); it also runs on its own:
#   bash tests/test-multi-server-deploy.sh
set -euo pipefail
here=$(cd -- "$(dirname -- "$0")" && pwd)
exec bash "$here/../examples/deploy_demo.sh"

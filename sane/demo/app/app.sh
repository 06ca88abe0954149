#!/bin/sh
# The demo "service": reports itself healthy, with the version of the release it runs
# from, in ~/.sane/health.json (written atomically: a reader never sees half a file).
set -eu
release=$(cd "$(dirname "$0")" && pwd)
version=$(cat "$release/VERSION")
mkdir -p "$HOME/.sane"
printf '{"status": "healthy", "version": "%s", "release": "%s", "checked_at": "%s"}\n' \
  "$version" "$release" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$HOME/.sane/health.json.tmp"
mv -f "$HOME/.sane/health.json.tmp" "$HOME/.sane/health.json"
echo "app $version started"

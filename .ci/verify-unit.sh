#!/usr/bin/env bash
# Check maildesk.service with systemd-analyze, its paths pointed at this checkout's virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
id maildesk >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin maildesk
exe="$PWD/.venv/bin/maildesk"
sed -e "s#/opt/maildesk/.venv/bin/maildesk#$exe#g" maildesk.service > "$tmp/maildesk.service"
out=$(systemd-analyze verify "$tmp/maildesk.service" 2>&1 || true)
echo "$out" | grep -v -e "Failed to prepare filename" -e "^$" || true
if echo "$out" | grep -q -i -e "unknown key" -e "invalid" -e "failed to parse" -e "not executable" -e "missing"; then
  echo "maildesk.service: systemd-analyze found problems" >&2
  exit 1
fi
echo "maildesk.service verified"

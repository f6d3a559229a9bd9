#!/usr/bin/env bash
# CI: install redis-server and redis-cli (Debian package) for the cache store tests. Idempotent:
# does nothing when both are already on PATH. The tests start their own servers on free loopback
# ports, so no service needs to run. Use with REQUIRE_REDIS=1 so a missing server fails the tests.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
  echo "redis already installed: $(redis-server --version)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# redis-server depends on redis-tools, which provides redis-cli (used for the cluster tests).
$SUDO apt-get install -y -qq --no-install-recommends redis-server redis-tools
echo "installed: $(redis-server --version)"

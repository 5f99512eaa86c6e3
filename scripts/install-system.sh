#!/usr/bin/env bash
# Installs the servers the demo and the tests run for real: PostgreSQL and Redis, from
# Debian's packages. Does nothing when they are there; as a non-root user, says what to run.
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || command -v postgres >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)   # the dashboard's browser tests
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "driftmend needs: ${missing[*]}. Install them (on Debian: sudo apt-get install ${missing[*]}) and run make again." >&2
  exit 1
fi
echo "installing ${missing[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# A Docker engine for the Docker tests, from Debian's packages and the host's own binaries.
#
# 1. Installs docker.io (as root on Debian) when no dockerd is installed, and Debian's
#    docker-compose when no Compose is (the tests check compose.yaml with it).
# 2. Starts `dockerd --storage-driver=vfs --bridge=none --iptables=false` in the background
#    when no engine answers on the default socket, and waits for it (with a deadline). The
#    pid goes to $DRIFTMEND_DOCKERD_PIDFILE: the tests restart only an engine started here.
# 3. Builds the `local/hostbase` image (an empty root filesystem: containers mount the
#    host's /usr, /lib, /bin, /etc read-only) when it is missing. No registry is needed.
#
# Never fails `make test`: when no engine can be had (not root, not Debian, dockerd will not
# start), it says why and exits 0, and the Docker tests skip with that reason: it is written
# to $DRIFTMEND_DOCKER_REASON_FILE (tests/integration/docker_harness.py reads it), which is
# removed again once an engine answers.
set -euo pipefail

PIDFILE="${DRIFTMEND_DOCKERD_PIDFILE:-/var/run/driftmend-dockerd.pid}"
LOGFILE="${DRIFTMEND_DOCKERD_LOG:-/var/log/driftmend-dockerd.log}"
DEADLINE="${DRIFTMEND_DOCKERD_DEADLINE:-60}"
REASON_FILE="${DRIFTMEND_DOCKER_REASON_FILE:-/tmp/driftmend-docker-engine.reason}"
IMAGE=local/hostbase

say() { echo "docker-engine: $*" >&2; }
give_up() {
  say "$*; the Docker tests will be skipped"
  echo "$*" >"$REASON_FILE" 2>/dev/null || true
  exit 0
}

# The engine's own CLI when both are installed: /usr/local/bin may hold a newer client only.
DOCKER=docker
[ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker

engine_answers() { timeout 5 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }
compose_installed() { command -v docker-compose >/dev/null || "$DOCKER" compose version >/dev/null 2>&1; }
as_root_on_debian() { [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; }

missing=()
command -v dockerd >/dev/null || engine_answers || missing+=(docker.io)
compose_installed || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ] && as_root_on_debian; then
  say "installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || give_up "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || give_up "apt-get install ${missing[*]} failed"
  [ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker
fi

if ! engine_answers; then
  command -v dockerd >/dev/null \
    || give_up "no Docker engine answers and dockerd is not installed (install docker.io as root)"
  [ "$(id -u)" -eq 0 ] || give_up "no Docker engine answers and only root can start dockerd"
  running_pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if [ -n "$running_pid" ] && grep -qs dockerd "/proc/$running_pid/cmdline"; then
    say "dockerd (pid $running_pid) is starting; waiting for it"   # never start a second one
  else
    say "starting dockerd (vfs storage, no bridge, no iptables); log in $LOGFILE"
    # setsid: the engine outlives this script and make's process group.
    setsid dockerd --storage-driver=vfs --bridge=none --iptables=false --pidfile "$PIDFILE" \
      >>"$LOGFILE" 2>&1 </dev/null &
  fi
  end=$((SECONDS + DEADLINE))
  until engine_answers; do
    if [ $SECONDS -ge $end ]; then
      tail -n 20 "$LOGFILE" >&2 || true
      give_up "dockerd did not answer within ${DEADLINE}s"
    fi
    sleep 0.5
  done
  say "dockerd answers (pid $(cat "$PIDFILE" 2>/dev/null || echo '?'))"
fi

if ! "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
  say "building $IMAGE from an empty tar (containers mount the host's binaries)"
  tar cf - -T /dev/null | "$DOCKER" import - "$IMAGE" >/dev/null \
    || give_up "docker import of $IMAGE failed"
fi
rm -f "$REASON_FILE"

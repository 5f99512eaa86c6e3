#!/usr/bin/env bash
# The demo database, as driftmend's `process` runtime runs it: initialise a data directory
# once, then replace this shell with the postmaster, so the supervised pid IS PostgreSQL and
# its signals (SIGTERM smart / SIGINT fast shutdown) and exit status reach the runtime
# directly. The runtime already runs this as the `postgres` user (PostgreSQL refuses root)
# and sets DRIFTMEND_STATE_DIR to a writable directory of this resource's own.
#
# Environment:
#   PGDATA              data directory        (default: $DRIFTMEND_STATE_DIR/pgdata)
#   PGPORT              TCP port on 127.0.0.1 (default: 55432)
#   PG_MAX_CONNECTIONS  max_connections       (default: 30; see the note below)
set -euo pipefail

PGDATA="${PGDATA:-${DRIFTMEND_STATE_DIR:?set DRIFTMEND_STATE_DIR or PGDATA}/pgdata}"
PGPORT="${PGPORT:-55432}"
PG_MAX_CONNECTIONS="${PG_MAX_CONNECTIONS:-30}"

# Debian keeps the server binaries off PATH in /usr/lib/postgresql/<major>/bin: take the
# newest major installed (version sort, so 9.6 < 15 < 16), else whatever PATH offers.
find_bindir() {
    local newest
    newest="$(printf '%s\n' /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n 1)"
    if [[ -x "$newest" ]]; then
        dirname "$newest"
    elif command -v postgres >/dev/null 2>&1; then
        dirname "$(command -v postgres)"
    else
        echo "postgres.sh: no PostgreSQL server found (apt-get install postgresql)" >&2
        return 1
    fi
}
BINDIR="$(find_bindir)"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    echo "postgres.sh: initialising $PGDATA" >&2
    mkdir -p "$(dirname "$PGDATA")"
    # initdb talks on stdout; keep stdout quiet and let everything go to the log (stderr).
    "$BINDIR/initdb" -D "$PGDATA" -U postgres -A trust >&2
fi

# max_connections is the one setting driftmend changes on this server: its remedy writes
# `ALTER SYSTEM SET max_connections = N` (into postgresql.auto.conf) and restarts us. A `-c`
# option on the command line would outrank every configuration file, auto.conf included,
# and the controller rightly refuses to change a setting it cannot make stick. So the
# default goes into postgresql.conf (a file auto.conf overrides), written on every start so
# that PG_MAX_CONNECTIONS still means something after the first.
sed -i '/^max_connections = .* # driftmend default$/d' "$PGDATA/postgresql.conf"
echo "max_connections = $PG_MAX_CONNECTIONS # driftmend default" >> "$PGDATA/postgresql.conf"

# -k puts the Unix socket in PGDATA (the default /var/run/postgresql may not exist or be
# writable); logging_collector=off keeps the server log on stderr, where the runtime reads it.
exec "$BINDIR/postgres" \
    -D "$PGDATA" \
    -p "$PGPORT" \
    -k "$PGDATA" \
    -c listen_addresses=127.0.0.1 \
    -c "log_line_prefix=%m [%p] " \
    -c logging_collector=off

#!/usr/bin/env bash
# The shared set-up on one machine, from Debian's packages (apt-get install redis-server
# postgresql): a Redis and a PostgreSQL on loopback ports, then `prism serve --workers N`
# with PRISM_REDIS_URL and PRISM_STORE_URL pointing at them. Ctrl-C (or SIGTERM) stops all.
#
#   make run-cluster                      # 2 workers on port 5006
#   WORKERS=3 PORT=8080 bash deployment/local/run-cluster.sh --no-dashboards
#
# Extra arguments go to `prism serve`. PostgreSQL keeps its data between runs (the store
# survives a restart) in $CLUSTER_DIR: .venv/cluster, or /tmp/prism-cluster when run as root
# (PostgreSQL refuses root, so it then runs as the postgres user, in a directory it owns).
# Redis keeps nothing on disk: limits, events and the LLM cache are shared state, not data.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PRISM=${PRISM:-$ROOT/.venv/bin/prism}
WORKERS=${WORKERS:-2}
PORT=${PORT:-5006}
REDIS_PORT=${REDIS_PORT:-6390}
PG_PORT=${PG_PORT:-5440}
# the newest PostgreSQL Debian installed (15 on bookworm)
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}

die() { echo "run-cluster: $*" >&2; exit 2; }
[ -x "$PRISM" ] || die "no prism command at $PRISM (make install first)"
[ -x "$REDIS_SERVER" ] || die "redis-server not found: apt-get install redis-server"
[ -x "$PG_BIN/initdb" ] || die "PostgreSQL not found in $PG_BIN: apt-get install postgresql"

if [ "$(id -u)" = 0 ]; then
    CLUSTER_DIR=${CLUSTER_DIR:-/tmp/prism-cluster}
    as_pg() { runuser -u postgres -- "$@"; }
else
    CLUSTER_DIR=${CLUSTER_DIR:-$ROOT/.venv/cluster}
    as_pg() { "$@"; }
fi
PGDATA="$CLUSTER_DIR/pg"
PGUSER_NAME=$( [ "$(id -u)" = 0 ] && echo postgres || id -un )
mkdir -p "$CLUSTER_DIR/redis"
[ "$(id -u)" = 0 ] && chown postgres "$CLUSTER_DIR"

REDIS_PID=""
PRISM_PID=""
PG_STARTED=""
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$PRISM_PID" ] && kill -0 "$PRISM_PID" 2>/dev/null; then
        kill -TERM "$PRISM_PID" 2>/dev/null || true
        wait "$PRISM_PID" 2>/dev/null || true
    fi
    if [ -n "$PG_STARTED" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [ -n "$REDIS_PID" ]; then
        kill -TERM "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    echo "run-cluster: stopped"
}
trap cleanup EXIT INT TERM

# ---- PostgreSQL: initialised once (a random password, kept in the cluster directory)
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    umask 077
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$CLUSTER_DIR/pg-password"
    [ "$(id -u)" = 0 ] && chown postgres "$CLUSTER_DIR/pg-password"
    as_pg "$PG_BIN/initdb" -D "$PGDATA" -U "$PGUSER_NAME" --pwfile="$CLUSTER_DIR/pg-password" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$CLUSTER_DIR/initdb.log" 2>&1 \
        || die "initdb failed: see $CLUSTER_DIR/initdb.log"
    umask 022
fi
PG_PASSWORD=$(cat "$CLUSTER_DIR/pg-password")
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$CLUSTER_DIR/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $CLUSTER_DIR" start >/dev/null \
    || die "PostgreSQL did not start: see $CLUSTER_DIR/postgres.log"
PG_STARTED=1
if ! PGPASSWORD="$PG_PASSWORD" "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PGUSER_NAME" \
        -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'prism'" | grep -q 1; then
    PGPASSWORD="$PG_PASSWORD" "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PGUSER_NAME" prism
fi

# ---- Redis: nothing on disk
"$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$CLUSTER_DIR/redis" --save "" \
    --appendonly no --daemonize no --logfile "$CLUSTER_DIR/redis.log" &
REDIS_PID=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) \
        2>/dev/null && break
    kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited: see $CLUSTER_DIR/redis.log"
    sleep 0.1
done

export PRISM_STORE_URL="postgresql://$PGUSER_NAME:$PG_PASSWORD@127.0.0.1:$PG_PORT/prism"
export PRISM_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
echo "run-cluster: PostgreSQL on 127.0.0.1:$PG_PORT (data in $PGDATA), Redis on 127.0.0.1:$REDIS_PORT"
echo "run-cluster: PRISM_STORE_URL=postgresql://$PGUSER_NAME:***@127.0.0.1:$PG_PORT/prism"
echo "run-cluster: PRISM_REDIS_URL=$PRISM_REDIS_URL"

# ---- PRISM: the supervisor and its workers (Ctrl-C reaches them too)
"$PRISM" serve --workers "$WORKERS" --port "$PORT" "$@" &
PRISM_PID=$!
wait "$PRISM_PID"

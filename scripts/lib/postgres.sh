# Throwaway PostgreSQL clusters for tests, the demo and benchmarks.
# Source this file, then:
#   pg_cluster_start DIR   initdb into DIR (created, must not exist or be empty),
#                          start on a free loopback port; sets PG_CLUSTER_URL,
#                          PG_CLUSTER_PORT, PG_CLUSTER_DIR, PG_BINDIR
#   pg_cluster_stop        stop it and remove DIR (safe to call twice)
#   pg_cluster_restart DIR start a stopped cluster again with its options and port
#   pg_cluster_remove DIR  stop the cluster in DIR (any, not only the current one;
#                          also a standalone's under DIR) and remove DIR
#   pg_as_owner CMD...     run CMD as the cluster's owner (postgres when root)
# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# `postgres` user; otherwise to the caller.

PG_BINDIR=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
PG_CLUSTER_DIR=""
PG_CLUSTER_URL=""
PG_CLUSTER_PORT=""

pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# True when nothing listens on 127.0.0.1:$1.
_pg_port_is_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pg_cluster_start() {
    local dir=$1
    [ -x "$PG_BINDIR/initdb" ] || { echo "postgres: no PostgreSQL server binaries under /usr/lib/postgresql (run scripts/setup)" >&2; return 1; }
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    PG_CLUSTER_DIR=$dir
    # The script that owns the cluster: pg_reap_stale_clusters removes it
    # once that process is gone without cleaning up (killed with SIGKILL).
    echo "$$" > "$dir/owner-pid"
    pg_as_owner "$PG_BINDIR/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    mkdir -p "$dir/socket"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/socket"

    local port attempt options
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + RANDOM % 20000))
        _pg_port_is_free "$port" || continue
        options="-p $port -k $dir/socket -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        if pg_as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$options" start >/dev/null; then
            PG_CLUSTER_PORT=$port
            PG_CLUSTER_URL="postgresql://postgres@127.0.0.1:$port/postgres"
            printf '%s\n' "$options" > "$dir/start-options"
            return 0
        fi
    done
    echo "postgres: could not start a cluster in $dir; server log:" >&2
    cat "$dir/server.log" >&2 2>/dev/null
    return 1
}

pg_cluster_stop() {
    [ -n "$PG_CLUSTER_DIR" ] || return 0
    if [ -f "$PG_CLUSTER_DIR/data/postmaster.pid" ]; then
        pg_as_owner "$PG_BINDIR/pg_ctl" -D "$PG_CLUSTER_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || pg_as_owner "$PG_BINDIR/pg_ctl" -D "$PG_CLUSTER_DIR/data" -m immediate -w stop >/dev/null 2>&1 \
            || true
    fi
    rm -rf "$PG_CLUSTER_DIR"
    PG_CLUSTER_DIR=""
}

pg_cluster_restart() {
    local dir=$1
    pg_as_owner "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$(cat "$dir/start-options")" start >/dev/null
}

pg_cluster_remove() {
    local dir=$1 pidfile data
    [ -d "$dir" ] || return 0
    # A test cluster keeps its data in DIR/data; a `trellisd standalone` a
    # test started, in DIR/<data-dir>/postgres: stop every server found.
    while IFS= read -r pidfile; do
        data=$(dirname "$pidfile")
        pg_as_owner "$PG_BINDIR/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || pg_as_owner "$PG_BINDIR/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 \
            || true
    done < <(find "$dir" -maxdepth 3 -name postmaster.pid 2>/dev/null)
    rm -rf "$dir"
}

# Stops and removes test clusters under ${TMPDIR:-/tmp} whose owning script
# no longer runs: a run killed too hard to clean up after itself (SIGKILL, a
# lost terminal) must not leave a PostgreSQL behind for ever.
pg_reap_stale_clusters() {
    local dir owner
    for dir in "${TMPDIR:-/tmp}"/trellis-test-pg.*; do
        [ -f "$dir/owner-pid" ] || continue
        owner=$(cat "$dir/owner-pid" 2>/dev/null || true)
        [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null && continue
        echo "postgres: removing the test cluster $dir left by an earlier run (process $owner is gone)" >&2
        local own
        for own in "$dir"/scratch/*/; do
            [ -d "$own" ] && pg_cluster_remove "${own%/}"
        done
        pg_cluster_remove "$dir"
    done
}

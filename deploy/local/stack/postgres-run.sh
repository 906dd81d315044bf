# shellcheck shell=bash
# Sourced by deploy/local/stack.sh: the local PostgreSQL server's process handling and health.
# Finds the live postmaster of our cluster, cleans up after a kill -9 (orphans, stale lock
# files), creates the application role and databases, checks SELECT 1 through the URLs the
# application uses, and starts, stops and kills the server. Paths come from postgres.sh.

# The pid of the running postmaster of our cluster, from postmaster.pid,
# checked against the live process: every postgres process has the data
# directory as its working directory.
pg_postmaster_pid() {
    local pid
    [[ -f $PGDATA_DIR/postmaster.pid ]] || return 1
    pid=$(head -n 1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null) || return 1
    pid_alive "$pid" || return 1
    [[ /proc/$pid/cwd -ef $PGDATA_DIR ]] || return 1
    echo "$pid"
}

# Processes (other than a live postmaster) whose cwd is our data directory:
# backends and auxiliary processes orphaned by a killed postmaster.
pg_orphans() {
    local dir
    for dir in /proc/[0-9]*; do
        # -ef compares device and inode: no subprocess per process
        [[ $dir/cwd -ef $PGDATA_DIR ]] && pid_alive "${dir#/proc/}" && echo "${dir#/proc/}"
    done
    return 0
}

# After a kill -9 of the postmaster, postmaster.pid and the socket lock file
# stay behind. PostgreSQL ignores them only if their pid is dead; with pid
# reuse (common in containers) they can block a start, and orphaned children
# still attached to the old shared memory block it too. So: let the orphans
# exit (they notice the postmaster's death within a moment), kill any
# stragglers, and remove the stale lock files.
pg_clean_stale() {
    local pids pid lock waited=0
    [[ -d $PGDATA_DIR ]] || return 0
    pg_postmaster_pid >/dev/null && return 0
    pids=$(pg_orphans)
    if [[ -n $pids ]]; then
        log "postgres: waiting for processes of the dead postmaster to exit"
        while [[ -n $pids ]] && ((waited < 50)); do
            sleep 0.1
            waited=$((waited + 1))
            pids=$(pg_orphans)
        done
        if [[ -n $pids ]]; then
            log "postgres: killing leftover processes: ${pids//$'\n'/ }"
            for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
            for pid in $pids; do wait_pid_exit "$pid" 10 || true; done
        fi
    fi
    if [[ -f $PGDATA_DIR/postmaster.pid ]]; then
        log "postgres: removing stale postmaster.pid"
        rm -f "$PGDATA_DIR/postmaster.pid"
    fi
    for lock in "$PG_RUN"/.s.PGSQL.*.lock; do
        [[ -f $lock ]] || continue
        pid=$(head -n 1 "$lock" 2>/dev/null || true)
        if ! pid_alive "$pid"; then
            rm -f "$lock" "${lock%.lock}"
        fi
    done
}

# Superuser psql over the unix socket (peer auth as the server's OS user);
# the SQL comes on stdin.
pg_admin_psql() {
    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -d postgres
}

# Idempotently create the application role and both databases.
pg_bootstrap() {
    pg_admin_psql >/dev/null <<EOF
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
        CREATE ROLE $PG_USER LOGIN CREATEDB;
    END IF;
END
\$\$;
ALTER ROLE $PG_USER WITH LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB') \gexec
SELECT 'CREATE DATABASE $PG_TEST_DB OWNER $PG_USER'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_TEST_DB') \gexec
EOF
}

# SELECT 1 through the URL, exactly as the application connects.
pg_query_ok() {
    local out
    out=$(PGCONNECT_TIMEOUT=3 "$PSQL" -X -A -t -q -c 'SELECT 1' "$1" 2>/dev/null) || return 1
    [[ $out == 1 ]]
}

pg_healthy() {
    pg_find_psql
    if ((PG_MANAGED)); then
        pg_query_ok "$LOCAL_DATABASE_URL" && pg_query_ok "$LOCAL_TEST_DATABASE_URL"
    else
        pg_query_ok "$DATABASE_URL"
    fi
}

pg_start() {
    local start=$SECONDS
    pg_ensure_installed
    pg_resolve_paths   # again: installing may have just created the postgres user
    pg_find_bin
    PSQL=$PG_BIN/psql
    if pg_postmaster_pid >/dev/null && pg_healthy; then
        log "postgres: already running on $PG_HOST:$PG_PORT"
        return 0
    fi
    pg_init
    pg_clean_stale
    if ! pg_postmaster_pid >/dev/null; then
        if tcp_open "$PG_HOST" "$PG_PORT"; then
            die "postgres: port $PG_PORT is taken by a process that is not this stack's server"
        fi
        log "postgres: starting on $PG_HOST:$PG_PORT"
        # -w waits until the server accepts connections (after any crash
        # recovery). The subshell keeps our lock fd (and any other inherited
        # descriptor) away from the server.
        if ! (
            close_inherited_fds
            as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PG_LOG" \
                -w -t "$PG_START_TIMEOUT" start </dev/null >/dev/null
        ); then
            show_tail "$PG_LOG"
            die "postgres: failed to start"
        fi
    fi
    pg_bootstrap
    local deadline=$((SECONDS + 10))
    until pg_healthy; do
        ((SECONDS < deadline)) || die "postgres: running but SELECT 1 via $LOCAL_DATABASE_URL fails"
        sleep 0.2
    done
    log "postgres: healthy on $PG_HOST:$PG_PORT ($((SECONDS - start))s)"
}

pg_stop() {
    pg_resolve_paths
    if [[ ! -d $PGDATA_DIR ]]; then
        log "postgres: no cluster"
        return 0
    fi
    if ! pg_postmaster_pid >/dev/null; then
        pg_clean_stale
        log "postgres: not running"
        return 0
    fi
    pg_find_bin
    log "postgres: stopping"
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" stop -m fast -w -t 60 >/dev/null; then
        log "postgres: fast shutdown timed out; using immediate"
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" stop -m immediate -w -t 30 >/dev/null ||
            die "postgres: could not stop the server"
    fi
    log "postgres: stopped"
}

pg_kill() {
    pg_resolve_paths
    kill_hard postgres pg_postmaster_pid "postmaster pid"
}

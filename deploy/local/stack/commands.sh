# shellcheck shell=bash disable=SC2034,SC2153  # KAFKA_* are defined in common.sh, read in kafka.sh
# Sourced by deploy/local/stack.sh: the top-level commands that act on both services (up,
# down, status, env, purge). A service named by DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS
# (other than the local stack's own URL) is external: checked, never started or stopped.

# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

pg_external_check() {
    pg_find_psql
    if pg_query_ok "$DATABASE_URL"; then
        log "postgres: external DATABASE_URL is reachable (not starting a local server)"
    else
        die "postgres: external DATABASE_URL is set but SELECT 1 fails"
    fi
}

kafka_external_check() {
    if kafka_external_healthy; then
        log "kafka: external KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS is reachable (not starting a local broker)"
    else
        die "kafka: external KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS is not reachable"
    fi
}

cmd_up() {
    local start=$SECONDS
    take_lock
    if ((PG_MANAGED)); then pg_start; else pg_external_check; fi
    if ((KAFKA_MANAGED)); then kafka_start; else kafka_external_check; fi
    log "stack is up ($((SECONDS - start))s)"
}

cmd_down() {
    take_lock
    if ((KAFKA_MANAGED)); then kafka_stop; else log "kafka: external, left alone"; fi
    if ((PG_MANAGED)); then pg_stop; else log "postgres: external, left alone"; fi
}

cmd_status() {
    local rc=0
    if ((PG_MANAGED)); then pg_resolve_paths; fi
    if pg_healthy; then
        log "postgres: healthy ($( ((PG_MANAGED)) && echo "$PG_HOST:$PG_PORT" || echo external))"
    else
        log "postgres: NOT healthy"
        rc=1
    fi
    if kafka_healthy; then
        log "kafka: healthy ($( ((KAFKA_MANAGED)) && echo "$LOCAL_KAFKA_BOOTSTRAP" || echo "$KAFKA_BOOTSTRAP_SERVERS"))"
    else
        log "kafka: NOT healthy"
        rc=1
    fi
    return "$rc"
}

# Shell-sourceable; values are %q-quoted (plain URLs come out unquoted, so
# the lines also work as `export VAR=value` in a Makefile).
cmd_env() {
    if ((PG_MANAGED)); then
        printf 'export DATABASE_URL=%q\n' "$LOCAL_DATABASE_URL"
    else
        printf 'export DATABASE_URL=%q\n' "$DATABASE_URL"
    fi
    if ((KAFKA_MANAGED)); then
        printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "$LOCAL_KAFKA_BOOTSTRAP"
    else
        printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "$KAFKA_BOOTSTRAP_SERVERS"
    fi
}

require_managed_kafka() {
    ((KAFKA_MANAGED)) || die "KAFKA_BOOTSTRAP_SERVERS points to an external cluster; not touching it"
}
require_managed_pg() {
    ((PG_MANAGED)) || die "DATABASE_URL points to an external server; not touching it"
}

# Throw-away stacks (fault tests) are removed with everything they wrote.
cmd_purge() {
    take_lock
    cluster_check_ports
    cluster_down
    CLUSTER_NODE='' KAFKA_NODE_ID=1 KAFKA_VOTERS=''
    KAFKA_DIR=$STATE_DIR/kafka KAFKA_DATA=$STATE_DIR/kafka/data KAFKA_LOGS=$STATE_DIR/kafka/logs
    KAFKA_CONF=$STATE_DIR/kafka/server.properties KAFKA_PID_FILE=$STATE_DIR/kafka/kafka.pid
    KAFKA_PORT=${PROVISIONER_KAFKA_PORT:-9092} LOCAL_KAFKA_BOOTSTRAP=$KAFKA_HOST:${PROVISIONER_KAFKA_PORT:-9092}
    if ((KAFKA_MANAGED)); then kafka_stop; fi
    if ((PG_MANAGED)); then
        pg_stop
        [[ $PG_BASE == "$STATE_DIR"/* ]] || rm -rf "$PG_BASE"
    fi
    rm -rf "$STATE_DIR"
    log "purged $STATE_DIR"
}

#!/usr/bin/env bash
# Self-check of the local stack (deploy/local/stack.sh), without pytest.
#
# Walks through the life cycle the test suite and the fault tests rely on:
#   up, status, env
#   Kafka topic create/list round trip (org.apache.kafka.tools.TopicCommand)
#   SELECT 1 on both databases; a marker row written for the reuse check
#   kill -9 Kafka        -> up must recover (stale pid file and .lock)
#   kill -9 postmaster   -> up must recover (stale postmaster.pid, orphans)
#   down                 -> status must report unhealthy
#   up                   -> data reused: the topic and the marker row survive
#
# It always works on the local stack: DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS
# from the caller's environment are ignored. The stack is left UP at the end
# (pass --down to stop it afterwards). Exit status 0 means every check passed.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
STACK=$SCRIPT_DIR/stack.sh

STOP_AT_END=0
[[ ${1:-} == --down ]] && STOP_AT_END=1

# Test the local services, whatever the caller points at.
unset DATABASE_URL KAFKA_BOOTSTRAP_SERVERS

TOPIC=provisioner-selftest
STEP_START=$SECONDS
TOTAL_START=$SECONDS

say() { printf '[selftest] %s\n' "$*" >&2; }
fail() {
    say "FAIL: $*"
    exit 1
}

# Run one step, report its duration, abort the whole test on failure.
step() {
    local name=$1
    shift
    say "--- $name"
    STEP_START=$SECONDS
    "$@" || fail "$name"
    say "ok: $name ($((SECONDS - STEP_START))s)"
}

# psql from the Debian server packages (same lookup order as stack.sh).
find_psql() {
    local dir
    for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
        [[ -x $dir/psql ]] && { PSQL=$dir/psql; return 0; }
    done
    PSQL=$(command -v psql) || fail "psql not found"
}

sql() { # sql URL STATEMENT -> unaligned, tuples-only output
    PGCONNECT_TIMEOUT=5 "$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -c "$2" "$1"
}

topics() {
    "$STACK" kafka-tool org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" "$@"
}

# ---------------------------------------------------------------- checks

check_up() { "$STACK" up; }

check_status_ok() { "$STACK" status; }

check_status_down() {
    if "$STACK" status; then
        say "status returned 0 although the stack is down"
        return 1
    fi
}

load_env() {
    local out
    out=$("$STACK" env)
    eval "$out"
    [[ -n ${DATABASE_URL:-} && -n ${KAFKA_BOOTSTRAP_SERVERS:-} ]] || return 1
    # Same rule as the test suite: the test database is <name>_test.
    TEST_DATABASE_URL=${DATABASE_URL%/*}/${DATABASE_URL##*/}_test
}

check_topic_round_trip() {
    topics --create --if-not-exists --topic "$TOPIC" --partitions 6 --replication-factor 1 >/dev/null
    topics --list | grep -qx "$TOPIC" || { say "topic $TOPIC not listed"; return 1; }
    local partitions
    partitions=$(topics --describe --topic "$TOPIC" | grep -c 'Partition: ')
    [[ $partitions == 6 ]] || { say "expected 6 partitions, got $partitions"; return 1; }
}

check_databases() {
    [[ $(sql "$DATABASE_URL" 'SELECT 1') == 1 ]] || return 1
    [[ $(sql "$TEST_DATABASE_URL" 'SELECT 1') == 1 ]] || return 1
    # The application role owns both databases and can create tables in them.
    sql "$DATABASE_URL" 'CREATE TABLE IF NOT EXISTS stack_selftest (id int PRIMARY KEY, note text)' >/dev/null
    sql "$DATABASE_URL" "INSERT INTO stack_selftest VALUES (1, 'survives restarts') ON CONFLICT (id) DO NOTHING" >/dev/null
    sql "$TEST_DATABASE_URL" 'CREATE TABLE IF NOT EXISTS stack_selftest (id int)' >/dev/null
    sql "$TEST_DATABASE_URL" 'DROP TABLE stack_selftest' >/dev/null
}

check_kill_kafka_leaves_stale_files() {
    local state=${PROVISIONER_STATE_DIR:-$SCRIPT_DIR/../../.local}
    "$STACK" kill-kafka
    [[ -f $state/kafka/kafka.pid ]] || { say "expected a stale kafka.pid after kill -9"; return 1; }
    if "$STACK" status 2>/dev/null; then
        say "status returned 0 with Kafka killed"
        return 1
    fi
}

check_kill_postgres() {
    "$STACK" kill-postgres
    if "$STACK" status 2>/dev/null; then
        say "status returned 0 with PostgreSQL killed"
        return 1
    fi
}

check_data_reused() {
    topics --list | grep -qx "$TOPIC" || { say "topic $TOPIC lost across down/up"; return 1; }
    [[ $(sql "$DATABASE_URL" 'SELECT note FROM stack_selftest WHERE id = 1') == 'survives restarts' ]] ||
        { say "marker row lost across down/up"; return 1; }
}

cleanup_data() {
    topics --delete --topic "$TOPIC" >/dev/null
    sql "$DATABASE_URL" 'DROP TABLE IF EXISTS stack_selftest' >/dev/null
}

# ---------------------------------------------------------------- run

find_psql

step "up" check_up
step "status" check_status_ok
step "env" load_env
step "kafka topic create/list" check_topic_round_trip
step "SELECT 1 on $DATABASE_URL and $TEST_DATABASE_URL" check_databases
step "kill -9 kafka" check_kill_kafka_leaves_stale_files
step "up after kafka kill (stale lock)" check_up
step "status after kafka recovery" check_status_ok
step "kill -9 postgres postmaster" check_kill_postgres
step "up after postgres kill (stale postmaster.pid)" check_up
step "status after postgres recovery" check_status_ok
step "down" "$STACK" down
step "status while down" check_status_down
step "up again (reuse data)" check_up
step "status" check_status_ok
step "data survived down/up" check_data_reused
step "up while up (idempotent)" check_up
step "clean up test topic and table" cleanup_data
if ((STOP_AT_END)); then
    step "down" "$STACK" down
fi

say "PASS ($((SECONDS - TOTAL_START))s)"

# shellcheck shell=bash disable=SC2034  # the configuration is read by the other parts
# Sourced by deploy/local/stack.sh: the stack's configuration (state directory, ports, which
# services are managed here rather than external, file locations) and the small helpers every
# part uses (logging, process checks, TCP probe, the state-dir lock, daemon fd hygiene).
# Needs SCRIPT_DIR and REPO_ROOT, set by stack.sh.

# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------

STATE_DIR=${PROVISIONER_STATE_DIR:-$REPO_ROOT/.local}
case $STATE_DIR in
    /*) ;;
    *) STATE_DIR=$PWD/$STATE_DIR ;;  # daemons chdir; paths must be absolute
esac

KAFKA_VERSION=4.1.1   # keep in sync with deploy/local/kafka/pom.xml

PG_HOST=127.0.0.1
PG_PORT=${PROVISIONER_PG_PORT:-5433}
PG_USER=provisioner
PG_PASSWORD=provisioner
PG_DB=provisioner
PG_TEST_DB=provisioner_test

KAFKA_HOST=127.0.0.1
KAFKA_PORT=${PROVISIONER_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${PROVISIONER_KAFKA_CONTROLLER_PORT:-9093}

PG_START_TIMEOUT=60       # seconds; includes crash recovery after a kill -9
KAFKA_START_TIMEOUT=120   # seconds; includes log recovery after a kill -9
KAFKA_STOP_TIMEOUT=${PROVISIONER_KAFKA_STOP_TIMEOUT:-30}  # seconds between SIGTERM and SIGKILL

LOCAL_DATABASE_URL="postgresql://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB"
LOCAL_TEST_DATABASE_URL="postgresql://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_TEST_DB"
LOCAL_KAFKA_BOOTSTRAP="$KAFKA_HOST:$KAFKA_PORT"

# A DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS pointing somewhere else means
# "use that service, do not run one". The local stack's own values count as
# unset, so that `eval "$(stack.sh env)"; stack.sh down` still stops the
# local services.
if [[ -n ${DATABASE_URL:-} && $DATABASE_URL != "$LOCAL_DATABASE_URL" ]]; then
    PG_MANAGED=0
else
    PG_MANAGED=1
fi
if [[ -n ${KAFKA_BOOTSTRAP_SERVERS:-} && $KAFKA_BOOTSTRAP_SERVERS != "$LOCAL_KAFKA_BOOTSTRAP" ]]; then
    KAFKA_MANAGED=0
else
    KAFKA_MANAGED=1
fi

KAFKA_DIR=$STATE_DIR/kafka
KAFKA_LIBS=${PROVISIONER_KAFKA_LIBS:-$KAFKA_DIR/libs}
KAFKA_HEAP=${PROVISIONER_KAFKA_HEAP:-1g}
KAFKA_DATA=$KAFKA_DIR/data          # log.dirs, including the KRaft metadata log
KAFKA_LOGS=$KAFKA_DIR/logs          # server.log (log4j) and kafka.out (console)
KAFKA_CONF=$KAFKA_DIR/server.properties
KAFKA_PID_FILE=$KAFKA_DIR/kafka.pid
KAFKA_CLUSTER_ID_FILE=$KAFKA_DIR/cluster.id
KAFKA_FETCH_MARKER=$KAFKA_LIBS/.fetched
KAFKA_POM=$SCRIPT_DIR/kafka/pom.xml
KAFKA_LOG4J=$SCRIPT_DIR/kafka/log4j2.xml
KAFKA_TOOLS_LOG4J=$SCRIPT_DIR/kafka/tools-log4j2.xml
KAFKA_TEMPLATE=$SCRIPT_DIR/stack/server.properties.in
# The broker's identity in its quorum; cluster_select re-points these too.
KAFKA_NODE_ID=1
KAFKA_VOTERS=''       # static controller voters; none means a dynamic quorum of one (--standalone)
KAFKA_REPLICATION=1   # replication factor of default and internal topics
KAFKA_MIN_ISR=1

# PostgreSQL paths are resolved by pg_resolve_paths (the data may have to live
# outside the state directory, see there).
PG_BASE='' PGDATA_DIR='' PG_RUN='' PG_LOG='' PG_BIN=''
PG_LOCATION_FILE=$STATE_DIR/pg.location

# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

log() { printf '[stack] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Show the end of a log file on stderr (used when something fails to start).
show_tail() {
    local file=$1
    [[ -f $file ]] || return 0
    log "---- last lines of $file ----"
    tail -n 30 "$file" >&2 || true
    log "----"
}

# True if the pid belongs to a live (non-zombie) process.
pid_alive() {
    local pid=${1:-} stat state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || return 1
    state=${stat##*) }     # the command name may contain spaces; skip it
    state=${state%% *}
    [[ $state != Z && $state != X ]]
}

# Wait until the pid is gone; returns 1 on timeout.
wait_pid_exit() {
    local pid=$1 timeout=$2 waited=0
    while pid_alive "$pid"; do
        ((waited >= timeout * 10)) && return 1
        sleep 0.1
        waited=$((waited + 1))
    done
}

# kill_hard NAME PIDFN [WHAT]: SIGKILL the process PIDFN prints, as a real crash would (fault
# injection: its pid file and locks are deliberately left behind; the next `up` has to cope).
kill_hard() {
    local name=$1 pid
    if ! pid=$("$2"); then
        log "$name: not running"
        return 0
    fi
    log "$name: kill -9 ${3:-pid} $pid"
    kill -KILL "$pid"
    wait_pid_exit "$pid" 10 || die "$name: pid $pid survived SIGKILL"
}

# Is something accepting TCP connections on host:port?
tcp_open() {
    # shellcheck disable=SC2016  # $0/$1 belong to the inner shell
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# Serialise state-changing commands (two `up`s in parallel from make -j must
# not both start a broker). fd 9 is closed for the daemons we launch, else
# they would hold the lock forever.
take_lock() {
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/stack.lock"
    if ! flock -n 9; then
        log "waiting for another stack.sh command to finish"
        flock -w 600 9 || die "could not take $STATE_DIR/stack.lock"
    fi
}

# For daemons: close every inherited file descriptor above stderr (our lock
# on fd 9, but also e.g. pipes of a calling make or test runner, which would
# otherwise stay open for the daemon's lifetime and make readers hang).
# Call only in the subshell that is about to exec the daemon.
close_inherited_fds() {
    local fd
    for fd in "/proc/$BASHPID/fd/"*; do
        fd=${fd##*/}
        # shellcheck disable=SC2015  # `|| true` is meant for both: fd <= 2 and a failed close
        ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null || true
    done
}

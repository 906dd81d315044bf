#!/usr/bin/env bash
# Local development stack for provisioner: PostgreSQL + single-node Kafka.
#
# No containers: PostgreSQL comes from the Debian packages (installed with
# apt-get only if no server binaries exist), Kafka's jars come from Maven
# Central (see deploy/local/kafka/pom.xml). Everything the stack writes lives
# in the state directory, ${PROVISIONER_STATE_DIR:-<repo>/.local}.
#
# Usage: deploy/local/stack.sh <command>
#
#   fetch             download the Kafka jars (skipped when already present)
#   up                start PostgreSQL and Kafka unless already healthy;
#                     returns once both are healthy
#   down              stop both (pg_ctl -m fast; Kafka SIGTERM, then SIGKILL)
#   status            exit 0 if both are healthy, 1 otherwise
#   env               print DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS as shell
#                     `export` lines (the tests' database, provisioner_test,
#                     is DATABASE_URL with "_test" appended to its name)
#   restart-kafka     stop + start Kafka
#   kill-kafka        kill -9 the Kafka broker (fault injection)
#   restart-postgres  stop + start PostgreSQL
#   kill-postgres     kill -9 the PostgreSQL postmaster (fault injection)
#   purge             down, then delete the state directory (and the
#                     PostgreSQL cluster if it lives outside it); for the
#                     throw-away stacks of the fault tests
#   cluster up|down|status|env|kill-broker N|stop-broker N|start-broker N
#                     a three-broker KRaft cluster on loopback (each broker
#                     also a controller; replication factor 3, min ISR 2),
#                     separate from the single broker: own ports, own data
#                     under <state>/cluster; `cluster env` prints the
#                     bootstrap list and the replication settings
#   kafka-tool CLASS [ARGS...]
#                     run a Kafka command line class with the fetched jars,
#                     e.g. org.apache.kafka.tools.TopicCommand --list
#                     --bootstrap-server 127.0.0.1:9092
#
# Environment:
#   DATABASE_URL             if set (to anything but the local stack's own
#                            URL) PostgreSQL is not started, only checked
#   KAFKA_BOOTSTRAP_SERVERS  likewise for Kafka
#   PROVISIONER_STATE_DIR    state directory (default <repo>/.local)
#   PROVISIONER_PG_PORT      PostgreSQL port (default 5433)
#   PROVISIONER_KAFKA_PORT   Kafka client port (default 9092)
#   PROVISIONER_KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093)
#   PROVISIONER_KAFKA_STOP_TIMEOUT     seconds from SIGTERM to SIGKILL (default 30)
#   PROVISIONER_KAFKA_LIBS   where the Kafka jars live (default <state>/kafka/libs);
#                            lets throw-away stacks share one fetch
#   PROVISIONER_KAFKA_HEAP   broker heap (default 1g; cluster brokers 512m)
#   PROVISIONER_CLUSTER_PORTS             client ports of the three brokers
#                                         (default 19092,19093,19094)
#   PROVISIONER_CLUSTER_CONTROLLER_PORTS  their controller ports
#                                         (default 19192,19193,19194)
#
# Every command except `env` and `kafka-tool` writes only status lines, and
# only to stderr.

set -euo pipefail

# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd -P)

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
        ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null || true
    done
}

find_java() {
    if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
        JAVA=$JAVA_HOME/bin/java
    elif command -v java >/dev/null 2>&1; then
        JAVA=$(command -v java)
    else
        die "java not found (Kafka $KAFKA_VERSION needs Java 17 or newer)"
    fi
}

# --------------------------------------------------------------------------
# Kafka: fetching the jars
# --------------------------------------------------------------------------

# The marker records the version and the POM's hash, so editing the POM
# (e.g. adding a jar) triggers a new fetch.
kafka_fetch_stamp() {
    printf '%s %s\n' "$KAFKA_VERSION" "$(sha256sum <"$KAFKA_POM" | cut -d' ' -f1)"
}

kafka_fetched() {
    [[ -f $KAFKA_FETCH_MARKER && -f $KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar ]] &&
        [[ $(<"$KAFKA_FETCH_MARKER") == "$(kafka_fetch_stamp)" ]]
}

cmd_fetch() {
    if kafka_fetched; then
        log "kafka: jars for $KAFKA_VERSION already fetched"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found (needed once, to fetch the Kafka jars)"
    mkdir -p "$KAFKA_DIR" "$KAFKA_LOGS" "$(dirname "$KAFKA_LIBS")"
    log "kafka: fetching $KAFKA_VERSION jars from Maven Central (first time only)"
    # Copy into a scratch directory and swap it in, so an interrupted fetch
    # never leaves a half-filled libs/ behind that looks complete.
    local tmp=$KAFKA_LIBS.tmp
    rm -rf "$tmp"
    if ! mvn -B -q -f "$KAFKA_POM" dependency:copy-dependencies \
            -DoutputDirectory="$tmp" >"$KAFKA_LOGS/fetch.log" 2>&1; then
        show_tail "$KAFKA_LOGS/fetch.log"
        die "kafka: maven could not fetch the jars"
    fi
    [[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || die "kafka: kafka_2.13-$KAFKA_VERSION.jar missing after fetch"
    kafka_fetch_stamp >"$tmp/.fetched"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    log "kafka: fetched $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars into $KAFKA_LIBS"
}

# --------------------------------------------------------------------------
# Kafka: configuration, process handling, health
# --------------------------------------------------------------------------

# Run a Kafka command line class (tools, StorageTool) with the fetched jars.
# Small heap and C1-only JIT: these JVMs live for a second or two.
kafka_tool() {
    "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j2.configurationFile="$KAFKA_TOOLS_LOG4J" \
        -cp "$KAFKA_LIBS/*" "$@"
}

# server.properties is regenerated on every start so that it always matches
# this script (ports are the only inputs). Note: the controller endpoint is
# recorded in the metadata log at format time; changing
# PROVISIONER_KAFKA_CONTROLLER_PORT later needs a fresh $KAFKA_DATA.
kafka_write_config() {
    mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
    if [[ -n $CLUSTER_NODE ]]; then
        cluster_write_config
        return 0
    fi
    cat >"$KAFKA_CONF.tmp" <<EOF
# Generated by deploy/local/stack.sh on every start; edits are overwritten.
# Single node running KRaft broker and controller in one process.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT

log.dirs=$KAFKA_DATA

# Topic defaults. Topics are created explicitly by the application.
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false

# Internal topics must fit on one broker.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Tests start consumers constantly; do not wait 3 s before each first rebalance.
group.initial.rebalance.delay.ms=0

# After a kill -9 the restarted broker cannot register until the controller
# has expired the dead incarnation's session (DUPLICATE_BROKER_REGISTRATION).
# The default 9 s session made crash recovery take ~16 s; 5 s keeps it near
# 10 s while leaving ample room for GC pauses on a busy box.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=5000
EOF
    mv "$KAFKA_CONF.tmp" "$KAFKA_CONF"
}

# Format the storage directory once (KRaft needs a cluster id and, with
# --standalone, a single-voter dynamic quorum). meta.properties is the proof
# of a completed format; anything without it is a leftover and is wiped.
kafka_format() {
    [[ -f $KAFKA_DATA/meta.properties ]] && return 0
    local cluster_id
    # the cluster's voters are static (controller.quorum.voters); the single node is a dynamic quorum of one
    local -a quorum_flag=(--standalone)
    [[ -n $CLUSTER_NODE ]] && quorum_flag=()
    if [[ -s $KAFKA_CLUSTER_ID_FILE ]]; then
        cluster_id=$(<"$KAFKA_CLUSTER_ID_FILE")
    else
        cluster_id=$(kafka_tool kafka.tools.StorageTool random-uuid 2>>"$KAFKA_LOGS/format.log")
        printf '%s\n' "$cluster_id" >"$KAFKA_CLUSTER_ID_FILE"
    fi
    log "kafka: formatting storage (cluster id $cluster_id)"
    rm -rf "$KAFKA_DATA"
    mkdir -p "$KAFKA_DATA"
    if ! kafka_tool kafka.tools.StorageTool format --config "$KAFKA_CONF" \
            --cluster-id "$cluster_id" "${quorum_flag[@]}" >>"$KAFKA_LOGS/format.log" 2>&1; then
        show_tail "$KAFKA_LOGS/format.log"
        die "kafka: storage format failed"
    fi
}

# Is pid our broker, i.e. kafka.Kafka started with this state dir's config?
kafka_is_ours() {
    local pid=$1 args
    pid_alive "$pid" || return 1
    # mapfile, not tr: this runs for every process when the pid file is stale
    { mapfile -d '' -t args <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
    [[ " ${args[*]} " == *" kafka.Kafka $KAFKA_CONF "* ]]
}

# Print the broker pid. Trusts the pid file only after checking the process
# (pids are reused); if the pid file is missing or stale, looks for a broker
# running with exactly our server.properties.
kafka_pid() {
    local pid dir
    if [[ -f $KAFKA_PID_FILE ]]; then
        pid=$(<"$KAFKA_PID_FILE")
        if kafka_is_ours "$pid"; then
            echo "$pid"
            return 0
        fi
    fi
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        if kafka_is_ours "$pid"; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

# Kafka protocol probe in plain bash (no JVM start-up): send a Metadata v4
# request and require a well-formed answer listing at least one broker. A
# KRaft broker only serves requests once it has caught up with the metadata
# log and is unfenced, so this means "ready to create topics and produce".
#   request:  size=15 | api_key=3 | api_version=4 | correlation_id=1 |
#             client_id=null | topics=null (all) | allow_auto_create=false
#   response: size | correlation_id | throttle_time_ms | broker count | ...
kafka_probe() {
    local host=$1 port=$2 min=${3:-1} bytes
    # shellcheck disable=SC2016  # $0/$1 belong to the inner shell
    bytes=$(timeout 5 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "\x00\x00\x00\x0f\x00\x03\x00\x04\x00\x00\x00\x01\xff\xff\xff\xff\xff\xff\x00" >&3
        head -c 16 <&3 | od -An -tu1 -v
    ' "$host" "$port" 2>/dev/null) || return 1
    # shellcheck disable=SC2086  # word splitting into bytes is the point
    set -- $bytes
    (($# == 16)) || return 1
    [[ "$5 $6 $7 $8" == "0 0 0 1" ]] || return 1            # our correlation id
    (((${13} << 24 | ${14} << 16 | ${15} << 8 | ${16}) >= min))  # broker count
}

kafka_healthy() {
    if ((KAFKA_MANAGED)); then
        kafka_pid >/dev/null && kafka_probe "$KAFKA_HOST" "$KAFKA_PORT"
    else
        kafka_external_healthy
    fi
}

# External Kafka: at least one bootstrap server must accept TCP connections.
# The protocol probe is attempted too but only warns, since an external
# cluster may well require TLS or SASL, which the probe cannot speak.
kafka_external_healthy() {
    local entry host port
    local -a servers
    IFS=',' read -r -a servers <<<"$KAFKA_BOOTSTRAP_SERVERS"
    for entry in "${servers[@]}"; do
        entry=${entry// /}
        entry=${entry#*://}
        host=${entry%:*}
        port=${entry##*:}
        host=${host#[}
        host=${host%]}
        [[ -n $host && $port =~ ^[0-9]+$ ]] || continue
        if tcp_open "$host" "$port"; then
            kafka_probe "$host" "$port" ||
                log "kafka: $host:$port accepts connections but did not answer a plaintext metadata request (TLS/SASL?)"
            return 0
        fi
    done
    return 1
}

# After a crash (kill -9) the pid file and the log dirs' .lock files stay
# behind. Kafka's lock is an OS file lock that died with the process, but we
# remove the files anyway so nothing can mistake them for a live broker.
# Only called once kafka_pid has established that no broker of ours runs.
kafka_clean_stale() {
    if [[ -f $KAFKA_PID_FILE ]]; then
        log "kafka: removing stale pid file (pid $(<"$KAFKA_PID_FILE") is not running)"
        rm -f "$KAFKA_PID_FILE"
    fi
    if [[ -f $KAFKA_DATA/.lock ]]; then
        log "kafka: removing stale $KAFKA_DATA/.lock"
        rm -f "$KAFKA_DATA/.lock"
    fi
}

kafka_wait_healthy() {
    local pid=$1 deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    until kafka_probe "$KAFKA_HOST" "$KAFKA_PORT"; do
        if ! pid_alive "$pid"; then
            show_tail "$KAFKA_LOGS/kafka.out"
            show_tail "$KAFKA_LOGS/server.log"
            rm -f "$KAFKA_PID_FILE"
            die "kafka: broker exited during start-up"
        fi
        if ((SECONDS >= deadline)); then
            show_tail "$KAFKA_LOGS/server.log"
            die "kafka: not healthy after ${KAFKA_START_TIMEOUT}s (still running as pid $pid)"
        fi
        sleep 0.5
    done
}

kafka_start() {
    local start=$SECONDS
    kafka_launch || return 0
    kafka_wait_healthy "$KAFKA_LAUNCHED_PID"
    log "kafka: healthy on $LOCAL_KAFKA_BOOTSTRAP (pid $KAFKA_LAUNCHED_PID, $((SECONDS - start))s)"
}

# Start the broker without waiting for it to be healthy (a cluster's brokers
# must all be launched before any of them can be: none is unfenced without a
# controller quorum). Sets KAFKA_LAUNCHED_PID; returns 1 if the broker was
# already running and has been waited for.
KAFKA_LAUNCHED_PID=''
kafka_launch() {
    local pid
    if pid=$(kafka_pid); then
        echo "$pid" >"$KAFKA_PID_FILE"
        if kafka_probe "$KAFKA_HOST" "$KAFKA_PORT"; then
            log "kafka: already running (pid $pid) on $LOCAL_KAFKA_BOOTSTRAP"
            return 1
        fi
        [[ -n $CLUSTER_NODE ]] && return 1   # the cluster waits once all are launched
        log "kafka: running (pid $pid) but not answering yet; waiting"
        kafka_wait_healthy "$pid"
        log "kafka: healthy on $LOCAL_KAFKA_BOOTSTRAP"
        return 1
    fi
    kafka_clean_stale
    if tcp_open "$KAFKA_HOST" "$KAFKA_PORT" || tcp_open "$KAFKA_HOST" "$KAFKA_CONTROLLER_PORT"; then
        die "kafka: port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is taken by a process that is not this stack's broker"
    fi

    kafka_fetched || cmd_fetch
    find_java
    kafka_write_config
    kafka_format

    log "kafka: starting $KAFKA_VERSION on $LOCAL_KAFKA_BOOTSTRAP"
    # setsid: own session, so the broker survives the calling terminal/make
    # and is not hit by its Ctrl-C. nohup: ignore SIGHUP. Because this
    # subshell is not a process group leader, setsid and nohup exec in place
    # and $! is the JVM's pid (verified below all the same).
    (
        cd "$KAFKA_DIR"
        close_inherited_fds
        exec setsid nohup "$JAVA" -Xms256m -Xmx"$KAFKA_HEAP" -server \
            -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
            -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
            -Djava.awt.headless=true \
            -Dkafka.logs.dir="$KAFKA_LOGS" \
            -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
            -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF" \
            >>"$KAFKA_LOGS/kafka.out" 2>&1 </dev/null
    ) &
    pid=$!
    echo "$pid" >"$KAFKA_PID_FILE"
    # Until the exec chain (setsid, nohup) reaches the JVM the pid shows
    # another command line; give it up to 5 s on a busy machine.
    local tries=0
    until kafka_is_ours "$pid"; do
        if ! pid_alive "$pid" || ((tries >= 50)); then
            pid=$(kafka_pid) || {
                show_tail "$KAFKA_LOGS/kafka.out"
                rm -f "$KAFKA_PID_FILE"
                die "kafka: broker exited immediately"
            }
            echo "$pid" >"$KAFKA_PID_FILE"
            break
        fi
        sleep 0.1
        tries=$((tries + 1))
    done
    KAFKA_LAUNCHED_PID=$pid
}

kafka_stop() {
    local pid
    if ! pid=$(kafka_pid); then
        kafka_clean_stale
        log "kafka: not running"
        return 0
    fi
    log "kafka: stopping (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_pid_exit "$pid" "$KAFKA_STOP_TIMEOUT"; then
        log "kafka: still running after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_pid_exit "$pid" 10 || die "kafka: pid $pid survived SIGKILL"
        kafka_clean_stale
    fi
    rm -f "$KAFKA_PID_FILE"
    log "kafka: stopped"
}

# Fault injection: the pid file and .lock are deliberately left behind, as a
# real crash would; the next `up` has to cope with them.
kafka_kill() {
    local pid
    if ! pid=$(kafka_pid); then
        log "kafka: not running"
        return 0
    fi
    log "kafka: kill -9 pid $pid"
    kill -KILL "$pid"
    wait_pid_exit "$pid" 10 || die "kafka: pid $pid survived SIGKILL"
}

# --------------------------------------------------------------------------
# Kafka: a three-broker cluster (fault tests: a broker lost under load)
# --------------------------------------------------------------------------

# Each broker is also a controller (combined mode): three voters, so the
# quorum and every partition (replication factor 3, min ISR 2) survive the
# loss of any one broker. The single-broker functions above are reused:
# cluster_select points their variables at broker N.
CLUSTER_NODE=''
CLUSTER_DIR=$STATE_DIR/cluster
CLUSTER_SIZE=3
IFS=',' read -r -a CLUSTER_PORTS <<<"${PROVISIONER_CLUSTER_PORTS:-19092,19093,19094}"
IFS=',' read -r -a CLUSTER_CONTROLLER_PORTS <<<"${PROVISIONER_CLUSTER_CONTROLLER_PORTS:-19192,19193,19194}"

cluster_check_ports() {
    ((${#CLUSTER_PORTS[@]} == CLUSTER_SIZE && ${#CLUSTER_CONTROLLER_PORTS[@]} == CLUSTER_SIZE)) ||
        die "PROVISIONER_CLUSTER_PORTS and PROVISIONER_CLUSTER_CONTROLLER_PORTS need $CLUSTER_SIZE ports each"
}

cluster_bootstrap() {
    local n out=''
    for ((n = 1; n <= CLUSTER_SIZE; n++)); do
        out+="${out:+,}$KAFKA_HOST:${CLUSTER_PORTS[n - 1]}"
    done
    echo "$out"
}

cluster_voters() {
    local n out=''
    for ((n = 1; n <= CLUSTER_SIZE; n++)); do
        out+="${out:+,}$n@$KAFKA_HOST:${CLUSTER_CONTROLLER_PORTS[n - 1]}"
    done
    echo "$out"
}

cluster_select() {
    local n=$1
    [[ $n =~ ^[1-3]$ ]] || die "broker number must be 1, 2 or 3 (got '$n')"
    CLUSTER_NODE=$n
    KAFKA_DIR=$CLUSTER_DIR/broker-$n
    KAFKA_DATA=$KAFKA_DIR/data
    KAFKA_LOGS=$KAFKA_DIR/logs
    KAFKA_CONF=$KAFKA_DIR/server.properties
    KAFKA_PID_FILE=$KAFKA_DIR/kafka.pid
    KAFKA_CLUSTER_ID_FILE=$CLUSTER_DIR/cluster.id   # one id for all three
    KAFKA_PORT=${CLUSTER_PORTS[n - 1]}
    KAFKA_CONTROLLER_PORT=${CLUSTER_CONTROLLER_PORTS[n - 1]}
    LOCAL_KAFKA_BOOTSTRAP=$KAFKA_HOST:$KAFKA_PORT
    KAFKA_HEAP=${PROVISIONER_KAFKA_HEAP:-512m}
}

cluster_write_config() {
    cat >"$KAFKA_CONF.tmp" <<EOF
# Generated by deploy/local/stack.sh on every start; edits are overwritten.
# Broker $CLUSTER_NODE of a three-node KRaft cluster; every node is broker and controller.
process.roles=broker,controller
node.id=$CLUSTER_NODE
controller.quorum.voters=$(cluster_voters)
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT

log.dirs=$KAFKA_DATA

# Durable defaults: a write acknowledged with acks=all is on two brokers at least.
num.partitions=6
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
auto.create.topics.enable=false

offsets.topic.replication.factor=3
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2

group.initial.rebalance.delay.ms=0
# A lost broker is fenced (and its partitions' leadership moved) after 5 s.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=5000
EOF
    mv "$KAFKA_CONF.tmp" "$KAFKA_CONF"
}

cluster_healthy() {
    local n
    for ((n = 1; n <= CLUSTER_SIZE; n++)); do
        cluster_select "$n"
        kafka_pid >/dev/null && kafka_probe "$KAFKA_HOST" "$KAFKA_PORT" "$CLUSTER_SIZE" || return 1
    done
}

cluster_up() {
    local n start=$SECONDS
    local -a pids=()
    kafka_fetched || cmd_fetch
    find_java
    for ((n = 1; n <= CLUSTER_SIZE; n++)); do
        cluster_select "$n"
        if kafka_launch; then pids[n]=$KAFKA_LAUNCHED_PID; else pids[n]=$(kafka_pid || true); fi
    done
    for ((n = 1; n <= CLUSTER_SIZE; n++)); do
        cluster_select "$n"
        kafka_wait_healthy "${pids[n]}"
    done
    # healthy brokers see each other: all three registered and unfenced
    local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    until cluster_healthy; do
        ((SECONDS < deadline)) || die "kafka cluster: brokers up but not all registered after ${KAFKA_START_TIMEOUT}s"
        sleep 0.5
    done
    log "kafka cluster: healthy on $(cluster_bootstrap) ($((SECONDS - start))s)"
}

# All at once: a broker stopped after the others has no controller quorum left
# to hand its partitions to, and would sit out the whole stop timeout.
cluster_down() {
    local n rc=0
    local -a pids=()
    for ((n = 1; n <= CLUSTER_SIZE; n++)); do
        (cluster_select "$n"; kafka_stop) &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || rc=1; done
    return "$rc"
}

cmd_cluster() {
    local sub=${1:-} n=${2:-}
    cluster_check_ports
    case $sub in
        up) take_lock; cluster_up ;;
        down) take_lock; cluster_down ;;
        status)
            if cluster_healthy; then
                log "kafka cluster: healthy ($(cluster_bootstrap))"
            else
                log "kafka cluster: NOT healthy"
                return 1
            fi
            ;;
        env)
            printf 'export KAFKA_BOOTSTRAP_SERVERS=%s\n' "$(cluster_bootstrap)"
            printf 'export PROVISIONER_TOPIC_REPLICATION=3\n'
            printf 'export PROVISIONER_TOPIC_MIN_INSYNC_REPLICAS=2\n'
            ;;
        kill-broker) cluster_select "$n"; take_lock; kafka_kill ;;
        stop-broker) cluster_select "$n"; take_lock; kafka_stop ;;
        start-broker) cluster_select "$n"; take_lock; kafka_fetched || cmd_fetch; find_java; kafka_start ;;
        *) die "usage: stack.sh cluster {up|down|status|env|kill-broker N|stop-broker N|start-broker N}" ;;
    esac
}

# Throw-away stacks (fault tests) are removed with everything they wrote.
cmd_purge() {
    take_lock
    cluster_check_ports
    cluster_down
    CLUSTER_NODE=''
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

# --------------------------------------------------------------------------
# PostgreSQL: binaries, paths, process handling, health
# --------------------------------------------------------------------------

# Locate the Debian server binaries (/usr/lib/postgresql/<ver>/bin); other
# pg_ctl/postgres on PATH are ignored on purpose. An existing cluster pins
# the major version it was created with; otherwise the newest one wins.
pg_find_bin() {
    local dir ver=
    [[ -n $PGDATA_DIR && -s $PGDATA_DIR/PG_VERSION ]] && ver=$(<"$PGDATA_DIR/PG_VERSION")
    if [[ -n $ver ]]; then
        dir=/usr/lib/postgresql/$ver/bin
        [[ -x $dir/pg_ctl && -x $dir/postgres && -x $dir/psql ]] && { PG_BIN=$dir; return 0; }
        die "postgres: the cluster in $PGDATA_DIR needs PostgreSQL $ver, which is not installed"
    fi
    while read -r dir; do
        if [[ -x $dir/pg_ctl && -x $dir/initdb && -x $dir/postgres && -x $dir/psql ]]; then
            PG_BIN=$dir
            return 0
        fi
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
    return 1
}

# Install Debian's PostgreSQL, but only when no server binaries exist at all.
# (Debian's package also creates and starts its own "main" cluster on 5432;
# ours is separate and on PROVISIONER_PG_PORT.)
pg_ensure_installed() {
    pg_find_bin && return 0
    ((EUID == 0)) || die "postgres: no server binaries under /usr/lib/postgresql; install the 'postgresql' package"
    log "postgres: no server binaries found; installing Debian's postgresql package"
    mkdir -p "$STATE_DIR"
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; } \
            >"$STATE_DIR/apt.log" 2>&1 9>&-; then
        show_tail "$STATE_DIR/apt.log"
        die "postgres: apt-get install postgresql failed"
    fi
    pg_find_bin || die "postgres: still no server binaries after installing postgresql"
}

# psql for checks; any psql will do when the server is external.
pg_find_psql() {
    if [[ -n $PG_BIN ]] || pg_find_bin; then
        PSQL=$PG_BIN/psql
    elif command -v psql >/dev/null 2>&1; then
        PSQL=$(command -v psql)
    else
        die "psql not found; install the 'postgresql-client' package"
    fi
}

# Server commands must not run as root (initdb refuses), so as root they run
# as the `postgres` OS user; as any other user they run as that user.
as_pg() {
    if ((EUID == 0)); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_owner() {
    if ((EUID == 0)); then echo postgres; else id -un; fi
}

# Where the cluster lives: <state>/pg, unless the server's OS user cannot
# traverse the directories leading to it (e.g. a repo under /root). Then it
# goes to /var/lib/provisioner-pg-<hash of the state dir path>, and that
# choice is recorded in <state>/pg.location so it never changes afterwards.
pg_resolve_paths() {
    if [[ -s $PG_LOCATION_FILE ]]; then
        PG_BASE=$(<"$PG_LOCATION_FILE")
    elif [[ -d $STATE_DIR/pg ]] || ((EUID != 0)); then
        PG_BASE=$STATE_DIR/pg
    elif id postgres >/dev/null 2>&1; then
        mkdir -p "$STATE_DIR"
        if runuser -u postgres -- test -x "$STATE_DIR"; then
            PG_BASE=$STATE_DIR/pg
        else
            PG_BASE=/var/lib/provisioner-pg-$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-12)
            log "postgres: user postgres cannot traverse $STATE_DIR; keeping the cluster in $PG_BASE"
            printf '%s\n' "$PG_BASE" >"$PG_LOCATION_FILE"
        fi
    else
        PG_BASE=$STATE_DIR/pg   # nothing installed yet; re-resolved after install
    fi
    PGDATA_DIR=$PG_BASE/data
    PG_RUN=$PG_BASE/run              # unix socket directory
    PG_LOG=$PG_BASE/postgres.log
}

# Settings live in an included file that is rewritten on every start, so
# postgresql.conf stays initdb's pristine copy.
pg_write_config() {
    cat >"$PGDATA_DIR/provisioner.conf" <<EOF
# Generated by deploy/local/stack.sh on every start; edits are overwritten.
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
unix_socket_permissions = 0770
password_encryption = 'scram-sha-256'

max_connections = 200
shared_buffers = 1GB
effective_cache_size = 4GB
maintenance_work_mem = 256MB
work_mem = 16MB

# Durability stays on: the pipeline's crash tests must see real semantics.
fsync = on
synchronous_commit = on
full_page_writes = on

log_destination = 'stderr'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
EOF
    chown "$(pg_owner):" "$PGDATA_DIR/provisioner.conf"
    chmod 600 "$PGDATA_DIR/provisioner.conf"
}

# Create the cluster once. Local (socket) connections use peer auth for the
# superuser; TCP connections need a scram password.
pg_init() {
    local owner
    owner=$(pg_owner)
    mkdir -p "$PG_BASE" "$PG_RUN"
    chown "$owner:" "$PG_BASE" "$PG_RUN"
    chmod 700 "$PG_RUN"
    if [[ ! -s $PGDATA_DIR/PG_VERSION ]]; then
        log "postgres: initialising cluster in $PGDATA_DIR"
        rm -rf "$PGDATA_DIR"   # an interrupted initdb leaves a half-made dir
        if ! as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" --encoding=UTF8 --locale=C.UTF-8 \
                --auth-local=peer --auth-host=scram-sha-256 >"$PG_BASE/initdb.log" 2>&1; then
            show_tail "$PG_BASE/initdb.log"
            die "postgres: initdb failed"
        fi
        echo "include_if_exists = 'provisioner.conf'" >>"$PGDATA_DIR/postgresql.conf"
    fi
    pg_write_config
}

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
    local pid
    pg_resolve_paths
    if ! pid=$(pg_postmaster_pid); then
        log "postgres: not running"
        return 0
    fi
    log "postgres: kill -9 postmaster pid $pid"
    kill -KILL "$pid"
    wait_pid_exit "$pid" 10 || die "postgres: pid $pid survived SIGKILL"
}

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

main() {
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        fetch) take_lock; cmd_fetch ;;
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
        env) cmd_env ;;
        restart-kafka) require_managed_kafka; take_lock; kafka_stop; kafka_start ;;
        kill-kafka) require_managed_kafka; take_lock; kafka_kill ;;
        restart-postgres) require_managed_pg; take_lock; pg_stop; pg_start ;;
        kill-postgres) require_managed_pg; take_lock; pg_kill ;;
        cluster) cmd_cluster "$@" ;;
        purge) cmd_purge ;;
        kafka-tool)
            [[ $# -gt 0 ]] || die "usage: stack.sh kafka-tool <main class> [args...]"
            kafka_fetched || die "kafka jars not fetched; run: stack.sh fetch"
            find_java
            kafka_tool "$@"
            ;;
        -h | --help | help)
            sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
            ;;
        *)
            log "usage: stack.sh {fetch|up|down|status|env|restart-kafka|kill-kafka|restart-postgres|kill-postgres|cluster|purge|kafka-tool}"
            exit 2
            ;;
    esac
}

main "$@"

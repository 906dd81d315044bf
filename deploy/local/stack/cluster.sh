# shellcheck shell=bash disable=SC2034,SC2153  # KAFKA_* are defined in common.sh, read in kafka.sh
# Sourced by deploy/local/stack.sh: `stack.sh cluster ...`, a three-broker KRaft cluster on
# loopback for the fault tests (a broker lost under load), separate from the single broker:
# own ports (PROVISIONER_CLUSTER_PORTS, PROVISIONER_CLUSTER_CONTROLLER_PORTS) and own data
# under <state>/cluster. Each broker runs through kafka.sh once cluster_select has pointed
# the KAFKA_* variables at it; its server.properties comes from the same broker template.

# Each broker is also a controller (combined mode): three voters, so the
# quorum and every partition (replication factor 3, min ISR 2) survive the
# loss of any one broker. The single-broker functions of kafka.sh are reused:
# cluster_select points their variables at broker N.
CLUSTER_NODE=''
CLUSTER_DIR=$STATE_DIR/cluster
CLUSTER_SIZE=3
IFS=',' read -r -a CLUSTER_PORTS <<<"${PROVISIONER_CLUSTER_PORTS:-19092,19093,19094}"
IFS=',' read -r -a CLUSTER_CONTROLLER_PORTS <<<"${PROVISIONER_CLUSTER_CONTROLLER_PORTS:-19192,19193,19194}"
CLUSTER_REPLICATION=3   # every partition, internal topics included, on all three brokers
CLUSTER_MIN_ISR=2       # so acks=all survives the loss of one

cluster_check_ports() {
    ((${#CLUSTER_PORTS[@]} == CLUSTER_SIZE && ${#CLUSTER_CONTROLLER_PORTS[@]} == CLUSTER_SIZE)) ||
        die "PROVISIONER_CLUSTER_PORTS and PROVISIONER_CLUSTER_CONTROLLER_PORTS need $CLUSTER_SIZE ports each"
}

cluster_bootstrap() { cluster_join '' "${CLUSTER_PORTS[@]}"; }
cluster_voters() { cluster_join '@' "${CLUSTER_CONTROLLER_PORTS[@]}"; }

# cluster_join SEP PORT...: host:port per broker, comma-separated; with SEP, each is prefixed by
# the broker's number and SEP (KRaft's controller.quorum.voters form: 1@host:port,...)
cluster_join() {
    local sep=$1 out='' n=0 port
    shift
    for port in "$@"; do
        n=$((n + 1))
        out+="${out:+,}${sep:+$n$sep}$KAFKA_HOST:$port"
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
    KAFKA_NODE_ID=$n
    KAFKA_VOTERS=$(cluster_voters)
    KAFKA_REPLICATION=$CLUSTER_REPLICATION
    KAFKA_MIN_ISR=$CLUSTER_MIN_ISR
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
            printf 'export PROVISIONER_TOPIC_REPLICATION=%s\n' "$CLUSTER_REPLICATION"
            printf 'export PROVISIONER_TOPIC_MIN_INSYNC_REPLICAS=%s\n' "$CLUSTER_MIN_ISR"
            ;;
        kill-broker) cluster_select "$n"; take_lock; kafka_kill ;;
        stop-broker) cluster_select "$n"; take_lock; kafka_stop ;;
        start-broker) cluster_select "$n"; take_lock; kafka_fetched || cmd_fetch; find_java; kafka_start ;;
        *) die "usage: stack.sh cluster {up|down|status|env|kill-broker N|stop-broker N|start-broker N}" ;;
    esac
}

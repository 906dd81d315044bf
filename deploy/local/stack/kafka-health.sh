# shellcheck shell=bash
# Sourced by deploy/local/stack.sh: is a Kafka broker ours, and is it healthy? Finds the
# broker's pid (pid file checked against the live process, else a /proc scan for our config),
# speaks a Metadata request in plain bash to tell "ready", checks an external cluster, and
# waits for a starting broker. Same KAFKA_* variables as kafka.sh.

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

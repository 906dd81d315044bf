# shellcheck shell=bash
# Sourced by deploy/local/stack.sh: one Kafka broker's life cycle. Fetching the jars, running
# Kafka tool classes, rendering server.properties from the one broker template
# (stack/server.properties.in), formatting the storage, launching, stopping and killing.
# Acts on the broker the KAFKA_* variables describe: the single broker by default, or
# cluster broker N once cluster_select (cluster.sh) has re-pointed them.

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
# Kafka: running Java with the jars
# --------------------------------------------------------------------------

# Run a Kafka command line class (tools, StorageTool) with the fetched jars.
# Small heap and C1-only JIT: these JVMs live for a second or two.
kafka_tool() {
    "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j2.configurationFile="$KAFKA_TOOLS_LOG4J" \
        -cp "$KAFKA_LIBS/*" "$@"
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
# Kafka: configuration and storage
# --------------------------------------------------------------------------

# server.properties is regenerated on every start so that it always matches
# this script (ports are the only inputs). Note: the controller endpoint is
# recorded in the metadata log at format time; changing
# PROVISIONER_KAFKA_CONTROLLER_PORT later needs a fresh $KAFKA_DATA.
kafka_write_config() {
    mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
    broker_properties "$KAFKA_NODE_ID" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$KAFKA_DATA" \
        "$KAFKA_REPLICATION" "$KAFKA_MIN_ISR" "$KAFKA_VOTERS" >"$KAFKA_CONF.tmp"
    mv "$KAFKA_CONF.tmp" "$KAFKA_CONF"
}

# Render the broker template on stdout, for the single broker and every
# cluster broker alike:
#   broker_properties NODE_ID PORT CONTROLLER_PORT DATA_DIR REPLICATION MIN_ISR [VOTERS]
# Without VOTERS the node is a dynamic quorum of one (the single broker) and
# the template's "single|" lines apply; with static voters (id@host:port,...)
# its "cluster|" lines do. "##" lines are the template's own comments.
broker_properties() {
    local -A value=([NODE_ID]=$1 [PORT]=$2 [CONTROLLER_PORT]=$3 [DATA_DIR]=$4
        [REPLICATION]=$5 [MIN_ISR]=$6 [VOTERS]=${7:-} [HOST]=$KAFKA_HOST)
    local kind=single line name out
    [[ -n ${value[VOTERS]} ]] && kind=cluster
    while IFS= read -r line; do
        case $line in
            '##'*) continue ;;
            'single|'* | 'cluster|'*)
                [[ ${line%%|*} == "$kind" ]] || continue
                line=${line#*|}
                ;;
        esac
        # Left to right, one pass: a value is inserted literally, never
        # scanned again (a path may contain anything).
        out=''
        while [[ $line =~ @([A-Z_]+)@ ]]; do
            name=${BASH_REMATCH[1]}
            [[ -v value[$name] ]] || die "kafka: unknown @$name@ in $KAFKA_TEMPLATE"
            out+=${line%%"@$name@"*}${value[$name]}
            line=${line#*"@$name@"}
        done
        printf '%s\n' "$out$line"
    done <"$KAFKA_TEMPLATE"
}

# Format the storage directory once (KRaft needs a cluster id and, with
# --standalone, a single-voter dynamic quorum). meta.properties is the proof
# of a completed format; anything without it is a leftover and is wiped.
kafka_format() {
    [[ -f $KAFKA_DATA/meta.properties ]] && return 0
    local cluster_id
    # the cluster's voters are static (controller.quorum.voters); the single node is a dynamic quorum of one
    local -a quorum_flag=(--standalone)
    [[ -n $KAFKA_VOTERS ]] && quorum_flag=()
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

# --------------------------------------------------------------------------
# Kafka: process handling (finding the broker and probing it: kafka-health.sh)
# --------------------------------------------------------------------------

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
        cd "$KAFKA_DIR" || exit
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
kafka_kill() { kill_hard kafka kafka_pid; }

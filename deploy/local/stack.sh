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

# This file is the entry point only: the work is done by the parts in stack/,
# sourced in this order (later parts call functions of earlier ones):
#   common.sh        configuration and small helpers
#   kafka.sh         one broker: jars, server.properties, format, start/stop
#   kafka-health.sh  is the broker ours, is it healthy
#   cluster.sh       the three-broker cluster (`cluster ...`)
#   postgres.sh      PostgreSQL binaries, paths, settings, initdb
#   postgres-run.sh  PostgreSQL process handling and health
#   commands.sh      up, down, status, env, purge
# server.properties of every broker comes from stack/server.properties.in.

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd -P)

# shellcheck source-path=SCRIPTDIR source=stack/common.sh
. "$SCRIPT_DIR/stack/common.sh"
# shellcheck source-path=SCRIPTDIR source=stack/kafka.sh
. "$SCRIPT_DIR/stack/kafka.sh"
# shellcheck source-path=SCRIPTDIR source=stack/kafka-health.sh
. "$SCRIPT_DIR/stack/kafka-health.sh"
# shellcheck source-path=SCRIPTDIR source=stack/cluster.sh
. "$SCRIPT_DIR/stack/cluster.sh"
# shellcheck source-path=SCRIPTDIR source=stack/postgres.sh
. "$SCRIPT_DIR/stack/postgres.sh"
# shellcheck source-path=SCRIPTDIR source=stack/postgres-run.sh
. "$SCRIPT_DIR/stack/postgres-run.sh"
# shellcheck source-path=SCRIPTDIR source=stack/commands.sh
. "$SCRIPT_DIR/stack/commands.sh"

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

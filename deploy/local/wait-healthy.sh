#!/usr/bin/env bash
# Waits until ingest is ready and the relay and worker answer on their metrics ports.
set -euo pipefail
once=${1:-}
url="http://127.0.0.1:${PROVISIONER_HTTP_PORT:-8000}/readyz"
checks=("$url" "http://127.0.0.1:${PROVISIONER_METRICS_PORT_RELAY:-9101}/metrics" "http://127.0.0.1:${PROVISIONER_METRICS_PORT_MEMBERSHIP:-9102}/metrics" "http://127.0.0.1:${PROVISIONER_METRICS_PORT_BILLING:-9103}/metrics" "http://127.0.0.1:${PROVISIONER_METRICS_PORT_CONFLICTS:-9104}/metrics")
for i in $(seq 1 120); do
  ok=1
  for c in "${checks[@]}"; do curl -fs -o /dev/null "$c" || { ok=0; break; }; done
  if [ $ok = 1 ]; then echo "all processes healthy"; exit 0; fi
  [ "$once" = "--once" ] && { echo "not healthy"; exit 1; }
  sleep 0.5
done
echo "processes did not become healthy in 60 s; see .local/provisioner.log" >&2
exit 1

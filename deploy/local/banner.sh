#!/usr/bin/env bash
# Prints where everything runs and the demo org's SCIM credentials.
set -euo pipefail
cd "$(dirname "$0")/../.."
url="${PROVISIONER_PUBLIC_URL:-http://127.0.0.1:${PROVISIONER_HTTP_PORT:-8000}}"
echo "Provisioner"
echo "  ingest (SCIM, health, metrics): $url   (/healthz /readyz /metrics)"
echo "  relay metrics:                  http://127.0.0.1:${PROVISIONER_METRICS_PORT_RELAY:-9101}/metrics"
echo "  membership worker metrics:      http://127.0.0.1:${PROVISIONER_METRICS_PORT_MEMBERSHIP:-9102}/metrics"
echo "  billing worker metrics:         http://127.0.0.1:${PROVISIONER_METRICS_PORT_BILLING:-9103}/metrics"
echo "  conflict worker metrics:        http://127.0.0.1:${PROVISIONER_METRICS_PORT_CONFLICTS:-9104}/metrics"
echo "  PostgreSQL: ${DATABASE_URL:-?}"
echo "  Kafka:      ${KAFKA_BOOTSTRAP_SERVERS:-?}"
if [ -s .local/demo-org.json ]; then
  echo "Demo org (the token is shown once, at creation; rotate with 'provisioner org rotate-token demo'):"
  python3 -c 'import json,sys; d=json.load(open(".local/demo-org.json")); print("  SCIM base URL: "+d["scim_base_url"]); print("  SCIM token:    "+d["scim_token"])'
fi

#!/usr/bin/env bash
# Ensures a "demo" org exists and that .local/demo-org.json holds its SCIM base URL and a token.
# A token is shown only once, so when the org already exists but the file is gone, a new token
# is issued (the old one keeps working for the configured overlap).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.local/demo-org.json
[ -s "$out" ] && exit 0
bin=.venv/bin/provisioner
if "$bin" org create demo --json > "$out.tmp" 2>/dev/null; then
  mv "$out.tmp" "$out"
else
  "$bin" org rotate-token demo --json > "$out.tmp"
  base="${PROVISIONER_PUBLIC_URL:-http://127.0.0.1:${PROVISIONER_HTTP_PORT:-8000}}"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["scim_base_url"]=sys.argv[2].rstrip("/")+"/scim/demo/v2"; print(json.dumps(d))' "$out.tmp" "$base" > "$out"
  rm -f "$out.tmp"
fi

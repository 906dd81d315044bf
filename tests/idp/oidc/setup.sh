#!/usr/bin/env bash
# Install the test OpenID Provider's npm packages (exact versions from package-lock.json).
# Idempotent: skips `npm ci` when node_modules was installed from this very lock file.
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "Node.js (>= 20.19) is needed for the OIDC tests" >&2; exit 1; }
want=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.lock-sha256
if [ -d node_modules/oidc-provider ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"

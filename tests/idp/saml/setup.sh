#!/usr/bin/env bash
# Native needs of the test SAML IdP (pysaml2 signs with the xmlsec1 program). Idempotent.
set -euo pipefail
if ! command -v xmlsec1 >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq xmlsec1 >/dev/null
fi

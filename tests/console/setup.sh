#!/usr/bin/env bash
# The console tests drive Debian's Chromium; no test tool ever downloads a browser of its own.
# Idempotent: installs the package only when the browser is missing (the tests call this first).
set -euo pipefail

command -v chromium >/dev/null 2>&1 && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet.
apt-cache show chromium >/dev/null 2>&1 || $SUDO apt-get update -q
$SUDO apt-get install -y -q chromium
command -v chromium >/dev/null

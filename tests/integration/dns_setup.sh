#!/usr/bin/env bash
# The domain-verification tests run a real DNS server on loopback: Debian's dnsmasq. Installed
# only when missing (idempotent; the tests call this first). `dnsmasq-base` is the program alone:
# the `dnsmasq` package would also install and start a system-wide resolver on port 53, which the
# tests do not want (each starts its own on a free port).
set -euo pipefail

PATH="$PATH:/usr/sbin:/sbin"
command -v dnsmasq >/dev/null 2>&1 && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet.
apt-cache show dnsmasq-base >/dev/null 2>&1 || $SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends dnsmasq-base
command -v dnsmasq >/dev/null

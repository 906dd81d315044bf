# Provisioner: `make run` brings the whole pipeline up, `make test` runs every test against
# the real Kafka and PostgreSQL it starts (or the ones DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS name).

SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK := deploy/local/stack.sh
STAMP := $(VENV)/.installed
SCIM_CLI_VENV := $(VENV)/scim-cli
SCIM_CLI := scim2-cli>=0.6,<0.7
PIDFILE := .local/provisioner.pid
LOG := .local/provisioner.log
SERVICE_TIERS := contract integration e2e sso console security ops chaos

.PHONY: help install stack prepare run up down status lint test test-unit $(SERVICE_TIERS:%=test-%) bench bench-quick abuse chaos

help:
	@echo "make run    - bring up Kafka, PostgreSQL and every process in the foreground (Ctrl-C stops)"
	@echo "make up     - the same in the background; returns once healthy"
	@echo "make down   - stop everything make up started"
	@echo "make lint   - ruff and mypy with the project's configuration"
	@echo "make test   - the whole test suite against the real Kafka and PostgreSQL"
	@echo "make test-unit, make test-<tier> - one tier (pyproject.toml markers), e.g. test-integration, test-e2e"
	@echo "make abuse  - a hostile org's expensive and slow requests vs another org's SCIM p99 (ABUSE_SECONDS=60); writes docs/benchmarks.md"
	@echo "make chaos  - fault injection on its own PostgreSQL and Kafka (one broker, then three); writes docs/chaos.md"
	@echo "make chaos CHAOS_ARGS=--soak - 200 overlapping faults and a hostile org (~20 min); writes the soak section of docs/chaos.md"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,lint]'
	@# scim2-cli (the compliance suite's runner) needs click >= 8.5, faust-streaming click < 8.4: its own venv
	@test -x $(SCIM_CLI_VENV)/bin/python || $(PY) -m venv $(SCIM_CLI_VENV)
	$(SCIM_CLI_VENV)/bin/pip install -q '$(SCIM_CLI)'
	@ln -sf $(abspath $(SCIM_CLI_VENV))/bin/scim $(BIN)/scim
	@touch $(STAMP)

install: $(STAMP)

stack:
	@bash $(STACK) up

# Migrations, topics and a demo org: every step is idempotent.
prepare: install stack
	@set -a; eval "$$(bash $(STACK) env)"; set +a; \
	  $(BIN)/provisioner db upgrade && $(BIN)/provisioner topics create && bash deploy/local/demo-org.sh

# Ctrl-C stops the processes, then Kafka and PostgreSQL (those this project started).
run: prepare
	@set -a; eval "$$(bash $(STACK) env)"; set +a; \
	  bash deploy/local/banner.sh; \
	  trap 'true' INT TERM; $(BIN)/provisioner run; bash $(STACK) down

up: prepare
	@set -a; eval "$$(bash $(STACK) env)"; set +a; \
	  if [ -f $(PIDFILE) ] && kill -0 $$(cat $(PIDFILE)) 2>/dev/null; then echo "already running (pid $$(cat $(PIDFILE)))"; \
	  else setsid nohup $(BIN)/provisioner run > $(LOG) 2>&1 & echo $$! > $(PIDFILE); fi; \
	  bash deploy/local/wait-healthy.sh && bash deploy/local/banner.sh

down:
	@if [ -f $(PIDFILE) ] && kill -0 $$(cat $(PIDFILE)) 2>/dev/null; then kill $$(cat $(PIDFILE)); \
	  for i in $$(seq 1 50); do kill -0 $$(cat $(PIDFILE)) 2>/dev/null || break; sleep 0.2; done; fi; rm -f $(PIDFILE)
	@bash $(STACK) down

status:
	@bash $(STACK) status && bash deploy/local/wait-healthy.sh --once

# ruff (style, imports, complexity limits) and mypy (strict on domain/ and events/), as configured in pyproject.toml
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install stack
	@set -a; eval "$$(bash $(STACK) env)"; set +a; \
	  $(BIN)/python -m pytest tests

# Benchmarks measure and report (docs/benchmarks.md, bench/results.json); they never fail on a number.
# the load generators: wrk (closed loop) from Debian, vegeta (constant rate) from the Go module proxy
VEGETA := github.com/tsenart/vegeta/v12@v12.13.0
define BENCH_TOOLS
	@command -v wrk >/dev/null || apt-get install -y -qq wrk
	@test -x $(BIN)/vegeta || GOBIN=$(abspath $(BIN)) go install $(VEGETA)
endef

bench: install stack
	$(BENCH_TOOLS)
	@set -a; eval "$$(bash $(STACK) env)"; set +a; $(BIN)/python -m bench.run

bench-quick: install stack
	$(BENCH_TOOLS)
	@set -a; eval "$$(bash $(STACK) env)"; set +a; $(BIN)/python -m bench.run --quick

# A hostile org's bounded mix of expensive and slow requests while another org's SCIM latency is
# measured, idle and under attack (bench/abuse.py); its own database and processes on the running
# stack. Writes the "Abuse" section of docs/benchmarks.md; never fails on a number.
ABUSE_SECONDS ?= 60
ABUSE_ARGS ?=
abuse: install stack
	@set -a; eval "$$(bash $(STACK) env)"; set +a; $(BIN)/python -m bench.abuse --seconds $(ABUSE_SECONDS) $(ABUSE_ARGS)

# One tier by its marker (pyproject.toml). Unit tests need no service, so no stack.
test-unit: install
	$(BIN)/python -m pytest -m unit tests

$(SERVICE_TIERS:%=test-%): test-%: install stack
	@set -a; eval "$$(bash $(STACK) env)"; set +a; \
	  $(BIN)/python -m pytest -m $* tests

# Fault injection under load (tests/chaos): its own PostgreSQL and Kafka on free ports (one
# broker, then a three-broker cluster via `stack.sh cluster`), never the shared stack; prints
# the report, writes it to docs/chaos.md, exits 1 if an invariant failed. CHAOS_ARGS=--quick
# runs the short scenario of `make test`.
CHAOS_ARGS ?=
chaos: install
	@bash $(STACK) fetch
	$(BIN)/python -m tests.chaos --report docs/chaos.md $(CHAOS_ARGS)

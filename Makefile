# The two commands that matter: `make run` and `make test`.
# Every install comes from uv.lock (exact versions, hashes); uv itself is pinned
# by hash in tools/uv-requirements.txt. `make lock` / `make upgrade` change the lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := .tools
UV := $(TOOLS)/bin/uv

.PHONY: install run test test-unit test-clients record-clients lint format bench soak clean lock upgrade

$(UV): tools/uv-requirements.txt
	test -d $(TOOLS) || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --require-hashes --no-deps --only-binary=:all: -r tools/uv-requirements.txt
	touch $(UV)

$(STAMP): $(UV) pyproject.toml uv.lock
	UV_PYTHON=$(PYTHON) $(UV) sync --locked --extra test --quiet
	# xds-protos ships an old opentelemetry/proto under the same paths: opentelemetry-proto's must win.
	UV_PYTHON=$(PYTHON) $(UV) sync --locked --extra test --quiet --reinstall-package opentelemetry-proto
	touch $(STAMP)

# Re-resolve after editing pyproject.toml; other pins stay as they are.
lock: $(UV)
	$(UV) lock

# Move every dependency to its newest release the constraints allow.
upgrade: $(UV)
	$(UV) lock --upgrade

install: $(STAMP)

run: $(STAMP)
	$(BIN)/extproc run $(if $(CONFIG),--config $(CONFIG))

test: $(STAMP)
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null) \
		|| echo "note: could not install redis-server; the Redis tests will be skipped"
	@command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq prometheus >/dev/null) \
		|| echo "note: could not install promtool (Debian's prometheus); the alert rule and dashboard checks will be skipped"
	$(BIN)/pytest -q

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# The real agent clients (Claude Code and Codex from npm, pinned with their hashes in
# tests/clients/package-lock.json; the Agents SDK from uv.lock) through the real gateway.
CLIENTS := tests/clients
CLIENTS_STAMP := $(CLIENTS)/node_modules/.installed

$(CLIENTS_STAMP): $(CLIENTS)/package.json $(CLIENTS)/package-lock.json
	@command -v npm >/dev/null || (echo "make test-clients needs Node.js and npm" && exit 1)
	cd $(CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(CLIENTS_STAMP)

test-clients: $(STAMP) $(CLIENTS_STAMP)
	@command -v strace >/dev/null || (apt-get update -qq && apt-get install -y -qq strace >/dev/null) \
		|| (echo "make test-clients needs strace (it checks that the clients stay on loopback)" && exit 1)
	$(BIN)/pytest -q -m clients $(CLIENTS)

# Re-record the clients' requests (tests/fixtures/clients) after changing a pinned version.
record-clients: $(STAMP) $(CLIENTS_STAMP)
	$(BIN)/pytest -q -m clients $(CLIENTS)/test_without_gateway.py --record-clients

lint: $(STAMP)
	$(BIN)/ruff check extproc tests bench
	$(BIN)/ruff format --check extproc tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo

format: $(STAMP)
	$(BIN)/ruff format extproc tests bench
	$(BIN)/ruff check --fix extproc tests bench

bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || (echo "bench needs wrk: apt-get install wrk" && exit 1)
	$(BIN)/python -m bench.run

soak: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || (echo "soak needs wrk: apt-get install wrk" && exit 1)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) $(TOOLS) .run $(CLIENTS)/node_modules

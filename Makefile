# The two commands that matter: `make run` and `make test`.
# Every install comes from uv.lock (exact versions, hashes); uv itself is pinned
# by hash in tools/uv-requirements.txt. `make lock` / `make upgrade` change the lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := .tools
UV := $(TOOLS)/bin/uv

.PHONY: install run test test-unit lint format bench soak clean lock upgrade

$(UV): tools/uv-requirements.txt
	test -d $(TOOLS) || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --require-hashes --no-deps --only-binary=:all: -r tools/uv-requirements.txt
	touch $(UV)

$(STAMP): $(UV) pyproject.toml uv.lock
	UV_PYTHON=$(PYTHON) $(UV) sync --locked --extra test --quiet
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
	$(BIN)/pytest -q

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check extproc tests bench
	$(BIN)/ruff format --check extproc tests bench
	$(BIN)/mypy

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
	rm -rf $(VENV) $(TOOLS) .run

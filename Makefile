# The two commands: `make run` (etcd + milvus-lite + proxy on 127.0.0.1:19530) and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# python3.12 when present (a pyenv shim may exist without the version being active), else python3.
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 python3; do \
	$$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test run lint typecheck unit bench etcd h2load protos privileges lock clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

etcd:
	@command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || { \
		echo "installing Debian's etcd-server"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; }

# h2load (a C HTTP/2 load generator) for bench/throughput.py.
h2load:
	@command -v h2load >/dev/null 2>&1 || { \
		echo "installing Debian's nghttp2-client (h2load)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null; }

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo

typecheck: $(BIN)/.installed
	$(BIN)/mypy

test: $(BIN)/.installed etcd h2load lint typecheck
	$(BIN)/pytest -q

# etcd, milvus-lite and the proxy on 127.0.0.1:19530 under .run/ (root / Milvus); Ctrl-C stops.
run: $(BIN)/.installed etcd
	BIN=$(BIN) ./scripts/run-dev.sh

# The proxy's benchmarks; each prints its figures and ratios measured in the same run.
bench: $(BIN)/.installed etcd h2load
	$(BIN)/python -m bench

# Regenerate milvus_auth/protos/*_pb2*.py(i) from the .proto files there (commit the result).
protos: $(BIN)/.installed
	$(BIN)/python -m milvus_auth.protos.generate

# Regenerate requirements.lock (the image's exact, hashed runtime dependencies) from
# pyproject.toml; commit the result. Uses pip-tools in a throwaway venv.
lock: $(BIN)/.installed
	$(PYTHON) -m venv .run/piptools && .run/piptools/bin/pip install -q pip-tools
	.run/piptools/bin/pip-compile -q --generate-hashes --strip-extras --no-emit-index-url \
		--no-emit-find-links --output-file requirements.lock pyproject.toml

# Regenerate milvus_auth/core/privilege_table.py from pymilvus's protos (commit the result).
privileges: $(BIN)/.installed
	$(BIN)/python -m milvus_auth.protos.generate_privileges

clean:
	rm -rf $(VENV) .run .mypy_cache .pytest_cache .ruff_cache

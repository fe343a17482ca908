# kubectl-mpo developer entry points. See README.md.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: prereqs build release demo test lint fmt sandbox-up sandbox-down bench bench-quick dist dist-check release-test krew-check

# Installs the Debian packages the sandbox and the tests need (or names the command).
prereqs:
	scripts/prereqs.sh

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --release --bin kubectl-mpo

# GEN=A|B|C|D: the Deckhouse controller generation (docs/deckhouse-real.md §1), default C.
sandbox-up:
	GEN=$(GEN) sandbox/scripts/up.sh

sandbox-down:
	sandbox/scripts/down.sh

demo: sandbox-up
	scripts/demo.sh

test:
	sandbox/scripts/test.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	scripts/lint-workflows.sh
	scripts/import-graph.py >/dev/null || scripts/import-graph.py

fmt:
	$(CARGO) fmt --all

# Every figure against the floor (curl, crane) in the same run; results in
# target/bench/results.json. MPO_BENCH_COUNTS, MPO_BENCH_RUNS... see scripts/bench.py.
bench:
	scripts/bench.py

# A short run for development: N = 200, 3 rounds, 10 s idle window, 60 MiB image.
bench-quick:
	MPO_BENCH_QUICK=1 scripts/bench.py

# This machine's release archive, its krew manifest and checksums.txt in dist/.
dist:
	scripts/dist.sh

# scripts/release.py's unit tests (the manifest renderer and the version checks).
release-test:
	python3 -m unittest -q scripts/test_release.py

# The release path with a real krew: reproducible archive, six-platform manifest
# validated and installed from a local server, install/upgrade from a custom index.
dist-check:
	scripts/dist-check.sh

krew-check: dist-check

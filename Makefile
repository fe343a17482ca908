# kubectl-mpo developer entry points. See README.md.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: build release demo test lint fmt sandbox-up sandbox-down bench dist krew-check

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --release --bin kubectl-mpo

sandbox-up:
	sandbox/scripts/up.sh

sandbox-down:
	sandbox/scripts/down.sh

demo: sandbox-up
	scripts/demo.sh

test:
	sandbox/scripts/test.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	scripts/bench.py

dist:
	scripts/dist.sh

krew-check:
	scripts/krew-check.sh

# pinion — every target is one command, the same one CI runs (.ci/run calls `make test`).

CARGO ?= cargo
PORT ?= 8080
# The commit `pinion_build_info{revision}` reports (`unknown` outside a git checkout).
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

.PHONY: run build test lint fmt bench clean db-stop

## run: start the private PostgreSQL primary + replica, build (release) and serve the demo app
## on 0.0.0.0:$(PORT) (migrations are applied on start). A DATABASE_URL you set wins.
run:
	eval "$$(scripts/pg start)" && PINION_REVISION=$(REVISION) $(CARGO) run --release -p pinion-app --bin pinion -- serve --port $(PORT)

## build: release build of the `pinion` binary
build:
	PINION_REVISION=$(REVISION) $(CARGO) build --release -p pinion-app

## test: formatting, clippy with -D warnings, then every test of the workspace (the tests
## start the private PostgreSQL clusters they need through scripts/pg)
test: lint
	scripts/pg start >/dev/null
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

## lint: rustfmt check and clippy (all targets, warnings are errors)
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## fmt: format the workspace
fmt:
	$(CARGO) fmt --all

## bench: side-by-side load tests against the peers, with wrk and with oha (see bench/README.md).
## bench/run builds pinion and the peers (release), installs wrk (apt) and oha (cargo install)
## when missing, and starts the private PostgreSQL for the database workloads. Its settings pass
## through: make bench LOADGEN=wrk WORKLOADS=plaintext,json DURATION=5
bench:
	bench/run

clean:
	$(CARGO) clean

## db-stop: stop the private PostgreSQL cluster (data kept; scripts/pg destroy removes it)
db-stop:
	scripts/pg stop

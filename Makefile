# The two commands of the README: `make run` (set up, then the main job) and `make test`
# (set up, then every check CI runs). Both work on a fresh Debian/Ubuntu machine.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
SHARED ?= ../shared
SEED := $(SHARED)/data/seed
OUT ?= out

# How long `make run` watches the simulated tank (seconds; 0 = until Ctrl-C).
DURATION ?= 60
SOURCE ?= sim:1

.PHONY: setup build run eval test lint bench

setup:
	@scripts/setup-debian.sh

build: setup
	cargo build --release --locked

# The main job: burstwatch watching a camera, by default the built-in simulated tank,
# alerts as JSON Lines on stdout (`make run SOURCE=rtsp://... DURATION=0` for a real one).
run: build
	./target/release/burstwatch run --source $(SOURCE) \
		$(if $(filter-out 0,$(DURATION)),--duration $(DURATION))

# The study's evaluation table, reproduced from its own test-set series, with the figure
# in $(OUT)/eval.png.
eval: build
	@mkdir -p $(OUT)
	./target/release/burstwatch eval --ytilde $(SEED)/test/Y_tilde.npy \
		--labels $(SEED)/test/Y_label.npy --pred convlstm=$(SEED)/test/Y_pred.npy \
		--plot $(OUT)/eval.png

lint: setup
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

test: lint
	cargo test --locked

bench: build
	./target/release/burstwatch bench
	./target/release/burstwatch sim --bench

# The two commands of the README: `make run` (set up, then the main job) and `make test`
# (set up, then every check CI runs). Both work on a fresh Debian/Ubuntu machine.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
# `make run | jq .` must see only JSON: make prints no directories, and every recipe that
# is not the run itself writes to stderr.
MAKEFLAGS += --no-print-directory
SHARED ?= ../shared
SEED := $(SHARED)/data/seed
OUT ?= out

# How long `make run` watches the simulated tank (seconds; 0 = until Ctrl-C).
DURATION ?= 60
SOURCE ?= sim:1
# The model: empty = the default model embedded in the binary (trained on the simulated
# tank); MODEL=../shared/models/upbeat-snowflake-91 for the study's; MODEL=none: the
# baseline alone.
MODEL ?=

# NVRTC and ptxas from PyPI wheels, for checking the CUDA kernels without a GPU.
CUDA_WHEELS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/burstwatch/cuda-wheels
export BURSTWATCH_CUDA_WHEELS := $(CUDA_WHEELS)

.PHONY: setup build run eval test lint check-kernels bench install

setup:
	@scripts/setup-debian.sh >&2

build: setup
	@cargo build --release --locked >&2

# The main job: burstwatch watching a camera, by default the built-in simulated tank,
# alerts as JSON Lines on stdout (`make run SOURCE=rtsp://... DURATION=0` for a real one,
# `make run CONFIG=lab.toml` for a lab's cameras, `make run HTTP=127.0.0.1:8080` with the
# live page and /metrics).
run: build
	@./target/release/burstwatch run $(if $(CONFIG),--config $(CONFIG),--source $(SOURCE) \
		$(if $(MODEL),--model $(MODEL))) $(if $(filter-out 0,$(DURATION)),--duration $(DURATION)) \
		$(if $(HTTP),--http $(HTTP))

# burstwatch as a system service (packaging/burstwatch.service): the binary, its manual
# page and README, the unit, and an example /etc/burstwatch/lab.toml when there is none.
PREFIX ?= /usr/local
install: build
	install -D -m 755 target/release/burstwatch $(DESTDIR)$(PREFIX)/bin/burstwatch
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/doc/burstwatch
	./target/release/burstwatch man > $(DESTDIR)$(PREFIX)/share/man/man1/burstwatch.1
	install -m 644 README.md $(DESTDIR)$(PREFIX)/share/doc/burstwatch/README.md
	install -D -m 644 packaging/burstwatch.service $(DESTDIR)/etc/systemd/system/burstwatch.service
	[ -e $(DESTDIR)/etc/burstwatch/lab.toml ] || \
		install -D -m 640 packaging/lab.example.toml $(DESTDIR)/etc/burstwatch/lab.toml
	@echo "next: edit /etc/burstwatch/lab.toml, then systemctl daemon-reload && systemctl enable --now burstwatch" >&2

# The study's evaluation table, reproduced from its own test-set series, with the figure
# in $(OUT)/eval.png.
eval: build
	@mkdir -p $(OUT)
	./target/release/burstwatch eval --ytilde $(SEED)/test/Y_tilde.npy \
		--labels $(SEED)/test/Y_label.npy --pred convlstm=$(SEED)/test/Y_pred.npy \
		--plot $(OUT)/eval.png

lint: setup
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

# Every kernels/*.cu through NVRTC (compute_80, compute_90) and ptxas -v (sm_90): fails on
# a compile error or a register spill.
check-kernels: setup
	scripts/check-kernels.sh --no-cargo

# The tests see libnvrtc (tests/cuda_nvrtc.rs then compiles the kernels through the
# engine's own NVRTC path); no GPU is needed.
test: lint check-kernels
	LD_LIBRARY_PATH=$(CUDA_WHEELS)/nvidia/cuda_nvrtc/lib$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH} \
		cargo test --locked

bench: build
	./target/release/burstwatch bench --models $(SHARED)/models
	./target/release/burstwatch sim --bench

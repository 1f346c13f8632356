#!/usr/bin/env bash
# A day in a few minutes: `tests/live_rtsp.rs::soak` for MINUTES (default 60): four cameras
# (two simulated, two RTSP through a network that misbehaves once a minute, their servers
# restarted every five), burstwatch's memory, threads and open files sampled every 10 s;
# it fails on growth after the warm-up. CI runs the 3-minute version with `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-60}
BURSTWATCH_SOAK_MINUTES=$minutes cargo test --release --test live_rtsp -- --exact soak --nocapture

#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: builds in release mode, runs the CUDA parity tests
# (tests/cuda_parity.rs: CUDA vs the CPU engine on random states, the golden sequences
# in exact mode within 1e-5 of TensorFlow), the exact-mode engine benchmark
# (examples/cuda_bench.rs: one stream's latency per frame, 64 streams batched) and the
# whole `run` path with simulated cameras on the engine service (`bench --live --cameras`:
# 1 and 64 cameras in exact mode, then the most cameras in continuous mode), then prints a
# short summary. Takes a few minutes on an H200 (most of it the build); keep it within 6.
#
# NVRTC comes from the system (CUDA toolkit, CUDA_HOME) or, failing that, from the
# nvidia-cuda-nvrtc-cu12 wheel cached by scripts/check-kernels.sh (installed here if
# missing, which needs PyPI).
#
# usage: scripts/gpu-check.sh [SECONDS_PER_BENCH_MEASUREMENT]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
BENCH_SECONDS="${1:-3}"
LOG="$(mktemp -d)"
trap 'rm -rf "$LOG"' EXIT

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu-check: no NVIDIA GPU here (nvidia-smi finds none); nothing was checked" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

nvrtc_found() {
    ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so' && return 0
    local d
    for d in ${CUDA_HOME:+"$CUDA_HOME/lib64"} /usr/local/cuda/lib64; do
        if [[ -e "$d/libnvrtc.so.12" || -e "$d/libnvrtc.so" ]]; then
            export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            return 0
        fi
    done
    return 1
}
if ! nvrtc_found; then
    CACHE="${BURSTWATCH_CUDA_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/burstwatch/cuda-wheels}"
    if [[ ! -f "$CACHE/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" ]]; then
        echo "installing the nvidia-cuda-nvrtc-cu12 wheel into $CACHE"
        python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$CACHE" \
            "nvidia-cuda-nvrtc-cu12==${BURSTWATCH_CUDA_WHEELS_VERSION:-12.8.*}"
    fi
    export LD_LIBRARY_PATH="$CACHE/nvidia/cuda_nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

echo "== build (release)"
cargo build --release --quiet --tests --examples

echo "== CUDA parity tests"
set +e
cargo test --release --quiet --test cuda_parity -- --ignored --nocapture --test-threads 1 >"$LOG/parity" 2>&1
parity=$?
set -e
grep -E "max|test result|panicked|FAILED" "$LOG/parity" || true

echo "== benchmark (exact mode)"
set +e
cargo run --release --quiet --example cuda_bench -- "$BENCH_SECONDS" >"$LOG/bench" 2>"$LOG/bench.err"
bench=$?
set -e
[[ $bench -eq 0 ]] || cat "$LOG/bench.err"

echo "== the run path: simulated cameras on the engine service (CUDA)"
BW=target/release/burstwatch
live=0
live_bench() {
    local label="$1"; shift
    echo "-- $label"
    if ! timeout 150 "$BW" bench --live --device cuda --log warn "$@" >"$LOG/live" 2>"$LOG/live.err"; then
        live=1
        tail -5 "$LOG/live.err"
    fi
    cat "$LOG/live" | tee -a "$LOG/lives"
}
live_bench "exact, one camera" --cameras 1 --mode exact --run-seconds 10
live_bench "exact, 64 cameras" --cameras 64 --mode exact --run-seconds 10 --p99-ms 5
live_bench "continuous, the most cameras (p99 <= 15 ms)" --cameras max --mode continuous \
    --run-seconds 8 --max-cameras 2048

echo
echo "================ gpu-check summary ================"
grep -E "vs CPU|max \|p - p_TF\|" "$LOG/parity" | sed 's/^/  /' || true
echo "  parity tests: $([[ $parity -eq 0 ]] && echo passed || echo FAILED)"
echo
cat "$LOG/bench"
echo
grep -hE "^ +[0-9]+ |most cameras" "$LOG/lives" | sed 's/^/  /' || true
echo "  live runs: $([[ $live -eq 0 ]] && echo completed || echo FAILED)"
echo
echo "gpu-check: ${SECONDS} s"
[[ $parity -eq 0 && $bench -eq 0 && $live -eq 0 ]]

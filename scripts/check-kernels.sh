#!/usr/bin/env bash
# Checks the CUDA kernels without a GPU (CI runs it):
#   1. compiles every kernels/*.cu with NVRTC for compute_80 and compute_90, as the engine
#      does (kernels/common.cuh prepended; scripts/nvrtc_compile.py);
#   2. runs `ptxas -v -arch=sm_90` on the compute_90 PTX and prints registers, shared
#      memory and spills per kernel; fails on a compile error or any spill;
#   3. runs the engine's own NVRTC path (tests/cuda_nvrtc.rs: cubins for sm_80, sm_90)
#      unless --no-cargo is given.
# NVRTC and ptxas come from the PyPI wheels nvidia-cuda-nvrtc-cu12 and
# nvidia-cuda-nvcc-cu12, installed once into a cache folder (pip --target).
#
# usage: scripts/check-kernels.sh [--no-cargo]
set -euo pipefail
cd "$(dirname "$0")/.."

# The wheels' CUDA release: the cudarc bindings are built for 12.8 (Cargo.toml).
CUDA_WHEELS_VERSION="${BURSTWATCH_CUDA_WHEELS_VERSION:-12.8.*}"
CACHE="${BURSTWATCH_CUDA_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/burstwatch/cuda-wheels}"
NVRTC_DIR="$CACHE/nvidia/cuda_nvrtc/lib"
PTXAS="$CACHE/nvidia/cuda_nvcc/bin/ptxas"

if [[ ! -f "$NVRTC_DIR/libnvrtc.so.12" || ! -x "$PTXAS" ]]; then
    echo "installing nvidia-cuda-nvrtc-cu12 and nvidia-cuda-nvcc-cu12 ($CUDA_WHEELS_VERSION) into $CACHE"
    mkdir -p "$CACHE"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
        --target "$CACHE" \
        "nvidia-cuda-nvrtc-cu12==$CUDA_WHEELS_VERSION" "nvidia-cuda-nvcc-cu12==$CUDA_WHEELS_VERSION"
fi

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

for arch in compute_80 compute_90; do
    python3 scripts/nvrtc_compile.py "$NVRTC_DIR/libnvrtc.so.12" "$OUT" "$arch" kernels/*.cu
done
echo "NVRTC: every kernel file compiles for compute_80 and compute_90"
echo
echo "ptxas -v -arch=sm_90 ($("$PTXAS" --version | tail -1))"
printf '%-16s %-14s %9s %12s %12s %12s %12s\n' kernel file registers "static smem" "stack" "spill st" "spill ld"
status=0
for ptx in "$OUT"/*.compute_90.ptx; do
    file="$(basename "$ptx" .compute_90.ptx).cu"
    "$PTXAS" -v -arch=sm_90 "$ptx" -o "$OUT/out.cubin" 2>"$OUT/ptxas.log" || {
        cat "$OUT/ptxas.log"
        echo "ptxas failed on $file"
        exit 1
    }
    awk -v file="$file" '
        /Compiling entry function/ {
            match($0, /function .[^ ]+. /); fn = substr($0, RSTART + 10, RLENGTH - 12)
        }
        /spill stores/ { stack = $1; st = $5; ld = $9 }
        /Used [0-9]+ registers/ {
            match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 15)
            smem = 0
            if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11)
            printf "%-16s %-14s %9d %10d B %10d B %10d B %10d B\n", fn, file, regs, smem, stack, st, ld
            if (st + 0 > 0 || ld + 0 > 0) bad = 1
        }
        END { exit bad }' "$OUT/ptxas.log" || status=1
done
echo "(the convolution kernels also take dynamic shared memory, sized at launch to at most 48 KiB)"
if [[ $status -ne 0 ]]; then
    echo "FAILED: a kernel spills to local memory"
    exit 1
fi
echo "ptxas: no spills"

if [[ "${1:-}" != "--no-cargo" ]]; then
    echo
    echo "the engine's NVRTC path (cudarc, cubins for sm_80 and sm_90):"
    LD_LIBRARY_PATH="$NVRTC_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" BURSTWATCH_REQUIRE_NVRTC=1 \
        cargo test --quiet --test cuda_nvrtc -- --nocapture 2>&1 | grep -E "cubin|test result|panicked|error"
    test "${PIPESTATUS[0]}" -eq 0
fi
echo "check-kernels: OK"

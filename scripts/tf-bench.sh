#!/usr/bin/env bash
# burstwatch's exact mode against TensorFlow itself, on this machine, in one run:
# `burstwatch bench-mode` (the `bench` child: one model's exact mode, best group of 4
# frames and the mean) then scripts/tf-bench.py (the original SavedModel, batches of 1-8
# windows), for both study models; prints frames/s against windows/s and the ratio.
# Usage: scripts/tf-bench.sh [PYTHON_WITH_TENSORFLOW] [SECONDS]   (default python3, 5)
# Setup: python3 -m venv ENV && ENV/bin/pip install tensorflow-cpu numpy
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
seconds=${2:-5}
models=../shared/models
bw=target/release/burstwatch
[ -x "$bw" ] || cargo build --release --locked >&2
"$python" -c "import tensorflow" 2>/dev/null || {
    echo "tf-bench: $python has no tensorflow; expected a Python with tensorflow-cpu installed" >&2
    exit 2
}
tf=$(mktemp)
trap 'rm -f "$tf"' EXIT
"$python" scripts/tf-bench.py --models "$models" --seconds "$seconds" > "$tf"
for name in upbeat-snowflake-91 visionary-serenity; do
    ours=$(BURSTWATCH_LOG=warn "$bw" bench-mode "$models/$name.reference-weights.npz" exact "$seconds")
    python3 - "$name" "$ours" "$tf" <<'PY'
import json, sys
name, ours, tf = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
rows = [json.loads(l) for l in open(tf) if json.loads(l)["model"] == name]
best = max(rows, key=lambda r: r["windows_per_s"])
print(f"{name}: burstwatch exact {ours['fps_best']:.1f} frames/s best group ({ours['fps_mean']:.1f} mean, "
      f"{ours['engine']}); TensorFlow {best['tensorflow']} "
      + ", ".join(f"batch {r['batch']}: {r['windows_per_s']:.1f}" for r in rows)
      + f" windows/s; ratio {ours['fps_mean'] / best['windows_per_s']:.2f}x (means, TF's best batch)")
PY
done

#!/usr/bin/env bash
# Time from a frame's arrival to an MQTT subscriber receiving its prediction: N simulated
# cameras at 30 fps (default 8) with `emit = "all"` and `predictions = true`, a real
# broker (mosquitto) and subscriber (mosquitto_sub) on 127.0.0.1, for SECONDS (default 60),
# with MODEL (default: the embedded model; `none`: the baseline alone, which takes the
# model's CPU out of the figure: eight cameras with the model are more than two cores
# sustain, see `bench --live`).
#
#   scripts/mqtt-bench.sh [CAMERAS] [SECONDS] [MODEL]
#
# The arrival is the line's own `time` (microseconds) minus its `latency_ms`; the receipt
# is mosquitto_sub's clock (%U), the same machine's. Prints p50 / p99 / max and the count per camera.
set -euo pipefail
cd "$(dirname "$0")/.."
cameras=${1:-8}
seconds=${2:-60}
model=${3:-default}
bin=./target/release/burstwatch
[ -x "$bin" ] || cargo build --release --locked >&2
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$dir/mosquitto.conf"
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto_bin" -c "$dir/mosquitto.conf" >/dev/null 2>&1 &
sleep 0.5
{
    printf '[defaults]\nemit = "all"\nmodel = "%s"\n\n' "$model"
    printf '[output.mqtt]\nurl = "mqtt://127.0.0.1:%s/bench"\npredictions = true\n' "$port"
    for i in $(seq 1 "$cameras"); do
        printf '\n[[camera]]\nname = "tank-%s"\nsource = "sim:%s"\n' "$i" "$i"
    done
} > "$dir/lab.toml"
mosquitto_sub -h 127.0.0.1 -p "$port" -t 'bench/+/prediction' -F '%U %p' > "$dir/received" &
sleep 0.5
echo "mqtt-bench: $cameras cameras, model $model, for $seconds s" >&2
BURSTWATCH_LOG=error "$bin" run --config "$dir/lab.toml" --duration "$seconds" > "$dir/stdout"
sleep 1
python3 - "$dir/received" "$cameras" "$model" "$dir/stdout" <<'PY'
import json, sys, datetime, collections
lat, per = [], collections.Counter()
for line in open(sys.argv[1]):
    at, payload = line.split(" ", 1)
    p = json.loads(payload)
    emitted = datetime.datetime.fromisoformat(p["time"]).timestamp()
    arrival = emitted - p["latency_ms"] / 1e3
    lat.append((float(at) - arrival) * 1e3)
    per[p["source"]] += 1
gaps, emitted = 0, []
for l in open(sys.argv[4]):
    gaps += '"type":"gap"' in l
    if '"type":"prediction"' in l:
        emitted.append(json.loads(l)["latency_ms"])
emitted.sort()
lat.sort()
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]
print(f"cameras {sys.argv[2]}, model {sys.argv[3]}, predictions received {len(lat)} "
      f"({min(per.values())}..{max(per.values())} per camera)")
print(f"gaps (frames the CPU could not keep up with): {gaps}")
print(f"arrival -> subscriber: p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, max {lat[-1]:.2f} ms")
lat = emitted
print(f"arrival -> emitted (stdout's latency_ms, same run): p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, max {lat[-1]:.2f} ms")
PY

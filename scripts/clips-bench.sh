#!/usr/bin/env bash
# What clips cost, measured in one go (the figures in the README's "Clips and snapshots"):
#   1. alert latency with clips against without, the same file scored twice in one run
#      (two cameras, one with clips = false): the snapshot is written before the alert;
#   2. peak memory of a 720p camera with clips against without (the raw pre-roll);
#   3. the time to encode one clip, at 320x240 and at 1280x720 (x264 ultrafast).
# Usage: scripts/clips-bench.sh [SECONDS]   (default 60; needs a release build)
set -euo pipefail
seconds=${1:-60}
bw=${BURSTWATCH:-target/release/burstwatch}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bw" sim --seed 3 --seconds "$seconds" --out "$dir/tank.mkv" 2>/dev/null
"$bw" sim --seed 2 --seconds 20 --look raw --out "$dir/raw.mkv" 2>/dev/null

cat >"$dir/latency.toml" <<TOML
[output.clips]
dir = "$dir/clips"
[[camera]]
name = "with"
source = "$dir/tank.mkv"
stats_every = 1000
[[camera]]
name = "without"
source = "$dir/tank.mkv"
stats_every = 1000
clips = false
TOML
BURSTWATCH_LOG=burstwatch::clips=debug,warn "$bw" run --config "$dir/latency.toml" \
  >"$dir/latency.jsonl" 2>"$dir/latency.log"

raw_run() { # $1: "clips" or "none"
  local table=""
  [ "$1" = clips ] && table=$'[output.clips]\ndir = "'"$dir/rawclips"$'"\n'
  printf '%s[[camera]]\nname = "raw"\nsource = "%s"\ncrop = [240, 60, 800, 600]\npreprocess = "invert"\nscore = "baseline"\nthreshold = 0.3\nmodel = "none"\n' \
    "$table" "$dir/raw.mkv" >"$dir/raw-$1.toml"
  BURSTWATCH_LOG=burstwatch::clips=debug,warn /usr/bin/time -f '%M' -o "$dir/raw-$1.rss" \
    "$bw" run --config "$dir/raw-$1.toml" >"$dir/raw-$1.jsonl" 2>"$dir/raw-$1.log"
}
raw_run none
raw_run clips

python3 - "$dir" <<'PY'
import json, re, statistics, sys
d = sys.argv[1]
def events(name):
    return [json.loads(l) for l in open(f"{d}/{name}.jsonl")]
def pct(v, q):
    v = sorted(v); return v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))]
ev = events("latency")
lat = {c: [e["latency_ms"] for e in ev if e["type"] == "alert" and e["source"] == c] for c in ("with", "without")}
assert len(lat["with"]) == len(lat["without"]) and lat["with"], lat
print(f"alerts: {len(lat['with'])} per camera")
for c in ("without", "with"):
    print(f"  alert latency {c:8} clips: p50 {pct(lat[c], .5):6.2f} ms  p99 {pct(lat[c], .99):6.2f} ms")
print(f"  the snapshot adds {pct(lat['with'], .5) - pct(lat['without'], .5):.2f} ms at the median")
def encode(log):
    return [int(m) for m in re.findall(r"encode_ms=(\d+)", open(f"{d}/{log}.log").read())]
e = encode("latency")
print(f"encode one clip at 320x240: median {statistics.median(e):.0f} ms over {len(e)} clips")
e = encode("raw-clips")
if e:
    print(f"encode one clip at 1280x720: median {statistics.median(e):.0f} ms over {len(e)} clips")
rss = {k: int(open(f"{d}/raw-{k}.rss").read().split()[-1]) / 1024 for k in ("none", "clips")}
print(f"peak memory, one 720p camera: {rss['none']:.0f} MB without clips, {rss['clips']:.0f} MB with ({rss['clips'] - rss['none']:.0f} MB for clips)")
PY

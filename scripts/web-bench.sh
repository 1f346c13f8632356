#!/usr/bin/env bash
# What the web page and /metrics cost the cameras (the figures in the README's "Web page
# and metrics"): one simulated camera (default model, continuous mode, every frame's line
# written) run without --http, with --http scraped every second, and with the page open
# in headless Chromium besides; ROUNDS (3) times each, alternated. Latency is each
# frame's, arrival to score (final stats, p50/p99 over the whole run) and arrival to line
# (the prediction lines' latency_ms).
# Usage: [ROUNDS=3] scripts/web-bench.sh [SECONDS]   (default 60; a release build, chromium)
set -euo pipefail
seconds=${1:-60}
bw=${BURSTWATCH:-target/release/burstwatch}
dir=$(mktemp -d)
browser=""
trap '[ -n "$browser" ] && kill "$browser" 2>/dev/null; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The lab's browser and Prometheus run on other machines; here they share this one. So
# that what is measured is burstwatch serving them, and not them drawing and parsing on
# the cores the engine needs, burstwatch runs on core 0 (its engine on one thread, its web
# server's threads with it) and the clients on core 1.
engine_core=0
client_core=1
scraper() { # $1: port; scrapes /metrics every second on one kept-alive connection
  exec taskset -c "$client_core" python3 - "$1" <<'PY'
import http.client, re, sys, time
n, conn = 0, None
while True:
    try:
        conn = conn or http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
        conn.request("GET", "/metrics")
        r = conn.getresponse(); body = r.read().decode()
        if r.status == 200:
            n += 1
            streams = re.search(r"^burstwatch_web_event_streams (\S+)", body, re.M)
            requests = re.search(r"^burstwatch_web_requests_total (\S+)", body, re.M)
            print(n, streams and streams.group(1), requests and requests.group(1), flush=True)
    except (OSError, http.client.HTTPException):
        conn = None
    time.sleep(1)
PY
}
run() { # $1: name; $2: plain, scrape (--http, /metrics every second) or page (also the page open)
  local args=(run --source sim:1 --emit all --duration "$seconds" --stats-every 100000)
  local pin=(env BURSTWATCH_THREADS=1 taskset -c "$engine_core" "$bw")
  if [ "$2" = plain ]; then
    "${pin[@]}" "${args[@]}" >"$dir/$1.jsonl" 2>"$dir/$1.log"
    return
  fi
  args+=(--http "127.0.0.1:$port")
  if [ "$2" = page ]; then
    # It starts before the run (the page retries until it connects).
    taskset -c "$client_core" chromium --headless=new --no-sandbox --disable-gpu --no-first-run \
      --user-data-dir="$dir/profile" --remote-debugging-port=0 "http://127.0.0.1:$port/" \
      >/dev/null 2>&1 &
    browser=$!
    sleep 5
  fi
  "${pin[@]}" "${args[@]}" >"$dir/$1.jsonl" 2>"$dir/$1.log" &
  local pid=$!
  scraper "$port" >"$dir/$1.scrapes.log" &
  local scraping=$!
  wait "$pid"
  kill "$scraping" 2>/dev/null; wait "$scraping" 2>/dev/null || true
  if [ -n "$browser" ]; then
    kill "$browser" 2>/dev/null; wait "$browser" 2>/dev/null || true
    browser=""
  fi
  tail -n 1 "$dir/$1.scrapes.log" >"$dir/$1.scrapes"
}
names=()
for round in $(seq "${ROUNDS:-3}"); do
  for mode in plain scrape page; do
    run "$mode$round" "$mode"
    names+=("$mode$round")
  done
done

python3 - "$dir" "$seconds" "${names[@]}" <<'PY'
import json, os, sys
d, seconds, names = sys.argv[1], sys.argv[2], sys.argv[3:]
def pct(v, q):
    v = sorted(v); return v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))]
rows = {}
for name in names:
    ev = [json.loads(l) for l in open(f"{d}/{name}.jsonl")]
    final = [e for e in ev if e["type"] == "stats" and e["final"]][0]
    lines = [e["latency_ms"] for e in ev if e["type"] == "prediction"]
    scrapes = "-"
    if os.path.exists(f"{d}/{name}.scrapes"):
        # The last scrape: how many, the pages open then, the requests served in all.
        n, streams, requests = (open(f"{d}/{name}.scrapes").read().split() + ["?"] * 3)[:3]
        scrapes = f"{n} ({streams} page, {requests} req)"
    rows[name] = (final["latency_p50_ms"], final["latency_p99_ms"], pct(lines, .5), pct(lines, .99), final["frames"], final["dropped"], scrapes)
print(f"one simulated camera, {seconds} s a run, default model, continuous mode, --emit all, the engine on one core")
print("plain: no --http; scrape: --http, /metrics every second; page: also the page open in Chromium")
print(f"{'run':8} {'score p50':>10} {'score p99':>10} {'line p50':>9} {'line p99':>9} {'frames':>7} {'dropped':>8}  scrapes")
for name, r in rows.items():
    print(f"{name:8} {r[0]:8.2f}ms {r[1]:8.2f}ms {r[2]:7.2f}ms {r[3]:7.2f}ms {r[4]:7d} {r[5]:8d}  {r[6]}")
def mean(mode, i):
    v = [rows[n][i] for n in rows if n.startswith(mode)]
    return sum(v) / len(v)
for mode in ("scrape", "page"):
    print(f"{mode}: {mean(mode, 1) - mean('plain', 1):+.2f} ms on the score p99, "
          f"{mean(mode, 3) - mean('plain', 3):+.2f} ms on the line p99 (means over the rounds, against plain's)")
PY

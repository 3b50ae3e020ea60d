#!/usr/bin/env bash
# Memory before, during and after a load of 1,000 streams held open at once: the sidecar's
# RSS idle, warm (after ordinary traffic has filled the Logs page's ring; read 2 s and 82 s
# after it), at the load's peak, 11 s after it (the provider pool still holds the load's
# sockets) and 80 s after it (the pool's sweep has closed them), with the sidecar idle since
# the load (or since the ordinary traffic RSS_RESUME asks for after it).
#
#   bench/rss.sh                                   # one load
#   RSS_LOADS=3 bench/rss.sh                       # three loads in a row
#   RSS_RESUME=3 bench/rss.sh                      # 3 s of ordinary traffic after the load
#   RSS_ENV="MIMALLOC_PURGE_DELAY=100" bench/rss.sh     # the image's allocator setting
#   RSS_CONFIG=$'telemetry:\n  recent_traces: 0' bench/rss.sh   # more config for the sidecar
#
# The sidecar runs one thread on CPU 0; the mocks (one pacing its events 50 ms apart, one
# answering at once, for the warm-up) and the load generator on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --bin respan-sidecar --example mock_upstream --example loadgen
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

paced_port=18281 fast_port=18282 sidecar_port=18283 admin_port=18284
taskset -c 1 "$bin/examples/mock_upstream" "$paced_port" 50 >/dev/null &
pids+=($!)
taskset -c 1 "$bin/examples/mock_upstream" "$fast_port" 0 >/dev/null &
pids+=($!)

cat > "$work/sidecar.yaml" <<YAML
server:
  listen: "127.0.0.1:$sidecar_port"
  admin_listen: "127.0.0.1:$admin_port"
  threads: 1
providers:
  paced:
    type: openai
    base_url: "http://127.0.0.1:$paced_port/v1"
    api_key: "sk-bench"
  fast:
    type: openai
    base_url: "http://127.0.0.1:$fast_port/v1"
    api_key: "sk-bench"
routes:
  - match: "fast-*"
    provider: fast
  - match: "*"
    provider: paced
YAML
if [ -n "${RSS_CONFIG:-}" ]; then printf '%s\n' "$RSS_CONFIG" >> "$work/sidecar.yaml"; fi

messages='"messages":[{"role":"user","content":"Say hello in one short sentence, please."}]'
echo "{\"model\":\"gpt-4o-mini\",$messages,\"stream\":true}" > "$work/paced.body"
echo "{\"model\":\"fast-4o\",$messages,\"stream\":true}" > "$work/fast.body"

# shellcheck disable=SC2086
env ${RSS_ENV:-} RESPAN_LOG=warn taskset -c 0 "$bin/respan-sidecar" --config "$work/sidecar.yaml" &
pids+=($!)
sidecar=$!
sleep 1

rss() {
  awk '/^VmRSS:/ {print $2}' "/proc/$sidecar/status" 2>/dev/null || { echo "the sidecar died" >&2; exit 1; }
}
# A load: concurrency, seconds, body. A load with failed requests spoils the figures.
load() {
  taskset -c 1 "$bin/examples/loadgen" --url "http://127.0.0.1:$sidecar_port/v1/chat/completions" \
    --body "$work/$3.body" --concurrency "$1" --seconds "$2" --warmup 0 > "$work/load.json"
  python3 -c "import json, sys
errors = json.load(open(sys.argv[1]))['errors']
sys.exit(f'{errors} requests failed' if errors else 0)" "$work/load.json"
}

echo "idle: $(rss) KiB"
load 64 15 fast
sleep 2
warm=$(rss)
echo "warm: $warm KiB"
# An idle request thread gives its free pages back 5 to 10 s after its last request
# (`src/allocator.rs`); the pool's sweep closes the warm-up's connections after 60 to 75 s,
# as it does the load's before the last reading.
sleep 80
settled=$(rss)
echo "warm, then idle 82 s: $settled KiB"
for i in $(seq "${RSS_LOADS:-1}"); do
  load 1000 8 paced &
  loader=$!
  pids+=("$loader")
  peak=0
  while kill -0 "$loader" 2>/dev/null; do
    now=$(rss)
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.5
  done
  wait "$loader"
  echo "load $i: peak $peak KiB"
  sleep 11
  echo "  11 s after: $(rss) KiB"
done
# Resumed traffic opens connections of its own: the last reading waits 80 s after it too,
# for the pool's sweep to have closed them.
since=80
if [ -n "${RSS_RESUME:-}" ]; then
  load 64 "$RSS_RESUME" fast
  echo "  after $RSS_RESUME s of ordinary traffic: $(rss) KiB"
  since=$((11 + RSS_RESUME + 80))
  sleep 11
fi
sleep 69
after=$(rss)
awk -v a="$after" -v w="$warm" -v i="$settled" -v s="$since" \
  'BEGIN { printf "  %d s after: %d KiB (%+.1f%% over warm, %+.1f%% over warm and idle)\n",
           s, a, (a - w) * 100 / w, (a - i) * 100 / i }'

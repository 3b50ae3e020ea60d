#!/usr/bin/env bash
# The benchmark: the same load against a fast mock upstream, directly, through nginx as a
# plain proxy, and through respan-sidecar; non-streaming and streaming; concurrency 1 and 64.
# Reports latency added over direct (p50, p99), time to first byte, requests/s, CPU time per
# request of the proxy, and its RSS (idle, and peak under load).
#
# Each mode also runs at a fixed rate (c=64, 70% of the sidecar's own maximum) so every proxy
# carries the same load: at its maximum a slower proxy leaves the load generator's CPU idle,
# and waking an idle CPU is charged to the sender (an inter-processor interrupt; a VM exit on
# a VM), which inflates the slower proxy's kernel time by about 10%.
#
# Every row is run in rounds, each round going through all targets in turn, and the table
# gives medians: this VM's speed drifts by a few percent from one run to the next, so a
# proxy's CPU is only compared with nginx's from the same round (the "x nginx" column is the
# median of those per-round ratios).
#
#   bench/run.sh                         # 3 rounds of 5 s runs
#   BENCH_ROUNDS=7 bench/run.sh          # more rounds, tighter medians
#   BENCH_SECONDS=20 bench/run.sh        # longer runs
#   BENCH_GAP_MS=5 bench/run.sh          # stream tokens 5 ms apart, like a real model
#   BENCH_TARGETS="direct nginx sidecar limits-redis" bench/run.sh   # only these targets
#
# Needs nginx (apt-get install -y nginx) and taskset (util-linux); with redis-server
# installed, Redis cache hits and Redis-backed limits are measured too. The proxy under test runs
# on CPU 0, the mock upstream and the load generator on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."

run_seconds=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-3}
gap_ms=${BENCH_GAP_MS:-0}
targets=${BENCH_TARGETS:-direct nginx sidecar no-capture telemetry telemetry-otlp direct-anthropic translated responses cache-hit cache-hit-redis limits-redis}
# The baselines the comparisons need run whatever BENCH_TARGETS says: going direct, and
# the sidecar (whose rate sets the fixed-rate rows).
for baseline in sidecar direct; do
  case " $targets " in *" $baseline "*) ;; *) targets="$baseline $targets" ;; esac
done
case " $targets " in
  *" translated "*|*" responses "*) case " $targets " in *" direct-anthropic "*) ;; *) targets="$targets direct-anthropic" ;; esac ;;
esac
command -v nginx >/dev/null || { echo "nginx is needed: apt-get install -y nginx" >&2; exit 1; }

cargo build --release --quiet --bin respan-sidecar --example mock_upstream --example loadgen
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

mock_port=18181 nginx_port=18182 sidecar_port=18183 admin_port=18184
telemetry_port=18185 telemetry_admin_port=18186

taskset -c 1 "$bin/examples/mock_upstream" "$mock_port" "$gap_ms" >/dev/null &
pids+=($!)

mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  upstream mock { server 127.0.0.1:$mock_port; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
taskset -c 0 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)
nginx_master=$!

cat > "$work/sidecar.yaml" <<YAML
server:
  listen: "127.0.0.1:$sidecar_port"
  admin_listen: "127.0.0.1:$admin_port"
  threads: 1
providers:
  mock:
    type: openai
    base_url: "http://127.0.0.1:$mock_port/v1"
    api_key: "sk-bench"
  mock-anthropic:
    type: anthropic
    base_url: "http://127.0.0.1:$mock_port"
    api_key: "sk-bench"
routes:
  - match: "claude-*"
    provider: mock-anthropic
  - match: "*"
    provider: mock
YAML
RESPAN_LOG=warn taskset -c 0 "$bin/respan-sidecar" --config "$work/sidecar.yaml" &
pids+=($!)
sidecar_pid=$!

# The same sidecar with all three exporters on, to local sinks (the mock answers any path
# 200; the jsonl file is on local disk): the "telemetry" target.
sed -e "s/$sidecar_port/$telemetry_port/" -e "s/$admin_port/$telemetry_admin_port/" "$work/sidecar.yaml" > "$work/telemetry.yaml"
cat >> "$work/telemetry.yaml" <<YAML
telemetry:
  exporters:
    - type: otlp_http
      endpoint: "http://127.0.0.1:$mock_port/v1/traces"
    - type: jsonl
      path: "$work/traces.jsonl"
    - type: respan
      endpoint: "http://127.0.0.1:$mock_port/api/request-logs/bulk/"
      api_key: "bench"
YAML
RESPAN_LOG=warn taskset -c 0 "$bin/respan-sidecar" --config "$work/telemetry.yaml" &
pids+=($!)
telemetry_pid=$!

# The OTLP exporter alone: the "telemetry-otlp" target.
otlp_port=18190 otlp_admin_port=18191
sed -e "s/$sidecar_port/$otlp_port/" -e "s/$admin_port/$otlp_admin_port/" "$work/sidecar.yaml" > "$work/otlp.yaml"
cat >> "$work/otlp.yaml" <<YAML
telemetry:
  exporters:
    - type: otlp_http
      endpoint: "http://127.0.0.1:$mock_port/v1/traces"
YAML
RESPAN_LOG=warn taskset -c 0 "$bin/respan-sidecar" --config "$work/otlp.yaml" &
pids+=($!)
otlp_pid=$!

# The same sidecar keeping no message text (`capture_content: false`): the "no-capture"
# target, which shows what reading each answer into its trace costs.
nocapture_port=18194 nocapture_admin_port=18195
sed -e "s/$sidecar_port/$nocapture_port/" -e "s/$admin_port/$nocapture_admin_port/" "$work/sidecar.yaml" > "$work/nocapture.yaml"
printf 'telemetry:\n  capture_content: false\n' >> "$work/nocapture.yaml"
RESPAN_LOG=warn taskset -c 0 "$bin/respan-sidecar" --config "$work/nocapture.yaml" &
pids+=($!)
nocapture_pid=$!

# Cache hits: the same request with cache_enabled, against the sidecar's memory cache, and
# (when redis-server is installed) against a sidecar whose cache is a local Redis.
redis_port=18187 redis_sidecar_port=18188 redis_admin_port=18189
if command -v redis-server >/dev/null; then
  taskset -c 1 redis-server --port "$redis_port" --save "" --appendonly no >/dev/null &
  pids+=($!)
  sed -e "s/$sidecar_port/$redis_sidecar_port/" -e "s/$admin_port/$redis_admin_port/" "$work/sidecar.yaml" > "$work/redis.yaml"
  printf 'cache:\n  backend: redis\n  redis_url: "redis://127.0.0.1:%s"\n' "$redis_port" >> "$work/redis.yaml"
  RESPAN_LOG=warn taskset -c 0 "$bin/respan-sidecar" --config "$work/redis.yaml" &
  pids+=($!)
  redis_sidecar_pid=$!
  # Limits counted in that Redis (one round trip to admit, one to settle): a global rule
  # and a per-customer one that every request matches and none reaches.
  limits_port=18192 limits_admin_port=18193
  sed -e "s/$sidecar_port/$limits_port/" -e "s/$admin_port/$limits_admin_port/" "$work/sidecar.yaml" > "$work/limits.yaml"
  cat >> "$work/limits.yaml" <<YAML
limits:
  backend: redis
  redis_url: "redis://127.0.0.1:$redis_port"
  rules:
    - {name: all, per: global, window: minute, requests: 1000000000}
    - {name: per-customer, per: customer, window: day, tokens: 1000000000000}
YAML
  RESPAN_LOG=warn taskset -c 0 "$bin/respan-sidecar" --config "$work/limits.yaml" &
  pids+=($!)
  limits_pid=$!
fi

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
wait_port "$mock_port"; wait_port "$nginx_port"; wait_port "$sidecar_port"; wait_port "$telemetry_port"; wait_port "$otlp_port"; wait_port "$nocapture_port"
[ -n "${redis_sidecar_pid:-}" ] && wait_port "$redis_sidecar_port" && wait_port "$limits_port"
sleep 0.3
rss_kib() { awk "/^$2:/ {print \$2}" "/proc/$1/status"; }
sidecar_idle_rss=$(rss_kib "$sidecar_pid" VmRSS)
nginx_worker=$(pgrep -P "$nginx_master" | head -1)
nginx_idle_rss=$(( $(rss_kib "$nginx_master" VmRSS) + $(rss_kib "$nginx_worker" VmRSS) ))

messages='"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about foxes."}]'
echo "{\"model\":\"gpt-4o-mini\",$messages,\"customer_identifier\":\"bench\"}" > "$work/json.body"
echo "{\"model\":\"gpt-4o-mini\",$messages,\"stream\":true,\"customer_identifier\":\"bench\"}" > "$work/stream.body"
echo "{\"model\":\"gpt-4o-mini\",$messages,\"customer_identifier\":\"bench\",\"cache_enabled\":true}" > "$work/json.cached.body"
echo "{\"model\":\"gpt-4o-mini\",$messages,\"stream\":true,\"customer_identifier\":\"bench\",\"cache_enabled\":true}" > "$work/stream.cached.body"
# The translated path: the same OpenAI request for a Claude model, and its Anthropic form
# for the direct baseline.
sed 's/gpt-4o-mini/claude-bench/' "$work/json.body" > "$work/json.translated.body"
sed 's/gpt-4o-mini/claude-bench/' "$work/stream.body" > "$work/stream.translated.body"
anthropic='"model":"claude-bench","max_tokens":4096,"system":"You are a helpful assistant.","messages":[{"role":"user","content":"Write one sentence about foxes."}]'
echo "{$anthropic}" > "$work/json.anthropic.body"
echo "{$anthropic,\"stream\":true}" > "$work/stream.anthropic.body"
# The Responses API for the same Claude model (what the Codex CLI sends), translated both ways.
responses='"model":"claude-bench","max_output_tokens":4096,"instructions":"You are a helpful assistant.","input":[{"role":"user","content":"Write one sentence about foxes."}]'
echo "{$responses}" > "$work/json.responses.body"
echo "{$responses,\"stream\":true}" > "$work/stream.responses.body"

results="$work/results.jsonl"
# The median of one field over a row's rounds (for the fixed rate, set from the maximum).
median() { python3 -c "import json,sys,statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
print(statistics.median(r['r'][sys.argv[5]] for r in rows if (r['mode'], r['c'], r['target']) == tuple(sys.argv[2:5])))" "$results" "$@"; }
for mode in json stream; do
  for c in 1 64 64@rate; do
    rate=()
    if [ "$c" = 64@rate ]; then
      per_s=$(median "$mode" 64 sidecar rps | awk '{print int($1 * 0.7)}')
      rate=(--rate "$per_s"); c="64@$per_s/s"
    fi
    for round in $(seq "$rounds"); do
      for target in $targets; do
        body="$work/$mode.body"; path=/v1/chat/completions
        # Redis only when it is installed.
        case $target in cache-hit-redis|limits-redis) [ -z "${redis_sidecar_pid:-}" ] && continue ;; esac
        case $target in
          direct) port=$mock_port; watch=() ;;
          nginx) port=$nginx_port; watch=(--pid "$nginx_worker") ;;
          sidecar) port=$sidecar_port; watch=(--pid "$sidecar_pid") ;;
          telemetry) port=$telemetry_port; watch=(--pid "$telemetry_pid") ;;
          telemetry-otlp) port=$otlp_port; watch=(--pid "$otlp_pid") ;;
          no-capture) port=$nocapture_port; watch=(--pid "$nocapture_pid") ;;
          limits-redis) port=$limits_port; watch=(--pid "$limits_pid") ;;
          direct-anthropic) port=$mock_port; watch=(); body="$work/$mode.anthropic.body"; path=/v1/messages ;;
          translated) port=$sidecar_port; watch=(--pid "$sidecar_pid"); body="$work/$mode.translated.body" ;;
          responses) port=$sidecar_port; watch=(--pid "$sidecar_pid"); body="$work/$mode.responses.body"; path=/v1/responses ;;
          cache-hit) port=$sidecar_port; watch=(--pid "$sidecar_pid"); body="$work/$mode.cached.body" ;;
          cache-hit-redis) port=$redis_sidecar_port; watch=(--pid "$redis_sidecar_pid"); body="$work/$mode.cached.body" ;;
        esac
        line=$(taskset -c 1 "$bin/examples/loadgen" --url "http://127.0.0.1:$port$path" \
          --body "$body" --concurrency "${c%%@*}" --seconds "$run_seconds" --warmup 1 \
          --clk-tck "$(getconf CLK_TCK)" "${rate[@]}" "${watch[@]}")
        echo "{\"mode\":\"$mode\",\"c\":\"$c\",\"target\":\"$target\",\"round\":$round,\"r\":$line}" >> "$results"
        echo "  $mode c=$c round $round $target: $line" >&2
      done
    done
  done
done
sidecar_peak_rss=$(rss_kib "$sidecar_pid" VmHWM)
telemetry_peak_rss=$(rss_kib "$telemetry_pid" VmHWM)
exported=$( [ -f "$work/traces.jsonl" ] && wc -l < "$work/traces.jsonl" || echo 0 )
nginx_peak_rss=$(( $(rss_kib "$nginx_master" VmHWM) + $(rss_kib "$nginx_worker" VmHWM) ))

python3 - "$results" "$sidecar_idle_rss" "$sidecar_peak_rss" "$nginx_idle_rss" "$nginx_peak_rss" "$gap_ms" "$rounds" "$telemetry_peak_rss" "$exported" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1])]
s_idle, s_peak, n_idle, n_peak, gap, rounds, t_peak, exported = (int(x) for x in sys.argv[2:10])
runs = defaultdict(dict)  # (mode, c, target) -> {round: result}
for r in rows:
    runs[(r["mode"], r["c"], r["target"])][r["round"]] = r["r"]
med = lambda key, field: statistics.median(r[field] for r in runs[key].values())
print(f"\nstream events {'back to back' if gap == 0 else f'{gap} ms apart'}; proxy on 1 core; medians of {rounds} rounds\n")
print("| mode | c | target | req/s | p50 ms | p99 ms | added p50 | added p99 | TTFB p50 | added TTFB p50 | CPU ms/req | x nginx | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (mode, c, target) in runs:
    key = (mode, c, target)
    # The translated paths are compared with going direct to the same (Anthropic) upstream.
    direct = (mode, c, "direct-anthropic" if target in ("translated", "responses") else "direct")
    nginx = (mode, c, "nginx")
    ms = lambda us: f"{us / 1000:.3f}"
    added = lambda f: "" if target.startswith("direct") else f"{(med(key, f) - med(direct, f)) / 1000:+.3f}"
    cpu = "" if target.startswith("direct") else f"{med(key, 'cpu_ms_per_req'):.4f}"
    ratio = ""
    if nginx in runs and target in ("sidecar", "no-capture", "telemetry", "telemetry-otlp", "translated", "responses", "cache-hit", "cache-hit-redis", "limits-redis"):
        # Each round's CPU against nginx's in the same round.
        per_round = [r["cpu_ms_per_req"] / runs[nginx][n]["cpu_ms_per_req"]
                     for n, r in runs[key].items() if runs[nginx][n]["cpu_ms_per_req"]]
        ratio = f"{statistics.median(per_round):.2f}" if per_round else ""
    errors = sum(r["errors"] for r in runs[key].values())
    print(f"| {mode} | {c} | {target} | {med(key, 'rps'):.0f} | {ms(med(key, 'p50_us'))} | {ms(med(key, 'p99_us'))} | "
          f"{added('p50_us')} | {added('p99_us')} | {ms(med(key, 'ttfb_p50_us'))} | {added('ttfb_p50_us')} | {cpu} | {ratio} | {errors} |")
print(f"\nRSS idle / peak: respan-sidecar {s_idle/1024:.1f} / {s_peak/1024:.1f} MiB; nginx (master+worker) {n_idle/1024:.1f} / {n_peak/1024:.1f} MiB")
print(f"telemetry (otlp_http + jsonl + respan exporters on): peak RSS {t_peak/1024:.1f} MiB, {exported} traces in the jsonl file")
for mode in ("json", "stream"):
    for c in sorted({k[1] for k in runs if k[0] == mode}):
        for target, what in (("telemetry", "all three exporters"), ("telemetry-otlp", "the OTLP exporter alone")):
            on, off = (mode, c, target), (mode, c, "sidecar")
            if on in runs and off in runs:
                per_round = [runs[on][n]["cpu_ms_per_req"] / r["cpu_ms_per_req"] for n, r in runs[off].items() if n in runs[on] and r["cpu_ms_per_req"]]
                print(f"{what} on vs off, {mode} c={c}: CPU x{statistics.median(per_round):.3f}, TTFB p50 {(med(on, 'ttfb_p50_us') - med(off, 'ttfb_p50_us')) / 1000:+.3f} ms")
for mode in ("json", "stream"):
    for c in sorted({k[1] for k in runs if k[0] == mode}):
        on, off = (mode, c, "sidecar"), (mode, c, "no-capture")
        if on in runs and off in runs:
            per_round = [runs[on][n]["cpu_ms_per_req"] / r["cpu_ms_per_req"] for n, r in runs[off].items() if n in runs[on] and r["cpu_ms_per_req"]]
            print(f"content capture on vs off (no exporter), {mode} c={c}: CPU x{statistics.median(per_round):.3f}")
        on, off = (mode, c, "limits-redis"), (mode, c, "sidecar")
        if on in runs and off in runs:
            print(f"limits on Redis vs none, {mode} c={c}: p50 {(med(on, 'p50_us') - med(off, 'p50_us')) / 1000:+.3f} ms, "
                  f"p99 {(med(on, 'p99_us') - med(off, 'p99_us')) / 1000:+.3f} ms, CPU {med(on, 'cpu_ms_per_req'):.4f} against {med(off, 'cpu_ms_per_req'):.4f} ms/req")
        for hit in ("cache-hit", "cache-hit-redis"):
            on, off = (mode, c, hit), (mode, c, "sidecar")
            if on in runs and off in runs:
                per_round = [runs[on][n]["cpu_ms_per_req"] / r["cpu_ms_per_req"] for n, r in runs[off].items() if n in runs[on] and r["cpu_ms_per_req"]]
                print(f"{hit} vs proxied, {mode} c={c}: CPU x{statistics.median(per_round):.3f}, p50 {med(on, 'p50_us') / 1000:.3f} ms against {med(off, 'p50_us') / 1000:.3f} ms")
PY

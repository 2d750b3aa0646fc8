#!/usr/bin/env bash
# Side-by-side comparison of wavecore with its peers (see peers/README.md), each server
# on one thread pinned to CPU 0, the load generator pinned to CPU 1.
#
#   benches/compare.sh                 # full run, 3 rounds (about 12-15 minutes)
#   ROUNDS=1 DUR=2 benches/compare.sh  # quicker
#   ROWS="echo-100 bcast-1000" benches/compare.sh   # a subset of rows
#   SERVERS="wavecore raw" benches/compare.sh        # a subset of servers
#   BASE=/tmp/old SERVERS="wavecore wavecore-base" benches/compare.sh
#                                      # against another build of wavecore: the release
#                                      # examples of the checkout at BASE (built there
#                                      # first), same load generator, rounds interleaved
#   SERVERS="wavecore wavecore-io_uring raw" benches/compare.sh
#                                      # wavecore on epoll (wavecore) and on io_uring
#   ROWS="echo-100-json1k-deflate" SERVERS="wavecore node-ws tokio-tungstenite" benches/compare.sh
#                                      # node-ws: Node ws with permessage-deflate
#                                      # (tests/interop/node, after .ci/install-interop.sh)
#   ROWS="echo-100 wss-echo-100 echo-100x16k wss-echo-100x16k idle-10000 wss-idle-10000" \
#     SERVERS="wavecore tokio-tungstenite" benches/compare.sh
#                                      # wss-* rows: TLS (a self-signed certificate made
#                                      # with openssl in target/bench, the load generator
#                                      # with --tls-insecure); only servers that speak TLS
#                                      # run them (wavecore, and tokio-tungstenite through
#                                      # tokio-rustls)
#
# Writes target/bench/results.jsonl (every run, also copied beside the report as
# docs/bench-results.jsonl), docs/bench-results.md (medians and min-max per row and
# server, ratios vs wavecore) and docs/bench-chart.svg; REPORT and
# CHART name other files (for a run of a subset, so the full tables stay).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DUR=${DUR:-3}
WARM=${WARM:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=target/bench
mkdir -p "$OUT" docs
RESULTS=$OUT/results.jsonl
REPORT=${REPORT:-docs/bench-results.md}
CHART=${CHART:-docs/bench-chart.svg}
: >"$RESULTS"

echo "== build (release)"
examples=(--example echo)
have_broadcast=0
if [ -f examples/broadcast.rs ]; then
  examples=(--example echo --example broadcast)
  have_broadcast=1
fi
# Separate invocations: target selectors such as --example apply to every -p given.
cargo build -q --release -p wavecore "${examples[@]}"
cargo build -q --release -p wavecore-peers -p wavecore-load
BIN=target/release
LOAD=$BIN/wavecore-load

# row name -> load generator arguments ("raw" gets --raw added).
declare -A ROW_ARGS=(
  [echo-1]="echo -c 1 -p 1 -s 32"
  [echo-100]="echo -c 100 -p 1 -s 32"
  [echo-500]="echo -c 500 -p 1 -s 32"
  [echo-100x16k]="echo -c 100 -p 1 -s 16384 --binary"
  [pipe-1000x4]="echo -c 1000 -p 4 -s 32"
  [pipe-500x16]="echo -c 500 -p 16 -s 32"
  [bcast-1000]="broadcast -c 1000 --publishers 1 -s 32 --window 32"
  [bcast-10000]="broadcast -c 10000 --publishers 1 -s 32 --window 8"
  [bcast-10000x4]="broadcast -c 10000 --publishers 4 -s 32 --window 8"
  [idle-10000]="connect -c 10000"
  # permessage-deflate (issue 14): 1 KiB of JSON, offered with --deflate (servers
  # without compression decline it and run uncompressed), beside the same rows without.
  [echo-100-json1k]="echo -c 100 -p 1 -s 1024 --json-payload"
  [echo-100-json1k-deflate]="echo -c 100 -p 1 -s 1024 --json-payload --deflate"
  [bcast-1000-json1k]="broadcast -c 1000 --publishers 1 -s 1024 --json-payload --window 8"
  [bcast-1000-json1k-deflate]="broadcast -c 1000 --publishers 1 -s 1024 --json-payload --window 8 --deflate"
  [idle-10000-deflate]="connect -c 10000 --deflate"
  # TLS (issue 13): the same workloads over wss://.
  [wss-echo-100]="echo -c 100 -p 1 -s 32"
  [wss-echo-100x16k]="echo -c 100 -p 1 -s 16384 --binary"
  [wss-idle-10000]="connect -c 10000"
)
# Servers that serve the wss-* rows (TLS with --tls-cert/--tls-key).
TLS_SERVERS=" wavecore wavecore-base wavecore-io_uring tokio-tungstenite "
TLS_CERT=$OUT/tls-cert.pem
TLS_KEY=$OUT/tls-key.pem
ROWS=${ROWS:-"echo-1 echo-100 echo-500 echo-100x16k pipe-1000x4 pipe-500x16 bcast-1000 bcast-10000 bcast-10000x4 idle-10000"}
read -r -a SERVERS <<<"${SERVERS:-wavecore tokio-tungstenite fastwebsockets raw}"

port=9400
server_pid=

if [[ " $ROWS " == *" wss-"* ]] && [ ! -f "$TLS_KEY" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -keyout "$TLS_KEY" -out "$TLS_CERT" 2>/dev/null
fi

# start_server NAME ROW: starts it on a fresh port, pinned; sets $server_pid and $port.
start_server() {
  local name=$1 row=$2
  port=$((port + 1))
  local addr=127.0.0.1:$port
  case "$name" in
    wavecore | wavecore-base | wavecore-io_uring)
      local examples=$BIN/examples backend=epoll
      [ "$name" = wavecore-base ] && examples=${BASE:?BASE names the checkout of wavecore-base}/target/release/examples
      [ "$name" = wavecore-io_uring ] && backend=io_uring
      local tls=()
      [[ $row == wss-* ]] && tls=(--tls-cert "$TLS_CERT" --tls-key "$TLS_KEY")
      if [[ $row == bcast-* ]]; then
        WAVECORE_BACKEND=$backend WORKERS=1 taskset -c "$SERVER_CPU" "$examples/broadcast" "$addr" "${tls[@]}" >/dev/null 2>&1 &
      else
        WAVECORE_BACKEND=$backend WORKERS=1 taskset -c "$SERVER_CPU" "$examples/echo" "$addr" "${tls[@]}" >/dev/null 2>&1 &
      fi ;;
    tokio-tungstenite)
      local tls=()
      [[ $row == wss-* ]] && tls=(--tls-cert "$TLS_CERT" --tls-key "$TLS_KEY")
      taskset -c "$SERVER_CPU" $BIN/tokio-tungstenite-server "$addr" --threads 1 "${tls[@]}" >/dev/null 2>&1 & ;;
    node-ws) taskset -c "$SERVER_CPU" node tests/interop/node/ws_server.mjs "$addr" >/dev/null 2>&1 & ;;
    fastwebsockets) taskset -c "$SERVER_CPU" $BIN/fastwebsockets-server "$addr" --threads 1 >/dev/null 2>&1 & ;;
    raw)
      if [[ $row == bcast-* ]]; then
        taskset -c "$SERVER_CPU" $BIN/raw-tcp-server "$addr" --threads 1 --mode fanout >/dev/null 2>&1 &
      else
        taskset -c "$SERVER_CPU" $BIN/raw-tcp-server "$addr" --threads 1 >/dev/null 2>&1 &
      fi ;;
  esac
  server_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server $name did not start" >&2
  return 1
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}
trap stop_server EXIT

for round in $(seq "$ROUNDS"); do
  for row in $ROWS; do
    # Rotate the server order every round and row so no server always goes first.
    n=${#SERVERS[@]}
    shift_by=$(( (round + $(echo "$row" | cksum | cut -c1-3)) % n ))
    for i in $(seq 0 $((n - 1))); do
      name=${SERVERS[$(( (i + shift_by) % n ))]}
      if [[ $name == wavecore* && $row == bcast-* && $have_broadcast == 0 ]]; then
        continue
      fi
      # The raw fan-out takes exactly one publisher.
      if [[ $name == raw && $row == bcast-*x* ]]; then
        continue
      fi
      # Raw TCP has no handshake to offer compression in.
      if [[ $name == raw && $row == *deflate* ]]; then
        continue
      fi
      # TLS rows only for servers that speak TLS.
      if [[ $row == wss-* && $TLS_SERVERS != *" $name "* ]]; then
        continue
      fi
      args=${ROW_ARGS[$row]}
      [ "$name" = raw ] && args="$args --raw"
      if [[ $row == idle-* || $row == wss-idle-* ]]; then timing="-d 2 --warmup 0"; else timing="-d $DUR --warmup $WARM"; fi
      start_server "$name" "$row"
      # After start_server: it picks the port.
      target="127.0.0.1:$port"
      [[ $row == wss-* ]] && target="wss://localhost:$port --tls-insecure"
      sleep 0.2
      json=$(taskset -c "$LOAD_CPU" "$LOAD" $args $target $timing \
        --server-pid "$server_pid" --json 2>/dev/null) || true
      stop_server
      [ -n "$json" ] || json=null
      echo "{\"round\":$round,\"row\":\"$row\",\"server\":\"$name\",\"result\":$json}" >>"$RESULTS"
      printf '%-3s %-13s %-18s %s\n' "$round" "$row" "$name" \
        "$(echo "$json" | python3 -c 'import json,sys; r=json.load(sys.stdin) or {}; print("msgs/s=%s cpu_us/msg=%s rss_kib=%s->%s errors=%s" % (r.get("msgs_per_s"), r.get("server_cpu_us_per_msg"), r.get("server_rss_kib_before"), r.get("server_rss_kib"), r.get("errors")))')"
    done
  done
done

python3 benches/compare_report.py "$RESULTS" "$REPORT" "$CHART" \
  "rounds=$ROUNDS duration=${DUR}s warmup=${WARM}s have_broadcast=$have_broadcast"
cp "$RESULTS" "${REPORT%.md}.jsonl"
echo "wrote $REPORT (per-run data: ${REPORT%.md}.jsonl) and $CHART"

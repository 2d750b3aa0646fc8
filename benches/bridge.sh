#!/usr/bin/env bash
# The Redis bridge (issue 15): broadcast to 1,000 subscribers with the publisher on the
# same server, then with the publisher on a second server sharing the topic through
# Redis; then messages/s through one Redis between two servers, with the CPU each
# thread spent (where the bottleneck is). Between them, one subscriber at 1,000 and
# 10,000 msgs/s: the latency the bridge itself adds. docs/benchmarks.md section 3 has the results.
#
#   cargo build --release --example broadcast --bin wavecore-load
#   bash benches/bridge.sh            # RATES="100 500" DUR=10 WIN=500 by default
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=${RATES:-100 500}
DUR=${DUR:-10}
WIN=${WIN:-500}
R=${REDIS_PORT:-6391}
LOAD=target/release/wavecore-load
SERVER=target/release/examples/broadcast

redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
RP=$!
trap 'kill $RP ${A:-} ${B:-} ${C:-} 2>/dev/null || true' EXIT
sleep 0.3
WORKERS=1 $SERVER 127.0.0.1:9101 --redis "redis://127.0.0.1:$R" >/dev/null & A=$!
WORKERS=1 $SERVER 127.0.0.1:9102 --redis "redis://127.0.0.1:$R" >/dev/null & B=$!
WORKERS=1 $SERVER 127.0.0.1:9103 >/dev/null & C=$!
sleep 0.5

# CPU ticks (1/100 s) of each thread of process $1, as "name ticks" lines.
threads() { for t in /proc/"$1"/task/*; do echo "$(cat "$t"/comm) $(awk '{print $14+$15}' "$t"/stat)"; done; }
ticks() { awk '{print $14+$15}' /proc/"$1"/stat; }

for rate in $RATES; do
  echo "### 1,000 subscribers, 1 publisher at $rate msgs/s: one server"
  $LOAD broadcast 127.0.0.1:9103 -c 1000 --rate "$rate" -s 64 -d "$DUR" --server-pid $C
  echo "### the same across two servers and Redis"
  $LOAD broadcast 127.0.0.1:9101 --publish-to 127.0.0.1:9102 -c 1000 --rate "$rate" -s 64 -d "$DUR" --server-pid $A
done

for rate in 1000 10000; do
  echo "### 1 subscriber, 1 publisher at $rate msgs/s (the bridge's own latency): one server"
  $LOAD broadcast 127.0.0.1:9103 -c 1 --rate "$rate" -s 64 -d "$DUR"
  echo "### the same across two servers and Redis"
  $LOAD broadcast 127.0.0.1:9101 --publish-to 127.0.0.1:9102 -c 1 --rate "$rate" -s 64 -d "$DUR"
done

echo "### messages/s through Redis: 1 publisher on B, 1 subscriber on A, window $WIN"
threads $A >/tmp/bridge-a0; threads $B >/tmp/bridge-b0; r0=$(ticks $RP)
$LOAD broadcast 127.0.0.1:9101 --publish-to 127.0.0.1:9102 -c 1 --window "$WIN" -s 64 -d "$DUR" --warmup 1
threads $A >/tmp/bridge-a1; threads $B >/tmp/bridge-b1; r1=$(ticks $RP)
echo "CPU seconds per thread over warm-up and window ($((DUR + 1)) s):"
echo "  A (subscribers):"; paste /tmp/bridge-a0 /tmp/bridge-a1 | awk '$4 > $2 {printf "    %s %.2f\n", $1, ($4-$2)/100}'
echo "  B (publisher):"; paste /tmp/bridge-b0 /tmp/bridge-b1 | awk '$4 > $2 {printf "    %s %.2f\n", $1, ($4-$2)/100}'
echo "  redis-server: $(awk -v t=$((r1 - r0)) 'BEGIN {printf "%.2f", t/100}')"
echo "### the same on one server"
$LOAD broadcast 127.0.0.1:9103 -c 1 --window "$WIN" -s 64 -d "$DUR" --warmup 1

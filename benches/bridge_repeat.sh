#!/usr/bin/env bash
# Repeats the latency pairs of benches/bridge.sh (one server, then across two servers
# and Redis) to see their spread: RATES (1,000 subscribers) and ONESUB (repetitions of
# the 1-subscriber pair at 1,000 msgs/s; 0 for none). Build first: cargo build --release --example broadcast --bin wavecore-load
#   RATES="20 100 500" bash benches/bridge_repeat.sh
set -u
trap 'kill ${RP:-} ${A:-} ${B:-} ${C:-} 2>/dev/null || true' EXIT
cd "$(dirname "$0")/.."
R=6392
LOAD=target/release/wavecore-load; SERVER=target/release/examples/broadcast
redis-server --port $R --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & RP=$!
sleep 0.3
WORKERS=1 $SERVER 127.0.0.1:9111 --redis "redis://127.0.0.1:$R" >/dev/null 2>&1 & A=$!
WORKERS=1 $SERVER 127.0.0.1:9112 --redis "redis://127.0.0.1:$R" >/dev/null 2>&1 & B=$!
WORKERS=1 $SERVER 127.0.0.1:9113 >/dev/null 2>&1 & C=$!
sleep 0.5
for rep in 1 2 3; do for rate in ${RATES:-100 500}; do
 echo "## rep $rep rate $rate single"; $LOAD broadcast 127.0.0.1:9113 -c 1000 --rate $rate -s 64 -d 10 --server-pid $C | grep -E "latency|errors"
 echo "## rep $rep rate $rate cross"; $LOAD broadcast 127.0.0.1:9111 --publish-to 127.0.0.1:9112 -c 1000 --rate $rate -s 64 -d 10 --server-pid $A | grep -E "latency|errors"
done; done
for rep in $(seq "${ONESUB-3}"); do
 echo "## rep $rep 1sub 1000 single"; $LOAD broadcast 127.0.0.1:9113 -c 1 --rate 1000 -s 64 -d 10 | grep latency
 echo "## rep $rep 1sub 1000 cross"; $LOAD broadcast 127.0.0.1:9111 --publish-to 127.0.0.1:9112 -c 1 --rate 1000 -s 64 -d 10 | grep latency
done

#!/usr/bin/env bash
# User-space instructions a server spends, under cachegrind, for one load run:
#   DUR=2 benches/admission_ir.sh DIR EXAMPLE PORT LOAD-ARGS...   (e.g. echo -c 500 -p 16 -s 32)
# prints the server's total Ir and the messages the load generator counted. Run it
# with DUR=2 and DUR=6 and take (Ir6 - Ir2) / (messages6 - messages2): the marginal
# instructions per message, start-up and connection set-up cancelled out (see
# docs/benchmarks.md, section 7).
set -euo pipefail
dir=$1 example=$2 port=$3
shift 3
LOAD=${LOAD:-target/release/wavecore-load}
log=$(mktemp)
WORKERS=1 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
  "$dir/$example" "127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
sleep 3
json=$("$LOAD" "$@" "127.0.0.1:$port" -d "${DUR:-4}" --warmup 0 --json 2>/dev/null)
kill -INT "$pid"
wait "$pid" || true
ir=$(grep "I *refs" "$log" | awk '{print $4}' | tr -d ,)
rm -f "$log"
echo "$json" | python3 -c "import json,sys; r=json.load(sys.stdin); print('$dir $example ir=$ir messages=%d errors=%s' % (r['messages'], r['errors']))"

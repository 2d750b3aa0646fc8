#!/usr/bin/env bash
# The cost of admission control on the hot path: the echo and broadcast examples as
# built (no limit configured) against the same examples with every admission setting
# on (limits far above the load, so nothing is refused: what is measured is checking,
# not refusing), in the same run, rounds interleaved, the server pinned to CPU 0 and
# the load generator to CPU 1 as in compare.sh.
#
#   benches/admission.sh NONE_DIR LIMITS_DIR      # dirs holding the release echo and broadcast
#
# or, with the examples' own admission flags, one build for both (LIMITS_ARGS is
# given to the "limits" runs only):
#
#   LIMITS_ARGS="--max-connections-per-ip 100000 --max-connection-rate-per-ip 1e6 \
#     --message-rate 1e9 --allowed-origin https://app.example.com --proxy-protocol \
#     --trusted-proxy 10.0.0.0/8 --forwarded-headers" \
#     benches/admission.sh target/release/examples target/release/examples
#
# LIMITS_DIR's examples are this checkout's with these builder calls added after
# `.permessage_deflate(..)` (see docs/benchmarks.md, "Admission control"):
#   .max_connections_per_address(100_000)
#   .connection_rate_per_address(wavecore::Rate::per_second(1e6))
#   .message_rate(wavecore::MessageRate::messages(1e9).bytes(wavecore::Rate::per_second(1e12)))
#   .max_subscriptions_per_connection(1000)
#   .allow_origin("https://app.example.com")
#   .proxy_protocol(true).trusted_proxy("10.0.0.0/8".parse().unwrap()).forwarded_headers(true)
#
# ROUNDS (default 5), DUR (3), WARM (1), ROWS ("echo-100 pipe-500x16 bcast-1000").
set -euo pipefail
cd "$(dirname "$0")/.."
NONE=${1:?directory of the examples without limits}
LIMITS=${2:?directory of the examples with every limit}
ROUNDS=${ROUNDS:-5}
DUR=${DUR:-3}
WARM=${WARM:-1}
ROWS=${ROWS:-"echo-100 pipe-500x16 bcast-1000"}
LIMITS_ARGS=${LIMITS_ARGS:-}
LOAD=${LOAD:-target/release/wavecore-load}
declare -A ROW_ARGS=(
  [echo-100]="echo -c 100 -p 1 -s 32"
  [pipe-500x16]="echo -c 500 -p 16 -s 32"
  [bcast-1000]="broadcast -c 1000 --publishers 1 -s 32 --window 32"
)
port=9700
for round in $(seq "$ROUNDS"); do
  for row in $ROWS; do
    order="none limits"
    [ $(( (round + ${#row}) % 2 )) = 1 ] && order="limits none"
    for which in $order; do
      dir=$NONE
      args=""
      if [ "$which" = limits ]; then
        dir=$LIMITS
        args=$LIMITS_ARGS
      fi
      example=echo
      [[ $row == bcast-* ]] && example=broadcast
      port=$((port + 1))
      # shellcheck disable=SC2086 # LIMITS_ARGS is a list of flags
      WORKERS=1 taskset -c 0 "$dir/$example" "127.0.0.1:$port" $args >/dev/null 2>&1 &
      pid=$!
      sleep 0.3
      json=$(taskset -c 1 "$LOAD" ${ROW_ARGS[$row]} "127.0.0.1:$port" -d "$DUR" --warmup "$WARM" \
        --server-pid "$pid" --json 2>/dev/null) || json=null
      kill -INT "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      echo "{\"round\":$round,\"row\":\"$row\",\"server\":\"$which\",\"result\":$json}"
    done
  done
done >"${OUT:=target/admission-bench.jsonl}"
python3 -c '
import json, sys, statistics
runs = [json.loads(line) for line in sys.stdin]
rows = {}
for r in runs:
    res = r["result"] or {}
    rows.setdefault(r["row"], {}).setdefault(r["round"], {})[r["server"]] = res
for row, rounds in rows.items():
    tput, cpu = [], []
    for rnd, pair in sorted(rounds.items()):
        a, b = pair.get("none") or {}, pair.get("limits") or {}
        if a.get("msgs_per_s") and b.get("msgs_per_s"):
            tput.append(b["msgs_per_s"] / a["msgs_per_s"])
        if a.get("server_cpu_us_per_msg") and b.get("server_cpu_us_per_msg"):
            cpu.append(b["server_cpu_us_per_msg"] / a["server_cpu_us_per_msg"])
        print(row, rnd, "none", a.get("msgs_per_s"), a.get("server_cpu_us_per_msg"),
              "limits", b.get("msgs_per_s"), b.get("server_cpu_us_per_msg"), "errors", a.get("errors"), b.get("errors"))
    if tput:
        cpu_median = statistics.median(cpu) if cpu else float("nan")
        print(f"{row}: throughput limits/none per round {[round(x, 3) for x in tput]} median {statistics.median(tput):.3f}; "
              f"CPU per message limits/none {[round(x, 3) for x in cpu]} median {cpu_median:.3f}")
' <"$OUT"

#!/usr/bin/env python3
"""Turns benches/compare.sh's results.jsonl into docs/bench-results.md and a bar chart
(docs/bench-chart.svg, plain hand-written SVG). Usage: RESULTS MD SVG NOTE"""
import json
import os
import statistics
import sys
from collections import defaultdict

results_path, md_path, svg_path, note = sys.argv[1:5]
# The usual columns, in this order; any other server in the results (another build of
# wavecore, e.g. wavecore-base) comes after them.
KNOWN = ["wavecore", "wavecore-io_uring", "tokio-tungstenite", "fastwebsockets", "raw", "node-ws"]
ROW_TEXT = {
    "echo-1": "echo, 1 conn x 1 in flight, 32 B",
    "echo-100": "echo, 100 conns x 1, 32 B",
    "echo-500": "echo, 500 conns x 1, 32 B",
    "echo-100x16k": "echo, 100 conns x 1, 16 KiB",
    "pipe-1000x4": "echo, 1,000 conns x 4 in flight, 32 B",
    "pipe-500x16": "echo, 500 conns x 16 in flight, 32 B",
    "bcast-1000": "broadcast to 1,000 subscribers, 32 B",
    "bcast-10000": "broadcast to 10,000 subscribers, 32 B",
    "bcast-10000x4": "broadcast to 10,000 subscribers, 4 publishers, 32 B",
    "idle-10000": "10,000 idle connections",
    "echo-100-json1k": "echo, 100 connections, 1 KiB JSON",
    "echo-100-json1k-deflate": "echo, 100 connections, 1 KiB JSON, permessage-deflate offered",
    "bcast-1000-json1k": "broadcast to 1,000 subscribers, 1 KiB JSON",
    "bcast-1000-json1k-deflate": "broadcast to 1,000 subscribers, 1 KiB JSON, permessage-deflate offered",
    "idle-10000-deflate": "10,000 idle connections, permessage-deflate negotiated",
    "wss-echo-100": "echo over TLS (wss), 100 conns x 1, 32 B",
    "wss-echo-100x16k": "echo over TLS (wss), 100 conns x 1, 16 KiB",
    "wss-idle-10000": "10,000 idle connections over TLS (wss)",
}

runs = defaultdict(list)
rows = []
for line in open(results_path):
    rec = json.loads(line)
    if rec["row"] not in rows:
        rows.append(rec["row"])
    runs[(rec["row"], rec["server"])].append(rec["result"])
seen = sorted({server for _, server in runs})
SERVERS = [s for s in KNOWN if s in seen] + [s for s in seen if s not in KNOWN]


def values(row, server, key):
    out = []
    for r in runs.get((row, server), []):
        if not r:
            continue
        if key == "bytes_per_conn":
            if r.get("server_rss_kib") is None or not r.get("established"):
                continue
            out.append((r["server_rss_kib"] - r["server_rss_kib_before"]) * 1024 / r["established"])
        elif r.get(key) is not None:
            out.append(r[key])
    return out


def cell(vals, fmt):
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt.format(med)
    return (fmt + " ({}-{})").format(med, fmt.format(min(vals)), fmt.format(max(vals)))


def ratio(row, server, key):
    mine, base = values(row, server, key), values(row, "wavecore", key)
    if not mine or not base or statistics.median(base) == 0:
        return ""
    return " **x{:.2f}**".format(statistics.median(mine) / statistics.median(base))


def table(title, key, fmt, which_rows, explain):
    lines = ["## " + title, "", explain, "",
             "| workload | " + " | ".join(SERVERS) + " |",
             "| --- |" + " --- |" * len(SERVERS)]
    for row in which_rows:
        cells = []
        for s in SERVERS:
            c = cell(values(row, s, key), fmt)
            cells.append(c + (ratio(row, s, key) if s != "wavecore" and c != "n/a" else ""))
        lines.append("| " + ROW_TEXT.get(row, row) + " | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def is_idle(row):
    return row.startswith("idle") or row.startswith("wss-idle")


load_rows = [r for r in rows if not is_idle(r)]
idle_rows = [r for r in rows if is_idle(r)]
errors = []
for (row, server), rs in sorted(runs.items()):
    bad = [r for r in rs if r is None or r.get("errors")]
    if bad:
        first = next((r.get("first_error") for r in bad if r), "no result")
        lost = sum((r or {}).get("lost", 0) for r in bad)
        errors.append(f"- {row} / {server}: {len(bad)} of {len(rs)} runs with errors"
                      f" (lost deliveries {lost}); first: {first}")
    if not is_idle(row):
        silent = [r for r in rs if r is not None and not r.get("errors") and not r.get("messages")]
        if silent:
            errors.append(f"- {row} / {server}: {len(silent)} of {len(rs)} runs moved no messages"
                          " in the window without any error (a stall; kept in the medians)")

import platform
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    cpu = "unknown CPU"
machine = f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}"

md = ["# wavecore vs peers: benchmark results", "",
      f"Machine: {machine}.", "",
      f"Produced by `benches/compare.sh` ({note}). Each server runs with one thread pinned to",
      "CPU 0; `wavecore-load` runs with one thread pinned to CPU 1. Cells: median over the",
      "rounds (min-max); **xN** = that server's median divided by wavecore's (above 1: more",
      "messages/s, more CPU, more latency or more memory than wavecore). Every echoed",
      "payload and every broadcast delivery is checked (content, sequence, order).", "",
      "Caveat: with two cores, one load-generator thread can be the bottleneck (it does the",
      "framing, masking and checking for every connection), especially for the raw TCP",
      "peer, so messages/s are lower bounds for the faster servers. Server CPU microseconds",
      "per message (user+system time from /proc over the window / messages) is the better",
      "measure of server cost where the server is not saturated. On this VM every wake-up is",
      "expensive (one connection ping-ponging costs every server, raw TCP included, about",
      "35 us of CPU per message), so rows with little batching mostly measure the kernel.", ""]
md.append(table("Throughput (messages/s; broadcast: deliveries/s)", "msgs_per_s", "{:,.0f}", load_rows,
                "Higher is better."))
md.append(table("Server CPU per message (microseconds; broadcast: per delivery)",
                "server_cpu_us_per_msg", "{:.2f}", load_rows, "Lower is better."))
md.append(table("Latency p99 (microseconds)", "p99_us", "{:,.0f}", load_rows,
                "Round trip for echo, publisher-to-subscriber for broadcast. Lower is better."))
if idle_rows:
    md.append(table("Idle memory per connection (bytes)", "bytes_per_conn", "{:,.0f}", idle_rows,
                    "(server RSS with the connections open - RSS before) / open connections."))
    md.append(table("Idle memory per connection at the margin (bytes)", "marginal_bytes_per_conn",
                    "{:,.0f}", idle_rows,
                    "(server RSS at the end - RSS with the first half open) / connections opened"
                    " since: what one more connection costs, without what a reactor spends once"
                    " (n/a: results from a load generator without the staged measurement)."))
md.append("## Errors\n\n" + ("\n".join(errors) if errors else "None: every run verified clean and moved messages.") + "\n")
if "have_broadcast=0" in note:
    md.append("wavecore's broadcast rows are missing: `examples/broadcast.rs` did not exist.\n")
open(md_path, "w").write("\n".join(md))

# Chart: per workload, one bar per server, length relative to the row's best median.
colors = {"wavecore": "#2b6cb0", "tokio-tungstenite": "#dd6b20", "fastwebsockets": "#38a169", "raw": "#718096", "node-ws": "#805ad5"}
for extra, color in zip([s for s in SERVERS if s not in colors], ["#d53f8c", "#319795", "#b7791f"]):
    colors[extra] = color
bar, gap, label_w, plot_w = 14, 12, 300, 420
height = 60 + len(load_rows) * (len(SERVERS) * bar + gap)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 160}" height="{height}" '
       'font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       '<text x="10" y="20" font-size="15" font-weight="bold">Messages/s (median), bars relative to the best server per workload</text>']
for i, s in enumerate(SERVERS):
    svg.append(f'<rect x="{10 + i * 150}" y="32" width="12" height="12" fill="{colors[s]}"/>'
               f'<text x="{26 + i * 150}" y="42">{s}</text>')
y = 56
for row in load_rows:
    meds = {s: statistics.median(v) for s in SERVERS if (v := values(row, s, "msgs_per_s"))}
    best = max(meds.values(), default=1) or 1
    svg.append(f'<text x="10" y="{y + len(SERVERS) * bar / 2 + 4}">{ROW_TEXT.get(row, row)}</text>')
    for s in SERVERS:
        if s in meds:
            w = max(1, plot_w * meds[s] / best)
            svg.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar - 2}" fill="{colors[s]}"/>'
                       f'<text x="{label_w + w + 4:.1f}" y="{y + bar - 4}" font-size="10">{meds[s]:,.0f}</text>')
        y += bar
    y += gap
svg.append("</svg>")
open(svg_path, "w").write("\n".join(svg) + "\n")

"""Scrapes a wavecore server's /metrics twice over one HTTP/1.1 connection (Python's
http.client keeps it alive), once as Prometheus text 0.0.4 and once as OpenMetrics 1.0
text, parses each with prometheus_client's parser for that format, and prints:

    reused <True|False>          whether both requests went over the same socket
    type <P|O> <content-type>    the Content-Type of each answer
    <P|O> <name>{<labels>} <value>   every sample (labels sorted, k=v joined by commas)

Usage: python exposition.py HOST:PORT. A parse error raises, exiting non-zero.
"""

import http.client
import sys

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus


def fetch(conn, accept):
    headers = {"Accept": accept} if accept else {}
    conn.request("GET", "/metrics", headers=headers)
    response = conn.getresponse()
    body = response.read().decode("utf-8")
    if response.status != 200:
        raise SystemExit(f"/metrics answered {response.status}: {body!r}")
    return response.getheader("Content-Type"), body


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    prom_type, prom = fetch(conn, None)
    sock = conn.sock
    om_type, om = fetch(conn, "application/openmetrics-text; version=1.0.0")
    print("reused", sock is not None and conn.sock is sock)
    print("type P", prom_type)
    print("type O", om_type)
    for tag, families in (("P", parse_prometheus(prom)), ("O", parse_openmetrics(om))):
        for family in families:
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                print(f"{tag} {sample.name}{{{labels}}} {sample.value}")
    conn.close()


main()

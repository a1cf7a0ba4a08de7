#!/usr/bin/python3
"""Checks a scrape of imsagw's metrics after one demo call: it must parse as OpenMetrics
(prometheus_client's parser), its counters must match the call, and every metric the
Grafana dashboard (docs/grafana-dashboard.json) queries must be in it.
Usage: check_metrics.py FILE VARIANT RELAYED_OCTETS MSRP_CHUNKS"""
import json
import os
import re
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

path, variant, relayed, chunks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
families = {f.name: f for f in text_string_to_metric_families(open(path).read())}


def value(family, **labels):
    f = families[family]
    total = 0
    for s in f.samples:
        if s.name.endswith("_created"):
            continue
        if all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
    return total


problems = []


def expect(what, got, want):
    print(f"  {what}: {got:g} (expected {want})")
    if got != want:
        problems.append(what)


expect("registered", value("imsagw_registered"), 1)
for cmd, n in [("add", 2), ("subtract", 2)]:
    expect(f"h248 {cmd} ok", value("imsagw_h248_commands", command=cmd, result="ok"), n)
modifies = 1 if variant == "fax" else 2
expect(f"modify ok >= {modifies}", min(value("imsagw_h248_commands", command="modify", result="ok"), modifies), modifies)
expect("relayed octets (both UEs' bytes)", value("imsagw_worker_relayed_octets"), relayed)
expect("MSRP chunks (both ways)", value("imsagw_msrp_chunks"), chunks)
expect("contexts left", value("imsagw_contexts"), 0)
if variant == "fax":
    expect("relayed datagrams (both pages)", value("imsagw_worker_relayed_datagrams"), 2 * int(os.environ.get("FAX_PACKETS", "300")))
if variant in ("tls", "fax", "ipv6"):
    expect("TLS handshakes established", value("imsagw_tls_handshakes", outcome="established"), 1)
dashboard = os.path.join(os.path.dirname(__file__), "..", "docs", "grafana-dashboard.json")
queried = set()
for panel in json.load(open(dashboard))["panels"]:
    for t in panel["targets"]:
        queried.update(re.findall(r"imsagw_[a-z0-9_]+", t["expr"]))
scraped = set()
for f in families.values():
    scraped.update(s.name for s in f.samples)
    scraped.add(f.name)
missing = sorted(queried - scraped)
print(f"  dashboard queries {len(queried)} metrics, missing from the scrape: {missing}")
if missing:
    problems.append("dashboard metrics")
if problems:
    sys.exit("metrics mismatch: " + ", ".join(problems))
print(f"metrics: {len(families)} families parsed, counters match the call")

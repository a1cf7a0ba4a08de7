#!/usr/bin/python3
"""The floods' summary: throughput kept under each kind of flood against the unflooded runs
of the same repetition, the worker's legs and refusals, printed and written as JSON.

    flood_report.py RESULTS OUT.json CALLS BYTES RATE REPS   (from scripts/flood.sh)
"""
import json, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
calls, size, rate, reps = (int(x) for x in sys.argv[3:7])
# Rows alternate: the unflooded run, then the flooded one of the same kind.
by = {}
for base, flood in zip(rows[0::2], rows[1::2]):
    by.setdefault(flood[0], []).append((float(base[1]), float(flood[1]), int(flood[2]), int(flood[3])))
report = {"calls": calls, "bytes_each_way": size, "flood_packets_per_s": rate, "reps": reps, "kinds": {}}
print(f"{calls} calls x {size} B each way, flood {rate} packets/s, {reps} repetition(s)")
print(f"{'flood':8} {'Mbit/s without':>15} {'with':>8} {'kept':>6} {'max legs':>9} {'refused':>9}")
for kind, runs in by.items():
    base = statistics.median(r[0] for r in runs)
    flooded = statistics.median(r[1] for r in runs)
    kept = statistics.median(r[1] / r[0] for r in runs)
    report["kinds"][kind] = {
        "mbit_s_without": base, "mbit_s_with": flooded, "fraction_kept": kept,
        "fraction_kept_min": min(r[1] / r[0] for r in runs),
        "fraction_kept_max": max(r[1] / r[0] for r in runs),
        "max_worker_legs": max(r[2] for r in runs), "worker_refusals": sum(r[3] for r in runs),
    }
    print(f"{kind:8} {base:15.1f} {flooded:8.1f} {kept:6.2f} {max(r[2] for r in runs):9} {sum(r[3] for r in runs):9}")
json.dump(report, open(sys.argv[2], "w"), indent=2)

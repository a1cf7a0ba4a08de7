"""The performance report from scripts/bench.sh's rows: results.json, report.md and plots.

Input rows (tab-separated): workload, metric, unit, side, value. A side is `imsagw` (on
AF_XDP end to end), `imsagw (net_tap)`, the baseline (`HAProxy 2.6`) or a floor (`openssl
speed`, `rustls in-process`, `dimpl in-process`, `memcpy ...`).
Repeated rows are repetitions: each row of the report gives the median and the min-max of
each side and the ratio imsagw / the baseline or floor (for ns, us, bytes and CPU time,
lower is better), with imsagw on net_tap beside it where it ran.
"""

import json
import statistics
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows_path, out_dir, mode = sys.argv[1], sys.argv[2], sys.argv[3]
groups = OrderedDict()
for line in open(rows_path):
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 5 or parts[4] == "":
        continue
    workload, metric, unit, side, value = parts
    key = (workload, metric, unit)
    groups.setdefault(key, OrderedDict()).setdefault(side, []).append(float(value))


def summary(values):
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


TAP = "imsagw (net_tap)"
results = []
for (workload, metric, unit), sides in groups.items():
    ours = sides.get("imsagw")
    tap = sides.get(TAP)
    others = [(s, v) for s, v in sides.items() if s not in ("imsagw", TAP)]
    entry = {"workload": workload, "metric": metric, "unit": unit}
    if ours:
        entry["imsagw"] = summary(ours)
    if tap:
        entry["imsagw_net_tap"] = summary(tap)
    if others:
        name, values = others[0]
        entry["baseline"] = name
        entry["baseline_value"] = summary(values)
        if ours and statistics.median(values) > 0:
            entry["ratio"] = statistics.median(ours) / statistics.median(values)
    entry["lower_is_better"] = unit in ("ns", "us", "bytes") or unit.startswith("CPU")
    results.append(entry)

json.dump({"mode": mode, "rows": results}, open(f"{out_dir}/results.json", "w"), indent=2)


def fmt(x):
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def span(s):
    if s["runs"] == 1:
        return fmt(s["median"])
    return f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})"


lines = [
    f"# imsagw performance report ({mode} run)",
    "",
    "Medians with min-max over repetitions in brackets; ratio = imsagw / the other column "
    "(for ns, us, bytes and CPU time lower is better). End to end, imsagw runs on an AF_XDP "
    "port; imsagw on net_tap is shown beside it. Method and topology: `scripts/bench.sh`.",
    "",
    "| workload | metric | unit | imsagw | against | its value | ratio | imsagw on net_tap |",
    "|---|---|---|---|---|---|---|---|",
]
for r in results:
    ours = span(r["imsagw"]) if "imsagw" in r else "-"
    other = span(r["baseline_value"]) if "baseline_value" in r else "-"
    ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
    tap = span(r["imsagw_net_tap"]) if "imsagw_net_tap" in r else "-"
    lines.append(
        f"| {r['workload']} | {r['metric']} | {r['unit']} | {ours} | "
        f"{r.get('baseline', '-')} | {other} | {ratio} | {tap} |"
    )
lines += ["", "![cost per packet](cost_per_packet.png)", "", "![against the baseline and floors](throughput.png)", ""]
open(f"{out_dir}/report.md", "w").write("\n".join(lines))

# Cost per packet against concurrent legs.
hot, cold = [], []
for r in results:
    if r["workload"] == "cost per packet vs legs" and "imsagw" in r:
        legs = int(r["metric"].split(",")[-1].split()[0])
        (hot if "hot" in r["metric"] else cold).append((legs, r["imsagw"]["median"]))
fig, ax = plt.subplots(figsize=(7, 4))
for series, label in ((sorted(hot), "64 hot pairs"), (sorted(cold), "64 random pairs (cold)")):
    if series:
        ax.plot([x for x, _ in series], [y for _, y in series], marker="o", label=label)
ax.set_xscale("log")
ax.set_xlabel("concurrent legs on the worker")
ax.set_ylabel("worker ns per received frame")
ax.set_ylim(bottom=0)
ax.set_title("imsagw worker: cost per packet against concurrent legs")
ax.grid(True, alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(f"{out_dir}/cost_per_packet.png", dpi=110)

# Every comparison as a ratio (imsagw / baseline or floor).
comparisons = [r for r in results if "ratio" in r and r["workload"] != "cost per packet vs legs"]
fig, ax = plt.subplots(figsize=(11, 0.5 * max(len(comparisons), 2) + 1.5))
labels = [f"{r['workload']}: {r['metric']} (vs {r['baseline']})" for r in comparisons]
ratios = [r["ratio"] for r in comparisons]
colors = ["tab:orange" if r["lower_is_better"] else "tab:blue" for r in comparisons]
ax.barh(range(len(ratios)), ratios, color=colors)
ax.set_yticks(range(len(ratios)))
ax.set_yticklabels(labels, fontsize=7)
ax.axvline(1.0, color="black", linewidth=1)
ax.set_xscale("log")
ax.set_xlabel("imsagw / other, log scale (blue: higher is better; orange: lower is better)")
ax.set_title("imsagw against HAProxy 2.6 and the floors")
for i, v in enumerate(ratios):
    ax.text(v, i, f" {v:.2f}", va="center", fontsize=7)
fig.tight_layout()
fig.savefig(f"{out_dir}/throughput.png", dpi=110)
print("\n".join(lines))

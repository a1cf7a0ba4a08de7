#!/usr/bin/python3
"""The old and the new build of imsagw's in-process benchmarks, interleaved in one run.

    python3 scripts/bench_ab.py REV [--reps N] [--quick] [--out FILE] [--benches worker,tls,calls]
                                [--no-policy]

Builds the worker, TLS and H.248-calls benchmarks of revision REV (in a git worktree under
target/ab/) and of the working tree, then runs them in turns (old, new, new, old, ...), each
pinned to core 1, and reports every row's median for both builds and new/old. The rows:
worker cost per received frame (hot and spread sets, at each leg count of
IMSAGW_BENCH_LEGS, default 10 and 100000), in-process relay throughput (TCP 1 and 64 pairs;
TLS -> TCP and TLS -> TLS), TLS handshakes/s, and H.248 calls/s through the control thread.

Both builds run with the heap on transparent huge pages (GLIBC_TUNABLES=glibc.malloc.hugetlb=1,
as the packaged systemd unit starts imsagw), unless the caller's environment sets
GLIBC_TUNABLES.

On a noisy machine the old and the new run of one repetition run back to back, so their
ratio is what is compared: `change` is the median over the repetitions of new/old (a cost:
new/old - 1; a rate: old/new - 1), so a regression beyond 10 % shows as more than +10 %,
with the min-max of that ratio beside it. `best` compares each build's best run (the
lowest cost, the highest rate): on a VM whose speed changes between phases, the best run
is the one least disturbed. A repetition whose runs saw more than 5 % steal time
(/proc/stat) is dropped and counted.

    python3 scripts/bench_ab.py --report FILE     the tables again from a saved run
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHES = [("dataplane", "worker"), ("dataplane", "tls"), ("control", "calls")]
# Suffix of the rows measured with a filter, a policer and DSCP marking on every leg; the row
# without it, from the same run, is their baseline.
ON = ", gm/tman/ds on"
# The worker bench's IPv6 table: UE-X and the access legs on IPv6, and the all-IPv4 legs beside.
V6 = ", access on IPv6"
V4 = ", all IPv4 beside IPv6"


def build(tree):
    """Builds the benches of the workspace at `tree`; returns {bench: executable}."""
    exes = {}
    for pkg, bench in BENCHES:
        out = subprocess.run(
            ["cargo", "bench", "--no-run", "-p", pkg, "--bench", bench, "--message-format=json"],
            cwd=tree, capture_output=True, text=True, check=True)
        exe = bench_executable(out.stdout, bench)
        if exe:
            exes[bench] = exe
    missing = [b for _, b in BENCHES if b not in exes]
    if missing:
        sys.exit(f"bench_ab: no executable for {missing} in {tree}")
    return exes


def bench_executable(cargo_json, bench):
    """The executable of bench `bench` in cargo's --message-format=json output, or None."""
    for line in cargo_json.splitlines():
        try:
            m = json.loads(line)
        except json.JSONDecodeError:
            continue
        if m.get("reason") == "compiler-artifact" and m.get("executable") \
                and m["target"]["name"] == bench:
            return m["executable"]
    return None


def worktree(rev):
    # The commit `rev` names in this repository (in a worktree, `HEAD` is its own).
    rev = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    path = os.path.join(ROOT, "target", "ab", rev.replace("/", "_"))
    if not os.path.exists(path):
        subprocess.run(["git", "worktree", "add", "--detach", path, rev], cwd=ROOT, check=True,
                       capture_output=True)
    else:
        subprocess.run(["git", "checkout", "--detach", rev], cwd=path, check=True,
                       capture_output=True)
    return path


def table_rows(text, heading):
    """The rows (as lists of cells) of the markdown table under the line starting `heading`."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith(heading):
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                if rows:
                    break
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells and cells[0] and not cells[0].startswith("-") and cells[0] not in (
                    "legs", "pairs", "workload"):
                rows.append(cells)
    return rows


def number(cell):
    return float(cell.split()[0])


def parse(bench, text, policy=False):
    """{row name: (value, better)} where better is 'lower' or 'higher'."""
    out = {}
    if bench == "worker" and policy:
        # Off and on from the same process, measured in turns.
        for c in table_rows(text, "# worker cost per received frame with a source filter"):
            out[f"worker ns per frame, hot set, {c[0]} legs"] = (number(c[1]), "lower")
            out[f"worker ns per frame, hot set, {c[0]} legs{ON}"] = (number(c[2]), "lower")
            out[f"worker ns per frame, spread, {c[0]} legs"] = (number(c[4]), "lower")
            out[f"worker ns per frame, spread, {c[0]} legs{ON}"] = (number(c[5]), "lower")
        return out
    if bench == "worker":
        for c in table_rows(text, "# worker cost per received frame"):
            out[f"worker ns per frame, hot set, {c[0]} legs"] = (number(c[2]), "lower")
            out[f"worker ns per frame, spread, {c[0]} legs"] = (number(c[3]), "lower")
        for c in table_rows(text, "# relayed throughput"):
            out[f"TCP relay in process, {c[0]} pairs, Gbit/s"] = (number(c[1]), "higher")
        # Builds with IPv6 legs: UE-X on IPv6, from the same process as the IPv4 rows.
        for c in table_rows(text, "# worker cost per received frame, IPv6 access legs"):
            for kind, v4, v6 in (("hot set", c[1], c[2]), ("spread", c[4], c[5])):
                out[f"worker ns per frame, {kind}, {c[0]} legs{V4}"] = (number(v4), "lower")
                out[f"worker ns per frame, {kind}, {c[0]} legs{V6}"] = (number(v6), "lower")
    elif bench == "tls":
        for c in table_rows(text, "# TLS at the access edge"):
            if c[0].startswith("full handshakes"):
                out["TLS handshakes/s in process"] = (number(c[1]), "higher")
            elif "TLS -> TCP" in c[0]:
                out["TLS -> TCP relay in process, Gbit/s"] = (number(c[1]), "higher")
            elif "TLS -> TLS" in c[0]:
                out["TLS -> TLS relay in process, Gbit/s"] = (number(c[1]), "higher")
    elif bench == "calls":
        m = re.search(r"median (\d+)", text)
        if m:
            out["H.248 calls/s through the control thread"] = (float(m.group(1)), "higher")
    return out


def cpu_times():
    """(steal, total) jiffies of all cores."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[7], sum(v[:8])


def run(exe, bench, quick, policy=False):
    env = dict(os.environ)
    env.setdefault("IMSAGW_BENCH_LEGS", "10,100000")
    # The heap on transparent huge pages, as the packaged unit and scripts/bench.sh run it
    # (GLIBC_TUNABLES=glibc.malloc.hugetlb=0 in the caller's environment turns it off).
    env.setdefault("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
    # The old/new comparison runs the worker bench on one set of legs, as the old build does;
    # the Iq policy's cost is a run of its own (the new build only), on two sets of legs.
    env["IMSAGW_BENCH_POLICY"] = "1" if policy else "0"
    if quick:
        env["IMSAGW_BENCH_QUICK"] = "1"
        env.setdefault("IMSAGW_BENCH_SECS", "0.5")
    else:
        env.setdefault("IMSAGW_BENCH_SECS", "2")
    out = subprocess.run(["taskset", "-c", "1", exe, "--bench"], env=env, capture_output=True,
                         text=True, check=True)
    return parse(bench, out.stdout, policy)


def table(rev, reps, dropped, samples):
    lines = [f"# {rev} (old) against the working tree (new): {reps} repetitions, old and new "
             "back to back in each, pinned to core 1; medians, the change as the median (min - "
             f"max) of the per-repetition ratio, and the best runs; {dropped} runs dropped for "
             "steal",
             "| row | old | new | change | min - max | best old | best new | best change |",
             "|---|---|---|---|---|---|---|---|"]
    for row, s in sorted(samples.items()):
        o, n = statistics.median(s["old"]), statistics.median(s["new"])
        worse = statistics.median(s["worse"])
        if s["better"] == "lower":
            bo, bn = min(s["old"]), min(s["new"])
            bw = bn / bo - 1
        else:
            bo, bn = max(s["old"]), max(s["new"])
            bw = bo / bn - 1
        lines.append(f"| {row} | {o:.2f} | {n:.2f} | {worse * 100:+.1f} % | "
                     f"{min(s['worse']) * 100:+.1f} % - {max(s['worse']) * 100:+.1f} % | "
                     f"{bo:.2f} | {bn:.2f} | {bw * 100:+.1f} % |")
    return "\n".join(lines)


def solo_table(solo):
    lines = ["# the new build alone: with the Iq policy (gm filter, tman policer, ds marking) on "
             "every leg, against the same legs without it in the same run; and with the access "
             "legs on IPv6, against all-IPv4 legs measured in turns with them",
             "| row | median ns | against the same build, median of the per-run ratio | min - max |",
             "|---|---|---|---|"]
    for row, s in sorted(solo.items()):
        lines.append(f"| {row} | {statistics.median(s['values']):.0f} | "
                     f"{statistics.median(s['ratios']):.3f} | {min(s['ratios']):.3f} - "
                     f"{max(s['ratios']):.3f} |")
    return "\n".join(lines)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        d = json.load(open(sys.argv[2]))
        samples = {r: {"better": v["better"], "old": v["old"], "new": v["new"],
                       "worse": v["worse_each"]} for r, v in d["rows"].items()}
        print(table(d["rev"], d["reps"], d["dropped"], samples))
        if d.get("solo"):
            print()
            print(solo_table(d["solo"]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("rev")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--benches", default=",".join(b for _, b in BENCHES),
                    help="which benches to run, comma-separated (default: all)")
    ap.add_argument("--no-policy", action="store_true",
                    help="skip the new build's run with the Iq policy on (scripts/bench_policy.py)")
    args = ap.parse_args()
    chosen = [(p, b) for p, b in BENCHES if b in args.benches.split(",")]
    old_tree = worktree(args.rev)
    print(f"== building {args.rev} in {old_tree}", flush=True)
    old = build(old_tree)
    print("== building the working tree", flush=True)
    new = build(ROOT)
    samples = {}
    # Rows of the new build alone, with their ratio to the same build's row without ON.
    solo = {}
    dropped = 0
    for rep in range(args.reps):
        order = [("old", old), ("new", new)] if rep % 2 == 0 else [("new", new), ("old", old)]
        for _, bench in chosen:
            s0, t0 = cpu_times()
            got = {side: run(exes[bench], bench, args.quick) for side, exes in order}
            s1, t1 = cpu_times()
            if t1 > t0 and (s1 - s0) / (t1 - t0) > 0.05:
                dropped += 1
                continue
            for row in got["old"].keys() & got["new"].keys():
                better = got["old"][row][1]
                s = samples.setdefault(row, {"better": better, "old": [], "new": [], "worse": []})
                o, n = got["old"][row][0], got["new"][row][0]
                s["old"].append(o)
                s["new"].append(n)
                s["worse"].append((n / o - 1) if better == "lower" else (o / n - 1))
            # The new build's IPv6 rows, against its IPv4 rows measured in turns with them.
            for row, (v, _) in got["new"].items():
                if row.endswith(V6) and row[:-len(V6)] + V4 in got["new"]:
                    s = solo.setdefault(row, {"values": [], "ratios": []})
                    s["values"].append(v)
                    s["ratios"].append(v / got["new"][row[:-len(V6)] + V4][0])
            if bench == "worker" and not args.no_policy:
                # The new build alone, with and without the Iq policy, in one process.
                pol = run(new[bench], bench, args.quick, policy=True)
                for row, (v, _) in pol.items():
                    if row.endswith(ON) and row[:-len(ON)] in pol:
                        s = solo.setdefault(row, {"values": [], "ratios": []})
                        s["values"].append(v)
                        s["ratios"].append(v / pol[row[:-len(ON)]][0])
        print(f"  repetition {rep + 1} of {args.reps} done", flush=True)
    report = {}
    for row, s in sorted(samples.items()):
        report[row] = {"old": s["old"], "new": s["new"], "old_median": statistics.median(s["old"]),
                       "new_median": statistics.median(s["new"]),
                       "worse_by": statistics.median(s["worse"]), "worse_each": s["worse"],
                       "better": s["better"]}
    text = table(args.rev, args.reps, dropped, samples) + "\n\n" + solo_table(solo)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"rev": args.rev, "reps": args.reps, "dropped": dropped, "rows": report,
                       "solo": solo}, f, indent=1)


if __name__ == "__main__":
    main()

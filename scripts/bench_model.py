#!/usr/bin/python3
"""The worker's cost per received frame as counted by a simulated CPU (valgrind's callgrind
with its cache simulator): instructions, L1 and last-level cache misses per frame, for the
old and the new build, at each leg count. Deterministic, unlike timings on a shared VM
(where one benchmark run differs from the next by up to ±60 % at 100 000 legs).

    python3 scripts/bench_model.py REV [--legs 10,100000] [--sets hot,spread]
                                       [--rounds 10,30] [--out FILE]

Both builds run the same harness: the worker benchmark of each tree, given the same knobs by
the same text substitutions (so a revision older than this script works too); only
`Worker::poll` is counted (callgrind's --toggle-collect), and each row is the difference
between a run of R2 and one of R1 rounds over the difference of the frames the worker
received, so the set-up of the legs and the first R1 rounds (warm-up) cancel out.

Cache model (fixed, so that a row does not depend on the host): 32 KiB 8-way L1I and L1D,
8 MiB 16-way last level, 64-byte lines. `cycles` is the usual estimate
Ir + 10 x L1 misses + 100 x LL misses. Software prefetches are not simulated as loads: a
change that only prefetches shows here as its instructions; its effect is in the timings
(scripts/bench_ab.py).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from bench_ab import bench_executable, worktree  # noqa: E402

BENCH = "dataplane/benches/worker.rs"
# The harness knobs, as substitutions on the worker benchmark's text (each must match once).
KNOBS = [
    ("let reps = if quick { 2 } else { 5 };",
     'let reps = std::env::var("IMSAGW_MODEL_REPS").ok().and_then(|v| v.parse().ok())'
     '.unwrap_or(if quick { 2 } else { 5 });'),
    ("let rounds = if quick { 50 } else { 200 };",
     'let rounds = std::env::var("IMSAGW_MODEL_ROUNDS").ok().and_then(|v| v.parse().ok())'
     '.unwrap_or(if quick { 50 } else { 200 });'),
    ("hot = hot.min(rig.per_frame(rounds, active, |k| k));",
     'if std::env::var("IMSAGW_MODEL_SET").map_or(true, |s| s == "hot") '
     '{ hot = hot.min(rig.per_frame(rounds, active, |k| k)); }'),
    ("cold = cold.min(rig.per_frame(rounds, active, |_| rng.below(pairs as u64) as usize));",
     'if std::env::var("IMSAGW_MODEL_SET").map_or(true, |s| s == "spread") '
     '{ cold = cold.min(rig.per_frame(rounds, active, |_| rng.below(pairs as u64) as usize)); }'),
    ("black_box(&rig.worker);",
     'black_box(&rig.worker); eprintln!("MODEL frames={}", rig.worker.counters().rx_frames);'),
    ('println!("# relayed throughput',
     'if std::env::var("IMSAGW_MODEL_SET").is_ok() { return; } println!("# relayed throughput'),
]
CACHES = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=8388608,16,64"]


def build(tree):
    """Builds `tree`'s worker bench with the knobs; returns a copy of the executable."""
    path = os.path.join(tree, BENCH)
    original = open(path).read()
    text = original
    for old, new in KNOBS:
        if text.count(old) != 1:
            sys.exit(f"bench_model: {path}: expected one '{old}'")
        text = text.replace(old, new)
    try:
        open(path, "w").write(text)
        out = subprocess.run(
            ["cargo", "bench", "--no-run", "-p", "dataplane", "--bench", "worker",
             "--message-format=json"], cwd=tree, capture_output=True, text=True)
    finally:
        open(path, "w").write(original)
    if out.returncode != 0:
        sys.exit(f"bench_model: build failed in {tree}:\n{out.stderr[-3000:]}")
    exe = bench_executable(out.stdout, "worker")
    if not exe:
        sys.exit(f"bench_model: no worker bench built in {tree}")
    copy = tempfile.mkstemp(prefix="worker-model-")[1]
    shutil.copy(exe, copy)
    return copy


def run(exe, legs, which, rounds):
    """Counts of Worker::poll (callgrind events) and the frames the worker received."""
    out_file = tempfile.mkstemp(prefix="callgrind-")[1]
    env = dict(os.environ, IMSAGW_BENCH_LEGS=str(legs), IMSAGW_BENCH_POLICY="0", IMSAGW_BENCH_V6="0",
               IMSAGW_BENCH_QUICK="1", IMSAGW_MODEL_REPS="1", IMSAGW_MODEL_ROUNDS=str(rounds),
               IMSAGW_MODEL_SET=which)
    p = subprocess.run(
        ["valgrind", "--tool=callgrind", "--cache-sim=yes", *CACHES,
         "--toggle-collect=*Worker<P>::poll", f"--callgrind-out-file={out_file}", exe],
        env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"bench_model: {exe} failed:\n{p.stderr[-3000:]}")
    frames = [int(m) for m in re.findall(r"MODEL frames=(\d+)", p.stderr)]
    if len(frames) != 1:
        sys.exit(f"bench_model: no frame count in the output:\n{p.stderr[-2000:]}")
    events, totals = None, None
    for line in open(out_file):
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("totals:") or line.startswith("summary:"):
            totals = [int(x) for x in line.split()[1:]]
    os.unlink(out_file)
    if not events or not totals:
        sys.exit("bench_model: no totals in callgrind's output")
    return dict(zip(events, totals)), frames[0]


def per_frame(exe, legs, which, r1, r2):
    (a, fa), (b, fb) = run(exe, legs, which, r1), run(exe, legs, which, r2)
    frames = fb - fa
    if frames <= 0:
        sys.exit(f"bench_model: no frames between {r1} and {r2} rounds")
    d = {k: (b.get(k, 0) - a.get(k, 0)) / frames for k in b}
    l1 = d.get("I1mr", 0) + d.get("D1mr", 0) + d.get("D1mw", 0)
    ll = d.get("ILmr", 0) + d.get("DLmr", 0) + d.get("DLmw", 0)
    return {"instructions": d.get("Ir", 0), "l1_misses": l1, "ll_misses": ll,
            "i1_misses": d.get("I1mr", 0), "data_refs": d.get("Dr", 0) + d.get("Dw", 0),
            "cycles": d.get("Ir", 0) + 10 * l1 + 100 * ll, "frames": frames}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rev")
    ap.add_argument("--legs", default="10,100000")
    ap.add_argument("--sets", default="hot,spread")
    ap.add_argument("--rounds", default="10,30")
    ap.add_argument("--out")
    args = ap.parse_args()
    r1, r2 = (int(x) for x in args.rounds.split(","))
    print(f"== building {args.rev}", flush=True)
    old = build(worktree(args.rev))
    print("== building the working tree", flush=True)
    new = build(ROOT)
    rows = []
    for legs in (int(x) for x in args.legs.split(",")):
        for which in args.sets.split(","):
            o = per_frame(old, legs, which, r1, r2)
            n = per_frame(new, legs, which, r1, r2)
            rows.append({"legs": legs, "set": which, "old": o, "new": n})
            print(f"  {legs} legs, {which}: done", flush=True)
    os.unlink(old)
    os.unlink(new)
    print(f"\n# worker cost per received frame, simulated (callgrind; {args.rev} old, working "
          f"tree new; rounds {r2} - {r1})")
    print("| legs | set | instructions old | new | L1 misses old | new | of which code | "
          "LL misses old | new | est. cycles old | new | new / old |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        o, n = r["old"], r["new"]
        print(f"| {r['legs']} | {r['set']} | {o['instructions']:.0f} | {n['instructions']:.0f} "
              f"| {o['l1_misses']:.1f} | {n['l1_misses']:.1f} "
              f"| {o['i1_misses']:.1f} / {n['i1_misses']:.1f} | {o['ll_misses']:.1f} "
              f"| {n['ll_misses']:.1f} | {o['cycles']:.0f} | {n['cycles']:.0f} "
              f"| {n['cycles'] / o['cycles']:.3f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"rev": args.rev, "rounds": [r1, r2], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()

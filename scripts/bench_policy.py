"""What the Iq policy (gm filter, tman policer, ds marking) costs per frame at many legs,
against the worker bench's own method: runs `cargo bench --bench worker` alternately with
IMSAGW_BENCH_POLICY=1 (the 'on' turns carry a filter, a policer and a DSCP on every leg) and
=control (the same commands with empty policies), pinned to one core, and compares the two
"on / off" ratios. At 100 000 legs the bench's ratio moves by +-15 % between runs on a
shared VM, and its control shows a bias of its own; the policy's cost is what the real
ratio adds to the control's.

    python3 scripts/bench_policy.py [--runs N] [--legs L] [--core C]
"""

import argparse
import json
import os
import statistics
import subprocess

ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, default=15)
ap.add_argument("--legs", type=int, default=100000)
ap.add_argument("--core", type=int, default=1)
args = ap.parse_args()

build = subprocess.run(
    ["cargo", "bench", "-p", "dataplane", "--bench", "worker", "--no-run", "--message-format=json"],
    check=True, capture_output=True, text=True,
)
exe = None
for line in build.stdout.splitlines():
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "worker" and m.get("executable"):
        exe = m["executable"]
assert exe, "the worker bench's executable"


def run(mode):
    env = dict(os.environ, IMSAGW_BENCH_LEGS=str(args.legs), IMSAGW_BENCH_POLICY=mode)
    p = subprocess.Popen(["taskset", "-c", str(args.core), exe, "--bench"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    section = False
    for line in p.stdout:
        if line.startswith("# worker cost per received frame with a source filter"):
            section = True
        if section and line.startswith(f"| {args.legs} |"):
            p.kill()
            p.wait()
            c = [x.strip() for x in line.strip().strip("|").split("|")]
            return float(c[2]) / float(c[1]), float(c[5]) / float(c[4])
    raise SystemExit("no policy row in the bench's output")


ratios = {"1": ([], []), "control": ([], [])}
for i in range(args.runs):
    for mode in (["1", "control"] if i % 2 == 0 else ["control", "1"]):
        hot, spread = run(mode)
        ratios[mode][0].append(hot)
        ratios[mode][1].append(spread)
        print(f"run {i} {mode:7}: on/off hot {hot:.3f} spread {spread:.3f}", flush=True)


def med(v):
    return statistics.median(v)


print(f"\n{args.legs} legs, {args.runs} runs each, interleaved; on/off medians (min-max):")
for mode, name in (("1", "policy"), ("control", "control")):
    h, s = ratios[mode]
    print(f"  {name:8} hot {med(h):.3f} ({min(h):.3f}-{max(h):.3f})  spread {med(s):.3f} ({min(s):.3f}-{max(s):.3f})")
ph, ps = ratios["1"]
ch, cs = ratios["control"]
print(f"  policy / control: hot {med(ph) / med(ch):.3f}, spread {med(ps) / med(cs):.3f}")

#!/usr/bin/python3
"""Turns the in-process benchmarks' tables into rows of the performance report.

    bench_rows.py tls|dtls|worker FILE      rows (tab-separated: workload, metric, unit, side,
                                            value) of `cargo bench --bench tls|dtls|worker`
    bench_rows.py memcpy                    the memcpy floor, Gbit/s (one 64 MiB copy, best
                                            of 5 rounds of 8)

Used by scripts/bench.sh; results.tsv is what scripts/bench_report.py reads.
"""
import sys
import time


def cells(line):
    return [x.strip() for x in line.strip().strip("|").split("|")]


def row(*fields):
    print("\t".join(str(f) for f in fields))


def tls(path):
    for line in open(path):
        c = cells(line)
        if len(c) != 4 or not c[1][:1].isdigit():
            continue
        ours, floor = float(c[1].split()[0]), float(c[2].split()[0])
        if c[0].startswith("full handshakes"):
            w, m, u = ("TLS handshakes (in-process)",
                       "full handshakes/s, server side, P-256 + X25519, TLS 1.3", "handshakes/s")
        elif "TLS -> TCP" in c[0]:
            w, m, u = "TLS -> TCP relay (in-process)", "payload throughput per core", "Gbit/s"
        else:
            w, m, u = "TLS -> TLS relay (in-process)", "payload throughput per core", "Gbit/s"
        row(w, m, u, "imsagw", ours)
        row(w, m, u, "rustls in-process", floor)


def dtls(path):
    for line in open(path):
        c = cells(line)
        if len(c) != 4 or not c[1][:1].isdigit():
            continue
        ours = float(c[1].split()[0])
        if c[0].startswith("DTLS 1.2 handshakes"):
            w, m, u = ("DTLS handshakes (in-process)",
                       "handshakes/s, server side, cookie, P-256, client cert pinned",
                       "handshakes/s")
        elif "DTLS <-> UDP" in c[0]:
            w, m, u = ("DTLS <-> UDP relay (in-process)",
                       "200-byte datagrams/s per core, both ways", "datagrams/s")
        else:
            w, m, u = ("UDP <-> UDP relay (in-process)",
                       "200-byte datagrams/s per core, both ways", "datagrams/s")
        row(w, m, u, "imsagw", ours)
        if c[2][:1].isdigit():
            row(w, m, u, "dimpl in-process", float(c[2].split()[0]))


def worker(path):
    section = None
    hot10 = None
    for line in open(path):
        if line.startswith("#"):
            section = line
            continue
        c = cells(line)
        if not c or not c[0][:1].isdigit():
            continue
        # The policy table's heading also says "cost per received frame": it goes first.
        if "with a source filter" in (section or ""):
            legs = c[0]
            for kind, off, on in (("hot", c[1], c[2]), ("spread", c[4], c[5])):
                metric = f"ns per frame, {kind} set, {legs} legs, filter + policer + DSCP on"
                row("cost per packet with the Iq policy", metric, "ns", "imsagw", on)
                row("cost per packet with the Iq policy", metric, "ns", "same legs, policy off",
                    off)
        elif "IPv6 access legs" in (section or ""):
            legs = c[0]
            for kind, v4, v6 in (("hot", c[1], c[2]), ("spread", c[4], c[5])):
                metric = f"ns per frame, {kind} set, {legs} legs, access legs on IPv6"
                row("cost per packet, IPv6 against IPv4", metric, "ns", "imsagw", v6)
                row("cost per packet, IPv6 against IPv4", metric, "ns", "same run, all IPv4",
                    v4)
        elif "cost per received frame" in (section or ""):
            legs = c[0]
            # The baseline of this sweep: the same worker with 10 legs, hot set, same run.
            hot10 = hot10 or c[2]
            for kind, v in (("hot", c[2]), ("cold", c[3])):
                metric = f"ns per frame, {kind} set, {legs} legs"
                row("cost per packet vs legs", metric, "ns", "imsagw", v)
                row("cost per packet vs legs", metric, "ns", "hot set at 10 legs", hot10)
        elif "relayed throughput" in (section or "") and c[0] == "1":
            row("TCP -> TCP relay (in-process)", "payload throughput per core, 1 pair", "Gbit/s",
                "imsagw", c[1])


def memcpy():
    src = bytearray(16384 * 4096)
    dst = bytearray(len(src))
    best = 0
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(8):
            dst[:] = src
        best = max(best, 8 * len(src) * 8 / (time.perf_counter() - t) / 1e9)
    print(f"{best:.1f}")


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "memcpy":
        memcpy()
    else:
        {"tls": tls, "dtls": dtls, "worker": worker}[kind](sys.argv[2])

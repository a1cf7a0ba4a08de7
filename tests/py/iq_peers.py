#!/usr/bin/python3
"""Kernel peers for the Iq packages test (tests/tests/iq_packages_dpdk.rs), run inside the
UE namespaces. Each subcommand prints one result line.

  udp-send  BIND TO SIZE RATE SECONDS   datagrams of SIZE bytes at RATE IP bytes/s
            -> SENT n=N ip_bytes=B secs=S
  udp-count BIND SECONDS                counts datagrams until SECONDS pass without one
            -> GOT n=N bytes=B
  tcp-sink  BIND BYTES                  accepts one connection, reads BYTES
            -> GOT bytes=N sha=HEX secs=S
  tcp-send  TO BYTES                    connects and sends BYTES of a fixed pattern
            -> SENT bytes=N sha=HEX secs=S
  tcp-echo  BIND                        accepts one connection, echoes until EOF
  tcp-roundtrip TO BYTES                sends BYTES, reads them back -> ECHOED ok=1|0
  tcp-try   TO TIMEOUT                  -> TRY result=connected|refused|timeout
"""

import hashlib
import socket
import sys
import time


def addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def pattern(n):
    block = bytes((i * 7 + 3) & 0xFF for i in range(65536))
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])


def udp_send(bind, to, size, rate, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(addr(bind))
    payload = b"\x5a" * size
    ip_bytes = size + 28
    gap = ip_bytes / rate
    start = time.monotonic()
    n = 0
    while True:
        due = start + n * gap
        now = time.monotonic()
        if due - start >= seconds:
            break
        if due > now:
            time.sleep(due - now)
        s.sendto(payload, addr(to))
        n += 1
    secs = time.monotonic() - start
    print(f"SENT n={n} ip_bytes={n * ip_bytes} secs={secs:.3f}", flush=True)


def udp_count(bind, quiet):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(addr(bind))
    print("READY", flush=True)
    s.settimeout(60)
    n = total = 0
    try:
        while True:
            data = s.recv(65536)
            n += 1
            total += len(data)
            s.settimeout(quiet)
    except socket.timeout:
        pass
    print(f"GOT n={n} bytes={total}", flush=True)


def listen(bind):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(addr(bind))
    ls.listen(1)
    print("READY", flush=True)
    c, _ = ls.accept()
    return c


def tcp_sink(bind, want):
    c = listen(bind)
    h = hashlib.sha256()
    got = 0
    start = time.monotonic()
    while got < want:
        d = c.recv(65536)
        if not d:
            break
        h.update(d)
        got += len(d)
    secs = time.monotonic() - start
    print(f"GOT bytes={got} sha={h.hexdigest()} secs={secs:.3f}", flush=True)
    c.close()


def tcp_send(to, n):
    data = pattern(n)
    c = socket.create_connection(addr(to), timeout=30)
    c.settimeout(None)
    start = time.monotonic()
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    secs = time.monotonic() - start
    print(f"SENT bytes={n} sha={hashlib.sha256(data).hexdigest()} secs={secs:.3f}", flush=True)


def tcp_echo(bind):
    c = listen(bind)
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()


def tcp_roundtrip(to, n):
    data = pattern(n)
    c = socket.create_connection(addr(to), timeout=30)
    back = bytearray()
    sent = 0
    c.settimeout(30)
    while len(back) < n:
        if sent < n:
            sent += c.send(data[sent:sent + 16384])
        try:
            c.settimeout(0.01 if sent < n else 30)
            d = c.recv(65536)
            if not d:
                break
            back += d
        except socket.timeout:
            pass
    print(f"ECHOED ok={int(bytes(back) == data)} bytes={len(back)}", flush=True)


def tcp_try(to, timeout):
    try:
        c = socket.create_connection(addr(to), timeout=timeout)
        c.close()
        r = "connected"
    except ConnectionRefusedError:
        r = "refused"
    except (socket.timeout, TimeoutError):
        r = "timeout"
    print(f"TRY result={r}", flush=True)


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "udp-send":
        udp_send(args[0], args[1], int(args[2]), float(args[3]), float(args[4]))
    elif cmd == "udp-count":
        udp_count(args[0], float(args[1]))
    elif cmd == "tcp-sink":
        tcp_sink(args[0], int(args[1]))
    elif cmd == "tcp-send":
        tcp_send(args[0], int(args[1]))
    elif cmd == "tcp-echo":
        tcp_echo(args[0])
    elif cmd == "tcp-roundtrip":
        tcp_roundtrip(args[0], int(args[1]))
    elif cmd == "tcp-try":
        tcp_try(args[0], float(args[1]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)

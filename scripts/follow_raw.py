#!/usr/bin/python3
"""Splits tshark's `-z follow,tcp,raw,N` output (read from stdin) into the two directions:
argv[1] gets what the stream's first sender (the TCP client) sent, argv[2] the rest."""
import sys

client, server = bytearray(), bytearray()
started = False
for line in sys.stdin:
    if line.startswith("Node 1:"):
        started = True
        continue
    if not started or line.startswith("==="):
        continue
    data = line.strip()
    if not data:
        continue
    # Lines of the second node are indented with a tab.
    (server if line.startswith("\t") else client).extend(bytes.fromhex(data))
open(sys.argv[1], "wb").write(client)
open(sys.argv[2], "wb").write(server)

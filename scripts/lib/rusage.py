"""Runs a command and writes the CPU time it cost (user + system seconds of the command, its
threads and the children it waited for, plus this wrapper's own) to a file, so a benchmark
can keep the load generator apart from what the relay under test costs.

    python3 scripts/lib/rusage.py OUT_FILE COMMAND [ARGS...]

Exits with the command's status.
"""

import os
import resource
import sys

out, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, child = os.wait4(pid, 0)
me = resource.getrusage(resource.RUSAGE_SELF)
seconds = child.ru_utime + child.ru_stime + me.ru_utime + me.ru_stime
with open(out, "w") as f:
    f.write(f"{seconds:.4f}\n")
sys.exit(os.waitstatus_to_exitcode(status))

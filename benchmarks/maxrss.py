#!/usr/bin/python3
"""Runs a command and appends its peak resident set to a file: one line "RANK KB".

    [mpiexec -n R] benchmarks/maxrss.py OUT -- COMMAND [ARGS ...]

The peak is getrusage(RUSAGE_CHILDREN).ru_maxrss of the command (Linux: kilobytes, the largest
VmHWM of the process and of any child it waited for), so the figure is the command's own, not
this wrapper's. RANK is Open MPI's OMPI_COMM_WORLD_RANK (or PMI_RANK, or 0). The command's exit
status is this script's.
"""
import os
import resource
import subprocess
import sys


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 1
    rc = subprocess.call(sys.argv[3:])
    kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    rank = os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0"))
    with open(sys.argv[1], "a") as f:
        f.write("%s %d\n" % (rank, kb))
    return rc


if __name__ == "__main__":
    sys.exit(main())

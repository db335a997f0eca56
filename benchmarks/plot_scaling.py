#!/usr/bin/python3
"""Plots the CSV of jobs/scaling.sbatch: tokens/s and parallel efficiency against ranks x threads.

    benchmarks/plot_scaling.py scaling.csv [--out scaling.png]

One curve per (mode, threads per rank): strong scaling (the global batch fixed) and weak scaling
(the batch grows with the ranks). Needs Debian's python3-matplotlib.
"""
import argparse
import collections
import csv
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--out", default=None, help="PNG to write (default: the CSV's name, .png)")
    args = ap.parse_args()
    try:
        rows = list(csv.DictReader(open(args.csv)))
    except OSError as e:
        print("plot_scaling: %s" % e, file=sys.stderr)
        return 1
    need = {"ranks", "threads", "mode", "tokens_per_s", "efficiency"}
    if not rows or not need <= set(rows[0]):
        print("plot_scaling: %s: expected a header with %s" % (args.csv, ", ".join(sorted(need))),
              file=sys.stderr)
        return 1
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    curves = collections.defaultdict(list)
    for r in rows:
        curves[(r["mode"], int(r["threads"]))].append(
            (int(r["ranks"]) * int(r["threads"]), float(r["tokens_per_s"]), float(r["efficiency"])))
    for (mode, t), pts in sorted(curves.items()):
        pts.sort()
        label = "%s, %d thread%s per rank" % (mode, t, "s" if t > 1 else "")
        style = "-o" if mode == "strong" else "--s"
        a1.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
        a2.plot([p[0] for p in pts], [p[2] for p in pts], style, label=label)
    for a, title, ylabel in ((a1, "Throughput", "tokens/s"), (a2, "Parallel efficiency", "efficiency")):
        a.set_xscale("log", base=2)
        a.set_xlabel("cores (ranks x threads)")
        a.set_ylabel(ylabel)
        a.set_title(title)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    a2.axhline(1.0, color="gray", lw=0.8)
    fig.tight_layout()
    out = args.out or (args.csv[:-4] if args.csv.endswith(".csv") else args.csv) + ".png"
    fig.savefig(out, dpi=100)
    print("plot_scaling: wrote %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""The demo's report: a summary of a pipeline's run directories and PNG curves of their metrics.

    scripts/report.py RUN [--phases FILE] [--no-plots] [--proxima BIN]

RUN holds the stages' run directories sft/, rm/, ppo/ and eval.json (proxima eval --policy).
Prints the summary: pi_base vs tuned gold accuracy (sampled and greedy), the reward model's
held-out accuracy, the KL to pi_base, and, with --phases (lines "PHASE SECONDS"), the wall time
of each phase. Writes RUN/plots/*.png from the metrics.jsonl and timings.jsonl files, one per
plot of the stages' metrics tables, as `proxima metrics --json` lists them (PPO's reward, KL and
beta, gold accuracy, policy and value losses, clip fractions and generation throughput; SFT's
loss and tokens/s; the reward model's accuracy). Plots need Debian's
python3-matplotlib (under /usr/bin/python3); without it the summary still prints and the
script says so.
"""
import argparse
import json
import os
import subprocess
import sys


def records(path, phase):
    """The JSON records of path whose phase is `phase`, in file order ([] if no file)."""
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    r = json.loads(line)
                    if r.get("phase") == phase:
                        out.append(r)
    return out


def last(recs, key):
    for r in reversed(recs):
        if r.get(key) is not None:
            return r[key]
    return None


def fmt(x, spec=".3f"):
    """A number, or n/a where the run had none (no reference answers, no reward model)."""
    return "n/a" if x is None else format(x, spec)


def summary(run, phases):
    ev_path = os.path.join(run, "eval.json")
    ev = json.load(open(ev_path)) if os.path.exists(ev_path) else {}
    tuned, base = ev.get("tuned") or {}, ev.get("pi_base") or {}
    rm = records(os.path.join(run, "rm", "metrics.jsonl"), "rm")
    ppo = records(os.path.join(run, "ppo", "metrics.jsonl"), "ppo")
    lines = ["Summary (%s)" % run, ""]
    lines.append("%-40s %10s %10s" % ("", "pi_base", "tuned"))
    for key, name in (("gold_accuracy_sampled", "gold accuracy, sampled answers"),
                      ("gold_accuracy_greedy", "gold accuracy, greedy answers"),
                      ("mean_reward", "mean normalised reward")):
        lines.append("%-40s %10s %10s" % (name, fmt(base.get(key)), fmt(tuned.get(key))))
    lines.append("%-40s %10s %10s" % ("KL(tuned || pi_base) per answer", "",
                                      fmt(ev.get("kl_to_base"))))
    lines.append("%-40s %10s" % ("reward model held-out pair accuracy",
                                 fmt(last(rm, "heldout_accuracy"))))
    kls = [r["kl"] for r in ppo if r.get("kl") is not None]
    if kls:
        lines.append("%-40s %10s" % ("PPO mean KL, largest in any iteration", fmt(max(kls))))
    rollouts = os.path.join(run, "ppo", "rollouts")
    if os.path.isdir(rollouts):
        files = [f for f in os.listdir(rollouts) if f.startswith("rollouts-")]
        lines.append("%-40s %10d  (in ppo/rollouts/)" % ("PPO rollout buffers", len(files)))
    if ev:
        lines.append("(%d held-out prompts, sampled at temperature %g)" %
                     (ev.get("n_prompts", 0), ev.get("temperature", 1)))
    if phases:
        lines += ["", "%-40s %10s" % ("wall time", "")]
        total = 0.0
        for name, sec in phases:
            total += sec
            lines.append("%-40s %9.0fs" % (name, sec))
        lines.append("%-40s %9.0fs" % ("all", total))
    return "\n".join(lines)


def metric_tables(proxima):
    """Every stage's metrics and plots, as `proxima metrics --json` lists them (stage.h), or
    None with the reason printed when proxima cannot say."""
    try:
        out = subprocess.run([proxima, "metrics", "--json", "run.log_level=warn"], check=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout
        return json.loads(out)
    except (OSError, subprocess.CalledProcessError, ValueError) as e:
        print("report: cannot list the metrics with '%s metrics --json' (%s): no plots" %
              (proxima, e), file=sys.stderr)
        return None


def plots(run, proxima):
    """RUN/plots/<plot>.png for every plot of every stage's table: each metric drawn in it is a
    curve of its values in the stage's metrics.jsonl (timings.jsonl for a timing) against the
    step; an eval metric also takes its value at step 0 from the record of phase <stage>_eval."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: no matplotlib under %s (Debian: python3-matplotlib): no plots" %
              sys.executable, file=sys.stderr)
        return []
    tables = metric_tables(proxima)
    if tables is None:
        return []
    out = os.path.join(run, "plots")
    os.makedirs(out, exist_ok=True)
    written = []
    for table in tables:
        stage, unit = table["stage"], table["unit"]
        files = {f: os.path.join(run, stage, f) for f in ("metrics.jsonl", "timings.jsonl")}
        recs = {f: records(path, stage) for f, path in files.items()}
        before = records(files["metrics.jsonl"], stage + "_eval")
        for plot in table["plots"]:
            curves = []
            for m in table["metrics"]:
                if m["plot"] != plot["name"]:
                    continue
                pts = [(r["step"], r[m["name"]]) for r in recs[m["file"]]
                       if r.get(m["name"]) is not None]
                if m["eval_only"] and before and before[0].get(m["name"]) is not None:
                    pts = [(0, before[0][m["name"]])] + pts
                curves.append((m["curve"], pts, 1 if m["axis"] == "right" else 0))
            if not any(pts for _, pts, _ in curves):
                continue
            fig, ax = plt.subplots(figsize=(7, 4))
            axes = [ax, None]
            for label, pts, side in curves:
                if not pts:
                    continue
                if side == 1 and axes[1] is None:
                    axes[1] = ax.twinx()
                a = axes[side]
                a.plot([p[0] for p in pts], [p[1] for p in pts], label=label,
                       color="C%d" % len(a.get_lines() + ax.get_lines()),
                       marker="o" if len(pts) < 30 else None, markersize=3)
                a.set_ylabel(label if side == 1 else plot["ylabel"])
            handles = [line for a in axes if a for line in a.get_lines()]
            ax.legend(handles, [h.get_label() for h in handles], loc="best", fontsize=8)
            ax.set_xlabel("%s %s" % (stage.upper(), unit))
            ax.set_title(plot["title"])
            ax.grid(alpha=0.3)
            fig.tight_layout()
            path = os.path.join(out, plot["name"] + ".png")
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="the pipeline's directory (sft/, rm/, ppo/, eval.json)")
    ap.add_argument("--phases", help='a file of "PHASE SECONDS" lines (wall time per phase)')
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--proxima", default=os.environ.get("PROXIMA_BIN") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "build", "proxima"),
        help="the proxima binary whose `metrics --json` lists what to plot (default: "
             "$PROXIMA_BIN, else build/proxima)")
    args = ap.parse_args()
    if not os.path.isdir(args.run):
        print("report: %s: no such directory" % args.run, file=sys.stderr)
        return 1
    phases = []
    if args.phases and os.path.exists(args.phases):
        for line in open(args.phases):
            parts = line.split()
            if len(parts) == 2:
                phases.append((parts[0], float(parts[1])))
    print(summary(args.run, phases))
    if not args.no_plots:
        written = plots(args.run, args.proxima)
        if written:
            print("\nplots: " + " ".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())

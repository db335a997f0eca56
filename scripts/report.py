#!/usr/bin/python3
"""The demo's report: a summary of a pipeline's run directories and PNG curves of their metrics.

    scripts/report.py RUN [--phases FILE] [--no-plots]

RUN holds the stages' run directories sft/, rm/, ppo/ and eval.json (proxima eval --policy).
Prints the summary: pi_base vs tuned gold accuracy (sampled and greedy), the reward model's
held-out accuracy, the KL to pi_base, and, with --phases (lines "PHASE SECONDS"), the wall time
of each phase. Writes RUN/plots/*.png from the metrics.jsonl and timings.jsonl files: PPO's
reward, KL and beta, gold accuracy, policy and value losses, clip fractions and generation
throughput; SFT's loss and tokens/s; the reward model's accuracy. Plots need Debian's
python3-matplotlib (under /usr/bin/python3); without it the summary still prints and the
script says so.
"""
import argparse
import json
import os
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
    return "-" if x is None else format(x, spec)


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


def plots(run):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: no matplotlib under %s (Debian: python3-matplotlib): no plots" %
              sys.executable, file=sys.stderr)
        return []
    out = os.path.join(run, "plots")
    os.makedirs(out, exist_ok=True)
    ppo = records(os.path.join(run, "ppo", "metrics.jsonl"), "ppo")
    ppo0 = records(os.path.join(run, "ppo", "metrics.jsonl"), "ppo_eval")
    ppo_t = records(os.path.join(run, "ppo", "timings.jsonl"), "ppo")
    sft = records(os.path.join(run, "sft", "metrics.jsonl"), "sft")
    sft_t = records(os.path.join(run, "sft", "timings.jsonl"), "sft")
    rm = records(os.path.join(run, "rm", "metrics.jsonl"), "rm")
    written = []

    def series(recs, key):
        pts = [(r["step"], r[key]) for r in recs if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    def figure(name, title, xlabel, curves, ylabel=None):
        """curves: (label, (xs, ys), axis) with axis 0 (left) or 1 (right)."""
        if not any(c[1][0] for c in curves):
            return
        fig, ax = plt.subplots(figsize=(7, 4))
        axes = [ax, None]
        for label, (xs, ys), side in curves:
            if not xs:
                continue
            if side == 1 and axes[1] is None:
                axes[1] = ax.twinx()
            a = axes[side]
            a.plot(xs, ys, label=label, color="C%d" % len(a.get_lines() + ax.get_lines()),
                   marker="o" if len(xs) < 30 else None, markersize=3)
            a.set_ylabel(label if side == 1 else (ylabel or label))
        handles = [l for a in axes if a for l in a.get_lines()]
        ax.legend(handles, [h.get_label() for h in handles], loc="best", fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = os.path.join(out, name)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    it = "PPO iteration"
    figure("ppo_reward.png", "Reward of the sampled responses", it,
           [("normalised score", series(ppo, "score"), 0),
            ("raw reward-model score", series(ppo, "raw_score"), 1)], "normalised score")
    figure("ppo_kl_beta.png", "KL to pi_base and the KL coefficient", it,
           [("mean KL per response", series(ppo, "kl"), 0), ("beta", series(ppo, "beta"), 1)])
    ex, ey = series(ppo, "eval_gold_accuracy")
    if ppo0 and ppo0[0].get("eval_gold_accuracy") is not None:
        ex, ey = [0] + ex, [ppo0[0]["eval_gold_accuracy"]] + ey
    figure("ppo_gold_accuracy.png", "Gold exact-match accuracy of sampled answers", it,
           [("training prompts (this iteration)", series(ppo, "gold_accuracy"), 0),
            ("held-out prompts", (ex, ey), 0)], "gold accuracy")
    figure("ppo_losses.png", "PPO losses", it,
           [("policy loss (clipped surrogate)", series(ppo, "policy_loss"), 0),
            ("value loss (clipped)", series(ppo, "value_loss"), 1)], "policy loss")
    figure("ppo_clip.png", "Clipping and approximate KL of the updates", it,
           [("policy clip fraction", series(ppo, "clip_fraction"), 0),
            ("value clip fraction", series(ppo, "value_clip_fraction"), 0),
            ("approximate KL", series(ppo, "approx_kl"), 1)], "fraction")
    # generation throughput: response tokens of the iteration / seconds generating
    lens = {r["step"]: r.get("response_length") for r in ppo}
    tx, ty = [], []
    for r in ppo_t:
        s, g = r["step"], r.get("seconds_generate")
        if g and lens.get(s) is not None:
            tx.append(s)
            ty.append(lens[s] * 1.0 / g)
    if tx:  # times the iteration's responses: ppo.batch_size from the run's config.ini
        batch = None
        cfg = os.path.join(run, "ppo", "config.ini")
        if os.path.exists(cfg):
            sect = None
            for line in open(cfg):
                line = line.strip()
                if line.startswith("["):
                    sect = line.strip("[]")
                elif sect == "ppo" and line.startswith("batch_size"):
                    batch = float(line.split("=")[1])
        if batch:
            ty = [y * batch for y in ty]
    figure("ppo_generation_throughput.png", "PPO generation throughput (all ranks)", it,
           [("response tokens/s", (tx, ty), 0)], "tokens/s")
    figure("sft_throughput.png", "SFT training throughput (all ranks)", "SFT step",
           [("tokens/s", series(sft_t, "tokens_per_s"), 0)], "tokens/s")
    figure("sft_loss.png", "SFT loss", "SFT step",
           [("training loss", series(sft, "loss"), 0),
            ("held-out loss", series(sft, "heldout_loss"), 0)], "cross-entropy")
    figure("rm_accuracy.png", "Reward model: pairwise accuracy", "RM step",
           [("training batch", series(rm, "accuracy"), 0),
            ("held-out pairs", series(rm, "heldout_accuracy"), 0)], "accuracy")
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="the pipeline's directory (sft/, rm/, ppo/, eval.json)")
    ap.add_argument("--phases", help='a file of "PHASE SECONDS" lines (wall time per phase)')
    ap.add_argument("--no-plots", action="store_true")
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
        written = plots(args.run)
        if written:
            print("\nplots: " + " ".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())

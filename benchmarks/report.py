#!/usr/bin/python3
"""The table of benchmarks/run: figures, baselines, ratios and issue 9's targets; CSV and plots.

    benchmarks/report.py RESULTS_DIR [--bandwidth GB/s] [--latency us] [--max-nodes P]

Reads RESULTS_DIR/proxima.txt ("result NAME VALUE" lines of the benchmarks) and
RESULTS_DIR/baseline.txt (the same names, measured by the baselines: PyTorch, plain
write + fsync). Writes RESULTS_DIR/table.csv, scaling.csv and, with Debian's python3-matplotlib,
targets.png, ppo_phases.png and scaling.png, and prints the table and the scaling projection.

Scaling model (weak scaling: each node keeps the per-rank work measured here, one rank per node):
    t(p) = t_compute + n_allreduce * [2 (p - 1) / p * bytes / bandwidth + 2 (p - 1) * latency]
the cost of a ring allreduce of `bytes` over p ranks (Patarasuk and Yuan 2009; Thakur et al.
2005). t_compute is the measured 1-rank time with its MPI time taken out. For PPO (the demo
configuration): per iteration ppo.epochs x (batch / minibatch) optimizer steps, each allreduces
the policy's and the value model's gradients (two allreduces, N floats each). For the training
step of gpt6x384: one allreduce of its gradients per step. Efficiency(p) = t(1) / t(p). Left
out: the small collectives (gradient norm, rollout gather, statistics; latency-bound), load
imbalance, the checkpoint (every ppo.checkpoint_every iterations), and contention in the network.
"""
import argparse
import csv
import os
import sys


def read(path):
    d = {}
    try:
        for line in open(path):
            f = line.split()
            if len(f) == 3 and f[0] in ("result", "baseline"):
                try:
                    d[f[1]] = float(f[2])
                except ValueError:
                    pass
    except OSError:
        pass
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--bandwidth", type=float, default=12.5,
                    help="interconnect bandwidth per node, GB/s (default 12.5: 100 Gb/s InfiniBand)")
    ap.add_argument("--latency", type=float, default=2.0,
                    help="per-message latency, microseconds (default 2)")
    ap.add_argument("--max-nodes", type=int, default=64)
    a = ap.parse_args()
    px = read(os.path.join(a.dir, "proxima.txt"))
    base = read(os.path.join(a.dir, "baseline.txt"))
    rows = []  # figure, value, baseline, ratio, target, met, note

    def get(d, k):
        return d.get(k)

    def row(fig, val, bl, target=None, op=">=", note="", ratio=None):
        if ratio is None and val is not None and bl:
            ratio = val / bl
        met = "-"
        if target is not None:
            if ratio is None:
                met = "no data"
            else:
                met = "MET" if (ratio >= target if op == ">=" else ratio <= target) else "not met"
        tgt = "%s %g" % (op, target) if target is not None else "-"
        rows.append((fig, val, bl, ratio, tgt, met, note))

    peak = get(px, "fma_peak_gflop_per_s")
    if peak is not None:  # not measured with --gpt2
        row("fma_peak_gflop_per_s", peak, None, note="FP32 FMA probe, this run (bench_peak)")
    shapes = [sh + pr for sh in ("qkv", "attproj", "fc", "fcproj", "vocab_head")
              for pr in ("", "_dinp", "_dweight")]
    for s in shapes + ["model_mix", "step_mix"]:
        k = "sgemm_%s_gflop_per_s" % s
        if k in px:
            row(k, px[k], peak, note="BLIS via px_blas_sgemm; baseline: FMA peak")
    for m in ("gpt6x384", "gpt4x128"):
        k = "train_%s_tokens_per_s" % m
        if k in px:
            row(k, px[k], get(base, k), 1.3 if m == "gpt6x384" else None,
                note="T1; baseline: PyTorch" if m == "gpt6x384" else "baseline: PyTorch")
    k = "train_gpt6x384_gflop_per_s"
    if k in px:
        row(k, px[k], peak, 0.60, note="T2; baseline: FMA peak")
        if k in base:
            row("torch_" + k, base[k], peak, note="PyTorch's own fraction of the FMA peak")
    # Where the step goes (bench_train's profile of its median step): each part against the
    # step; then what T1 and T2 would be if the weight products (BLIS) were all of the step.
    tok, per = get(px, "train_gpt6x384_tokens_per_s"), get(px, "train_gpt6x384_tokens_per_step")
    step_ms = 1e3 * per / tok if tok and per else None
    for part, what in (("matmul", "BLIS weight products, bias gradients, biases but attproj's and fc's"),
                       ("attention", "attention, forward and backward"),
                       ("optimizer", "AdamW"),
                       ("rest", "LayerNorm, GELU, residuals, embeddings, loss, zeroing")):
        k = "train_gpt6x384_%s_ms" % part
        if k in px and step_ms:
            row(k, px[k], step_ms, note="profile: %s; baseline: the step (ms)" % what)
    k = "train_gpt6x384_matmul_gflop_per_s"
    if k in px:
        row(k, px[k], peak, note="the weight products inside the step; baseline: FMA peak")
        if "sgemm_step_mix_gflop_per_s" in px:
            row("matmul_in_step (GFLOP/s | alone)", px[k], px["sgemm_step_mix_gflop_per_s"],
                note="the same products inside the step / repeated alone (sgemm_step_mix)")
    mm = get(px, "train_gpt6x384_matmul_ms")
    torch_tok = get(base, "train_gpt6x384_tokens_per_s")
    if mm and torch_tok and per:
        row("t1_bound (torch step | matmul)", 1e3 * per / torch_tok, mm,
            note="T1 if all but the products took no time: PyTorch's step / Proxima's products")
    if mm and peak and tok and per:
        gflop = get(px, "train_gpt6x384_gflop_per_s") * per / tok  # effective GFLOP per step
        row("t2_bound (GFLOP/s | peak)", gflop / (mm * 1e-3), peak,
            note="T2 if all but the products took no time")
    b1, b64 = get(px, "gen_gpt6x384_b1_tokens_per_s"), get(px, "gen_gpt6x384_b64_tokens_per_s")
    if b1 is not None:
        torch_b1 = get(base, "gen_gpt6x384_b1_tokens_per_s")
        row("gen_gpt6x384_b1_tokens_per_s", b1, torch_b1, 2.0,
            note="T3b; baseline: PyTorch KV-cache loop")
        for part, more in (("matmul", "; T3b needs the three to sum to <= 0.5"),
                           ("attention", ""), ("rest", "")):
            k = "gen_gpt6x384_b1_%s_ms" % part
            if k in px and torch_b1:
                row(k, px[k], 1e3 / torch_b1,
                    note="profile per token; baseline: PyTorch's whole token (ms)" + more)
        decode, gemm, blas = (get(px, "row_products_%s_ms_per_token" % way)
                              for way in ("decode", "gemm", "blas"))
        if decode is not None and blas is not None:
            row("row_products_ms (decode product | BLAS sgemm_)", decode, blas,
                note="a batch-1 token's products (bench_peak): the KV cache's | PyTorch's BLAS "
                     "call, BLIS's matrix-vector path")
        if decode is not None and gemm is not None:
            row("row_products_ms (decode product | BLIS gemm)", decode, gemm,
                note="a batch-1 token's products (bench_peak): the KV cache's | BLIS's GEMM, "
                     "which packs the whole weight matrix per call")
    if b64 is not None:
        row("gen_gpt6x384_b64_tokens_per_s", b64, b1, 15.0, note="T3a; baseline: Proxima batch 1")
        row("gen_gpt6x384_b64_vs_torch", b64, get(base, "gen_gpt6x384_b64_tokens_per_s"),
            note="baseline: PyTorch batch 64")
    # GPT-2 124M (issue 23, Performance): beside PyTorch on the same shapes and threads
    for k, target, what in (("train_gpt2_124m_tokens_per_s", 1.3, "training step, T 256, B 4"),
                            ("gen_gpt2_124m_b1_tokens_per_s", 1.5, "generation, batch 1"),
                            ("gen_gpt2_124m_b64_tokens_per_s", 1.5, "generation, batch 64")):
        if k in px:
            row(k, px[k], get(base, k), target,
                note="issue 23: %s; baseline: PyTorch" % what)
    for part in ("matmul", "attention", "optimizer", "rest"):
        k = "train_gpt2_124m_%s_ms" % part
        tok, per = get(px, "train_gpt2_124m_tokens_per_s"), get(px, "train_gpt2_124m_tokens_per_step")
        if k in px and tok and per:
            row(k, px[k], 1e3 * per / tok, note="profile; baseline: the step (ms)")
    k = "gen_gpt2_124m_b1_matmul_ms"
    if k in px and get(base, "gen_gpt2_124m_b1_tokens_per_s"):
        row(k, px[k], 1e3 / base["gen_gpt2_124m_b1_tokens_per_s"],
            note="batch-1 token's products; baseline: PyTorch's whole token (ms)")
    # A PPO iteration at GPT-2 124M's shapes (ppo_gpt2.sh): seconds, 2 ranks beside 1 rank
    # (strong scaling: the same 64 prompts; each run has all PX_BENCH_THREADS threads)
    for ph in ("generate", "score", "train", "comm", "checkpoint", "iteration"):
        t1, t2 = get(px, "ppo_gpt2_np1_%s_s" % ph), get(px, "ppo_gpt2_np2_%s_s" % ph)
        if t1 is None and t2 is None:
            continue
        if ph == "comm":  # row() then takes value / baseline
            row("ppo_gpt2_comm_s (np2 | np1)", t2, t1, note="inside MPI calls; ratio t2/t1")
            continue
        row("ppo_gpt2_%s_s (np2 | np1)" % ph, t2, t1, ratio=t1 / t2 if t1 is not None and t2 else None,
            note="seconds per iteration; ratio t1/t2 (> 1: 2 ranks faster)")
    for k, f in ((k, f) for k, f in px.items() if k.startswith("ppo_gpt2_np") and k.endswith("length")):
        row(k, f, None, note="mean response tokens (a random model rarely draws EOS)")
    for r in (1, 2):
        k = "ckpt_write_np%d_gb_per_s" % r
        if k in px:
            row(k, px[k], get(base, k), 0.8, note="T5; baseline: plain pwrite + fsync")
    for r in (1, 2):
        k = "rollout_write_np%d_gb_per_s" % r
        if k in px:
            row(k, px[k], get(base, k), note="one writer; baseline: every rank pwrites its share")
    k = "tokenizer_encode_mb_per_s"
    if k in px:
        row(k, px[k], get(base, k), note="GPT-2 encode, one core; baseline: npm gpt-3-encoder (node)")
        row("tokenizer_encode_mb_per_s (vs 10 MB/s)", px[k], 10.0, 1.0,
            note="issue 22: >= 10 MB/s per core on English prose")
    # PPO: value = 2 ranks, baseline = 1 rank, ratio t1 / t2 (weak scaling: same per-rank batch)
    for ph in ("generate", "score", "train", "comm", "checkpoint", "iteration"):
        t1, t2 = get(px, "ppo_np1_%s_s" % ph), get(px, "ppo_np2_%s_s" % ph)
        if t1 is None and t2 is None:
            continue
        ratio = t1 / t2 if t1 is not None and t2 else None
        if ph == "iteration":
            row("ppo_iteration_s (np2 | np1)", t2, t1, 0.90, ratio=ratio,
                note="T6 weak-scaling efficiency t1/t2")
        elif ph == "comm":
            row("ppo_comm_s (np2 | np1)", t2, t1, ratio=None, note="time inside MPI calls")
        else:
            row("ppo_%s_s (np2 | np1)" % ph, t2, t1, ratio=ratio, note="ratio t1/t2")
    c2, i2 = get(px, "ppo_np2_comm_s"), get(px, "ppo_np2_iteration_s")
    if c2 is not None and i2:
        row("ppo_np2_comm_fraction", c2, i2, note="MPI seconds / iteration seconds, 2 ranks")
    # T4: gradient allreduce overlapped with the backward (bench_train --allreduce, 2 ranks)
    ex = get(px, "allreduce_np2_gpt6x384_exposed_s")
    bl = get(px, "allreduce_np2_gpt6x384_blocking_s")
    if ex is not None or bl is not None:
        row("allreduce_np2_exposed_fraction", ex, bl, 0.20, "<=",
            note="T4; after the last rank's backward: exposed (on) / blocking allreduce (off)")
    on = get(px, "allreduce_np2_gpt6x384_step_on_s")
    off = get(px, "allreduce_np2_gpt6x384_step_off_s")
    if on is not None and off:
        row("allreduce_np2_step_s (on | off)", on, off, ratio=off / on if on else None,
            note="training step, overlap on | off; ratio off/on (> 1: faster)")
    k = "train_gpt6x384_peak_rss_mb"
    if k in px:
        row("mem_train_gpt6x384_mb", px[k], get(px, "train_gpt6x384_mem_estimate_mb"), 1.5, "<=",
            note="T7; peak RSS / px_gpt_bytes estimate")
    idle = get(px, "mem_runtime_idle_mb")
    for r in (1, 2):
        k = "ppo_np%d_peak_rss_mb" % r
        if k in px:
            row("mem_ppo_np%d_mb" % r, px[k], get(px, "ppo_np%d_mem_estimate_mb" % r), 1.5, "<=",
                note="T7; max over ranks / bench_mem estimate")
    if idle is not None:
        row("mem_runtime_idle_mb", idle, None, note="idle proxima process (libraries, MPI, BLIS)")

    # ---- scaling projection ----
    bw, lat = a.bandwidth * 1e9, a.latency * 1e-6
    ps = []
    p = 1
    while p <= a.max_nodes:
        ps.append(p)
        p *= 2
    models = []
    t1, c1 = get(px, "ppo_np1_iteration_s"), get(px, "ppo_np1_comm_s") or 0.0
    gb, steps = get(px, "ppo_grad_bytes_per_step"), get(px, "ppo_steps_per_iteration")
    if t1 and gb and steps:
        models.append(("ppo_demo", t1 - c1, 2 * steps, gb / 2))
    tok, n, bt = (get(px, "train_gpt6x384_tokens_per_s"), get(px, "train_gpt6x384_params"),
                  get(px, "train_gpt6x384_tokens_per_step"))
    if tok and n and bt:
        models.append(("train_gpt6x384", bt / tok, 1, 4 * n))
    proj = []
    for name, tc, nar, byt in models:
        for p in ps:
            comm = nar * (2.0 * (p - 1) / p * byt / bw + 2.0 * (p - 1) * lat)
            proj.append((name, p, tc, comm, tc / (tc + comm)))
    for name, p, tc, comm, eff in proj:
        if p == a.max_nodes:
            row("projected_eff_%s_p%d" % (name, p), eff, None, 0.90,
                note="model: %.1f GB/s, %.1f us" % (a.bandwidth, a.latency), ratio=eff)

    # ---- print ----
    def fmt(x):
        if x is None:
            return "-"
        return "%.4g" % x if abs(x) < 100 else "%.1f" % x
    w = max(len(r[0]) for r in rows) if rows else 20
    print("%-*s %12s %12s %9s %7s %8s  %s" % (w, "figure", "value", "baseline", "ratio", "target",
                                             "met", "what"))
    for fig, val, bl, ratio, tgt, met, note in rows:
        print("%-*s %12s %12s %9s %7s %8s  %s" % (w, fig, fmt(val), fmt(bl),
                                                 "-" if ratio is None else "%.3f" % ratio, tgt,
                                                 met, note))
    if proj:
        print("\nscaling projection (weak scaling, ring allreduce, %.1f GB/s, %.1f us latency):"
              % (a.bandwidth, a.latency))
        print("%-16s %6s %12s %12s %10s" % ("case", "nodes", "compute_s", "allreduce_s",
                                            "efficiency"))
        for name, p, tc, comm, eff in proj:
            print("%-16s %6d %12.4f %12.6f %10.3f" % (name, p, tc, comm, eff))
        m = get(px, "ppo_np1_iteration_s"), get(px, "ppo_np2_iteration_s")
        if all(m):
            print("measured here, ppo_demo 1 -> 2 ranks on one shared node: %.3f" % (m[0] / m[1]))

    with open(os.path.join(a.dir, "table.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["figure", "value", "baseline", "ratio", "target", "met", "what"])
        for r in rows:
            wr.writerow(["" if x is None else x for x in r])
    with open(os.path.join(a.dir, "scaling.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["case", "nodes", "compute_s", "allreduce_s", "efficiency", "bandwidth_gb_s",
                     "latency_us"])
        for r in proj:
            wr.writerow(list(r) + [a.bandwidth, a.latency])

    # ---- plots ----
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: no matplotlib (Debian's python3-matplotlib): no plots", file=sys.stderr)
        return 0
    tg = [r for r in rows if r[4] != "-" and r[3] is not None]
    if tg:
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(tg) + 1.2))
        names = [r[0] for r in tg]
        score = [(r[3] / float(r[4].split()[1])) if r[4].startswith(">=")
                 else (float(r[4].split()[1]) / r[3] if r[3] else 0) for r in tg]
        ax.barh(names, score, color=["tab:green" if r[5] == "MET" else "tab:red" for r in tg])
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xlabel("ratio / target (>= 1: met)")
        ax.invert_yaxis()
        ax.set_title("Issue 9 targets, this run")
        fig.tight_layout()
        fig.savefig(os.path.join(a.dir, "targets.png"), dpi=100)
        plt.close(fig)
    ph = ["generate", "score", "train", "checkpoint"]
    if all(("ppo_np%d_%s_s" % (r, x)) in px for r in (1, 2) for x in ph):
        fig, ax = plt.subplots(figsize=(6, 4))
        bottom = [0.0, 0.0]
        for x in ph:
            v = [px["ppo_np%d_%s_s" % (r, x)] for r in (1, 2)]
            ax.bar(["1 rank", "2 ranks"], v, bottom=bottom, label=x)
            bottom = [bottom[i] + v[i] for i in range(2)]
        for r, xpos in ((1, 0), (2, 1)):
            c = px.get("ppo_np%d_comm_s" % r, 0)
            ax.text(xpos, bottom[xpos], "MPI %.3f s" % c, ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("seconds per iteration")
        ax.set_title("PPO phases, demo config, same per-rank batch")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(a.dir, "ppo_phases.png"), dpi=100)
        plt.close(fig)
    if proj:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, _, _, _ in models:
            pts = [(p, e) for n_, p, _, _, e in proj if n_ == name]
            ax.plot([q[0] for q in pts], [q[1] for q in pts], "-o", label=name)
        m = get(px, "ppo_np1_iteration_s"), get(px, "ppo_np2_iteration_s")
        if all(m):
            ax.plot([2], [m[0] / m[1]], "k*", ms=10, label="ppo_demo measured (1 node, 2 ranks)")
        ax.axhline(0.9, color="gray", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("nodes (one rank each)")
        ax.set_ylabel("weak-scaling efficiency")
        ax.set_title("Projected: %.1f GB/s, %.1f us" % (a.bandwidth, a.latency))
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(a.dir, "scaling.png"), dpi=100)
        plt.close(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())

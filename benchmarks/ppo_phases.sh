#!/usr/bin/env bash
# benchmarks/ppo_phases.sh BUILD_DIR WORK_DIR [--quick] — PPO seconds per phase and peak memory
# per rank of the real `proxima ppo` on configs/demo.ini's model and PPO settings, 1 and 2 ranks
# (called by benchmarks/run; prints "result <figure> <value>" lines and a report).
#
# Setup (short, untimed: only PPO's timing matters here): `proxima data synth` of a small data
# set, 3 SFT steps and a tenth of an epoch of reward-model training, all on 1 rank.
# Then PPO, one OpenMP/BLIS thread per rank, weak scaling: the same per-rank batch at 1 and
# 2 ranks (ppo.batch_size = ranks x b, ppo.minibatch = ranks x b/2, so each rank generates,
# scores and trains on b responses per iteration with the same optimizer steps); b = the demo's
# 128 (64 with --quick), ITERS iterations (4; 3 with --quick), a checkpoint after every one.
# Per phase, the mean over iterations 2.. (the first is warm-up) of timings.jsonl's
# seconds_generate, seconds_score, seconds_train (advantages + PPO epochs, gradient allreduce
# included), seconds_comm (time inside MPI calls, all phases: with no overlap all of it is
# exposed) and seconds (the whole iteration, checkpoint excluded), and the checkpoint's seconds
# from the run's log ("checkpoint ... written in X s").
# Weak-scaling efficiency 1 -> 2 ranks = t1 / t2 of `seconds` (1 is perfect).
# Memory: every rank's peak RSS (benchmarks/maxrss.py), beside bench_mem's estimate for the
# same configuration, and the peak RSS of an idle `proxima config` (the fixed runtime: libraries,
# MPI, BLIS).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$1 work=$2 quick=${3:-}
px=$build/proxima
python=${PX_BENCH_PYTHON:-/usr/bin/python3}
mpiexec=${PX_BENCH_MPIEXEC:-mpiexec}
mpi_flags=()
if "$mpiexec" --version 2>/dev/null | grep -Eq "Open MPI|OpenRTE"; then
  if [ "$(id -u)" = 0 ]; then mpi_flags+=(--allow-run-as-root); fi
  if [ "$(nproc)" -lt 2 ]; then mpi_flags+=(--oversubscribe); fi
fi
b=128 iters=4
[ "$quick" = --quick ] && b=64 iters=3
export OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
cfg=(-c "$root/configs/demo.ini")
mkdir -p "$work"
q=(run.log_level=warn)

echo "== ppo phases: setup in $work (data synth, 3 SFT steps, 0.1 epoch of RM)"
"$px" data synth "${cfg[@]}" --out "$work/data" synth.n_sft=400 synth.n_prefs=400 \
  synth.n_prompts=2048 synth.n_eval=16 "${q[@]}"
"$px" sft "${cfg[@]}" --data "$work/data/sft.h5" --run "$work/sft" sft.steps=3 sft.heldout=32 \
  sft.eval_every=0 "${q[@]}"
"$px" rm "${cfg[@]}" --init "$work/sft" --data "$work/data/prefs.h5" --run "$work/rm" \
  rm.epochs=0.1 rm.heldout=32 rm.norm_samples=64 "${q[@]}"

: >"$work/rss-idle.txt"
"$mpiexec" -n 1 ${mpi_flags[@]+"${mpi_flags[@]}"} "$python" "$root/benchmarks/maxrss.py" \
  "$work/rss-idle.txt" -- "$px" config >/dev/null
awk '{ printf "result mem_runtime_idle_mb %.2f\n", $2 * 1024 / 1e6 }' "$work/rss-idle.txt"

for ranks in 1 2; do
  B=$((ranks * b)) MB=$((ranks * b / 2))
  run=$work/ppo-np$ranks
  set_ppo=(ppo.batch_size=$B ppo.minibatch=$MB ppo.iterations=$iters ppo.checkpoint_every=1
           ppo.eval_every=0)
  echo "== ppo phases: $ranks rank(s) x 1 thread, ppo.batch_size $B (per rank $b), $iters iterations"
  "$build/benchmarks/bench_mem" "${cfg[@]}" "${set_ppo[@]}" >"$work/mem-np$ranks.txt"
  grep -v '^result' "$work/mem-np$ranks.txt"
  : >"$work/rss-np$ranks.txt"
  "$mpiexec" -n "$ranks" ${mpi_flags[@]+"${mpi_flags[@]}"} "$python" "$root/benchmarks/maxrss.py" \
    "$work/rss-np$ranks.txt" -- "$px" ppo "${cfg[@]}" --policy "$work/sft" --reward "$work/rm" \
    --prompts "$work/data/prompts.h5" --eval-prompts "" --run "$run" "${set_ppo[@]}" \
    run.log_level=info 2>&1 | grep -E "ppo it|checkpoint .* written" || true
  [ -s "$run/timings.jsonl" ] || { echo "ppo_phases: $ranks-rank PPO run wrote no timings" >&2; exit 2; }
  awk -v r="$ranks" '$1 == "result" && $2 == "mem_estimate_total_mb" {
    printf "result ppo_np%d_mem_estimate_mb %s\n", r, $3 }' "$work/mem-np$ranks.txt"
  sort -n "$work/rss-np$ranks.txt" | awk -v r="$ranks" '
    { mb = $2 * 1024 / 1e6; if (mb > m) m = mb; printf "  rank %d peak RSS %.1f MB\n", $1, mb }
    END { printf "result ppo_np%d_peak_rss_mb %.2f\n", r, m }'
  # Mean of each timing over iterations 2..; the checkpoint seconds from the log.
  awk -v r="$ranks" '
    {
      step = $0; sub(/.*"step":/, "", step); sub(/[,}].*/, "", step)
      if (step + 0 < 2) next
      n++
      split("seconds_generate seconds_score seconds_train seconds_comm seconds", k, " ")
      for (i = 1; i <= 5; i++) {
        v = $0; if (!sub(".*\"" k[i] "\":", "", v)) continue; sub(/[,}].*/, "", v); s[i] += v
      }
    }
    END {
      split("generate score train comm iteration", o, " ")
      for (i = 1; i <= 5; i++) printf "result ppo_np%d_%s_s %.4f\n", r, o[i], n ? s[i] / n : -1
    }' "$run/timings.jsonl"
  awk -v r="$ranks" '/checkpoint .*ckpt-[0-9]+\.h5 written in/ {
      step = $0; sub(/.*ckpt-/, "", step); sub(/\.h5.*/, "", step)
      sec = $0; sub(/.* written in /, "", sec); sub(/s.*/, "", sec)
      if (step + 0 >= 2) { t += sec; n++ }
    }
    END { printf "result ppo_np%d_checkpoint_s %.4f\n", r, n ? t / n : -1 }' "$run/proxima.log"
done
# What the scaling model needs: floats allreduced per optimizer step (policy + value gradients)
# and optimizer steps per iteration.
awk '/^bench_mem:/ {
  p = $0; sub(/.*\(/, "", p); sub(/M parameters.*/, "", p)
  v = $0; sub(/.*models /, "", v); sub(/M\).*/, "", v)
  printf "result ppo_grad_bytes_per_step %.0f\n", (p + v) * 1e6 * 4 }' "$work/mem-np1.txt"
epochs=$(awk -F= '/^\[ppo\]/ {s = 1} s && $1 ~ /^epochs/ {gsub(/ /, "", $2); print $2; exit}' \
  "$root/configs/demo.ini")
echo "result ppo_steps_per_iteration $((${epochs:-2} * 2))"

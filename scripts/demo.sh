#!/usr/bin/env bash
# The main job: every set-up step, then the demo pipeline on the built-in task with 2 ranks.
#   scripts/demo.sh [RUN_DIR]        (default runs/demo)
# Steps: install missing packages, build, data synth -> sft -> rm -> ppo -> eval. Run again
# after an interruption (Ctrl-C, a time limit), it continues each stage from its checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/demo}
ranks=${PROXIMA_RANKS:-2}

scripts/install-deps.sh
scripts/build.sh build

launch=(mpiexec -n "$ranks")
[ "$(id -u)" -eq 0 ] && launch+=(--allow-run-as-root)
[ "$ranks" -gt "$(nproc)" ] && launch+=(--oversubscribe)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

px() { "${launch[@]}" build/proxima "$@" -c configs/demo.ini; }

# Each phase's wall time, for the summary (seconds, this invocation's).
mkdir -p "$run"
phases=$run/phases.txt
: >"$phases"
phase() {
  local name=$1 start
  shift
  start=$(date +%s.%N)
  "$@"
  awk -v name="$name" -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%s %.1f\n", name, b - a }' \
    >>"$phases"
}

echo "== 1/5 data synth: the built-in arith task"
phase data px data synth --out "$run/data"

echo "== 2/5 sft: the base policy"
phase sft px sft --data "$run/data/sft.h5" --run "$run/sft" --resume auto

echo "== 3/5 rm: the reward model"
phase rm px rm --init "$run/sft" --data "$run/data/prefs.h5" --run "$run/rm" --resume auto

echo "== 4/5 ppo: the tuned policy"
phase ppo px ppo --policy "$run/sft" --reward "$run/rm" --prompts "$run/data/prompts.h5" \
  --eval-prompts "$run/data/eval.h5" --run "$run/ppo" --resume auto

echo "== 5/5 eval: the tuned policy against pi_base on the held-out prompts"
phase eval px eval --policy "$run/ppo" --prompts "$run/data/eval.h5" --out "$run/eval.json"

echo
/usr/bin/python3 scripts/report.py "$run" --phases "$phases"

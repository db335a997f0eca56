#!/usr/bin/env bash
# The main job: every set-up step, then the demo pipeline on the built-in task with 2 ranks.
#   scripts/demo.sh [--config FILE] [--no-setup] [RUN_DIR]      (default runs/demo)
# Steps: install missing packages, build, data synth -> sft -> rm -> ppo -> eval, then the
# summary and plots (scripts/report.py). Run again after an interruption (Ctrl-C, a time limit),
# it continues each stage from its checkpoint and redoes nothing finished.
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/demo.sh [--config FILE] [--no-setup] [RUN_DIR]

Installs missing packages, builds Proxima, then runs the demo pipeline on the built-in arith
task with PROXIMA_RANKS ranks (default 2): data synth -> sft -> rm -> ppo -> eval, and prints a
summary (base vs tuned gold accuracy, reward-model accuracy, KL, wall time per phase) and writes
PNG curves into RUN_DIR/plots. Every stage runs with --resume auto: after an interruption the
same command continues from the last checkpoints.

  RUN_DIR          where data, run directories, eval.json and plots go (default runs/demo)
  --config FILE    configuration (default configs/demo.ini)
  --no-setup       skip installing packages and building; use build/proxima as it is
                   (or the binary named by PROXIMA_BIN)
  -h, --help       show this help
EOF
}
config=$(cd "$(dirname "$0")/.." && pwd)/configs/demo.ini
setup=1
run=
while [ $# -gt 0 ]; do
  case $1 in
    --config) [ $# -ge 2 ] || { echo "demo.sh: --config needs a FILE" >&2; exit 1; }
      config=$2; shift 2 ;;
    --no-setup) setup=0; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "demo.sh: unknown option '$1' (see --help)" >&2; exit 1 ;;
    *) [ -z "$run" ] || { echo "demo.sh: one RUN_DIR only (see --help)" >&2; exit 1; }
      run=$1; shift ;;
  esac
done
[ -r "$config" ] || { echo "demo.sh: cannot read config '$config'" >&2; exit 1; }
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
[ -z "$run" ] || { mkdir -p "$run" && run=$(cd "$run" && pwd); }
[ -z "${PROXIMA_BIN:-}" ] || PROXIMA_BIN=$(cd "$(dirname "$PROXIMA_BIN")" && pwd)/$(basename "$PROXIMA_BIN")
cd "$(dirname "$0")/.."
run=${run:-runs/demo}
ranks=${PROXIMA_RANKS:-2}
proxima=${PROXIMA_BIN:-build/proxima}

if [ "$setup" = 1 ]; then
  scripts/install-deps.sh
  scripts/build.sh build
fi

# Ctrl-C reaches mpiexec, which stops the ranks (they checkpoint if they can); say how to go on.
trap 'echo "demo: interrupted; run the same command again to continue from the last checkpoints" >&2; exit 130' INT TERM

launch=(mpiexec -n "$ranks")
[ "$(id -u)" -eq 0 ] && launch+=(--allow-run-as-root)
[ "$ranks" -gt "$(nproc)" ] && launch+=(--oversubscribe)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

px() { "${launch[@]}" "$proxima" "$@" -c "$config"; }

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
/usr/bin/python3 scripts/report.py "$run" --phases "$phases" --proxima "$proxima"

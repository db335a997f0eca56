#!/usr/bin/env bash
# Submits the whole pipeline as Slurm jobs chained with --dependency=afterok:
#
#   jobs/pipeline.sh CONFIG.ini RUN_ROOT [section.key=value ...]
#
#   data  jobs/data.sbatch  CONFIG RUN_ROOT/data                          (proxima data synth)
#   sft   jobs/sft.sbatch   CONFIG RUN_ROOT/sft  --data RUN_ROOT/data/sft.h5
#   rm    jobs/rm.sbatch    CONFIG RUN_ROOT/rm   --init RUN_ROOT/sft --data RUN_ROOT/data/prefs.h5
#   ppo   jobs/ppo.sbatch   CONFIG RUN_ROOT/ppo  --policy RUN_ROOT/sft --reward RUN_ROOT/rm
#                                                --prompts .../prompts.h5 --eval-prompts .../eval.h5
#   eval  jobs/eval.sbatch  CONFIG RUN_ROOT/eval.json --policy RUN_ROOT/ppo --prompts .../eval.h5
#
# Each stage starts when the previous one has completed successfully (a requeued stage is not
# done yet: the next one keeps waiting); a stage that fails cancels the ones after it
# (--kill-on-invalid-dep=yes). Every stage runs with --resume auto, so submitting the same
# pipeline again after a failure continues each stage where it stopped and redoes nothing that
# finished. The overrides go to every stage (keys are global: one config describes the run).
#
# Environment:
#   PROXIMA              the proxima binary (default: build/proxima beside jobs/, else PATH)
#   PROXIMA_SBATCH       extra sbatch options for every stage, e.g. "--account=abc --qos=normal"
#   PROXIMA_SBATCH_DATA, _SFT, _RM, _PPO   extra sbatch options for one stage, e.g.
#                        PROXIMA_SBATCH_PPO="--time=8:00:00 --ntasks=8 --cpus-per-task=4"
#   PROXIMA_AFTER        a job id the first stage waits for (afterok), if any
# Output: one line per stage on stdout, "STAGE JOBID"; each job's log is
# RUN_ROOT/logs/STAGE-JOBID.out (appended across requeues). Exit status: 0 all submitted,
# 1 bad arguments or a refused submission (the stages already submitted are cancelled).
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 1
fi
jobs_dir=$(cd "$(dirname "$0")" && pwd)
[ -f "$1" ] || { echo "pipeline: error: config $1 not found" >&2; exit 1; }
config=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
mkdir -p "$2/logs"
root=$(cd "$2" && pwd)
shift 2
overrides=("$@")
command -v sbatch >/dev/null || { echo "pipeline: error: sbatch not found (is Slurm installed, SLURM_CONF set?)" >&2; exit 1; }

# The batch scripts find lib.sh and the binary through these (sbatch exports the environment).
export PROXIMA_JOBS=$jobs_dir
if [ -z "${PROXIMA:-}" ] && [ -x "$jobs_dir/../build/proxima" ]; then
  PROXIMA=$(cd "$jobs_dir/.." && pwd)/build/proxima
fi
[ -n "${PROXIMA:-}" ] && export PROXIMA

submitted=()
dep=${PROXIMA_AFTER:-}

# submit STAGE ARGS...: submits jobs/STAGE.sbatch after the previous stage; prints "STAGE JOBID".
submit() {
  local stage=$1 upper id opts
  shift
  upper=$(tr '[:lower:]' '[:upper:]' <<<"$stage")
  opts="${PROXIMA_SBATCH:-} $(printenv "PROXIMA_SBATCH_$upper" || true)"
  local sb=(sbatch --parsable --job-name="proxima-$stage" --output="$root/logs/$stage-%j.out"
    --open-mode=append --kill-on-invalid-dep=yes)
  [ -n "$dep" ] && sb+=(--dependency="afterok:$dep")
  # shellcheck disable=SC2206 # the options are words, as on a command line
  sb+=($opts)
  if ! id=$("${sb[@]}" "$jobs_dir/$stage.sbatch" "$@"); then
    echo "pipeline: error: sbatch refused the $stage stage" >&2
    if [ ${#submitted[@]} -gt 0 ]; then scancel "${submitted[@]}" 2>/dev/null || true; fi
    exit 1
  fi
  id=${id%%;*}
  submitted+=("$id")
  dep=$id
  echo "$stage $id"
}

data=$root/data
submit data "$config" "$data" "${overrides[@]}"
submit sft "$config" "$root/sft" --data "$data/sft.h5" "${overrides[@]}"
submit rm "$config" "$root/rm" --init "$root/sft" --data "$data/prefs.h5" "${overrides[@]}"
submit ppo "$config" "$root/ppo" --policy "$root/sft" --reward "$root/rm" \
  --prompts "$data/prompts.h5" --eval-prompts "$data/eval.h5" "${overrides[@]}"

submit eval "$config" "$root/eval.json" --policy "$root/ppo" --prompts "$data/eval.h5" \
  "${overrides[@]}"

echo "pipeline: submitted ${submitted[*]} (logs in $root/logs; watch with squeue)" >&2

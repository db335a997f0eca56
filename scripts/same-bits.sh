#!/usr/bin/env bash
# Does a change keep every number? Runs the same short pipeline on the demo config with two
# proxima binaries and compares what they wrote, byte for byte:
#   scripts/same-bits.sh [--ranks N] BEFORE AFTER [WORK_DIR]
# BEFORE and AFTER are proxima binaries, or git revisions (built into WORK_DIR/build-REV from a
# clean worktree). The pipeline: data synth, sft, rm, ppo (rollout buffers, held-out evaluation),
# eval, eval of the reward model on pairs, generate and score, with configs/demo.ini shortened
# (the demo's models, data and sampling; fewer records and steps: the script's `short` list). Compared: every data
# set, checkpoint, rollout buffer, metrics.jsonl and config.ini, eval.json and the generate and
# score outputs; not compared: proxima.log and timings.jsonl (wall-clock times).
# Exit 0 when everything is the same, 1 with the list of files that differ.
set -euo pipefail
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
ranks=2
while [ $# -gt 0 ]; do
  case $1 in
    --ranks) ranks=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] && [ $# -le 3 ] || { usage >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
work=${3:-$(mktemp -d /tmp/same-bits.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)

# A binary path as it is; a revision built from a clean worktree of this repository.
binary() {
  if [ -x "$1" ] && [ -f "$1" ]; then (cd "$(dirname "$1")" && echo "$PWD/$(basename "$1")"); return; fi
  local rev src
  rev=$(git -C "$root" rev-parse --short "$1^{commit}") || { echo "same-bits: '$1' is neither a binary nor a revision" >&2; exit 1; }
  src=$work/src-$rev
  if [ ! -x "$work/build-$rev/proxima" ]; then
    rm -rf "$src"
    git -C "$root" worktree add -f --detach "$src" "$rev" -q >&2
    "$src/scripts/build.sh" "$work/build-$rev" >&2
    git -C "$root" worktree remove --force "$src" >&2
  fi
  echo "$work/build-$rev/proxima"
}
before=$(binary "$1")
after=$(binary "$2")

launch=(mpiexec -n "$ranks")
[ "$(id -u)" -eq 0 ] && launch+=(--allow-run-as-root)
[ "$ranks" -gt "$(nproc)" ] && launch+=(--oversubscribe)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
short=(synth.n_sft=3000 synth.n_prefs=3000 synth.n_prompts=512 synth.n_eval=64
       sft.steps=40 sft.eval_every=20 sft.log_every=10 sft.checkpoint_every=20 sft.heldout=128
       rm.epochs=0.5 rm.eval_every=10 rm.checkpoint_every=10 rm.heldout=128 rm.norm_samples=128
       ppo.iterations=4 ppo.batch_size=64 ppo.minibatch=32 ppo.eval_every=2 ppo.rollout_every=2
       ppo.checkpoint_every=2 run.log_level=warn)

# Both runs happen in WORK_DIR/run (the paths are part of config.ini and the checkpoints), then
# move to WORK_DIR/before and WORK_DIR/after.
pipeline() { # BIN NAME
  local bin=$1 d=$work/run
  px() { "${launch[@]}" "$bin" "$@" -c "$root/configs/demo.ini" "${short[@]}"; }
  rm -rf "$d" && mkdir -p "$d"
  px data synth --out "$d/data"
  px sft --data "$d/data/sft.h5" --run "$d/sft"
  px rm --init "$d/sft" --data "$d/data/prefs.h5" --run "$d/rm"
  px ppo --policy "$d/sft" --reward "$d/rm" --prompts "$d/data/prompts.h5" \
    --eval-prompts "$d/data/eval.h5" --run "$d/ppo"
  px eval --policy "$d/ppo" --prompts "$d/data/eval.h5" --out "$d/eval.json" >"$d/eval.txt"
  px eval --reward "$d/rm" --pairs "$d/data/prefs.h5" >"$d/eval-pairs.txt"
  head -n 16 "$d/data/eval.jsonl" >"$d/prompts.jsonl"
  px generate --ckpt "$d/ppo" --prompts "$d/prompts.jsonl" --json >"$d/generate.jsonl"
  px score --reward "$d/rm" --data "$d/data/sft.jsonl" --json >"$d/score.jsonl"
  rm -rf "${work:?}/$2" && mv "$d" "$work/$2"
}

echo "same-bits: before $before"
pipeline "$before" before
echo "same-bits: after  $after"
pipeline "$after" after

differ=0 n=0
while IFS= read -r -d '' f; do
  rel=${f#"$work/before/"}
  case $rel in */proxima.log|*/timings.jsonl|*/.lock) continue ;; esac
  n=$((n + 1))
  if ! cmp -s "$f" "$work/after/$rel"; then echo "differs: $rel"; differ=1; fi
done < <(find "$work/before" -type f -print0 | sort -z)
extra=$(cd "$work/after" && find . -type f ! -name proxima.log ! -name timings.jsonl ! -name .lock | sort |
  while read -r f; do [ -e "$work/before/$f" ] || echo "only after: ${f#./}"; done)
[ -z "$extra" ] || { echo "$extra"; differ=1; }
if [ "$differ" = 0 ]; then
  echo "same-bits: the same bytes in all $n files (work in $work)"
else
  echo "same-bits: differences above (work in $work)"
fi
exit "$differ"

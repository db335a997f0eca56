#!/usr/bin/env bash
# The demo command (scripts/demo.sh, README command 1) on a small config, issue 8's acceptance:
#   a. two runs with the same seed print the same summary numbers, and write the plots;
#   b. a run stopped by Ctrl-C during PPO (SIGINT to the whole foreground process group, as a
#      terminal sends it) exits non-zero with a checkpoint; the same command again resumes PPO
#      (sft and rm are not redone) and ends with the metrics, eval.json and summary of the
#      uninterrupted run.
#
#   tests/test_demo.sh PROXIMA_BINARY
#
# Runs the demo with --no-setup (no package install, no build). Keeps its directory on failure
# (or with PX_DEMO_KEEP=1). About 40 s on an idle 2-core machine.
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
proxima=${1:-}
if [ -z "$proxima" ] || [ ! -x "$proxima" ]; then
  echo "usage: $0 PROXIMA_BINARY" >&2
  exit 2
fi
export PROXIMA_BIN=$proxima
[ "$(id -u)" -ne 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

tmp=$(mktemp -d /tmp/px-demo.XXXXXX)
failures=0
cleanup() {
  if [ "$failures" -eq 0 ] && [ "${PX_DEMO_KEEP:-0}" != 1 ]; then rm -rf "$tmp"; else echo "kept $tmp"; fi
}
trap cleanup EXIT
cd "$tmp" || exit 1

ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}

# The small pipeline (tests/small.ini), with PPO long enough (a few seconds even on an idle
# machine) that a Ctrl-C sent at its first checkpoint stops it well before its end: mpiexec takes
# a moment to pass the stop on to the ranks.
{
  cat "$src/tests/small.ini"
  printf '[run]\nlog_level = info\n[ppo]\niterations = 300\neval_every = 100\n'
} >small.ini

demo() { "$src/scripts/demo.sh" --no-setup --config small.ini "$@"; }
# The summary's numbers: from its table header to the held-out line (no run path, no wall times).
numbers() { sed -n '/^Summary (/,/held-out prompts/p' "$1" | sed 1d; }
same_numbers() {
  [ -n "$(numbers "$1")" ] && [ "$(numbers "$1")" = "$(numbers "$2")" ] ||
    { echo "  summaries differ:"; diff <(numbers "$1") <(numbers "$2"); return 1; }
}
final_ckpt() { echo "$1/checkpoints/$(cat "$1/checkpoints/LATEST")"; }

# ---- a. twice, the same summary -----------------------------------------------------------------
echo "a. the demo twice with the same seed"
demo a >a.out 2>&1 || { fail "demo a exited non-zero"; tail -n 30 a.out; }
demo b >b.out 2>&1 || { fail "demo b exited non-zero"; tail -n 30 b.out; }
check "the summary names pi_base and tuned gold accuracy" grep -q "gold accuracy, sampled answers" a.out
check "both runs print the same summary numbers" same_numbers a.out b.out
check "the summary gives the wall time of every phase" \
  sh -c 'for p in data sft rm ppo eval; do grep -q "^$p  *[0-9]*s$" a.out || exit 1; done'
check "PPO wrote a rollout buffer every 10 iterations (ppo.rollout_every's default)" \
  sh -c '[ "$(ls a/ppo/rollouts/rollouts-*.h5 | wc -l)" -eq 30 ] &&
         grep -q "^PPO rollout buffers  *30 " a.out'
if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
  check "the last rollout buffer recomputes (tests/rollout_check.py)" \
    /usr/bin/python3 "$src/tests/rollout_check.py" a/ppo/rollouts/rollouts-00000300.h5
fi
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  check "a plot for every plot of the metrics tables (proxima metrics --json)" sh -c \
    '[ "$(ls a/plots/*.png | wc -l)" -eq "$("$0" metrics --json | grep -c "\"title\"")" ]' "$proxima"
fi
# The stages' metrics tables against what the run recorded: every key of every record is a
# metric of its stage, in the file the table names, and every metric that is not eval-only is
# in the last record of its file.
tables_match_records() {
  "$proxima" metrics --json >tables.json 2>/dev/null && /usr/bin/python3 - a tables.json <<'PY'
import json, sys
run, tables = sys.argv[1], json.load(open(sys.argv[2]))
bad = []
for t in tables:
    for f in ("metrics.jsonl", "timings.jsonl"):
        recs = [json.loads(l) for l in open("%s/%s/%s" % (run, t["stage"], f))]
        recs = [r for r in recs if r["phase"] == t["stage"]]
        mine = {m["name"]: m for m in t["metrics"] if m["file"] == f}
        seen = set()
        for r in recs:
            seen |= set(r) - {"phase", "step"}
        bad += ["%s/%s: %s is not in the table" % (t["stage"], f, k) for k in seen - set(mine)]
        need = {k for k, m in mine.items() if not m["eval_only"]}
        last = recs[-1] if recs else {}
        bad += ["%s/%s: %s is in no record" % (t["stage"], f, k) for k in need - set(last)]
        plots = {p["name"] for p in t["plots"]}
        bad += ["%s: %s's plot %s is not a plot" % (t["stage"], k, m["plot"])
                for k, m in mine.items() if m["plot"] and m["plot"] not in plots]
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
}
check "proxima metrics lists exactly the keys the stages recorded" tables_match_records

# ---- b. Ctrl-C during PPO, then the same command again ----------------------------------------
echo "b. Ctrl-C during PPO, then the same command"
# (a background job of a script starts with SIGINT ignored; a terminal's job does not)
setsid env --default-signal=INT "$src/scripts/demo.sh" --no-setup --config small.ini c >c1.out 2>&1 </dev/null &
pid=$!
waited=0
until [ -s c/ppo/checkpoints/LATEST ] || [ "$waited" -ge 600 ] || ! kill -0 "$pid" 2>/dev/null; do
  sleep 0.2
  waited=$((waited + 1))
done
sft_before=$(md5sum c/sft/metrics.jsonl c/rm/metrics.jsonl 2>/dev/null)
kill -INT -- "-$pid" 2>/dev/null # the process group, as a terminal's Ctrl-C
wait "$pid"
rc=$?
check "the interrupted demo exits non-zero (rc $rc)" [ "$rc" -ne 0 ]
check "it says how to continue" grep -q "run the same command again to continue" c1.out
stopped=$(cat c/ppo/checkpoints/LATEST 2>/dev/null)
check "PPO stopped before its end, with a checkpoint ($stopped)" \
  sh -c '[ -n "$1" ] && [ "$1" != "$2" ]' _ "$stopped" "$(cat a/ppo/checkpoints/LATEST)"

demo c >c2.out 2>&1 || { fail "demo c (continued) exited non-zero"; tail -n 30 c2.out; }
check "the same command resumes PPO" grep -q "ppo: resuming from" c2.out
check "sft and rm are not redone" [ "$sft_before" = "$(md5sum c/sft/metrics.jsonl c/rm/metrics.jsonl)" ]
check "the resumed PPO's metrics.jsonl equals the uninterrupted run's" \
  cmp -s a/ppo/metrics.jsonl c/ppo/metrics.jsonl
check "its final checkpoint's policy equals the uninterrupted run's" \
  h5diff -q "$(final_ckpt a/ppo)" "$(final_ckpt c/ppo)" /policy
# eval.json without its four paths (they name each run's own files).
results() { grep -v -E '^  "(policy|base|reward|prompts)":' "$1"; }
check "eval.json's results equal the uninterrupted run's" \
  sh -c '[ "$1" = "$2" ]' _ "$(results a/eval.json)" "$(results c/eval.json)"
check "the continued demo prints the same summary numbers" same_numbers a.out c2.out

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all demo checks passed"

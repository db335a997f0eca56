#!/usr/bin/env bash
# The Slurm batch scripts (jobs/) against a real one-node Slurm cluster started here
# (jobs/local/start.sh), issue 7's acceptance:
#   a. jobs/pipeline.sh (data -> sft -> rm -> ppo, afterok) finishes, and its results (data
#      files, every stage's metrics.jsonl, every final checkpoint's /policy /value /reward /optim
#      /state) equal the same pipeline run directly with mpiexec;
#   b. a PPO job stopped once by `scontrol requeue` and once by the time-limit warning
#      (--time=1 --signal=B:USR1@50) resumes and ends with the metrics and final checkpoint of an
#      uninterrupted run;
#   c. a job with a bad config and a job with a missing data file end FAILED, exit 1, with a
#      clear message in their output, not requeued, their run directories' checkpoints untouched
#      (the second under the mpirun launcher);
#   d. jobs/scaling.sbatch runs a small sweep and writes its CSV.
# Also: start.sh is idempotent and stop.sh stops everything it started.
#
#   tests/test_slurm.sh PROXIMA_BINARY
#
# Skips (77) without munged/slurmctld/slurmd/sbatch or without root. Keeps its directory on
# failure (or with PX_SLURM_KEEP=1). Takes about 3 minutes here (2 cores).
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
proxima=${1:-${PX_PROXIMA:-}}
if [ -z "$proxima" ] || [ ! -x "$proxima" ]; then
  echo "usage: $0 PROXIMA_BINARY" >&2
  exit 2
fi
proxima=$(cd "$(dirname "$proxima")" && pwd)/$(basename "$proxima")
for cmd in munged slurmctld slurmd sbatch scontrol h5diff; do
  if ! command -v "$cmd" >/dev/null; then
    echo "SKIP: $cmd not installed (apt-get install --no-install-recommends munge slurmctld slurmd slurm-client hdf5-tools; scripts/install-deps.sh)"
    exit 77
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: needs root to run munged, slurmctld and slurmd (jobs/local/start.sh)"
  exit 77
fi

t_start=$(date +%s)
tmp=$(mktemp -d /tmp/px-slurm.XXXXXX)
chmod 0755 "$tmp" # munged wants every directory above its socket searchable by all
base=$tmp/cluster
failures=0
cleanup() {
  "$src/jobs/local/stop.sh" "$base" >"$tmp/stop.log" 2>&1 || { echo "FAIL: stop.sh:"; cat "$tmp/stop.log"; failures=$((failures + 1)); }
  if [ "$failures" -eq 0 ] && [ "${PX_SLURM_KEEP:-0}" != 1 ]; then
    rm -rf "$tmp"
  else
    echo "kept $tmp (logs: $tmp/*.out, $tmp/*/logs, $base/log)"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
log() { echo "-- $(($(date +%s) - t_start))s: $*"; }

# The launch the direct (reference) runs use: the CTest one (PX_LAUNCH_2) or mpiexec -n 2.
export OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
read -r -a launch2 <<<"${PX_LAUNCH_2:-mpiexec -n 2}"
px2() { "${launch2[@]}" "$proxima" "$@"; }

# ---- the cluster -------------------------------------------------------------------------------
log "starting a one-node Slurm cluster in $base"
if ! start_out=$("$src/jobs/local/start.sh" "$base" 2>"$tmp/start.log"); then
  cat "$tmp/start.log"
  fail "jobs/local/start.sh"
  exit 1
fi
eval "$start_out"
[ -n "${SLURM_CONF:-}" ] || { fail "start.sh printed no SLURM_CONF"; exit 1; }
pids1=$(cat "$base"/run/*.pid)
again=$("$src/jobs/local/start.sh" "$base" 2>"$tmp/start2.log")
check "start.sh is idempotent (same SLURM_CONF, same daemons)" \
  test "$again" = "$start_out" -a "$(cat "$base"/run/*.pid)" = "$pids1"
if command -v ss >/dev/null; then
  check "the daemons listen on loopback only" \
    bash -c "! ss -Hltnp | grep -E 'slurmctld|slurmd' | grep -vq '127\.0\.0\.1:'"
fi

export PROXIMA=$proxima
cd "$tmp" || exit 1

job_state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2; }
job_field() { scontrol show job "$1" 2>/dev/null | grep -o "$2=[^ ]*" | head -1 | cut -d= -f2; }
# Waits until job $1 has ended (up to $2 s) and prints its final state.
wait_job() {
  local s
  for _ in $(seq "$2"); do
    s=$(job_state "$1")
    case $s in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
        echo "$s"
        return
        ;;
    esac
    sleep 1
  done
  echo "STILL-${s:-UNKNOWN}"
}
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
same_groups() { # same_groups A B GROUP...
  local a=$1 b=$2 g
  shift 2
  for g in "$@"; do
    h5diff -q "$a" "$b" "/$g" "/$g" >/dev/null 2>&1 || { echo "  differs: /$g ($a, $b)"; return 1; }
  done
}
final_ckpt() { echo "$1/checkpoints/$(cat "$1/checkpoints/LATEST" 2>/dev/null)"; }
same_run() { # same_run DIR_A DIR_B GROUP...: metrics.jsonl and the final checkpoint's groups
  local a=$1 b=$2
  shift 2
  cmp -s "$a/metrics.jsonl" "$b/metrics.jsonl" || { echo "  metrics differ: $a $b"; return 1; }
  [ "$(cat "$a/checkpoints/LATEST")" = "$(cat "$b/checkpoints/LATEST")" ] || { echo "  LATEST differs"; return 1; }
  same_groups "$(final_ckpt "$a")" "$(final_ckpt "$b")" "$@"
}

# The small pipeline (tests/small.ini: 2-layer 64-wide models, a few steps), logging every step.
{
  cat "$src/tests/small.ini"
  printf '[run]\nlog_level = warn\n[sft]\nlog_every = 1\n[rm]\nlog_every = 1\n'
  printf '[ppo]\niterations = 30\neval_every = 10\nadaptive_kl = 1\n'
} >small.ini

# ---- a. the pipeline, and the same run directly ------------------------------------------------
log "a. jobs/pipeline.sh on the small config"
if ! "$src/jobs/pipeline.sh" small.ini slurm >pipeline.ids 2>pipeline.err; then
  cat pipeline.err
  fail "jobs/pipeline.sh submits"
fi
cat pipeline.ids
log "a. the same pipeline directly with ${launch2[*]}"
d=direct
{ px2 data synth -c small.ini --out $d/data &&
  px2 sft -c small.ini --data $d/data/sft.h5 --run $d/sft --resume auto &&
  px2 rm -c small.ini --init $d/sft --data $d/data/prefs.h5 --run $d/rm --resume auto &&
  px2 ppo -c small.ini --policy $d/sft --reward $d/rm --prompts $d/data/prompts.h5 \
    --eval-prompts $d/data/eval.h5 --run $d/ppo --resume auto &&
  px2 eval -c small.ini --policy $d/ppo --prompts $d/data/eval.h5 --out $d/eval.json; } \
  >direct.out 2>&1 \
  || { cat direct.out; fail "the direct pipeline"; }
while read -r stage id; do
  s=$(wait_job "$id" 180)
  check "pipeline stage $stage (job $id) completed" test "$s" = COMPLETED
done <pipeline.ids
in_order() { # each stage started after the one before it ended
  local prev_end='' stage id
  while read -r stage id; do
    [ -z "$prev_end" ] || [[ ! $(job_field "$id" StartTime) < $prev_end ]] || return 1
    prev_end=$(job_field "$id" EndTime)
  done <pipeline.ids
}
check "pipeline stages ran one after the other (afterok)" in_order
same_data() {
  local f
  for f in sft prefs prompts eval; do cmp -s "slurm/data/$f.h5" "direct/data/$f.h5" || return 1; done
}
check "pipeline data equals the direct run's" same_data
check "pipeline sft equals the direct run's (metrics, final checkpoint)" same_run slurm/sft direct/sft policy optim state
check "pipeline rm equals the direct run's (metrics, final checkpoint)" same_run slurm/rm direct/rm reward optim state
check "pipeline ppo equals the direct run's (metrics, final checkpoint)" \
  same_run slurm/ppo direct/ppo policy value optim state
same_eval() { # every number and example; the file paths differ
  /usr/bin/python3 -c 'import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
for x in (a, b):
    for k in ("policy", "base", "reward", "prompts"):
        x.pop(k, None)
sys.exit(a != b or "tuned" not in a)' slurm/eval.json direct/eval.json
}
check "the final evaluation (eval.json of proxima eval) is there and equal" same_eval

# ---- b. a long PPO job, stopped by scontrol requeue and by the time-limit warning --------------
long=(--iterations 400 ppo.eval_every=50 ppo.checkpoint_every=25)
log "b. the uninterrupted reference (in the background) and the interrupted job"
px2 ppo -c small.ini --policy $d/sft --reward $d/rm --prompts $d/data/prompts.h5 \
  --eval-prompts $d/data/eval.h5 --run ref-long "${long[@]}" >ref-long.out 2>&1 &
ref_pid=$!
jid=$(sbatch --parsable --time=1 --signal=B:USR1@50 -o ppo-long.out "$src/jobs/ppo.sbatch" small.ini \
  ppo-long --policy $d/sft --reward $d/rm --prompts $d/data/prompts.h5 \
  --eval-prompts $d/data/eval.h5 "${long[@]}")
m=ppo-long/metrics.jsonl
# Interruption 1: an administrator's requeue, once the run is under way.
for _ in $(seq 120); do [ "$(lines $m)" -ge 20 ] && break; sleep 0.5; done
at=$(lines $m)
check "scontrol requeue $jid at iteration ~$at" scontrol requeue "$jid"
for _ in $(seq 90); do grep -q 'start 2 ' ppo-long.out && break; sleep 1; done
check "requeued job restarted (start 2)" grep -q 'start 2 ' ppo-long.out
# Interruption 2: the warning Slurm sends 50 s before the 1-minute limit (its timer runs every
# 30 s, so 10-40 s into the start). Should the run get close to its end first on a fast
# machine, send the same signal the same way (to the batch shell) so the test still checks it.
warned=0
for _ in $(seq 120); do
  grep -q 'USR1 (time-limit warning' ppo-long.out && { warned=1; break; }
  if [ "$(lines $m)" -ge 330 ]; then
    echo "   (the time-limit warning has not come by iteration 330: sending it with scancel --signal=USR1 --batch)"
    scancel --signal=USR1 --batch "$jid"
    warned=2
    break
  fi
  sleep 0.5
done
check "time-limit warning delivered to the batch shell (1: by Slurm, 2: by the test): $warned" test "$warned" -gt 0
# Let the rest run: a limit long enough for what remains.
for _ in $(seq 30); do grep -q 'requeueing job' ppo-long.out && break; sleep 1; done
scontrol update JobId="$jid" TimeLimit=10 || true
s=$(wait_job "$jid" 240)
wait "$ref_pid" || { cat ref-long.out; fail "the uninterrupted reference run"; }
check "interrupted job completed ($s)" test "$s" = COMPLETED
check "job was restarted at least twice (Restarts=$(job_field "$jid" Restarts))" test "$(job_field "$jid" Restarts)" -ge 2
check "the requeue stopped it with a checkpoint (exit 3, not requeued by the script)" \
  grep -q 'exit 3) on a TERM' ppo-long.out
check "the warning stopped it with a checkpoint and the script requeued it" \
  grep -q 'stopped (exit 3) after the warning or a preemption: requeueing' ppo-long.out
check "every start ran with --resume auto, output appended" test "$(grep -c -- '--resume auto' ppo-long.out)" -ge 3
check "interrupted run equals the uninterrupted one (metrics, final checkpoint)" \
  same_run ppo-long ref-long policy value optim state

# ---- c. bad config, missing data file ----------------------------------------------------------
log "c. a bad config and a missing data file"
printf '[sft]\nsteps = 12\nbatch_sise = 16\n' >bad.ini
snap() { (cd "$1" && sha256sum checkpoints/* metrics.jsonl); }
snap slurm/sft >sft.before
snap slurm/ppo >ppo.before
j1=$(sbatch --parsable -o bad-config.out "$src/jobs/sft.sbatch" bad.ini slurm/sft --data slurm/data/sft.h5)
j2=$(PROXIMA_LAUNCHER=mpirun sbatch --parsable -o missing-file.out "$src/jobs/ppo.sbatch" small.ini \
  slurm/ppo --policy slurm/sft --reward slurm/rm --prompts slurm/data/nope.h5 --iterations 40)
s1=$(wait_job "$j1" 120)
s2=$(wait_job "$j2" 120)
check "bad-config job FAILED with exit 1 ($s1, $(job_field "$j1" ExitCode))" \
  test "$s1" = FAILED -a "$(job_field "$j1" ExitCode)" = 1:0
check "its output names the file, line and key" grep -q "bad.ini:3: unknown key 'sft.batch_sise'" bad-config.out
check "missing-file job FAILED with exit 1 ($s2, $(job_field "$j2" ExitCode))" \
  test "$s2" = FAILED -a "$(job_field "$j2" ExitCode)" = 1:0
check "its output names the missing file" grep -q 'nope.h5' missing-file.out
check "neither was requeued" test "$(job_field "$j1" Restarts)" = 0 -a "$(job_field "$j2" Restarts)" = 0
check "the sft run's checkpoints and metrics are untouched" bash -c "diff sft.before <(cd slurm/sft && sha256sum checkpoints/* metrics.jsonl)"
check "the ppo run's checkpoints and metrics are untouched" bash -c "diff ppo.before <(cd slurm/ppo && sha256sum checkpoints/* metrics.jsonl)"
check "the ppo run still verifies" "$proxima" ckpt verify "$(final_ckpt slurm/ppo)"

# ---- d. the scaling sweep ----------------------------------------------------------------------
log "d. jobs/scaling.sbatch"
j=$(sbatch --parsable -o scaling.out "$src/jobs/scaling.sbatch" --out scaling.csv --ranks "1 2" \
  --threads "1 2" --steps 8 --skip 2)
s=$(wait_job "$j" 180)
check "scaling job completed ($s)" test "$s" = COMPLETED
csv_ok() {
  [ "$(head -1 scaling.csv)" = ranks,threads,mode,seconds_per_step,tokens_per_s,efficiency,global_batch,steps ] &&
    [ "$(tail -n +2 scaling.csv | grep -cE '^[12],[12],(strong|weak),[0-9.]+,[0-9.]+,[0-9.]+,[0-9]+,8$')" = 6 ] &&
    grep -q '^1,1,strong,.*,1.0000,32,8$' scaling.csv && grep -q '^2,1,weak,.*,64,8$' scaling.csv
}
check "scaling.csv has its header and 6 points (R*T <= 2 CPUs, strong and weak)" csv_ok
cat scaling.csv
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  check "benchmarks/plot_scaling.py turns it into a PNG" \
    sh -c "/usr/bin/python3 '$src/benchmarks/plot_scaling.py' scaling.csv --out scaling.png >/dev/null &&
      [ \$(stat -c %s scaling.png) -gt 10000 ]"
fi

# ---- the end -----------------------------------------------------------------------------------
log "stopping the cluster"
"$src/jobs/local/stop.sh" "$base" >stop1.log 2>&1
token=$(cat "$base/token")
left=$(for p in /proc/[0-9]*; do
  grep -q '^State:[[:space:]]*Z' "$p/status" 2>/dev/null && continue
  tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qx "PROXIMA_SLURM_TOKEN=$token" && echo "${p#/proc/}"
done)
check "stop.sh left none of its processes (left: ${left:-none})" test -z "$left"
log "done: $failures failure(s)"
[ "$failures" -eq 0 ]

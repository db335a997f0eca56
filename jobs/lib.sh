# shellcheck shell=bash
# jobs/lib.sh — what every Proxima batch script shares (sourced by jobs/*.sbatch, not run).
#
#   px_job STAGE CONFIG RUN_DIR [proxima options and section.key=value overrides...]
#
# runs `proxima STAGE -c CONFIG [extras...] --run RUN_DIR --resume auto` (STAGE sft, rm or ppo)
# as one job step, `px_job data CONFIG OUT_DIR [extras...]` runs `proxima data synth` and
# `px_job eval CONFIG OUT.json [extras...]` runs `proxima eval ... --out OUT.json`. It:
#
# - launches with `srun --mpi=pmix` when this Slurm has the PMIx plugin (Debian's Open MPI is
#   built with PMIx only, so plain srun and --mpi=pmi2 cannot start it), else with `mpirun`
#   inside the allocation (PROXIMA_LAUNCHER=srun|mpirun forces one);
# - sets OMP_NUM_THREADS and BLIS_NUM_THREADS to SLURM_CPUS_PER_TASK (1 if unset): OpenMP runs
#   the element-wise kernels and attention, BLIS its GEMMs, never at the same time, so each may
#   use all of the rank's cores;
# - binds deliberately (PROXIMA_BIND=cores, the default, or none): each rank to its own
#   SLURM_CPUS_PER_TASK cores (srun --cpu-bind=cores where the cluster's TaskPlugin can bind,
#   mpirun --map-by slot:PE=N --bind-to core otherwise) and its threads to those cores, one
#   per core (OMP_PLACES=cores OMP_PROC_BIND=close). Where nothing binds the ranks (TaskPlugin
#   task/none), threads are not pinned either: pinning them to "the first core of the ranks'
#   common mask" would stack every rank's threads on the same core;
# - always passes --resume auto, so a first start, a restart after a requeue and a rerun of a
#   finished run (which does nothing) are the same command;
# - runs the step in the background and waits, so that bash can run its traps: USR1 (the
#   warning that `#SBATCH --signal=B:USR1@SECONDS` asks for, and what a preemption sends with
#   SlurmctldParameters=preempt_send_user_signal) is passed on once to the step, whose ranks
#   write a checkpoint at the next step boundary and exit 3. Then, and only then (or when
#   `scontrol show job` shows a PreemptTime), the job requeues itself with `scontrol requeue`.
#   A TERM alone (scancel, a time limit without the warning, an administrator's requeue) is
#   not passed on (Slurm signals the step's tasks itself, and proxima takes a second signal as
#   "stop at once") and never leads to a requeue, so a user's scancel stays cancelled.
#
# Exit status: proxima's (0 done, 1 bad config or input, 2 runtime failure, 3 stopped after a
# checkpoint and not requeued, 128+N killed by signal N).

# The directory of jobs/ (the batch scripts set it before sourcing this file).
: "${px_jobs_dir:=$(dirname "${BASH_SOURCE[0]}")}"

px_log() { echo "proxima-job $(date '+%F %T'): $*"; }

# The proxima binary: $PROXIMA, else the build/ beside jobs/, else proxima on PATH.
px_find_binary() {
  if [ -n "${PROXIMA:-}" ]; then
    px_bin=$PROXIMA
  elif [ -x "$px_jobs_dir/../build/proxima" ]; then
    px_bin=$(cd "$px_jobs_dir/.." && pwd)/build/proxima
  else
    px_bin=$(command -v proxima || true)
  fi
  if [ -z "$px_bin" ] || [ ! -x "$px_bin" ]; then
    px_log "error: no proxima binary (set PROXIMA=/path/to/proxima, or build into $px_jobs_dir/../build)"
    return 1
  fi
}

# Sets px_launch (the launcher's command line, an array) and the thread variables.
px_setup_launch() {
  local threads=${SLURM_CPUS_PER_TASK:-1} launcher=${PROXIMA_LAUNCHER:-} bind=${PROXIMA_BIND:-cores}
  local ntasks=${SLURM_NTASKS:-${PROXIMA_RANKS:-1}}
  export OMP_NUM_THREADS=$threads BLIS_NUM_THREADS=$threads
  if [ -z "$launcher" ]; then
    if [ -n "${SLURM_JOB_ID:-}" ] && command -v srun >/dev/null \
      && srun --mpi=list 2>&1 | grep -qw pmix; then
      launcher=srun
    else
      launcher=mpirun
    fi
  fi
  px_bind_note="ranks and threads not pinned"
  unset OMP_PLACES OMP_PROC_BIND
  case $launcher in
    srun)
      px_launch=(srun --mpi=pmix --ntasks="$ntasks" --cpus-per-task="$threads")
      if [ "$bind" = cores ] && scontrol show config 2>/dev/null \
        | grep -E '^TaskPlugin ' | grep -qE 'task/(affinity|cgroup)'; then
        px_launch+=(--cpu-bind=cores)
        export OMP_PLACES=cores OMP_PROC_BIND=close
        px_bind_note="each rank bound to $threads core(s) (srun --cpu-bind=cores), threads close"
      elif [ "$bind" = cores ]; then
        px_bind_note="not pinned: this cluster's TaskPlugin cannot bind (task/none)"
      fi
      ;;
    mpirun)
      px_launch=(mpirun -n "$ntasks")
      if [ "$(id -u)" -eq 0 ]; then
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
      fi
      if [ "$bind" = cores ]; then
        px_launch+=(--map-by "slot:PE=$threads" --bind-to core)
        export OMP_PLACES=cores OMP_PROC_BIND=close
        px_bind_note="each rank bound to $threads core(s) (mpirun --map-by slot:PE=$threads), threads close"
      else
        px_launch+=(--bind-to none)
      fi
      ;;
    *)
      px_log "error: PROXIMA_LAUNCHER=$launcher: expected srun or mpirun"
      return 1
      ;;
  esac
  px_launcher=$launcher
}

# Whether Slurm has preempted this job (scontrol shows a PreemptTime once it has).
px_preempted() {
  [ -n "${SLURM_JOB_ID:-}" ] \
    && scontrol show job "$SLURM_JOB_ID" 2>/dev/null | grep -q 'PreemptTime=[0-9]'
}

px_on_usr1() {
  px_trapped=1
  if [ "$px_warned" = 1 ]; then
    px_log "USR1 again: already passed on once (a second signal would stop proxima at once)"
    return
  fi
  px_warned=1
  if [ -n "$px_step_pid" ] && kill -0 "$px_step_pid" 2>/dev/null; then
    px_log "USR1 (time-limit warning or preemption): asking the ranks to checkpoint and stop"
    kill -USR1 "$px_step_pid" 2>/dev/null || true
  fi
}

px_on_term() {
  px_trapped=1
  px_terminated=1
  px_log "TERM (cancelled, time limit or requeued by Slurm): the ranks get it from Slurm; not requeueing"
}

# px_run_step ARGS...: runs the launcher with proxima ARGS in the background, waits for it
# (running the traps meanwhile), and sets px_rc to its exit status.
px_run_step() {
  px_warned=0 px_terminated=0 px_trapped=0 px_step_pid=
  trap px_on_usr1 USR1
  trap px_on_term TERM
  "${px_launch[@]}" "$px_bin" "$@" &
  px_step_pid=$!
  local rc prev=0
  while :; do
    px_trapped=0
    wait "$px_step_pid"
    rc=$?
    # wait returns >128 when a trap interrupted it; the step may still be running.
    if [ "$px_trapped" = 1 ] && [ "$rc" -gt 128 ]; then
      prev=$rc
      continue
    fi
    # 127: the step had already been reaped (a signal came just after it ended).
    if [ "$rc" -eq 127 ] && [ "$prev" -ne 0 ] && ! kill -0 "$px_step_pid" 2>/dev/null; then
      rc=$prev
    fi
    break
  done
  trap - TERM
  px_rc=$rc
}

# px_job STAGE CONFIG DIR [extras...]
px_job() {
  local stage=$1
  if [ $# -lt 3 ]; then
    echo "usage: sbatch [options] jobs/$stage.sbatch CONFIG.ini ${2:-RUN_DIR} [proxima options] [section.key=value ...]" >&2
    return 1
  fi
  local config=$2 dir=$3
  shift 3
  px_find_binary || return 1
  px_setup_launch || return 1
  local args
  if [ "$stage" = data ]; then
    args=(data synth -c "$config" "$@" --out "$dir")
  elif [ "$stage" = eval ]; then
    args=(eval -c "$config" "$@" --out "$dir") # dir: the eval.json to write
  else
    args=("$stage" -c "$config" "$@" --run "$dir" --resume auto)
  fi
  px_log "job ${SLURM_JOB_ID:-(none)} on ${SLURM_JOB_NODELIST:-$(hostname -s)}, start $((${SLURM_RESTART_COUNT:-0} + 1)) (SLURM_RESTART_COUNT=${SLURM_RESTART_COUNT:-0})"
  px_log "$px_launcher, ${SLURM_NTASKS:-${PROXIMA_RANKS:-1}} ranks x $OMP_NUM_THREADS threads; $px_bind_note"
  px_log "run: ${px_launch[*]} $px_bin ${args[*]}"
  px_run_step "${args[@]}"
  local rc=$px_rc
  case $rc in
    0)
      px_log "$stage finished (exit 0)"
      return 0
      ;;
    1)
      px_log "error: proxima refused its configuration or input (exit 1; the message is above); not requeued"
      return 1
      ;;
    2)
      px_log "error: proxima failed while running (exit 2; the message is above); not requeued"
      return 2
      ;;
  esac
  # 3: stopped after writing a checkpoint; >128: killed by a signal (the last complete
  # checkpoint stays valid). Requeue only after the warning signal or a preemption.
  if [ "$px_warned" = 1 ] || px_preempted; then
    if [ -z "${SLURM_JOB_ID:-}" ]; then
      px_log "stopped (exit $rc); not a Slurm job: rerun the same command to continue"
      return "$rc"
    fi
    px_log "stopped (exit $rc) after the warning or a preemption: requeueing job $SLURM_JOB_ID; it continues from its checkpoint"
    if scontrol requeue "$SLURM_JOB_ID"; then
      return "$rc"
    fi
    px_log "error: scontrol requeue failed: resubmit the same command to continue (--resume auto)"
    return "$rc"
  fi
  if [ "$rc" -eq 3 ]; then
    local why="a signal from outside the job"
    [ "$px_terminated" = 1 ] && why="a TERM (scancel, the time limit, or an administrator's requeue)"
    px_log "stopped after writing a checkpoint (exit 3) on $why: not requeueing (an administrator's requeue restarts it anyway); else resubmit the same command to continue"
  else
    px_log "error: the step ended with status $rc; not requeued"
  fi
  return "$rc"
}

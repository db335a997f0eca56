#!/usr/bin/env bash
# Stops the one-node Slurm cluster that jobs/local/start.sh BASE started:
#
#   jobs/local/stop.sh BASE [--purge]
#
# Cancels its jobs, then stops slurmd, slurmctld and munged, in that order. It signals only
# processes it can prove are its own: the pid in BASE/run/<daemon>.pid, with that process name,
# and with PROXIMA_SLURM_TOKEN=<BASE/token> in its environment (leftover slurmstepd processes are
# found by the same token). Nothing running (or never started) is not an error: it is idempotent.
# --purge also removes BASE afterwards (only if it holds start.sh's token file).
# Exit status: 0 everything it started is gone; 1 something of its own would not stop.
set -euo pipefail

say() { echo "local-slurm: $*" >&2; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 BASE_DIR [--purge]" >&2
  exit 1
fi
purge=0
[ "${2:-}" = --purge ] && purge=1
[ -d "$1" ] || { say "nothing to stop: $1 does not exist"; exit 0; }
base=$(cd "$1" && pwd -P)
if [ ! -s "$base/token" ]; then
  say "nothing to stop: $base has no token (not a jobs/local/start.sh directory)"
  exit 0
fi
token=$(cat "$base/token")

# The pid in pid file $1 if it is a live process named $2 carrying our token, else nothing.
our_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  [ -r "/proc/$pid/comm" ] && [[ $(cat "/proc/$pid/comm") == "$2"* ]] || return 0
  tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx "PROXIMA_SLURM_TOKEN=$token" || return 0
  echo "$pid"
}

# Live (not zombie) processes named slurmstepd that carry our token.
our_stepds() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$(cat "$d/comm" 2>/dev/null)" = slurmstepd ] || continue
    grep -q '^State:[[:space:]]*Z' "$d/status" 2>/dev/null && continue
    tr '\0' '\n' 2>/dev/null <"$d/environ" | grep -qx "PROXIMA_SLURM_TOKEN=$token" && echo "$pid"
  done
  return 0
}

# Sends TERM to pid $2 (named $1), waits up to $3 seconds, then KILL.
stop_pid() {
  local name=$1 pid=$2 wait=$3
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq $((wait * 10))); do
    kill -0 "$pid" 2>/dev/null || { say "$name (pid $pid) stopped"; return 0; }
    grep -q "^State:[[:space:]]*Z" "/proc/$pid/status" 2>/dev/null && { say "$name (pid $pid) stopped"; return 0; }
    sleep 0.1
  done
  say "$name (pid $pid) ignored TERM for ${wait}s: KILL"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.2
}

conf=$base/etc/slurm.conf
ctld=$(our_pid "$base/run/slurmctld.pid" slurmctld)
slurmd=$(our_pid "$base/run/slurmd.pid" slurmd)
munged=$(our_pid "$base/run/munged.pid" munged)

# Jobs first, while the daemons can still end them cleanly.
if [ -n "$ctld" ] && [ -s "$conf" ]; then
  export SLURM_CONF=$conf
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    say "cancelling jobs $jobs"
    # shellcheck disable=SC2086 # one word per job id
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 150); do
      [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi

[ -n "$slurmd" ] && stop_pid slurmd "$slurmd" 10
[ -n "$ctld" ] && stop_pid slurmctld "$ctld" 10
for pid in $(our_stepds); do stop_pid slurmstepd "$pid" 5; done
[ -n "$munged" ] && stop_pid munged "$munged" 5

left=
[ -n "$(our_pid "$base/run/slurmd.pid" slurmd)" ] && left+=" slurmd"
[ -n "$(our_pid "$base/run/slurmctld.pid" slurmctld)" ] && left+=" slurmctld"
[ -n "$(our_pid "$base/run/munged.pid" munged)" ] && left+=" munged"
[ -n "$(our_stepds)" ] && left+=" slurmstepd"
if [ -n "$left" ]; then
  say "error: still running:$left"
  exit 1
fi
rm -f "$base"/run/*.pid
say "stopped ($base)"
if [ "$purge" = 1 ]; then
  rm -rf "$base"
fi

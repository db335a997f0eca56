#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine (munged, slurmctld, slurmd), for the tests and
# for trying the batch scripts in jobs/ without a real cluster:
#
#   eval "$(jobs/local/start.sh BASE)"      # prints: export SLURM_CONF=BASE/etc/slurm.conf
#   sbatch ... ; squeue ; sinfo
#   jobs/local/stop.sh BASE
#
# Everything lives under BASE (created if missing): the munge key and socket, slurm.conf, the
# daemons' state, spool, logs and pid files. Needs root (the daemons run as root, as SlurmUser)
# and the Debian packages munge, slurmctld, slurmd and slurm-client (scripts/install-deps.sh).
#
# - Loopback only: the node and the controller are at 127.0.0.1 and the daemons bind to it
#   (CommunicationParameters=NoCtldInAddrAny,NoInAddrAny) when `hostname -s` resolves to 127.x.
# - Ports: SlurmctldPort is PROXIMA_SLURM_PORT if set (SlurmdPort is the next one), else a random
#   free pair; a port that is taken stops the script with a message naming it.
# - Idempotent: run again on the same BASE, it starts only the daemons that are not running and
#   prints the same SLURM_CONF. It never touches a daemon it did not start: every daemon it starts
#   carries PROXIMA_SLURM_TOKEN=<BASE/token> in its environment, and stop.sh checks the pid file,
#   the process name and that token before it signals anything.
# - Partitions, for preemption tests: "batch" (default; PriorityTier=1, PreemptMode=REQUEUE,
#   GraceTime=30) and "urgent" (PriorityTier=100, PreemptMode=OFF): a job submitted to urgent
#   preempts a batch job, which gets its --signal warning at once (preempt_send_user_signal).
# - Fast requeues: cred_expire=10 and sched_interval=5 (a requeued job runs again ~10-15 s
#   after it ended; Slurm's defaults make that ~3 minutes).
# Exit status: 0 running (the export line is on stdout, progress on stderr), 1 not started (the
# reason on stderr; the logs are in BASE/log).
set -euo pipefail

say() { echo "local-slurm: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 BASE_DIR" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (munged, slurmctld and slurmd run as root here)"
for cmd in munged slurmctld slurmd scontrol sinfo; do
  command -v "$cmd" >/dev/null || die "$cmd not found: install munge slurmctld slurmd slurm-client (scripts/install-deps.sh)"
done

mkdir -p "$1"
base=$(cd "$1" && pwd -P)
conf=$base/etc/slurm.conf
mkdir -p "$base"/{etc,munge,state,spool,log,run}
# munged insists that every directory on the socket's path is searchable by all.
chmod 0755 "$base" "$base/munge"
d=$base
while [ "$d" != / ]; do
  d=$(dirname "$d")
  if [ "$(( 0$(stat -c %a "$d") & 1 ))" -eq 0 ]; then
    die "munged needs every directory above its socket searchable by all, and $d is not (mode $(stat -c %a "$d")): chmod o+x $d, or use another BASE"
  fi
done

if [ ! -s "$base/token" ]; then
  head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$base/token"
fi
token=$(cat "$base/token")

# Whether the pid in pid file $1 is a live process named $2 (prefix of comm) carrying our token.
ours() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/comm" ] && [[ $(cat "/proc/$pid/comm") == "$2"* ]] || return 1
  tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx "PROXIMA_SLURM_TOKEN=$token"
}

# Whether something listens on TCP port $1 (any address, IPv4 or IPv6).
port_taken() {
  awk -v p="$(printf '%04X' "$1")" 'FNR > 1 { split($2, a, ":"); if (a[length(a)] == p && $4 == "0A") f = 1 }
    END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Starts "$@" detached, with the token in its environment, output to log file $1.
detach() {
  local log=$1
  shift
  PROXIMA_SLURM_TOKEN=$token setsid nohup "$@" >>"$log" 2>&1 </dev/null &
}

sock=$base/munge/munge.socket.2
# ---- slurm.conf --------------------------------------------------------------------------------
node=$(hostname -s)
if [ ! -s "$conf" ]; then
  if [ -n "${PROXIMA_SLURM_PORT:-}" ]; then
    if ! [[ $PROXIMA_SLURM_PORT =~ ^[0-9]+$ ]] || [ "$PROXIMA_SLURM_PORT" -lt 1024 ] \
      || [ "$PROXIMA_SLURM_PORT" -ge 65535 ]; then
      die "PROXIMA_SLURM_PORT=$PROXIMA_SLURM_PORT is not a port in 1024..65534"
    fi
    ctld_port=$PROXIMA_SLURM_PORT
    for p in "$ctld_port" $((ctld_port + 1)); do
      port_taken "$p" && die "port $p (PROXIMA_SLURM_PORT=$ctld_port and the next one) is taken: choose another"
    done
  else
    ctld_port=
    for _ in $(seq 100); do
      p=$((20000 + RANDOM % 40000))
      if ! port_taken "$p" && ! port_taken $((p + 1)); then ctld_port=$p; break; fi
    done
    [ -n "$ctld_port" ] || die "found no free pair of ports in 20000..60000"
  fi
  slurmd_port=$((ctld_port + 1))

  # The node's hardware as slurmd sees it, else slurmd calls the node's configuration wrong.
  hw=$(slurmd -C | head -1)
  topo=$(grep -o '\(CPUs\|Boards\|SocketsPerBoard\|CoresPerSocket\|ThreadsPerCore\)=[0-9]*' <<<"$hw" | tr '\n' ' ')
  mem=$(grep -o 'RealMemory=[0-9]*' <<<"$hw" | cut -d= -f2)
  mem=$((mem * 95 / 100))
  # Loopback only, when the host name resolves to loopback (else the daemons would not be
  # reachable at the address the host name gives).
  comm=
  if getent hosts "$node" | grep -q '^127\.'; then
    comm="CommunicationParameters=NoCtldInAddrAny,NoInAddrAny"
  else
    say "warning: $node does not resolve to 127.x: the daemons will listen on every address"
  fi
  cat >"$conf.tmp" <<EOF
# Written by jobs/local/start.sh: a one-node cluster for tests, under $base.
ClusterName=proxima-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
$comm
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock,cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$base/state
SlurmdSpoolDir=$base/spool
SlurmctldPidFile=$base/run/slurmctld.pid
SlurmdPidFile=$base/run/slurmd.pid
SlurmctldLogFile=$base/log/slurmctld.log
SlurmdLogFile=$base/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$base/log/jobcomp.txt
SchedulerParameters=sched_interval=5,bf_interval=5
JobRequeue=1
KillWait=30
OverTimeLimit=0
MinJobAge=300
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
NodeName=$node NodeAddr=127.0.0.1 ${topo}RealMemory=$mem State=UNKNOWN
PartitionName=batch Nodes=$node Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=30
PartitionName=urgent Nodes=$node MaxTime=INFINITE State=UP PriorityTier=100 PreemptMode=OFF
EOF
  mv "$conf.tmp" "$conf"
fi
ctld_port=$(sed -n 's/^SlurmctldPort=//p' "$conf")
slurmd_port=$(sed -n 's/^SlurmdPort=//p' "$conf")
export SLURM_CONF=$conf

# ---- munge -----------------------------------------------------------------------------------
key=$base/munge/munge.key
if [ ! -s "$key" ]; then
  (umask 077 && head -c 1024 /dev/urandom >"$key")
fi
chmod 0600 "$key"
if ours "$base/run/munged.pid" munged; then
  say "munged already running (pid $(cat "$base/run/munged.pid"))"
else
  rm -f "$sock" "$sock.lock" "$base/run/munged.pid"
  detach "$base/log/munged.out" munged -F --socket="$sock" --key-file="$key" \
    --pid-file="$base/run/munged.pid" --log-file="$base/log/munged.log" \
    --seed-file="$base/munge/munged.seed"
  for _ in $(seq 50); do [ -S "$sock" ] && ours "$base/run/munged.pid" munged && break; sleep 0.1; done
  ours "$base/run/munged.pid" munged || {
    tail -5 "$base/log/munged.log" "$base/log/munged.out" >&2 2>/dev/null || true
    die "munged did not start (see $base/log/munged.log)"
  }
  say "munged started (pid $(cat "$base/run/munged.pid"))"
fi

# ---- slurmctld, slurmd ----------------------------------------------------------------------------
if ours "$base/run/slurmctld.pid" slurmctld; then
  say "slurmctld already running (pid $(cat "$base/run/slurmctld.pid"))"
else
  port_taken "$ctld_port" && die "SlurmctldPort $ctld_port in $conf is taken by another program (remove $base to choose new ports)"
  rm -f "$base/run/slurmctld.pid"
  detach "$base/log/slurmctld.out" slurmctld -D -f "$conf"
  say "slurmctld starting on 127.0.0.1:$ctld_port"
fi
if ours "$base/run/slurmd.pid" slurmd; then
  say "slurmd already running (pid $(cat "$base/run/slurmd.pid"))"
else
  port_taken "$slurmd_port" && die "SlurmdPort $slurmd_port in $conf is taken by another program (remove $base to choose new ports)"
  rm -f "$base/run/slurmd.pid"
  detach "$base/log/slurmd.out" slurmd -D -f "$conf"
  say "slurmd starting on 127.0.0.1:$slurmd_port"
fi

# ---- wait until the node takes jobs ------------------------------------------------------------
fail() {
  tail -n 5 "$base/log/slurmctld.log" "$base/log/slurmd.log" "$base/log/slurmctld.out" \
    "$base/log/slurmd.out" >&2 2>/dev/null || true
  die "$1 (logs in $base/log; stop what started with jobs/local/stop.sh $base)"
}
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.2; done
scontrol ping 2>/dev/null | grep -q 'is UP' || fail "slurmctld does not answer"
state=
for _ in $(seq 150); do
  state=$(sinfo -h -N -o %T 2>/dev/null | head -1)
  case $state in idle | mixed | allocated | completing) break ;; esac
  sleep 0.2
done
case $state in
  idle | mixed | allocated | completing) ;;
  *) fail "node $node is '${state:-unknown}', not idle" ;;
esac
ours "$base/run/slurmctld.pid" slurmctld || fail "slurmctld is not running"
ours "$base/run/slurmd.pid" slurmd || fail "slurmd is not running"
say "cluster up: node $node ($state), partitions batch (default) and urgent"
echo "export SLURM_CONF=$conf"

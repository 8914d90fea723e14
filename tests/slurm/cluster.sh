#!/usr/bin/env bash
# A throwaway single-node SLURM cluster (munged + slurmctld + slurmd) for CI tests.
#
#   cluster.sh start  DIR   install if needed, (re)start from clean state, wait until the node is idle
#   cluster.sh stop   DIR   cancel all jobs, stop the daemons started by `start DIR`
#   cluster.sh status DIR   sinfo + squeue
#
# Meant for a root shell on Debian/Ubuntu without systemd, sudo or cgroups. State, spool, logs
# and pid files live under DIR; outside it only the slurm.conf the tools read, the munge key and
# /run/munge are written.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
cmd=$1
mkdir -p "$2"
DIR=$(cd "$2" && pwd)   # the daemons chdir away, so every path in slurm.conf must be absolute
# The Debian tools and daemons read /etc/slurm/slurm.conf unless SLURM_CONF says otherwise.
CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
LOGS=("$DIR/log/munged.log" "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log")

log() { echo "cluster.sh: $*" >&2; }

die() {
  log "ERROR: $*"
  local f
  for f in "${LOGS[@]}"; do
    if [ -s "$f" ]; then echo "----- tail of $f -----" >&2; tail -n 40 "$f" >&2; fi
  done
  stop_daemons   # a failed start leaves nothing running
  exit 1
}

# alive PID: running and not a zombie (PID 1 here can take seconds to reap orphans).
alive() { local st; st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]; }

# pid_of NAME: the pid in DIR/run/NAME.pid if that process is still NAME (pids get reused).
pid_of() {
  local pid
  pid=$(cat "$DIR/run/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

stop_daemon() {
  local pid
  if pid=$(pid_of "$1"); then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.2; done
    if alive "$pid"; then log "$1 ($pid) ignored SIGTERM for 20 s; killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$DIR/run/$1.pid"
}

# wait_for SECONDS DAEMON TEST...: poll TEST, failing early with DAEMON's name if it died.
wait_for() {
  local secs=$1 daemon=$2 i; shift 2
  for ((i = 0; i < secs * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    # The daemon writes its pid file a moment after it forks.
    if ((i >= 6)) && ! pid_of "$daemon" >/dev/null; then die "$daemon exited during start-up"; fi
    sleep 0.5
  done
  die "$daemon did not become ready within $secs s (waiting for: $*)"
}

node_idle() { [ "$(sinfo -h -o %T 2>/dev/null)" = idle ]; }

install_packages() {
  command -v sbatch >/dev/null && command -v munged >/dev/null && return 0
  log "installing slurm-wlm and munge"
  # Keep the packages' init scripts from starting daemons with the stock config.
  local policy=/usr/sbin/policy-rc.d added=
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' > $policy; chmod +x $policy; added=1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
    || { [ -z "$added" ] || rm -f $policy; die "apt-get install slurm-wlm munge failed"; }
  [ -z "$added" ] || rm -f $policy
}

start_munge() {
  local key=/etc/munge/munge.key
  if [ ! -s $key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=$key bs=1024 count=1 status=none
  fi
  chown munge:munge $key && chmod 0400 $key
  install -d -o munge -g munge -m 0755 /run/munge
  # --force: run as root and accept root-owned log/pid directories.
  /usr/sbin/munged --force --log-file="$DIR/log/munged.log" --pid-file="$DIR/run/munged.pid" \
    || die "munged failed to start"
  wait_for 10 munged bash -c 'munge -n | unmunge'
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(free -m | awk '/^Mem:/ { print int($2 * 0.9) }')   # slurmd drains a node that has less than this
  mkdir -p "$(dirname "$CONF")"
  # Addresses are pinned to 127.0.0.1 so that nothing depends on how the host name resolves.
  cat > "$DIR/slurm.conf" <<EOF
# Written by tests/slurm/cluster.sh for $DIR
ClusterName=ci
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
# No cgroups here: track processes through /proc and do no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# A node that was down (e.g. slurmd restarted) comes back without an admin.
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
# Faster turnaround for tests: a requeued job waits cred_expire seconds (default 120) before it
# is eligible again, and the periodic scheduler passes that then start it default to 60/30 s.
AuthInfo=cred_expire=10
SchedulerParameters=sched_interval=2,bf_interval=1
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  cp "$DIR/slurm.conf" "$CONF"
}

start() {
  install_packages
  stop   # daemons left over from an earlier start with this DIR
  local d pids f
  for d in slurmctld slurmd; do   # they would hold the ports 6817/6818
    pids=$(ps -eo pid=,stat=,comm= | awk -v d="$d" '$3 == d && $2 !~ /^Z/ { printf "%s ", $1 }')
    [ -z "$pids" ] || die "a $d not started from $DIR is running (pid $pids); stop it first"
  done
  # Start from empty state: jobs of a crashed run would otherwise be recovered.
  rm -rf "$DIR/state" "$DIR/spool" "$DIR/run"
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log"
  for f in "${LOGS[@]}"; do if [ -f "$f" ]; then mv "$f" "$f.prev"; fi; done

  start_munge
  write_conf
  /usr/sbin/slurmctld || die "slurmctld failed to start"
  wait_for 30 slurmctld scontrol ping
  /usr/sbin/slurmd || die "slurmd failed to start"
  wait_for 60 slurmd node_idle
  log "cluster up in $DIR: $(sinfo -h -o '%P %D %T %c CPUs %m MB')"
}

stop() {
  if pid_of slurmctld >/dev/null; then
    # Cancel jobs so that their slurmstepd processes end with the cluster.
    scancel --partition=ci 2>/dev/null || true
    for _ in $(seq 20); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  stop_daemons
}

stop_daemons() { stop_daemon slurmd; stop_daemon slurmctld; stop_daemon munged; }

case $cmd in
  start) start ;;
  stop) stop ;;
  status) sinfo && squeue ;;
  *) echo "usage: $0 start|stop|status DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# scripts/local-slurm.sh - start a single-node Slurm 22.05 test cluster (Debian 12 packages) for
# lmsweep's Slurm tests and CI:  bash scripts/local-slurm.sh   (stop: bash scripts/local-slurm-stop.sh)
#
# Derived from the team's tested single-node recipe, shared/slurm/start-local-slurm.sh, and its
# findings in shared/notes/slurm.md (versions, timings and the pitfalls it works around: no
# systemd, zombie daemons, slurmdbd.conf mode 600, preempt_send_user_signal, fake gres devices).
#
# What you get: slurmctld + slurmd + munged, and mariadb + slurmdbd so `sacct` works (submitit
# and `python -m sweeper status` read job states from accounting); one node `localhost` that
# advertises 8 CPUs, 16000 MB and 2 fake GPUs; partitions `debug` (default, preemptible:
# jobs are requeued with SIGUSR2 when `urgent` needs the node) and `urgent`.
#
# Run as root. Idempotent: re-running with the same settings only checks the daemons (~0.1 s);
# the first run installs the packages (~10 s, more with `apt-get update`), later starts ~1.5 s.
# No systemd, no cgroups: proctrack/linuxproc + task/none (CPUs and memory are scheduling
# quantities only). Daemons run in the background; the pids of the daemons THIS script
# started are kept in $RUN_DIR/*.pid for scripts/local-slurm-stop.sh.
#
# Knobs (environment):
#   SLURM_WITH_DBD=1    also run mariadb + slurmdbd so `sacct` works. submitit polls sacct;
#                       without it a job that dies with no result (scancel, node kill) is never
#                       seen as finished and job.result() waits forever. 0 = lighter, no sacct.
#   SLURM_FAKE_GPUS=2   advertise N fake GPUs (gres/gpu on char devices) so gpus_per_node=1
#                       jobs schedule and get CUDA_VISIBLE_DEVICES. 0 = no gres at all (GPU
#                       requests are then rejected by sbatch).
#   SLURM_CPUS=8        CPUs advertised (SlurmdParameters=config_overrides allows > real cores).
#   SLURM_MEM_MB=16000  RealMemory advertised.
set -euo pipefail

WITH_DBD=${SLURM_WITH_DBD:-1}
FAKE_GPUS=${SLURM_FAKE_GPUS:-2}
CPUS=${SLURM_CPUS:-8}
MEM_MB=${SLURM_MEM_MB:-16000}
NODE=localhost                      # hostname-independent: slurmd matches NodeName=localhost
RUN_DIR=/run/slurm-local            # pid files of daemons started by this script
STATE_DIR=/var/lib/slurm-local      # ctld state, slurmd spool, fake gpu devices
LOG_DIR=/var/log/slurm-local
DB_PASS=slurm-local-test            # local-only test DB (socket only, --skip-networking)

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
t_start=$(date +%s)
log() { echo "[local-slurm] $*"; }

# ---------------------------------------------------------------- install
pkgs=(slurmctld slurmd slurm-client munge)
if [ "$WITH_DBD" = 1 ]; then pkgs+=(slurmdbd mariadb-server); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  # Keep postinst from starting the daemons itself (no systemd here; init.d scripts would).
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
  if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

install -d -m 0755 "$RUN_DIR" "$LOG_DIR"
install -d -m 0755 -o slurm -g slurm "$STATE_DIR" "$STATE_DIR/ctld"
install -d -m 0755 "$STATE_DIR/slurmd"
chown slurm:slurm "$LOG_DIR"

# ---------------------------------------------------------------- helpers
# alive NAME: true if $RUN_DIR/NAME.pid names a live process whose comm is NAME.
alive() {
  local f="$RUN_DIR/$1.pid" pid st
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
  st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]   # a zombie counts as gone
}
stop_one() {  # stop_one NAME - only if we started it (pid file + matching comm)
  local pid
  alive "$1" || { rm -f "$RUN_DIR/$1.pid"; return 0; }
  pid=$(cat "$RUN_DIR/$1.pid"); kill "$pid"
  for _ in $(seq 150); do alive "$1" || break; sleep 0.1; done
  if alive "$1"; then kill -9 "$pid"; fi
  rm -f "$RUN_DIR/$1.pid"
}
wait_for() {  # wait_for SECONDS DESCRIPTION CMD...
  local secs=$1 what=$2; shift 2
  for _ in $(seq $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $what; logs in $LOG_DIR" >&2; return 1
}
# put_file PATH MODE OWNER: write stdin to PATH if content differs; echo 1 if it changed.
put_file() {
  local tmp; tmp=$(mktemp)
  cat > "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; echo 0; return; fi
  install -m "$2" -o "${3%%:*}" -g "${3##*:}" "$tmp" "$1"; rm -f "$tmp"; echo 1
}

# ---------------------------------------------------------------- config
mkdir -p /etc/slurm
if [ "$WITH_DBD" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageTRES=gres/gpu"
else
  ACCT="AccountingStorageType=accounting_storage/none"
fi
GRES_NODE=""; GRES_TYPES=""
if [ "$FAKE_GPUS" -gt 0 ]; then
  GRES_NODE=" Gres=gpu:$FAKE_GPUS"; GRES_TYPES="GresTypes=gpu"
  # slurmd wants character devices for gres File=; clones of /dev/null (1,3) are enough.
  install -d -m 0755 "$STATE_DIR/fakegpu"
  gres_lines=""
  for i in $(seq 0 $((FAKE_GPUS - 1))); do
    d="$STATE_DIR/fakegpu/nvidia$i"
    [ -c "$d" ] || mknod -m 0666 "$d" c 1 3
    gres_lines+="NodeName=$NODE Name=gpu File=$d"$'\n'
  done
fi

conf_changed=$(put_file /etc/slurm/slurm.conf 0644 root:root <<EOF
# generated by lmsweep scripts/local-slurm.sh
ClusterName=local
SlurmctldHost=localhost
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
# requeued jobs wait cred_expire seconds before restarting (default 120)
AuthInfo=cred_expire=10
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$ACCT
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=5,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
EnforcePartLimits=ALL
SlurmdParameters=config_overrides
SlurmctldParameters=preempt_send_user_signal
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
ReturnToService=2
KillWait=5
MinJobAge=300
$GRES_TYPES
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB$GRES_NODE State=UNKNOWN
# 'debug' (default) jobs are preempted (requeued, USR2 sent) by jobs in 'urgent'
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=30
PartitionName=urgent Nodes=$NODE MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
)
if [ "$FAKE_GPUS" -gt 0 ]; then
  c=$(printf '%s' "$gres_lines" | put_file /etc/slurm/gres.conf 0644 root:root)
else
  c=0; if [ -e /etc/slurm/gres.conf ]; then rm -f /etc/slurm/gres.conf; c=1; fi
fi
if [ "$c" = 1 ]; then conf_changed=1; fi

# ---------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key && chown munge:munge /etc/munge/munge.key && chmod 0600 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  install -d -o munge -g munge -m 0755 /run/munge
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 munged test -s /run/munge/munged.pid
  cat /run/munge/munged.pid > "$RUN_DIR/munged.pid"
  log "munged started (pid $(cat "$RUN_DIR/munged.pid"))"
fi
wait_for 10 "munge" bash -c 'munge -n | unmunge'

# ---------------------------------------------------------------- mariadb + slurmdbd
if [ "$WITH_DBD" = 1 ]; then
  if ! mariadb-admin --silent ping >/dev/null 2>&1; then
    install -d -o mysql -g root -m 0755 /run/mysqld
    rm -f /run/mysqld/mysqld.pid
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --skip-test-db >/dev/null
    setsid /usr/sbin/mariadbd --user=mysql --skip-networking --skip-log-bin \
      --innodb-buffer-pool-size=64M >"$LOG_DIR/mariadbd.log" 2>&1 </dev/null &
    wait_for 30 mariadb mariadb-admin --silent ping
    cat /run/mysqld/mysqld.pid > "$RUN_DIR/mariadbd.pid"
    log "mariadbd started (pid $(cat "$RUN_DIR/mariadbd.pid"))"
  fi
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  dbd_changed=$(put_file /etc/slurm/slurmdbd.conf 0600 slurm:slurm <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=$RUN_DIR/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
)
  if [ "$dbd_changed" = 1 ]; then stop_one slurmdbd; fi
  if ! alive slurmdbd; then
    rm -f "$RUN_DIR/slurmdbd.pid"
    /usr/sbin/slurmdbd
    wait_for 30 slurmdbd sacctmgr -n list cluster
    log "slurmdbd started (pid $(cat "$RUN_DIR/slurmdbd.pid"))"
  fi
fi

# ---------------------------------------------------------------- slurmctld + slurmd
if [ "$conf_changed" = 1 ]; then stop_one slurmd; stop_one slurmctld; fi
if ! alive slurmctld; then
  rm -f "$RUN_DIR/slurmctld.pid"
  /usr/sbin/slurmctld
  wait_for 30 slurmctld bash -c 'scontrol ping | grep -q UP'
  log "slurmctld started (pid $(cat "$RUN_DIR/slurmctld.pid"))"
fi
if ! alive slurmd; then
  rm -f "$RUN_DIR/slurmd.pid"
  /usr/sbin/slurmd
  wait_for 30 slurmd test -s "$RUN_DIR/slurmd.pid"
  log "slurmd started (pid $(cat "$RUN_DIR/slurmd.pid"))"
fi
# A node left drained/down by an earlier config is resumed; then wait for idle.
for _ in $(seq 300); do
  st=$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -1) || st=""
  case "$st" in
    idle|mixed|allocated) break ;;
    drained*|draining|down*|inval*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
  esac
  sleep 0.1
done
case "$st" in idle|mixed|allocated) ;; *) echo "node state '$st' (see $LOG_DIR)" >&2; exit 1 ;; esac

log "ready in $(( $(date +%s) - t_start ))s: $(sinfo -h -o '%P %T cpus=%c mem=%m gres=%G' | tr '\n' ';')"
log "accounting: $([ "$WITH_DBD" = 1 ] && echo 'slurmdbd (sacct works)' || echo 'none (sacct fails)')"
log "stop with: bash $(dirname "$(readlink -f "$0")")/local-slurm-stop.sh   (pid files in $RUN_DIR)"

#!/usr/bin/env bash
# scripts/local-slurm-stop.sh - stop the test cluster of scripts/local-slurm.sh.
# Derived from the team's tested recipe shared/slurm/stop-local-slurm.sh (see shared/notes/slurm.md).
# Stops only the daemons local-slurm.sh started, by their pid files
# in /run/slurm-local. A pid is signalled only if /proc/PID/comm still names that daemon.
# Config, job state and logs are kept; pass --purge-state to also remove job state + logs
# (job ids then restart at 1: use a fresh submitit folder per run).
set -uo pipefail
RUN_DIR=/run/slurm-local
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
if [ -s "$RUN_DIR/slurmctld.pid" ] && command -v scancel >/dev/null; then
  scancel --state=pending 2>/dev/null; scancel --state=running 2>/dev/null
fi
running() {  # pid exists and is not a zombie (PID 1 here reaps orphans slowly)
  local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
stop_group() {  # SIGTERM every named daemon of the group, then wait (<=15 s) for all of them
  local name f pid pids=() names=()
  for name in "$@"; do
    f="$RUN_DIR/$name.pid"
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$name" ]; then
      kill "$pid"; pids+=("$pid"); names+=("$name")
    else
      echo "stale pid file for $name ($pid), not signalling"
    fi
    rm -f "$f"
  done
  for i in "${!pids[@]}"; do
    for _ in $(seq 150); do running "${pids[$i]}" || break; sleep 0.1; done
    if running "${pids[$i]}"; then
      kill -9 "${pids[$i]}"; echo "killed -9 ${names[$i]} (${pids[$i]})"
    else
      echo "stopped ${names[$i]} (${pids[$i]})"
    fi
  done
}
stop_group slurmd slurmctld     # reverse start order, in three groups
stop_group slurmdbd
stop_group mariadbd munged
if [ "${1:-}" = "--purge-state" ]; then
  rm -rf /var/lib/slurm-local/ctld/* /var/lib/slurm-local/slurmd/* /var/log/slurm-local/*
  echo "job state and logs removed"
fi

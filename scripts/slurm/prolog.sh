#!/bin/sh
# Slurm Prolog (slurm.conf: Prolog=/opt/mlagent/scripts/slurm/prolog.sh), run by slurmd as root on each node.
#
# A non-zero exit drains the node and requeues the job, so mlagent exits non-zero only for node faults (GPU
# missing or unhealthy, driver hung, recent Xid, dead mount, full disk, broken TMPDIR). The Prolog does not
# see the user's environment, so it checks the node only; the job's profile is judged by the TaskProlog.
# Slurm gives prologs no PATH: one is set here (nvidia-smi, dmesg, df, stat live there). Its stdout is discarded; the verdict goes to
# $MLAGENT_STATE_DIR/prologue.log (one JSON line per run). Keep --timeout below PrologEpilogTimeout.
#
# Variables: MLAGENT_BIN (default /opt/mlagent/bin/mlagent), MLAGENT_STATE_DIR (default /var/log/mlagent).
PATH="${PATH:+$PATH:}/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
export PATH
MLAGENT_STATE_DIR="${MLAGENT_STATE_DIR:-/var/log/mlagent}"
export MLAGENT_STATE_DIR
MLAGENT_BIN="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
if [ ! -x "$MLAGENT_BIN" ]; then
  # mlagent missing is not a reason to drain the whole cluster.
  exit 0
fi
exec "$MLAGENT_BIN" prologue --scheduler slurm --timeout "${MLAGENT_PROLOGUE_TIMEOUT:-20}" --quiet

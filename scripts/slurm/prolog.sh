#!/bin/sh
# Slurm Prolog (slurm.conf: Prolog=/opt/mlagent/scripts/slurm/prolog.sh), run by slurmd as root on each node
# before each job (PrologFlags=Alloc: at allocation).
#
# A non-zero exit drains the node and requeues the job, so mlagent exits non-zero only for node faults (GPU
# missing or unhealthy, driver hung, recent Xid, dead mount, full disk, broken TMPDIR). It drains the node
# itself first (--drain), with a reason naming the failed check, so `sinfo -R` shows
# "mlagent: gpu.health GPU 3 ... (prologue, job 42)" instead of Slurm's bare "Prolog error", and
# `mlagent health` (scripts/slurm/health.sh) resumes the node once it is healthy again. Slurm requeues the job
# *held* unless slurm.conf has SchedulerParameters=nohold_on_prolog_fail: set it, or held jobs wait for a
# manual `scontrol release`.
# The Prolog does not see the user's environment, so it checks the node only; the job's profile is judged
# by the TaskProlog. Slurm gives prologs no PATH: one is set here (nvidia-smi, dmesg, df, stat, scontrol).
# Its stdout is discarded; its stderr (mlagent's one-line verdict) reaches slurmd's log when it fails, and the
# line is always appended to $MLAGENT_STATE_DIR/prologue.log (drains and resumes to drain.log). Keep
# MLAGENT_PROLOGUE_TIMEOUT below PrologEpilogTimeout.
#
# mlagent missing (the same rule in every recipe: slurm/, lsf/, cron/): a node without mlagent is a node fault.
# The script says so on stderr and in syslog (logger -t mlagent), drains the node with the reason
# "mlagent: mlagent.binary ... missing" unless someone else drained it, and exits 1: no job starts on an
# unchecked node, and the next `mlagent health` run after the binary is back resumes the node.
#
# Variables: MLAGENT_BIN (default /opt/mlagent/bin/mlagent), MLAGENT_STATE_DIR (default /var/log/mlagent),
# MLAGENT_PROLOGUE_TIMEOUT (seconds, default 20).
PATH="${PATH:+$PATH:}/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
export PATH
MLAGENT_STATE_DIR="${MLAGENT_STATE_DIR:-/var/log/mlagent}"
export MLAGENT_STATE_DIR
MLAGENT_BIN="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
# shellcheck source=missing.sh
. "$(dirname "$0")/missing.sh"
mlagent_require_binary prologue "slurm prolog, job ${SLURM_JOB_ID:-?}"
exec "$MLAGENT_BIN" prologue --scheduler slurm --drain --timeout "${MLAGENT_PROLOGUE_TIMEOUT:-20}"

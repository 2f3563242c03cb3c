#!/bin/sh
# LSF pre-execution wrapper for mlagent (queue-level PRE_EXEC in lsb.queues, or `bsub -E`).
#
# LSF runs pre-exec commands under /bin/sh in /tmp, with PATH=/bin:/usr/bin:/sbin:/usr/sbin and stdin, stdout
# and stderr on /dev/null, with the job's environment, as the job's user. Exit 0 runs the job; any other code
# sends the job back to PEND (mlagent uses 1 for a node fault); 99 (or $LSB_EXIT_PRE_ABORT) makes the job exit
# instead of pending (mlagent uses it for a fault of the job's own making: unknown profile, venv that failed
# to install). The pre-exec cannot close the host (it is not root): scripts/lsf/health.sh, from root's cron,
# does that with a reason naming the check.
#
#   lsb.queues:   PRE_EXEC = /opt/mlagent/scripts/lsf/mlagent-pre-exec.sh
#   per job:      bsub -env "all, MLAGENT_PROFILE=hunyuan-video-i2v" -gpu "num=1" ./run.sh
#
# mlagent missing (the same rule in every recipe: slurm/, lsf/, cron/): a node without mlagent is a node fault.
# The script says so on stderr and in syslog (logger -t mlagent) and exits 1, so the job goes back to PEND
# and no job starts on an unchecked host; scripts/lsf/health.sh closes the host for it.
#
# Variables: MLAGENT_BIN (default /opt/mlagent/bin/mlagent), MLAGENT_PROFILE (the job's profile, optional:
# without it only the node is checked), MLAGENT_PROLOGUE_TIMEOUT (seconds, default 30),
# MLAGENT_PROLOGUE_STDERR (where mlagent's one-line verdict goes; default: discarded by LSF; the line is
# also appended to the user's $MLAGENT_STATE_DIR/prologue.log).
MLAGENT_BIN="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
set -- prologue --scheduler lsf --timeout "${MLAGENT_PROLOGUE_TIMEOUT:-30}"
if [ -n "${MLAGENT_PROFILE:-}" ]; then set -- "$@" --profile "$MLAGENT_PROFILE"; fi
if [ -n "${MLAGENT_PROLOGUE_STDERR:-}" ]; then exec 2>>"$MLAGENT_PROLOGUE_STDERR"; fi
if [ ! -x "$MLAGENT_BIN" ]; then
  msg="mlagent: mlagent.binary $MLAGENT_BIN is missing or not executable on $(hostname) (lsf pre-exec, job ${LSB_JOBID:-?})"
  echo "$msg" >&2
  logger -t mlagent -p user.err "$msg" 2>/dev/null
  exit 1
fi
exec "$MLAGENT_BIN" "$@"

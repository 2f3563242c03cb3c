#!/bin/sh
# LSF pre-execution wrapper for mlagent (queue-level PRE_EXEC in lsb.queues, or `bsub -E`).
#
# LSF runs pre-exec commands under /bin/sh in /tmp, with PATH=/bin:/usr/bin:/sbin:/usr/sbin and stdin, stdout
# and stderr on /dev/null, with the job's environment. Exit 0 runs the job; any other code sends the job back
# to PEND (mlagent uses 1 for a node fault); 99 (or $LSB_EXIT_PRE_ABORT) makes the job exit instead of pending
# (mlagent uses it for a fault of the job's own making: unknown profile, venv that failed to install).
#
#   lsb.queues:   PRE_EXEC = /opt/mlagent/scripts/lsf/mlagent-pre-exec.sh
#   per job:      bsub -env "all, MLAGENT_PROFILE=hunyuan-video-i2v" -gpu "num=1" ./run.sh
#
# Variables: MLAGENT_BIN (default /opt/mlagent/bin/mlagent), MLAGENT_PROFILE (the job's profile, optional:
# without it only the node is checked), MLAGENT_PROLOGUE_TIMEOUT (seconds, default 30),
# MLAGENT_PROLOGUE_STDERR (where mlagent's one-line verdict goes; default: discarded by LSF).
MLAGENT_BIN="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
set -- prologue --scheduler lsf --timeout "${MLAGENT_PROLOGUE_TIMEOUT:-30}"
if [ -n "${MLAGENT_PROFILE:-}" ]; then set -- "$@" --profile "$MLAGENT_PROFILE"; fi
if [ ! -x "$MLAGENT_BIN" ]; then
  # A node without mlagent is a node fault: re-pend the job so it runs elsewhere.
  echo "mlagent-pre-exec: $MLAGENT_BIN is missing on $(hostname)" >&2
  exit 1
fi
if [ -n "${MLAGENT_PROLOGUE_STDERR:-}" ]; then
  exec "$MLAGENT_BIN" "$@" 2>>"$MLAGENT_PROLOGUE_STDERR"
fi
exec "$MLAGENT_BIN" "$@"

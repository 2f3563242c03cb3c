#!/bin/sh
# Slurm TaskProlog (slurm.conf: TaskProlog=/opt/mlagent/scripts/slurm/task_prolog.sh), run as the job's user
# before each task, with the job's environment. Lines it prints starting with "print " appear in the task's
# output, so the user sees why their venv or models are not ready. Node faults are the Prolog's business;
# this script never fails the task (exit 0 always).
#
#   sbatch --export=ALL,MLAGENT_PROFILE=hunyuan-video-i2v --gres=gpu:1 job.sh
#
# Variables: MLAGENT_BIN (default /opt/mlagent/bin/mlagent), MLAGENT_PROFILE (skip when unset).
MLAGENT_BIN="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
[ -n "${MLAGENT_PROFILE:-}" ] && [ -x "$MLAGENT_BIN" ] || exit 0
"$MLAGENT_BIN" prologue --scheduler slurm --profile "$MLAGENT_PROFILE" \
  --timeout "${MLAGENT_PROLOGUE_TIMEOUT:-20}" --quiet 2>/dev/null
exit 0

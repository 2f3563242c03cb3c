#!/bin/sh
# Slurm TaskProlog (slurm.conf: TaskProlog=/opt/mlagent/scripts/slurm/task_prolog.sh), run as the job's user
# before each task, with the job's environment. Lines it prints starting with "print " appear in the task's
# output, so the user sees why their venv, models or GPU request are not right. It runs once per node and
# step (SLURM_LOCALID 0), not once per task. Node faults are the Prolog's business; this script never fails
# the task (a TaskProlog exiting non-zero fails the job), so it exits 0 always.
#
# With MLAGENT_PROFILE set it prints every check for that profile; without one it judges what the job asked
# for (a malformed CUDA_VISIBLE_DEVICES, GPUs it cannot see) and prints only what failed or warns.
# mlagent's one-line verdict goes to stderr (Slurm drops a TaskProlog's stderr) and to the user's
# $MLAGENT_STATE_DIR/prologue.log.
#
#   sbatch --export=ALL,MLAGENT_PROFILE=hunyuan-video-i2v --gres=gpu:1 job.sh
#
# mlagent missing (the same rule in every recipe): said in the job's output and in syslog; the Prolog has
# already drained the node for it.
#
# Variables: MLAGENT_BIN (default /opt/mlagent/bin/mlagent), MLAGENT_PROFILE (optional),
# MLAGENT_PROLOGUE_TIMEOUT (seconds, default 20).
MLAGENT_BIN="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
[ "${SLURM_LOCALID:-0}" = 0 ] || exit 0
if [ ! -x "$MLAGENT_BIN" ]; then
  msg="mlagent: mlagent.binary $MLAGENT_BIN is missing or not executable on $(hostname): this job's node and profile were not checked"
  echo "print $msg"
  logger -t mlagent -p user.err "$msg" 2>/dev/null
  exit 0
fi
set -- prologue --scheduler slurm --timeout "${MLAGENT_PROLOGUE_TIMEOUT:-20}"
if [ -n "${MLAGENT_PROFILE:-}" ]; then
  "$MLAGENT_BIN" "$@" --profile "$MLAGENT_PROFILE"
else
  # Only the problems (and their fix lines): a job without a profile should not carry a report of passes.
  "$MLAGENT_BIN" "$@" | awk '/^print (FAIL|WARN) /{keep=1; print; next} keep && /^print +fix: /{print; next} {keep=0}'
fi
exit 0

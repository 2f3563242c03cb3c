#!/bin/sh
#BSUB -J mlagent-run
#BSUB -gpu "num=1"
#BSUB -o mlagent-run.%J.out
# A bsub job script that runs the job's command in a profile's venv with `mlagent run`: the venv's python,
# its models named by MLAGENT_MODEL_<NAME>, HF_HUB_OFFLINE=1, CUDA_VISIBLE_DEVICES as LSF set it. While it
# runs, `mlagent remove` and `install --force` on this host wait for it. mlagent replaces this shell (exec),
# so the signals LSF sends (bkill's SIGINT/SIGTERM, a warning action's SIGUSR2 from `bsub -wa USR2 -wt 2`)
# reach mlagent, which passes them to the command; the job's exit code is the command's.
# A record of the run goes to $MLAGENT_STATUS_DIR/mlagent-run-JOBID.json (default: the submit directory).
#
#   bsub -env "all, MLAGENT_PROFILE=hunyuan-video-i2v" < job_run.sh        (command in MLAGENT_COMMAND)
#   bsub -env "all, MLAGENT_PROFILE=yolo" ./job_run.sh python predict.py --source images/
#   MLAGENT_INSTALL=1 ...   installs or repairs the venv first (under its lock; once per host)
set -eu
PROFILE="${MLAGENT_PROFILE:-yolo}"
MLAGENT="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
STATUS_DIR="${MLAGENT_STATUS_DIR:-${LS_SUBCWD:-$PWD}}"
if [ ! -x "$MLAGENT" ]; then
  echo "mlagent: $MLAGENT is missing or not executable on $(hostname) (job ${LSB_JOBID:-?}); set MLAGENT_BIN" >&2
  exit 1
fi
# Submitted on stdin (`bsub < job_run.sh`) a script has no arguments: the command comes from MLAGENT_COMMAND.
if [ "$#" -eq 0 ] && [ -n "${MLAGENT_COMMAND:-}" ]; then
  # shellcheck disable=SC2086 # split into words on purpose, as bsub would have
  set -- $MLAGENT_COMMAND
fi
if [ "$#" -eq 0 ]; then
  echo "usage: bsub job_run.sh COMMAND [ARGS...]   (MLAGENT_PROFILE names the profile)" >&2
  exit 2
fi
JOB="${LSB_JOBID:-local}${LSB_JOBINDEX:+_$LSB_JOBINDEX}"
set -- "$PROFILE" --json-status "$STATUS_DIR/mlagent-run-$JOB.json" -- "$@"
if [ "${MLAGENT_INSTALL:-0}" = 1 ]; then set -- --install "$@"; fi
exec "$MLAGENT" run "$@"

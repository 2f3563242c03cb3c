#!/bin/sh
#SBATCH --job-name=mlagent-run
#SBATCH --gres=gpu:1
#SBATCH --signal=B:USR1@120
# A batch script that runs the job's command in a profile's venv with `mlagent run`: the venv's python, its
# models named by MLAGENT_MODEL_<NAME>, HF_HUB_OFFLINE=1, CUDA_VISIBLE_DEVICES as Slurm set it. While it runs,
# `mlagent remove` and `install --force` on this node wait for it. mlagent replaces this shell (exec), so
# the signals Slurm sends the batch step (SIGTERM at the time limit, SIGUSR1 two minutes before it with the
# --signal line above) reach mlagent, which passes them to the command; the job's exit code is the command's.
# A record of the run (exit code, signal, times, time spent waiting) goes to
# $MLAGENT_STATUS_DIR/mlagent-run-JOBID.json (default: the submit directory).
#
#   sbatch --export=ALL,MLAGENT_PROFILE=hunyuan-video-i2v job_run.sh python sample.py --steps 50
#   MLAGENT_INSTALL=1 ...   installs or repairs the venv first (under its lock; once per node)
set -eu
PROFILE="${MLAGENT_PROFILE:-yolo}"
MLAGENT="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
STATUS_DIR="${MLAGENT_STATUS_DIR:-${SLURM_SUBMIT_DIR:-$PWD}}"
if [ ! -x "$MLAGENT" ]; then
  echo "mlagent: $MLAGENT is missing or not executable on $(hostname) (job ${SLURM_JOB_ID:-?}); set MLAGENT_BIN" >&2
  exit 1
fi
if [ "$#" -eq 0 ]; then
  echo "usage: sbatch job_run.sh COMMAND [ARGS...]   (MLAGENT_PROFILE names the profile)" >&2
  exit 2
fi
set -- "$PROFILE" --json-status "$STATUS_DIR/mlagent-run-${SLURM_JOB_ID:-local}.json" -- "$@"
if [ "${MLAGENT_INSTALL:-0}" = 1 ]; then set -- --install "$@"; fi
exec "$MLAGENT" run "$@"

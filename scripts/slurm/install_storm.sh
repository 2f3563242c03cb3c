#!/bin/sh
#SBATCH --job-name=mlagent-install
#SBATCH --ntasks-per-node=1
#SBATCH --time=01:00:00
# Installs a profile on every node of the allocation at once: one `mlagent install` per node (an install
# storm), each node's JSON report in $MLAGENT_STORM_DIR/<node>.json.
#
#   sbatch -N 64 -p gpu scripts/slurm/install_storm.sh hunyuan-video-i2v
#   sbatch -w "$(sinfo -h -p gpu -N -o %N | paste -sd,)" scripts/slurm/install_storm.sh hunyuan-video-i2v
#   salloc -N 64 scripts/slurm/install_storm.sh hunyuan-video-i2v      (interactive)
#
# Node-local roots (MLAGENT_ROOT on local disk, the default): every node builds its own venv, so every node
# fetches every wheel: point MLAGENT_INDEX_URL at a site mirror or caching proxy before a storm.
# Shared root (MLAGENT_ROOT on NFS, Lustre, GPFS...): the venv's lock is a lease on that filesystem. One node
# installs; the others wait for it (printing who holds the lock every 5 s) and find the venv ready; each wheel
# is fetched once. Give the waiters time: --time above one install, MLAGENT_LOCK_TTL above the filesystem's
# attribute caching (the default 60 s is).
# The step is `srun -N <all nodes> --ntasks-per-node=1 mlagent install P`; --kill-on-bad-exit=0 keeps one
# node's failure from killing the others' installs (or waits).
# Exit status: 0 when every node reports ready; otherwise srun's, and `grep -L '"ok": true' DIR/*.json`
# names the nodes that did not.
#
# Variables: MLAGENT_BIN (default /opt/mlagent/bin/mlagent), MLAGENT_STORM_DIR (default
# ./mlagent-install-$SLURM_JOB_ID), and mlagent's own (MLAGENT_ROOT, MLAGENT_INDEX_URL, ...), exported to
# every node by sbatch.
set -eu
PROFILE="${1:?usage: install_storm.sh PROFILE}"
MLAGENT="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
OUT="${MLAGENT_STORM_DIR:-$PWD/mlagent-install-${SLURM_JOB_ID:-$$}}"
mkdir -p "$OUT"
# sh -c so that each node writes its own report; the values reach it as arguments, never spliced in.
srun -N "${SLURM_JOB_NUM_NODES:-1}" --ntasks-per-node=1 --kill-on-bad-exit=0 \
  sh -c '"$0" install "$1" --json >"$2/$(hostname).json"' "$MLAGENT" "$PROFILE" "$OUT"

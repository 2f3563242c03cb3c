#!/bin/sh
#SBATCH --job-name=mlagent-job
#SBATCH --gres=gpu:1
# A job script that makes sure the profile's venv and models exist on this node before it runs, installing
# them at most once per node: `mlagent install` takes the venv's lock, so of several jobs starting on one
# node one installs and the others wait, then find it ready (installing a ready venv returns at once).
# A venv root on shared storage is installed once for the whole cluster the same way (locks there are
# leases that survive a dead holder). Under LSF use the same body with #BSUB lines.
#
#   sbatch --export=ALL,MLAGENT_PROFILE=yolo install_once_per_node.sh serve.py --port 8000
set -eu
PROFILE="${MLAGENT_PROFILE:-yolo}"
MLAGENT="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
# The install report names the venv; python3 only reads the JSON.
VENV="$("$MLAGENT" install "$PROFILE" --json --quiet | python3 -c 'import json,sys; print(json.load(sys.stdin)["venv"])')"
# Other once-per-node work goes under a named lock the same way (here: unpack a dataset to node-local disk).
"$MLAGENT" lock run "unpack-$PROFILE" --timeout 1800 -- \
  sh -c 'test -e "${TMPDIR:-/tmp}/data-$0/.done" || { mkdir -p "${TMPDIR:-/tmp}/data-$0" && touch "${TMPDIR:-/tmp}/data-$0/.done"; }' "$PROFILE"
exec "$VENV/bin/python" "$@"

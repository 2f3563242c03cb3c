#!/bin/sh
# Installs a profile on many LSF hosts at once (an install storm), each host's JSON report in
# $MLAGENT_STORM_DIR/<host>.json. Two ways to submit it:
#
# A job array, one element per host, exclusive so two elements do not share a host at once:
#   bsub -J "mlagent-install[1-64]" -x -m gpu_hosts -o /dev/null scripts/lsf/install_storm.sh hunyuan-video-i2v
#   (an element landing on a host another already installed finds the venv ready at once; a host no element
#   reached is not installed: size the array to the host group, or use the blaunch form)
# One parallel job spanning the hosts, one task each, started on every host by blaunch:
#   bsub -n 64 -R "span[ptile=1]" -m gpu_hosts -o /dev/null scripts/lsf/install_storm.sh hunyuan-video-i2v
#
# Node-local roots: every host installs its own venv and fetches every wheel (use a site mirror:
# MLAGENT_INDEX_URL). Shared root (MLAGENT_ROOT on NFS, Lustre, GPFS...): one host installs under the venv's
# lease, the others wait and find it ready, each wheel fetched once.
# Exit status: 0 when every host this job ran on reports ready (for an array: this element's host).
#
# Variables: MLAGENT_BIN (default /opt/mlagent/bin/mlagent), MLAGENT_STORM_DIR (default
# ./mlagent-install-$LSB_JOBID), and mlagent's own (MLAGENT_ROOT, MLAGENT_INDEX_URL, ...).
set -eu
PROFILE="${1:?usage: install_storm.sh PROFILE}"
MLAGENT="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
OUT="${MLAGENT_STORM_DIR:-$PWD/mlagent-install-${LSB_JOBID:-$$}}"
mkdir -p "$OUT"
one='"$0" install "$1" --json >"$2/$(hostname).json"'
if [ -n "${LSB_JOBINDEX:-}" ] && [ "$LSB_JOBINDEX" != 0 ] || [ -z "${LSB_HOSTS:-}" ]; then
  # An array element (or a one-host job): install here.
  exec sh -c "$one" "$MLAGENT" "$PROFILE" "$OUT"
fi
# A parallel job: LSB_HOSTS names each slot's host; one task per distinct host, all at once.
status=0
pids=""
for host in $(printf '%s\n' $LSB_HOSTS | sort -u); do
  # -no-shell: the arguments reach sh as they are, not re-parsed by a login shell on the host.
  blaunch -no-shell "$host" sh -c "$one" "$MLAGENT" "$PROFILE" "$OUT" &
  pids="$pids $!"
done
for pid in $pids; do wait "$pid" || status=1; done
exit "$status"

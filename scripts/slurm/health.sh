#!/bin/sh
# Slurm HealthCheckProgram (slurm.conf: HealthCheckProgram=/opt/mlagent/scripts/slurm/health.sh,
# HealthCheckInterval=300, HealthCheckNodeState=ANY), run by slurmd as root at start-up and every interval.
#
# `mlagent health` checks the node (GPUs, driver, Xid window, disk, TMPDIR, venvs, cache record) and drains it
# through scontrol with a reason naming the check ("mlagent: gpu.health GPU 3 uncorrectable ECC (2)") on a
# node fault; it resumes a node it (or the Prolog) drained once the node is healthy again, never one an admin
# drained. When it cannot judge (a check hung past the deadline, mlagent failed) it changes nothing.
# slurmd kills a HealthCheckProgram after 60 s: keep MLAGENT_HEALTH_TIMEOUT below that.
# With MLAGENT_FLEET_DIR set, each run also writes the report to $MLAGENT_FLEET_DIR/HOST.health.json for
# `mlagent fleet`.
#
# mlagent missing (the same rule in every recipe: slurm/, lsf/, cron/): a node without mlagent is a node fault.
# The script says so on stderr and in syslog (logger -t mlagent), drains the node with the reason
# "mlagent: mlagent.binary ... missing" unless someone else drained it, and exits 1; once the binary is back the
# next run resumes the node.
#
# Variables: MLAGENT_BIN (default /opt/mlagent/bin/mlagent), MLAGENT_STATE_DIR (default /var/log/mlagent),
# MLAGENT_HEALTH_TIMEOUT (seconds, default 40), MLAGENT_ROOT and MLAGENT_CACHE_DIR (where the site's venvs
# and cache are: health runs as root), MLAGENT_FLEET_DIR (optional).
PATH="${PATH:+$PATH:}/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
export PATH
MLAGENT_STATE_DIR="${MLAGENT_STATE_DIR:-/var/log/mlagent}"
export MLAGENT_STATE_DIR
MLAGENT_BIN="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
# shellcheck source=missing.sh
. "$(dirname "$0")/missing.sh"
mlagent_require_binary health "slurm health check"
set -- health --scheduler slurm --timeout "${MLAGENT_HEALTH_TIMEOUT:-40}"
if [ -n "${MLAGENT_FLEET_DIR:-}" ]; then set -- "$@" --output "$MLAGENT_FLEET_DIR/"; fi
exec "$MLAGENT_BIN" "$@"

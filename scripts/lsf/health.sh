#!/bin/sh
# LSF host health check for mlagent, from root's cron on every execution host (LSF has no per-host health
# hook of its own; this is NHC's arrangement):
#
#   /etc/cron.d/mlagent-health:   */5 * * * * root /opt/mlagent/scripts/lsf/health.sh
#
# `mlagent health` checks the host (GPUs, driver, Xid window, disk, TMPDIR, venvs, cache record) and closes it
# with `badmin hclose -C "mlagent: gpu.health GPU 3 ..." HOST` on a host fault; it reopens (`badmin hopen`) a
# host it closed once it is healthy again, never one an admin closed (their comment in `bhosts -l` does not
# start with "mlagent:"). When it cannot judge (a check hung past the deadline, mlagent failed) it changes
# nothing. With MLAGENT_FLEET_DIR set, each run also writes $MLAGENT_FLEET_DIR/HOST.health.json.
#
# mlagent missing (the same rule in every recipe: slurm/, lsf/, cron/): a host without mlagent is a host fault.
# The script says so on stderr (cron mails it) and in syslog (logger -t mlagent), closes the host with
# "mlagent: mlagent.binary ... missing" unless an admin closed it, and exits 1; once the binary is back the
# next run reopens the host.
#
# Variables: MLAGENT_BIN (default /opt/mlagent/bin/mlagent), LSF_PROFILE (sourced for LSF's environment when
# present; default /usr/share/lsf/conf/profile.lsf), MLAGENT_STATE_DIR (default /var/log/mlagent),
# MLAGENT_HEALTH_TIMEOUT (seconds, default 40), MLAGENT_ROOT, MLAGENT_CACHE_DIR, MLAGENT_FLEET_DIR.
LSF_PROFILE="${LSF_PROFILE:-/usr/share/lsf/conf/profile.lsf}"
# shellcheck disable=SC1090
[ -r "$LSF_PROFILE" ] && . "$LSF_PROFILE"
PATH="${PATH:+$PATH:}/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
export PATH
MLAGENT_STATE_DIR="${MLAGENT_STATE_DIR:-/var/log/mlagent}"
export MLAGENT_STATE_DIR
MLAGENT_BIN="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
if [ ! -x "$MLAGENT_BIN" ]; then
  host="$(hostname)"
  msg="mlagent: mlagent.binary $MLAGENT_BIN is missing or not executable on $host (lsf health check)"
  echo "$msg" >&2
  logger -t mlagent -p daemon.err "$msg" 2>/dev/null
  # Never over an admin's close: an open host, or one mlagent closed, gets this one.
  if ! bhosts -l "$host" 2>/dev/null | grep -q '^ *closed_Adm' ||
    bhosts -l "$host" 2>/dev/null | grep -q '^ *ADMIN ACTION COMMENT: *"\{0,1\}mlagent:'; then
    badmin hclose -C "mlagent: mlagent.binary $MLAGENT_BIN missing (health)" "$host"
  fi
  exit 1
fi
set -- health --scheduler lsf --timeout "${MLAGENT_HEALTH_TIMEOUT:-40}"
if [ -n "${MLAGENT_FLEET_DIR:-}" ]; then set -- "$@" --output "$MLAGENT_FLEET_DIR/"; fi
exec "$MLAGENT_BIN" "$@"

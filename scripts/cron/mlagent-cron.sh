#!/bin/sh
# mlagent's cron jobs (scripts/cron/mlagent.crontab), one per argument:
#   heal   heal the installer cache (busy during an install: exits 0, tries next time), then refresh the
#          Prometheus textfile for node_exporter
#   fleet  write this node's `status --json` to the shared fleet directory as HOST.json, atomically, for
#          `mlagent fleet DIR` on an admin host
#
# mlagent missing (the same rule in every recipe: slurm/, lsf/, cron/): the script says so on stderr (cron
# mails it) and in syslog (logger -t mlagent) and exits 1. (The node_exporter textfile then goes stale:
# alert on mlagent_status_timestamp_seconds.)
#
# Variables: MLAGENT_BIN (default /opt/mlagent/bin/mlagent), MLAGENT_CACHE_MAX_SIZE (default 50G),
# MLAGENT_TEXTFILE (default /var/lib/node_exporter/textfile/mlagent.prom), MLAGENT_FLEET_DIR (for fleet),
# MLAGENT_CRON_LOG (default $HOME/.local/state/mlagent/cron.log).
MLAGENT_BIN="${MLAGENT_BIN:-/opt/mlagent/bin/mlagent}"
job="${1:-}"
if [ ! -x "$MLAGENT_BIN" ]; then
  msg="mlagent: mlagent.binary $MLAGENT_BIN is missing or not executable on $(hostname) (cron $job)"
  echo "$msg" >&2
  logger -t mlagent -p cron.err "$msg" 2>/dev/null
  exit 1
fi
case "$job" in
  heal)
    log="${MLAGENT_CRON_LOG:-${HOME:-/tmp}/.local/state/mlagent/cron.log}"
    mkdir -p "$(dirname "$log")"
    "$MLAGENT_BIN" cache heal --max-size "${MLAGENT_CACHE_MAX_SIZE:-50G}" --quiet >>"$log" 2>&1
    exec "$MLAGENT_BIN" status --format prometheus \
      --output "${MLAGENT_TEXTFILE:-/var/lib/node_exporter/textfile/mlagent.prom}" --quiet
    ;;
  fleet)
    if [ -z "${MLAGENT_FLEET_DIR:-}" ]; then
      echo "mlagent-cron.sh fleet: set MLAGENT_FLEET_DIR to the shared directory" >&2
      exit 2
    fi
    exec "$MLAGENT_BIN" status --json --output "$MLAGENT_FLEET_DIR/" --quiet >/dev/null
    ;;
  *)
    echo "usage: mlagent-cron.sh heal|fleet" >&2
    exit 2
    ;;
esac

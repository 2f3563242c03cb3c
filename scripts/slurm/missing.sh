# Sourced by the Slurm Prolog and health check (not run on its own): the one rule for a node without mlagent.
# A node fault: said on stderr and in syslog, the node drained with a reason naming the binary (never over an
# admin's drain: only a node without a reason, or with mlagent's own, gets this one), exit 1. The next
# `mlagent health` run after the binary is back resumes the node.
#
#   mlagent_require_binary HOOK WHERE    e.g. mlagent_require_binary prologue "slurm prolog, job 42"
mlagent_require_binary() {
  [ -x "$MLAGENT_BIN" ] && return 0
  node="${SLURMD_NODENAME:-$(hostname -s)}"
  msg="mlagent: mlagent.binary $MLAGENT_BIN is missing or not executable on $node ($2)"
  echo "$msg" >&2
  logger -t mlagent -p daemon.err "$msg" 2>/dev/null
  case "$(sinfo -h -N -n "$node" -o %E 2>/dev/null)" in
    "" | none | mlagent:*)
      scontrol update nodename="$node" state=drain reason="mlagent: mlagent.binary $MLAGENT_BIN missing ($1)" ;;
  esac
  exit 1
}

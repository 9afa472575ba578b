#!/usr/bin/env bash
# chaos.sh: run the chaos suite (internal/chaos) and remove its hosts on
# every exit: a test killed by -timeout or a signal runs no cleanup of its
# own, so this trap runs `netns.sh down` (which also kills the brokers in
# the hosts). Root, Linux, iproute2; iptables is installed when missing.
#
#   scripts/chaos.sh [go test flags...]
#
# e.g. scripts/chaos.sh -run '^TestChaos$'. The environment configures the
# run (see internal/chaos/chaos_test.go): SLUICE_CHAOS_SEED,
# SLUICE_CHAOS_FAULT_TIME, SLUICE_CHAOS_FAULTS, SLUICE_CHAOS_FSYNC,
# SLUICE_CHAOS_RATE; SLUICE_BIN to use a built binary. CHAOS_TIMEOUT bounds
# the whole go test run (default 20m).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
down() { "$root/scripts/netns.sh" down >/dev/null 2>&1 || true; }
trap down EXIT
trap 'exit 130' INT TERM HUP
export SLUICE_CHAOS=1
go test -count=1 -v -timeout "${CHAOS_TIMEOUT:-20m}" "$@" ./internal/chaos/

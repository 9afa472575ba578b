#!/usr/bin/env bash
# bench-partitions.sh BIN N: on a fresh 3-broker scripts/cluster.sh cluster,
# create a topic of N partitions RF 3 and print the seconds from create to
# every ISR full, the seconds a controlled shutdown of broker 3 takes, the
# seconds from its restart to every ISR full, and each broker's RSS, open
# files and memory maps (BENCHMARKS.md, "Many partitions"), and the CPU
# seconds the three brokers used in each phase (less at the mercy of a
# loaded machine than the seconds of the clock: compare both).
# $SLUICE_CLUSTER_PORT picks the ports (default 26000); KEEP=1 leaves the
# cluster running; PPROF=1 starts the brokers with --pprof on a free port
# (the address is in each DIR/I/broker.log, "pprof listening").
# Each replica's active segment takes one open file per file it keeps
# open (docs/operations.md): N partitions need about N (to 3N) open files
# per broker. When the open-file limit is below 3N + 2000, the script
# raises it (soft, and hard when it may: root with CAP_SYS_RESOURCE) for
# the brokers it starts, and otherwise says what it has and goes on: the
# brokers' own start-time check names the limit if it is too low.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BIN PARTITIONS" >&2; exit 2; }
bin=$1 n=$2
want=$((3 * n + 2000))
if [ "$(ulimit -n)" -lt "$want" ]; then
	if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$want" ]; then
		ulimit -Hn "$want" 2>/dev/null || echo "bench-partitions: cannot raise the hard open-file limit $(ulimit -Hn) to $want (needs root with CAP_SYS_RESOURCE); going on with $(ulimit -Hn)" >&2
	fi
	ulimit -n "$(ulimit -Hn)"
fi
if [ -n "${PPROF:-}" ]; then export SLUICE_BROKER_ARGS="${SLUICE_BROKER_ARGS:-} --pprof 127.0.0.1:0"; fi
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d "${BENCH_TMP:-/tmp}/bench-partitions.XXXX")
export SLUICE_TIMEOUT=120s SLUICE_BIN=$bin SLUICE_CLUSTER_PORT=${SLUICE_CLUSTER_PORT:-26000}
addrs=$("$root/scripts/cluster.sh" up 3 "$dir" | tail -1)
export SLUICE_BROKERS=$addrs
now() { date +%s.%N; }
cpu() { # CPU seconds (user + system) the running brokers have used
	local t=0 i
	for i in 1 2 3; do
		if [ -f "$dir/$i/pid" ] && [ -r "/proc/$(cat "$dir/$i/pid")/stat" ]; then
			t=$((t + $(awk '{print $14 + $15}' "/proc/$(cat "$dir/$i/pid")/stat")))
		fi
	done
	python3 -c "import os, sys; print(int(sys.argv[1]) / os.sysconf('SC_CLK_TCK'))" "$t"
}
used() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(cpu)"; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
full() { # waits, at most 10 minutes, until every partition has a leader and 3 in its ISR
	for _ in $(seq 1200); do
		if "$bin" topic describe many --json 2>/dev/null | python3 -c '
import json, sys
ps = json.load(sys.stdin)["partitions"]
sys.exit(0 if ps and all(p["leader"] >= 0 and len(p["isr"]) == 3 for p in ps) else 1)' 2>/dev/null; then
			return 0
		fi
		sleep 0.5
	done
	echo "bench-partitions: ISRs not full after 10 minutes" >&2
	return 1
}
echo "load_average $(cut -d' ' -f1-3 /proc/loadavg) open_files_limit $(ulimit -n)"
t0=$(now) c0=$(cpu)
"$bin" topic create many --partitions "$n" --replication-factor 3 >/dev/null
full
echo "create_to_full_isr_s $(since "$t0") cpu_s $(used "$c0")"
t0=$(now)
"$root/scripts/cluster.sh" stop 3 "$dir" >/dev/null
echo "controlled_shutdown_s $(since "$t0")"
sleep 2
t0=$(now) c0=$(cpu)
"$root/scripts/cluster.sh" start 3 "$dir" >/dev/null
full
echo "restart_to_full_isr_s $(since "$t0") cpu_s $(used "$c0")"
for i in 1 2 3; do
	pid=$(cat "$dir/$i/pid")
	echo "broker$i rss_mib $(awk '/VmRSS/{printf "%d", $2/1024}' "/proc/$pid/status") fds $(ls "/proc/$pid/fd" | wc -l) maps $(wc -l <"/proc/$pid/maps")"
done
if [ -n "${KEEP:-}" ]; then
	echo "kept $dir"
	exit 0
fi
"$root/scripts/cluster.sh" down "$dir" >/dev/null
rm -rf "$dir"

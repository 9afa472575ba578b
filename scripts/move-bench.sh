#!/usr/bin/env bash
# move-bench.sh: how fast a partition moves against the reassignment
# throttle, and the produce latency of other partitions meanwhile (issue
# 20, BENCHMARKS.md "Moving a partition"). On real broker processes
# (scripts/cluster.sh up 4, a fresh cluster, auto.balance=off):
#
#   - topic big (1 partition, RF 3, on brokers 1-3) filled to
#     MOVE_BENCH_BYTES of record values with `sluice bench produce`;
#   - topic other (3 partitions, RF 3) under a steady acks=all load of
#     MOVE_BENCH_LOAD_RATE records/s of MOVE_BENCH_LOAD_SIZE bytes
#     (`sluice bench produce --rate`: latency from each record's scheduled
#     send, so a stall shows as latency), WINDOW seconds per phase;
#   - phase A: the load alone (with the script polling the cluster as in
#     phase B); phase B: the load while `sluice cluster reassign` moves
#     big's partition off one follower onto the broker that holds no
#     replica of it (broker 4 first, then whichever is free), with
#     reassignment.throttle.bytes.per.sec = MOVE_BENCH_THROTTLE. The move's
#     time is from the reassign to done: the target replicas all in sync,
#     no move listed, and the removed replica's directory gone from its
#     broker's data dir. The rate is the partition's log bytes (the
#     leader's .log files) over that time, and a fraction of the throttle;
#   - phases in the order A B B A A B ... (MOVE_BENCH_ROUNDS of each);
#     each prints one line with the load average and the machine's dirty
#     page cache at its start (the fill is synced first), each broker's
#     CPU use (cores: CPU seconds over the phase's seconds), and how busy
#     the disk under DIR was and what was written to it (the whole
#     machine's); a table of medians and spreads (min-max) at the end;
#   - then the throttle config is deleted, and the script checks nothing
#     is left: the config back at its default, no move listed, no replica
#     being added or removed, every replica of big in sync.
#
#   scripts/move-bench.sh [DIR]      DIR default /tmp/sluice-move-bench (emptied;
#                                    it must be empty or an earlier run's)
#   make move-bench                  the same (not in ci)
#
# Environment (defaults): MOVE_BENCH_BYTES (2147483648), MOVE_BENCH_THROTTLE
# (50000000 bytes/s), MOVE_BENCH_ROUNDS (3), MOVE_BENCH_LOAD_RATE (2000),
# MOVE_BENCH_LOAD_SIZE (1024), MOVE_BENCH_WINDOW (seconds of load per
# phase; default 30, at most 80% of BYTES/THROTTLE so that phase B's load
# runs inside the move), SLUICE_BIN (default: built into DIR/sluice).
# Every wait is bounded (a move: 3x BYTES/THROTTLE + 120 s); the cluster is
# torn down on exit. Results: DIR/results.jsonl, one JSON object a phase.
#
# Example: MOVE_BENCH_BYTES=$((512<<20)) MOVE_BENCH_ROUNDS=3 scripts/move-bench.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-/tmp/sluice-move-bench}
bytes=${MOVE_BENCH_BYTES:-2147483648}
throttle=${MOVE_BENCH_THROTTLE:-50000000}
rounds=${MOVE_BENCH_ROUNDS:-3}
load_rate=${MOVE_BENCH_LOAD_RATE:-2000}
load_size=${MOVE_BENCH_LOAD_SIZE:-1024}
big_record=16384

die() { echo "move-bench.sh: $*" >&2; exit 1; }
for v in bytes throttle rounds load_rate load_size; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
expect=$(((bytes + throttle - 1) / throttle)) # seconds a move should take
window=${MOVE_BENCH_WINDOW:-$((expect * 8 / 10 < 30 ? expect * 8 / 10 : 30))}
[[ $window =~ ^[0-9]+$ ]] || die "MOVE_BENCH_WINDOW must be whole seconds, got '$window'"
((window >= 3)) || die "a load window of ${window} s is too short: raise MOVE_BENCH_BYTES or lower MOVE_BENCH_THROTTLE"
move_timeout=$((3 * expect + 120))

if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ] && [ ! -f "$dir/.move-bench" ]; then
	die "$dir is not empty and not an earlier run's: give an empty or new DIR"
fi
rm -rf "$dir"
mkdir -p "$dir"
touch "$dir/.move-bench"
dir=$(cd "$dir" && pwd)
# Three replicas and a fourth during each move, plus slack.
need=$((bytes * 9 / 2 / 1024))
free_kb=$(df -Pk "$dir" | awk 'NR == 2 {print $4}')
((free_kb > need)) || die "$dir has $((free_kb >> 20)) GiB free; a move of $bytes bytes needs about $((need >> 20)) GiB"
bin=${SLUICE_BIN:-$dir/sluice}
if [ -z "${SLUICE_BIN:-}" ]; then (cd "$root" && go build -o "$bin" ./cmd/sluice) || die "build failed"; fi
export SLUICE_BIN=$bin
c="$dir/cluster"
hz=$(getconf CLK_TCK)

load_pid=""
cleanup() {
	if [ -n "$load_pid" ]; then kill "$load_pid" 2>/dev/null || true; fi
	"$root/scripts/cluster.sh" down "$c" || true
}
trap cleanup EXIT

SLUICE_CLUSTER_OWNER=$$ SLUICE_CLUSTER_PORT=$("$root/scripts/cluster.sh" free-base 4) "$root/scripts/cluster.sh" up 4 "$c" >/dev/null
# cli_for SECONDS ARGS...: the CLI against the cluster, killed after SECONDS.
cli_for() {
	local limit=$1
	shift
	timeout "$limit" "$bin" --brokers "$(cat "$c/brokers")" --operator-secret-file "$c/cluster-secret" "$@"
}
cli() { cli_for 60 "$@"; }
# loadavg: the load average (1, 5, 15 min) and the machine's dirty page
# cache not yet written back.
loadavg() { echo "$(cut -d' ' -f1-3 /proc/loadavg), dirty $(awk '/^Dirty:/ {printf "%d", $2 / 1024}' /proc/meminfo) MiB"; }
# cpu prints each broker's CPU time (user + system) in clock ticks, then
# the milliseconds the disk under DIR has been busy and the sectors written
# to it (by anyone: the machine is shared), "b1 b2 b3 b4 busy_ms sectors";
# "0 0" for the disk when /sys/block does not have it.
disk=/sys/block/$(basename "$(df -P "$dir" | awk 'NR == 2 {print $1}')")/stat
cpu() {
	local b out=()
	for b in 1 2 3 4; do out+=("$(awk '{print $14 + $15}' "/proc/$(cat "$c/$b/pid")/stat")"); done
	if [ -r "$disk" ]; then out+=("$(awk '{print $10, $7}' "$disk")"); else out+=("0 0"); fi
	echo "${out[*]}"
}

# until_ok SECONDS WHAT CMD...: run CMD every 0.5 s (each try starts two
# CLI processes: polled no faster on a 2-core machine) until it succeeds,
# for at most SECONDS.
until_ok() {
	local limit=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + limit))
	until "$@"; do
		((SECONDS < deadline)) || die "$what: not after ${limit} s"
		sleep 0.5
	done
}

# replicas prints big's leader, then its replicas.
describe() { cli topic describe "$1" --json; }
replicas() { describe big | python3 -c 'import json,sys; p=json.load(sys.stdin)["partitions"][0]; print(p["leader"], *p["replicas"])'; }
# settled TARGET...: big's replicas and ISR are exactly TARGET (as sets),
# no move is listed, and no broker outside TARGET holds a directory of it.
settled() {
	local want out b
	want=$(printf '%s\n' "$@" | sort -n | tr '\n' ' ')
	out=$(describe big | python3 -c 'import json,sys
p=json.load(sys.stdin)["partitions"][0]
print(" ".join(map(str,sorted(p["replicas"])))+" ", "|", " ".join(map(str,sorted(p["isr"])))+" ")') || return 1
	[ "$out" = "$want | $want" ] || return 1
	[ "$(cli cluster reassign --list --json --interval 0 | tr -d ' \n')" = "[]" ] || return 1
	for b in 1 2 3 4; do
		if [[ " $* " != *" $b "* ]] && [ -d "$c/$b/data/big-0" ]; then return 1; fi
	done
}
plan() {
	local r
	r=$(printf '%s,' "$@")
	echo "{\"version\":1,\"partitions\":[{\"topic\":\"big\",\"partition\":0,\"replicas\":[${r%,}]}]}" >"$dir/plan.json"
	cli cluster reassign --plan "$dir/plan.json" >/dev/null
}

# Setup: auto.balance off (nothing moves but what this script moves), the
# throttle, big on brokers 1-3 and filled, other created.
cli cluster config --set auto.balance=off --set reassignment.throttle.bytes.per.sec="$throttle" >/dev/null
cli topic create big --partitions 1 --replication-factor 3 >/dev/null
cli topic create other --partitions 3 --replication-factor 3 >/dev/null
until_ok 30 "big has a leader" replicas >/dev/null
plan 1 2 3
until_ok 60 "big on brokers 1-3" settled 1 2 3
echo "filling big with $bytes bytes of ${big_record}-byte records (load $(loadavg))"
fill_start=$SECONDS
# Bounded as a fill at 5 MB/s.
cli_for $((120 + bytes / 5000000)) bench produce --topic big --records $((bytes / big_record)) --record-size $big_record --acks all --json >"$dir/fill.json" ||
	die "filling big failed: $(cat "$dir/fill.json")"
until_ok 120 "big's replicas in sync after the fill" settled 1 2 3
# The fill's gigabytes are dirty in the page cache: written back now, not
# in the kernel's own time during the phases (it stalled every process
# on the disk for a second there).
timeout 300 sync -f "$c" || die "sync after the fill did not end in 300 s"
echo "filled and synced in $((SECONDS - fill_start)) s"

# The steady load on other for the window (a phase's report goes to
# DIR/load-PHASE.json). Phase B runs it in the background as a simple
# command, so that load_pid is timeout's, which passes a SIGTERM on.
load=(timeout $((window + 60)) "$bin" --brokers "$(cat "$c/brokers")" --operator-secret-file "$c/cluster-secret"
	bench produce --topic other --rate "$load_rate" --record-size "$load_size" --duration "${window}s"
	--acks all --delivery-timeout 30s --json)

# log_bytes B: the bytes of big's .log files on broker B.
log_bytes() { find "$c/$1/data/big-0" -name '*.log' -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}'; }

# phase_a N: the load alone. The script polls the cluster as phase B's
# wait for the move does (topic describe, reassign --list, every 0.5 s),
# so that the only difference between the phases is the move.
phase_a() {
	local n=$1 la c0 c1 t0 t1 r load_ok=1
	read -r _ r <<<"$(replicas)"
	la=$(loadavg)
	c0=$(cpu) t0=$(date +%s.%N)
	"${load[@]}" >"$dir/load-$n.json" &
	load_pid=$!
	while kill -0 "$load_pid" 2>/dev/null; do
		# shellcheck disable=SC2086
		settled $r || true
		sleep 0.5
	done
	if ! wait "$load_pid"; then load_ok=0; fi
	load_pid=""
	[ $load_ok = 1 ] || die "load of phase $n failed: $(cat "$dir/load-$n.json")"
	c1=$(cpu) t1=$(date +%s.%N)
	python3 - "$dir" "$n" A "$la" "$c0" "$c1" "$t0" "$t1" "$hz" <<-'EOF'
		import json, sys
		d, n, kind, la, c0, c1, t0, t1, hz = sys.argv[1:]
		r = json.load(open(f"{d}/load-{n}.json"))
		l = r["latency"]
		secs = float(t1) - float(t0)
		a, b = [int(x) for x in c0.split()], [int(x) for x in c1.split()]
		cpu = [round((y - x) / int(hz) / secs, 2) for x, y in zip(a[:4], b[:4])]
		busy, wmb = round(100 * (b[4] - a[4]) / 1000 / secs), round((b[5] - a[5]) * 512 / 1e6 / secs, 1)
		out = {"phase": n, "kind": kind, "load": la, "p50_ms": l["p50_ms"], "p99_ms": l["p99_ms"],
		       "p999_ms": l["p99_9_ms"], "records": r["records"], "errors": r["errors"], "broker_cpu": cpu,
		       "disk_busy_pct": busy, "disk_write_mb_s": wmb}
		print(json.dumps(out), file=open(f"{d}/results.jsonl", "a"))
		print(f"phase {n} A: load p50 {l['p50_ms']:.1f} p99 {l['p99_ms']:.1f} p99.9 {l['p99_9_ms']:.1f} ms, {r['records']} records, "
		      f"{r['errors']} errors; broker CPU (cores) {cpu}; disk busy {busy}%, written {wmb} MB/s; loadavg {la}")
	EOF
}

phase_b() {
	local n=$1 la cur leader r free drop target=() start t_load c0 c1 t_done moved load_ok=1
	cur=$(replicas)
	read -r leader r <<<"$cur"
	for free in 4 1 2 3; do [[ " $r " != *" $free "* ]] && break; done
	# Drop a follower (the last one): the leader stays, and serves the copy.
	drop=$(awk '{print $NF}' <<<"$r")
	for b in $r; do [ "$b" = "$drop" ] || target+=("$b"); done
	target+=("$free")
	moved=$(log_bytes "$leader")
	la=$(loadavg)
	c0=$(cpu)
	start=$(date +%s.%N)
	plan "${target[@]}"
	t_load=$(date +%s.%N)
	"${load[@]}" >"$dir/load-$n.json" &
	load_pid=$!
	until_ok "$move_timeout" "the move of big to ${target[*]}" settled "${target[@]}"
	t_done=$(date +%s.%N)
	c1=$(cpu)
	if ! wait "$load_pid"; then load_ok=0; fi
	load_pid=""
	[ $load_ok = 1 ] || die "load of phase $n failed: $(cat "$dir/load-$n.json")"
	python3 - "$dir" "$n" B "$la" "$start" "$t_done" "$t_load" "$moved" "$throttle" "$leader" "$drop" "$free" "$c0" "$c1" "$hz" <<-'EOF'
		import json, sys
		d, n, kind, la, start, done, tload, moved, throttle, leader, drop, free, c0, c1, hz = sys.argv[1:]
		r = json.load(open(f"{d}/load-{n}.json"))
		l = r["latency"]
		secs = float(done) - float(start)
		a, b = [int(x) for x in c0.split()], [int(x) for x in c1.split()]
		cpu = [round((y - x) / int(hz) / secs, 2) for x, y in zip(a[:4], b[:4])]
		busy, wmb = round(100 * (b[4] - a[4]) / 1000 / secs), round((b[5] - a[5]) * 512 / 1e6 / secs, 1)
		rate = int(moved) / secs
		inside = float(tload) + r["seconds"] <= float(done)  # the load ended before the move did
		out = {"phase": n, "kind": kind, "load": la, "p50_ms": l["p50_ms"], "p99_ms": l["p99_ms"],
		       "p999_ms": l["p99_9_ms"], "records": r["records"], "errors": r["errors"],
		       "move_s": secs, "move_bytes": int(moved), "rate": rate, "of_throttle": rate / int(throttle),
		       "load_inside_move": inside, "from": int(drop), "to": int(free), "leader": int(leader),
		       "broker_cpu": cpu, "disk_busy_pct": busy, "disk_write_mb_s": wmb}
		print(json.dumps(out), file=open(f"{d}/results.jsonl", "a"))
		print(f"phase {n} B: moved {int(moved)/2**20:.0f} MiB {drop}->{free} (leader {leader}) in {secs:.1f} s: "
		      f"{rate/1e6:.1f} MB/s, {100*rate/int(throttle):.0f}% of the throttle; load p50 {l['p50_ms']:.1f} "
		      f"p99 {l['p99_ms']:.1f} p99.9 {l['p99_9_ms']:.1f} ms, {r['records']} records, {r['errors']} errors"
		      f"{'' if inside else ' (the load outlived the move)'}; broker CPU (cores) {cpu}; disk busy {busy}%, written {wmb} MB/s; loadavg {la}")
	EOF
}

echo "phases of ${window} s of load: $load_rate records/s of $load_size B on other (acks=all); throttle $throttle B/s"
n=0
for ((i = 0; i < 2 * rounds; i++)); do
	n=$((n + 1))
	# A B B A A B B A ...
	if (((i + 1) / 2 % 2 == 0)); then phase_a $n; else phase_b $n; fi
done

# The throttle gone, and nothing left behind.
cli cluster config --delete reassignment.throttle.bytes.per.sec >/dev/null
left=$(cli cluster config --json | python3 -c 'import json,sys
c={e["key"]:e for e in json.load(sys.stdin)}["reassignment.throttle.bytes.per.sec"]
print("" if c["is_default"] else c["value"])')
[ -z "$left" ] || die "reassignment.throttle.bytes.per.sec still set: $left"
[ "$(cli cluster reassign --list --json --interval 0 | tr -d ' \n')" = "[]" ] || die "a move is still listed"
if cli topic describe big | grep -qi moving; then die "big still shows a move: $(cli topic describe big)"; fi
read -r _ r <<<"$(replicas)"
# shellcheck disable=SC2086
settled $r || die "big's replicas $r are not all in sync"
echo "throttle config deleted (back to its default); no move listed; big on $r, all in sync"

python3 - "$dir/results.jsonl" <<-'EOF'
	import json, statistics, sys
	rows = [json.loads(l) for l in open(sys.argv[1])]
	def col(kind, key):
	    return [r[key] for r in rows if r["kind"] == kind]
	def stat(v, fmt):
	    return f"{fmt(statistics.median(v))} ({fmt(min(v))}-{fmt(max(v))})"
	ms = lambda x: f"{x:.1f}"
	print()
	print("| phase | runs | p50 ms | p99 ms | p99.9 ms | errors |")
	print("|---|---|---|---|---|---|")
	for k, name in (("A", "A: no move"), ("B", "B: moving")):
	    print(f"| {name} | {len(col(k, 'p99_ms'))} | {stat(col(k, 'p50_ms'), ms)} | {stat(col(k, 'p99_ms'), ms)} | "
	          f"{stat(col(k, 'p999_ms'), ms)} | {sum(col(k, 'errors'))} |")
	print()
	print(f"move: {stat(col('B', 'move_s'), ms)} s, {stat([r / 1e6 for r in col('B', 'rate')], ms)} MB/s, "
	      f"{stat([100 * f for f in col('B', 'of_throttle')], lambda x: f'{x:.0f}')}% of the throttle (median, min-max)")
	a, b = statistics.median(col("A", "p99_ms")), statistics.median(col("B", "p99_ms"))
	print(f"p99 during a move / without: {b / a:.2f}x (medians)")
	print("the 4 brokers' CPU use (cores), median: " + ", ".join(
	    f"{k} {statistics.median(sum(r['broker_cpu']) for r in rows if r['kind'] == k):.2f}" for k in ("A", "B")))
	print("disk busy % and MB/s written (whole machine), median: " + ", ".join(
	    f"{k} {statistics.median(r['disk_busy_pct'] for r in rows if r['kind'] == k)}% "
	    f"{statistics.median(r['disk_write_mb_s'] for r in rows if r['kind'] == k)}" for k in ("A", "B")))
	print("load averages (1/5/15 min) and dirty page cache at each phase's start: " + "; ".join(f"{r['phase']}{r['kind']} {r['load']}" for r in rows))
EOF

#!/usr/bin/env bash
# tls-bench.sh: TLS against plaintext as an operator sees it (issue 18,
# BENCHMARKS.md "TLS against plaintext"). Two single-broker clusters in
# processes of their own (scripts/cluster.sh): one plaintext, one with TLS
# on every listener and mutual TLS required (SLUICE_CLUSTER_TLS=1); `sluice
# bench produce` then `sluice bench consume` in another process against
# each, interleaved (the order alternates per round), ROUNDS rounds per
# record size, a new topic per run (one partition, acks=1, no
# compression). Each run prints one line: size, mode, phase, MB/s,
# records/s, and the broker process's CPU seconds (user + system, from
# /proc/PID/stat before and after) per GB of record payload.
#
#   scripts/tls-bench.sh [DIR]       DIR default /tmp/sluice-tls-bench
#
# Environment: ROUNDS (3), SIZES ("100 1024"), BYTES (payload per run,
# 300000000), SLUICE_BIN (default: built into DIR/sluice).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-/tmp/sluice-tls-bench}
rounds=${ROUNDS:-3}
sizes=${SIZES:-100 1024}
bytes=${BYTES:-300000000}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
bin=${SLUICE_BIN:-$dir/sluice}
if [ -z "${SLUICE_BIN:-}" ]; then (cd "$root" && go build -o "$bin" ./cmd/sluice); fi
export SLUICE_BIN=$bin

# A base port whose 10 ports from +10 are free (cluster.sh uses +11..+15).
free_base() {
	local b p used
	for _ in $(seq 50); do
		b=$((20000 + (RANDOM % 400) * 100))
		used=0
		for p in $(seq $((b + 11)) $((b + 15))); do
			if ss -Htuan "sport = :$p" | grep -q .; then used=1; fi
		done
		if [ $used = 0 ]; then echo $b; return; fi
	done
	echo "tls-bench.sh: no free ports" >&2
	exit 1
}

cleanup() {
	"$root/scripts/cluster.sh" down "$dir/plain" || true
	"$root/scripts/cluster.sh" down "$dir/tls" || true
}
trap cleanup EXIT

SLUICE_CLUSTER_OWNER=$$ SLUICE_CLUSTER_PORT=$(free_base) "$root/scripts/cluster.sh" up 1 "$dir/plain" >/dev/null
SLUICE_CLUSTER_OWNER=$$ SLUICE_CLUSTER_PORT=$(free_base) SLUICE_CLUSTER_TLS=1 "$root/scripts/cluster.sh" up 1 "$dir/tls" >/dev/null

# cpu prints a process's user + system CPU time in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# run MODE PHASE SIZE TOPIC: one bench run against MODE's broker.
run() {
	local mode=$1 phase=$2 size=$3 topic=$4 c="$dir/$1" n args pid before after out
	n=$((bytes / size))
	args=(--brokers "$(cat "$c/brokers")" --operator-secret-file "$c/cluster-secret")
	if [ "$mode" = tls ]; then
		args+=(--tls-ca "$c/tls/ca.crt" --tls-cert "$c/tls/client.crt" --tls-key "$c/tls/client.key")
	fi
	if [ "$phase" = produce ]; then
		args+=(bench produce --create --acks 1 --idempotence=false --record-size "$size")
	else
		args+=(bench consume)
	fi
	pid=$(cat "$c/1/pid")
	before=$(cpu "$pid")
	out=$("$bin" "${args[@]}" --topic "$topic" --records "$n" --json)
	after=$(cpu "$pid")
	python3 - "$size" "$mode" "$phase" "$before" "$after" "$hz" "$out" <<-'EOF'
		import json, sys
		size, mode, phase, before, after, hz, out = sys.argv[1:]
		r = json.loads(out)
		mbs = r.get("mb_per_sec") or r.get("mbps") or r.get("MBps")
		rps = r.get("records_per_sec") or r.get("recordsPerSec")
		payload = r.get("bytes") or 0
		recs = r.get("records") or 0
		gb = (recs * int(size)) / 1e9
		cpu_s = (int(after) - int(before)) / int(hz)
		print(f"{size} {mode} {phase} MB/s={mbs} rec/s={rps} broker_cpu_s={cpu_s:.2f} broker_cpu_s_per_GB={cpu_s / gb if gb else 0:.2f} load={open('/proc/loadavg').read().split()[0]}")
	EOF
}

for size in $sizes; do
	for r in $(seq "$rounds"); do
		order="plain tls"
		if [ $((r % 2)) = 0 ]; then order="tls plain"; fi
		for mode in $order; do run "$mode" produce "$size" "t$size-$r"; done
		for mode in $order; do run "$mode" consume "$size" "t$size-$r"; done
		for mode in plain tls; do
			"$bin" --brokers "$(cat "$dir/$mode/brokers")" --operator-secret-file "$dir/$mode/cluster-secret" \
				$([ $mode = tls ] && echo "--tls-ca $dir/tls/tls/ca.crt --tls-cert $dir/tls/tls/client.crt --tls-key $dir/tls/tls/client.key") \
				topic delete "t$size-$r" >/dev/null
		done
	done
done

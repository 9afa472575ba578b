#!/usr/bin/env bash
# tls-bench.sh: TLS against plaintext as an operator sees it (issue 18,
# BENCHMARKS.md "TLS against plaintext"). Two single-broker clusters in
# processes of their own (scripts/cluster.sh): one plaintext, one with TLS
# on every listener and mutual TLS required (SLUICE_CLUSTER_TLS=1); `sluice
# bench produce` then `sluice bench consume` in another process against
# each, interleaved (the order alternates per round), ROUNDS rounds per
# record size, a new topic per run (one partition, acks=1, no
# compression). Each run prints one line: size, mode, phase, MB/s,
# records/s, the broker process's CPU seconds (its threads' time on the
# CPU, /proc/PID/task/*/schedstat before and after) and the bench
# process's (getrusage of the children of the python that runs it: its
# whole life, start-up and TLS handshakes included), each also per GB of
# record payload.
#
#   scripts/tls-bench.sh [DIR]       DIR default /tmp/sluice-tls-bench
#
# Environment: ROUNDS (3), SIZES ("100 1024"), BYTES (payload per run,
# 300000000), SLUICE_BIN (the brokers' binary, and the bench's by
# default: built into DIR/sluice), BENCH_BINS (bench binaries to compare
# against the same brokers, e.g. a client change: "old/sluice
# new/sluice"; each runs its own produce and consume in every round, the
# order reversed every other round, and its lines say bench=NAME).
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

# bench_bins ROUND: the bench binaries of a round, the order of
# BENCH_BINS reversed every other round.
bench_bins() {
	local bins=(${BENCH_BINS:-$bin}) i
	if [ $(($1 % 2)) = 0 ]; then
		for ((i = ${#bins[@]} - 1; i >= 0; i--)); do echo "${bins[i]}"; done
	else
		printf '%s\n' "${bins[@]}"
	fi
}

# run MODE PHASE SIZE TOPIC BENCH_BIN: one bench run against MODE's broker.
run() {
	local mode=$1 phase=$2 size=$3 topic=$4 bb=$5 c="$dir/$1" n args
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
	# python runs the bench: getrusage of its children is the bench
	# process's CPU time, /proc/PID/task/*/schedstat the broker's.
	python3 - "$size" "$mode" "$phase" "$(cat "$c/1/pid")" "$([ -n "${BENCH_BINS:-}" ] && echo 1 || echo 0)" "$bb" "${args[@]}" --topic "$topic" --records "$n" --json <<-'EOF'
		import json, os, resource, subprocess, sys
		size, mode, phase, pid, multi = sys.argv[1:6]
		cmd = sys.argv[6:]
		def broker_cpu():
		    # Nanoseconds on the CPU of each of the broker's threads
		    # (/proc/PID/stat counts in 10 ms ticks: 0.07 s of a
		    # plaintext consume would be ±15%). A Go thread does not exit.
		    t = 0
		    for d in os.listdir(f"/proc/{pid}/task"):
		        try:
		            t += int(open(f"/proc/{pid}/task/{d}/schedstat").read().split()[0])
		        except OSError:
		            pass
		    return t / 1e9
		def bench_cpu():
		    r = resource.getrusage(resource.RUSAGE_CHILDREN)
		    return r.ru_utime + r.ru_stime
		b0, c0 = broker_cpu(), bench_cpu()
		out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
		b1, c1 = broker_cpu(), bench_cpu()
		r = json.loads(out)
		gb = r["records"] * int(size) / 1e9
		per = lambda s: s / gb if gb else 0
		tag = f" bench={cmd[0]}" if multi == "1" else ""
		print(f"{size} {mode} {phase}{tag} MB/s={r['mb_per_sec']} rec/s={r['records_per_sec']}"
		      f" broker_cpu_s={b1 - b0:.2f} broker_cpu_s_per_GB={per(b1 - b0):.2f}"
		      f" bench_cpu_s={c1 - c0:.2f} bench_cpu_s_per_GB={per(c1 - c0):.2f}"
		      f" load={open('/proc/loadavg').read().split()[0]}")
	EOF
}

for size in $sizes; do
	for r in $(seq "$rounds"); do
		order="plain tls"
		if [ $((r % 2)) = 0 ]; then order="tls plain"; fi
		k=0
		for bb in $(bench_bins "$r"); do
			k=$((k + 1))
			for mode in $order; do run "$mode" produce "$size" "t$size-$r-$k" "$bb"; done
			for mode in $order; do run "$mode" consume "$size" "t$size-$r-$k" "$bb"; done
			for mode in plain tls; do
				"$bin" --brokers "$(cat "$dir/$mode/brokers")" --operator-secret-file "$dir/$mode/cluster-secret" \
					$([ $mode = tls ] && echo "--tls-ca $dir/tls/tls/ca.crt --tls-cert $dir/tls/tls/client.crt --tls-key $dir/tls/tls/client.key") \
					topic delete "t$size-$r-$k" >/dev/null
			done
		done
	done
done

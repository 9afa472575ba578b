#!/usr/bin/env bash
# Side by side: the same franz-go workloads (kafka.BenchmarkVersusKafka:
# idempotent acks=all produce and consume, 100 B and 1 KiB) against sluice's
# Kafka listener and against Apache Kafka (scripts/kafka-ref.sh), each run
# as its own processes on this machine, in one run, the two systems
# alternating on every workload. Both are stopped at the end.
#
#   scripts/kafka-versus.sh [NODES] [COUNT] [RECORDS]
#
# NODES 1 (default; topics RF 1) or 3 (three processes of each; RF 3,
# min.insync.replicas 2); COUNT rounds of every workload (default 3; report
# the median); RECORDS per run (default 300000). Durability as each ships:
# sluice flushes every fsync.interval.ms (its default, fsync=interval),
# Kafka leaves flushing to the OS (its default); neither fsyncs per write.
# An untimed warm-up pass runs first.
#
# KAFKA_VERSUS_SETTLE (a duration, default 0) waits, untimed and the same
# for both systems, between creating each produce run's topic and
# producing to it (0: the first records also time the followers taking up
# the new partitions). KAFKA_VERSUS_DIR (default /tmp/sluice-kafka-versus)
# holds both systems' data (deleted at the end) and logs. Both systems' ports are
# free ones (cluster.sh free-base), so two runs on one machine never meet.
# KAFKA_VERSUS_SLUICE_BIN runs that sluice binary (another build) instead
# of building this tree's.
set -euo pipefail
nodes=${1:-1}
count=${2:-3}
records=${3:-300000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${KAFKA_VERSUS_DIR:-/tmp/sluice-kafka-versus}
[ "$nodes" = 1 ] || [ "$nodes" = 3 ] || { echo "kafka-versus: NODES is 1 or 3" >&2; exit 2; }

rm -rf "$work"
mkdir -p "$work"
cleanup() {
	KAFKA_REF_DIR="$work/kafka" "$root/scripts/kafka-ref.sh" stop >/dev/null 2>&1 || true
	SLUICE_BIN="$work/sluice" "$root/scripts/cluster.sh" down "$work/sluice-cluster" >/dev/null 2>&1 || true
	rm -rf "$work"/kafka/node*/data "$work"/sluice-cluster/*/data
}
trap cleanup EXIT
if [ -n "${KAFKA_VERSUS_SLUICE_BIN:-}" ]; then cp "$KAFKA_VERSUS_SLUICE_BIN" "$work/sluice"; else (cd "$root" && go build -o "$work/sluice" ./cmd/sluice); fi

# Kafka first (its JVM start is the slow one), on a free base (node i on
# BASE+10i+1 and +2); sluice's free base is picked once Kafka listens.
kafka_port=$(($("$root/scripts/cluster.sh" free-base "$nodes") + 11))
KAFKA_REF_PORT=$kafka_port KAFKA_REF_DIR="$work/kafka" "$root/scripts/kafka-ref.sh" start "$nodes" >"$work/kafka-ref.log" 2>&1 ||
	{ tail -5 "$work/kafka-ref.log" >&2; exit 1; }
kafka=$(KAFKA_REF_PORT=$kafka_port KAFKA_REF_DIR="$work/kafka" "$root/scripts/kafka-ref.sh" status)
SLUICE_CLUSTER_PORT=$("$root/scripts/cluster.sh" free-base "$nodes") SLUICE_CLUSTER_OWNER=$$ SLUICE_BIN="$work/sluice" \
	"$root/scripts/cluster.sh" up "$nodes" "$work/sluice-cluster" >/dev/null
sluice=$(cat "$work/sluice-cluster/kafka-brokers")
echo "kafka-versus: sluice at $sluice, Apache Kafka at $kafka; $nodes node(s), $count runs of $records records"
cd "$root"
export SLUICE_VERSUS="sluice=$sluice;kafka=$kafka" SLUICE_VERSUS_RF=$((nodes == 3 ? 3 : 1)) \
	SLUICE_VERSUS_SETTLE=${KAFKA_VERSUS_SETTLE:-0s}
go test -c -o "$work/kafka.test" ./kafka
bench() { (cd "$root/kafka" && "$work/kafka.test" -test.run '^$' -test.bench VersusKafka -test.count 1 "$@"); }
# One untimed pass first: the JVM's JIT warms up, sluice's page cache too.
bench -test.benchtime 50000x -test.timeout 20m >"$work/warmup.log" 2>&1 ||
	{ tail -20 "$work/warmup.log" >&2; exit 1; }
# COUNT rounds, each one pass over the workloads with the two systems
# alternating on every workload, the first of each pair swapped every
# round (go test's -count would run each workload COUNT times in a row,
# so a change of load on this shared machine would fall on one system).
for round in $(seq 1 "$count"); do
	if ((round % 2)); then order="sluice=$sluice;kafka=$kafka"; else order="kafka=$kafka;sluice=$sluice"; fi
	echo "kafka-versus: round $round of $count, $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)"
	SLUICE_VERSUS=$order bench -test.benchtime "${records}x" -test.timeout 60m
done

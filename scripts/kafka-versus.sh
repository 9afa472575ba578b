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
# min.insync.replicas 2); COUNT runs of each workload (default 3; report
# the median); RECORDS per run (default 300000). Durability as each ships:
# sluice flushes every fsync.interval.ms (its default, fsync=interval),
# Kafka leaves flushing to the OS (its default); neither fsyncs per write.
# An untimed warm-up pass runs first.
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
}
trap cleanup EXIT
(cd "$root" && go build -o "$work/sluice" ./cmd/sluice)

# Kafka first (its JVM start is the slow one); its ports 19092.., sluice's
# cluster.sh ports 20000.. so the two never meet.
KAFKA_REF_DIR="$work/kafka" "$root/scripts/kafka-ref.sh" start "$nodes" >"$work/kafka-ref.log" 2>&1 ||
	{ tail -5 "$work/kafka-ref.log" >&2; exit 1; }
kafka=$(KAFKA_REF_DIR="$work/kafka" "$root/scripts/kafka-ref.sh" status)
SLUICE_CLUSTER_PORT=20000 SLUICE_CLUSTER_OWNER=$$ SLUICE_BIN="$work/sluice" \
	"$root/scripts/cluster.sh" up "$nodes" "$work/sluice-cluster" >/dev/null
sluice=$(cat "$work/sluice-cluster/kafka-brokers")
echo "kafka-versus: sluice at $sluice, Apache Kafka at $kafka; $nodes node(s), $count runs of $records records"
cd "$root"
export SLUICE_VERSUS="sluice=$sluice;kafka=$kafka" SLUICE_VERSUS_RF=$((nodes == 3 ? 3 : 1))
# One untimed pass first: the JVM's JIT warms up, sluice's page cache too.
go test -run '^$' -bench VersusKafka -benchtime 50000x -count 1 -timeout 20m ./kafka >"$work/warmup.log" 2>&1 ||
	{ tail -20 "$work/warmup.log" >&2; exit 1; }
go test -run '^$' -bench VersusKafka -benchtime "${records}x" -count "$count" -timeout 60m ./kafka

#!/usr/bin/env bash
# The reference: a real Apache Kafka broker (KRaft) run from its Maven
# Central jars, for side-by-side behaviour checks and benchmarks against
# sluice's Kafka listener (docs/kafka.md, BENCHMARKS.md).
#
#   scripts/kafka-ref.sh fetch            download the jars (Maven, once)
#   scripts/kafka-ref.sh start [NODES]    format and start 1 (default) or 3 nodes
#   scripts/kafka-ref.sh stop             stop them (SIGTERM, then SIGKILL)
#   scripts/kafka-ref.sh status           print the bootstrap address, or fail
#
# Node i (1-based) listens for clients on 127.0.0.1:$((KAFKA_REF_PORT + 10*(i-1)))
# (default port 19092) and for its controller on that port + 1. Every
# node is broker and controller. Data, configs and logs live under
# KAFKA_REF_DIR (default /tmp/sluice-kafka-ref), started fresh each time;
# the jars under KAFKA_REF_CACHE (default ~/.cache/sluice/kafka-ref-$VERSION).
set -euo pipefail
VERSION=${KAFKA_REF_VERSION:-4.4.0}
CACHE=${KAFKA_REF_CACHE:-$HOME/.cache/sluice/kafka-ref-$VERSION}
DIR=${KAFKA_REF_DIR:-/tmp/sluice-kafka-ref}
PORT=${KAFKA_REF_PORT:-19092}
HEAP=${KAFKA_REF_HEAP:-768m}

die() { echo "kafka-ref: $*" >&2; exit 1; }

fetch() {
	if [ -f "$CACHE/.complete" ]; then return; fi
	command -v mvn >/dev/null || die "mvn not found (the JDK and Maven are needed to fetch Kafka's jars)"
	mkdir -p "$CACHE"
	cat > "$CACHE/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>sluice</groupId><artifactId>kafka-ref</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$VERSION</version></dependency>
  </dependencies>
</project>
POM
	echo "kafka-ref: fetching Apache Kafka $VERSION from Maven Central into $CACHE"
	(cd "$CACHE" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$CACHE/libs") || die "mvn failed"
	touch "$CACHE/.complete"
}

java_cp() { java -Xmx"$HEAP" -cp "$CACHE/libs/*" "$@"; }

start() {
	local nodes=${1:-1}
	[ "$nodes" = 1 ] || [ "$nodes" = 3 ] || die "start takes 1 or 3 nodes, not $nodes"
	fetch
	stop >/dev/null 2>&1 || true
	rm -rf "$DIR"
	mkdir -p "$DIR"
	local voters="" i
	for i in $(seq 1 "$nodes"); do
		voters+="${voters:+,}$i@127.0.0.1:$((PORT + 10 * (i - 1) + 1))"
	done
	local id rf=$((nodes < 3 ? 1 : 3)) minisr=$((nodes < 3 ? 1 : 2))
	id=$(java_cp kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
	for i in $(seq 1 "$nodes"); do
		local p=$((PORT + 10 * (i - 1)))
		mkdir -p "$DIR/node$i/data"
		cat > "$DIR/node$i/server.properties" <<CFG
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$p,CONTROLLER://127.0.0.1:$((p + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$p
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DIR/node$i/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$minisr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$minisr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$minisr
group.initial.rebalance.delay.ms=0
CFG
		java_cp kafka.tools.StorageTool format -t "$id" -c "$DIR/node$i/server.properties" >"$DIR/node$i/format.log" 2>&1 ||
			die "format node $i failed: $(tail -3 "$DIR/node$i/format.log")"
		nohup java -Xmx"$HEAP" -cp "$CACHE/libs/*" kafka.Kafka "$DIR/node$i/server.properties" >"$DIR/node$i/kafka.log" 2>&1 &
		echo $! >"$DIR/node$i/pid"
	done
	# Ready when every node accepts connections (bounded: 60 s).
	for i in $(seq 1 "$nodes"); do
		local p=$((PORT + 10 * (i - 1))) t=0
		until (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
			t=$((t + 1))
			[ "$t" -le 120 ] || die "node $i not listening on $p after 60 s: $(tail -5 "$DIR/node$i/kafka.log")"
			kill -0 "$(cat "$DIR/node$i/pid")" 2>/dev/null || die "node $i exited: $(tail -5 "$DIR/node$i/kafka.log")"
			sleep 0.5
		done
	done
	status
}

stop() {
	local f pid stopped=0
	for f in "$DIR"/node*/pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$f"
		stopped=$((stopped + 1))
	done
	echo "kafka-ref: stopped $stopped node(s)"
}

status() {
	local f addrs="" i=0
	for f in "$DIR"/node*/pid; do
		[ -f "$f" ] || continue
		i=$((i + 1))
		kill -0 "$(cat "$f")" 2>/dev/null || die "node $i is not running"
		addrs+="${addrs:+,}127.0.0.1:$((PORT + 10 * (i - 1)))"
	done
	[ -n "$addrs" ] || die "not running"
	echo "$addrs"
}

case "${1:-}" in
fetch) fetch ;;
start) start "${2:-1}" ;;
stop) stop ;;
status) status ;;
*) die "usage: $0 fetch | start [1|3] | stop | status" ;;
esac

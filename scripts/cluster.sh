#!/usr/bin/env bash
# cluster.sh: run a local multi-broker sluice cluster on 127.0.0.1, one
# process per broker, each with its own data dir, ports and log file.
#
#   scripts/cluster.sh up N [DIR]    start N brokers, wait until healthy; the
#                                    last line printed is the comma-separated
#                                    client addresses (also in DIR/brokers)
#   scripts/cluster.sh down [DIR]    stop every broker (SIGTERM, then SIGKILL)
#   scripts/cluster.sh status [DIR]  sluice cluster status against the cluster
#   scripts/cluster.sh kill I [DIR]  SIGKILL broker I
#   scripts/cluster.sh start I [DIR] start broker I again, as it was started
#
# DIR defaults to ./cluster. Broker I (1-based) listens on 127.0.0.1 ports
# BASE+10*I+1 (clients), +2 (raft); BASE is $SLUICE_CLUSTER_PORT (19000).
# The first 3 brokers (or all, when N < 3) are Raft voters; the others join
# as non-voters through broker 1. The binary is $SLUICE_BIN, or is built
# into DIR/sluice.
set -euo pipefail

base=${SLUICE_CLUSTER_PORT:-19000}
root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "cluster.sh: $*" >&2; exit 1; }
client_addr() { echo "127.0.0.1:$((base + 10 * $1 + 1))"; }
raft_addr() { echo "127.0.0.1:$((base + 10 * $1 + 2))"; }

binary() {
	local dir=$1
	if [ -n "${SLUICE_BIN:-}" ]; then echo "$SLUICE_BIN"; return; fi
	if [ ! -x "$dir/sluice" ]; then
		(cd "$root" && go build -o "$dir/sluice" ./cmd/sluice) || die "build failed"
	fi
	echo "$dir/sluice"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_broker() {
	local dir=$1 i=$2
	local b="$dir/$i"
	[ -f "$b/cmd" ] || die "broker $i was never started in $dir (run up first)"
	if pid_alive "$b/pid"; then die "broker $i is already running (pid $(cat "$b/pid"))"; fi
	# shellcheck disable=SC2046
	nohup $(cat "$b/cmd") >>"$b/broker.log" 2>&1 </dev/null &
	echo $! >"$b/pid"
}

wait_healthy() {
	local dir=$1 n=$2 bin=$3 deadline=$((SECONDS + 60)) out alive
	while [ $SECONDS -lt $deadline ]; do
		if out=$("$bin" --brokers "$(cat "$dir/brokers")" cluster brokers --json 2>/dev/null); then
			alive=$(grep -o '"state": *"alive"' <<<"$out" | wc -l)
			if [ "$alive" -ge "$n" ]; then return 0; fi
		fi
		sleep 0.2
	done
	return 1
}

cmd_up() {
	local n=${1:?usage: cluster.sh up N [DIR]} dir=${2:-./cluster}
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number, got '$n'"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	local bin voters="" nvoters=$((n < 3 ? n : 3)) addrs="" i
	bin=$(binary "$dir")
	for ((i = 1; i <= nvoters; i++)); do voters+="${voters:+,}$i@$(raft_addr "$i")"; done
	for ((i = 1; i <= n; i++)); do addrs+="${addrs:+,}$(client_addr "$i")"; done
	echo "$addrs" >"$dir/brokers"
	for ((i = 1; i <= n; i++)); do
		local b="$dir/$i"
		mkdir -p "$b"
		local cmd="$bin broker --broker-id $i --listen $(client_addr "$i") --raft-addr $(raft_addr "$i") --data-dir $b/data --log-format json"
		if ((i <= nvoters)); then cmd+=" --voters $voters"; else cmd+=" --join $(client_addr 1)"; fi
		echo "$cmd" >"$b/cmd"
		start_broker "$dir" "$i"
	done
	if ! wait_healthy "$dir" "$n" "$bin"; then
		echo "cluster.sh: the cluster did not become healthy in 60 s; logs in $dir/*/broker.log" >&2
		exit 1
	fi
	echo "$addrs"
}

cmd_down() {
	local dir=${1:-./cluster} p i
	[ -d "$dir" ] || return 0
	for p in "$dir"/*/pid; do
		[ -f "$p" ] || continue
		pid_alive "$p" && kill -TERM "$(cat "$p")" 2>/dev/null || true
	done
	for ((i = 0; i < 100; i++)); do
		local any=0
		for p in "$dir"/*/pid; do [ -f "$p" ] && pid_alive "$p" && any=1; done
		[ $any = 0 ] && break
		sleep 0.1
	done
	for p in "$dir"/*/pid; do
		[ -f "$p" ] || continue
		pid_alive "$p" && kill -KILL "$(cat "$p")" 2>/dev/null || true
		rm -f "$p"
	done
}

cmd_status() {
	local dir=${1:-./cluster}
	[ -f "$dir/brokers" ] || die "no cluster in $dir"
	"$(binary "$dir")" --brokers "$(cat "$dir/brokers")" cluster status
}

cmd_kill() {
	local i=${1:?usage: cluster.sh kill I [DIR]} dir=${2:-./cluster}
	pid_alive "$dir/$i/pid" || die "broker $i is not running"
	kill -KILL "$(cat "$dir/$i/pid")"
	rm -f "$dir/$i/pid"
}

cmd_start() {
	local i=${1:?usage: cluster.sh start I [DIR]} dir=${2:-./cluster}
	start_broker "$dir" "$i"
}

case "${1:-}" in
up) shift; cmd_up "$@" ;;
down) shift; cmd_down "$@" ;;
status) shift; cmd_status "$@" ;;
kill) shift; cmd_kill "$@" ;;
start) shift; cmd_start "$@" ;;
*) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

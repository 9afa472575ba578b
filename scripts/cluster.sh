#!/usr/bin/env bash
# cluster.sh: run a local multi-broker sluice cluster on 127.0.0.1, one
# process per broker, each with its own data dir, ports and log file.
#
#   scripts/cluster.sh up N [DIR]     start N brokers, wait until healthy; the
#                                     last line printed is the comma-separated
#                                     client addresses (also in DIR/brokers)
#   scripts/cluster.sh down [DIR]     stop every broker (SIGCONT to paused
#                                     ones, SIGTERM, then SIGKILL)
#   scripts/cluster.sh status [DIR]   sluice cluster status against the cluster
#   scripts/cluster.sh kill I [DIR]   SIGKILL broker I
#   scripts/cluster.sh stop I [DIR]   SIGTERM broker I (controlled shutdown) and
#                                     wait up to 30 s for it to exit; fails if
#                                     it does not, or exits with an error
#   scripts/cluster.sh start I [DIR]  start broker I again, as it was started
#   scripts/cluster.sh pause I [DIR]  SIGSTOP broker I (a hung process)
#   scripts/cluster.sh resume I [DIR] SIGCONT broker I
#   scripts/cluster.sh wipe I [DIR]   empty broker I's data dir (it must not be
#                                     running): it restarts as a new disk
#   scripts/cluster.sh free-base N    print a BASE (for $SLUICE_CLUSTER_PORT)
#                                     whose ports for N brokers are all free
#
# DIR defaults to ./cluster. Broker I (1-based) listens on 127.0.0.1 ports
# BASE+10*I+1 (clients), +2 (raft), +3 (gossip, UDP and TCP), +4 (HTTP
# metrics and health: the client port + 3, the broker's default), +5 (the
# Kafka listener; their list is in DIR/kafka-brokers); BASE is
# $SLUICE_CLUSTER_PORT (19000). Each broker's --gossip-seeds name every
# other broker's gossip address. The first 3 brokers (or all, when N < 3)
# are Raft voters; the others join as non-voters through broker 1. Every
# broker gets --cluster-secret-file DIR/cluster-secret (made by the first
# up: 32 random bytes, hex), which the brokers log in to each other with
# and an operator can use (sluice --operator-secret-file DIR/cluster-secret).
# $SLUICE_BROKER_ARGS, read by up, is appended to every broker's command
# line (e.g. "--replica-max-lag 2s"); start reuses the command line up
# wrote to DIR/I/cmd. The binary is $SLUICE_BIN, or is built into
# DIR/sluice. Each broker's output goes to DIR/I/broker.log.
# With $SLUICE_CLUSTER_OWNER set to a process id, up also starts a watchdog
# that runs down once that process has exited: a test killed before its
# cleanup leaves no brokers behind. down stops the watchdog.
# With $SLUICE_CLUSTER_TLS=1, up makes a test CA and certificates in DIR/tls
# (go run ./internal/testcerts/gencerts: ca.crt, broker.crt/.key,
# client.crt/.key) and a gossip key, and starts every broker with TLS on
# all its listeners and between brokers, mutual TLS required, and
# encrypted gossip; DIR/tls/env holds the SLUICE_TLS_* variables a CLI
# needs (. DIR/tls/env), and the script's own CLI calls use them.
set -euo pipefail

base=${SLUICE_CLUSTER_PORT:-19000}
root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "cluster.sh: $*" >&2; exit 1; }
client_addr() { echo "127.0.0.1:$((base + 10 * $1 + 1))"; }
raft_addr() { echo "127.0.0.1:$((base + 10 * $1 + 2))"; }
gossip_addr() { echo "127.0.0.1:$((base + 10 * $1 + 3))"; }
kafka_addr() { echo "127.0.0.1:$((base + 10 * $1 + 5))"; }

binary() {
	local dir=$1
	if [ -n "${SLUICE_BIN:-}" ]; then echo "$SLUICE_BIN"; return; fi
	if [ ! -x "$dir/sluice" ]; then
		(cd "$root" && go build -o "$dir/sluice" ./cmd/sluice) || die "build failed"
	fi
	echo "$dir/sluice"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# make_tls writes DIR/tls: test certificates, a gossip key, and env.
make_tls() {
	local dir=$1 t="$1/tls"
	if [ ! -f "$t/env" ]; then
		mkdir -p "$t"
		(cd "$root" && go run ./internal/testcerts/gencerts -dir "$t" broker client) || die "gencerts failed"
		head -c 32 /dev/urandom | base64 >"$t/gossip.key"
		cat >"$t/env" <<-EOF
			export SLUICE_TLS_CA=$t/ca.crt
			export SLUICE_TLS_CERT=$t/client.crt
			export SLUICE_TLS_KEY=$t/client.key
		EOF
	fi
	echo "--tls-cert $t/broker.crt --tls-key $t/broker.key --tls-ca $t/ca.crt --tls-client-auth required --gossip-key $(cat "$t/gossip.key")"
}

# cli runs the CLI binary $1 against DIR $2's cluster, with its TLS
# client files when it has them.
cli() {
	local bin=$1 dir=$2
	shift 2
	if [ -f "$dir/tls/env" ]; then
		"$bin" --tls-ca "$dir/tls/ca.crt" --tls-cert "$dir/tls/client.crt" --tls-key "$dir/tls/client.key" "$@"
	else
		"$bin" "$@"
	fi
}

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
		if out=$(cli "$bin" "$dir" --brokers "$(cat "$dir/brokers")" cluster brokers --json 2>/dev/null); then
			alive=$(grep -o '"state": *"alive"' <<<"$out" | wc -l)
			if [ "$alive" -ge "$n" ]; then return 0; fi
		fi
		sleep 0.2
	done
	return 1
}

# start_watchdog runs down on dir once process owner has gone. Its output
# goes nowhere, so that it holds no pipe of whoever ran up.
start_watchdog() {
	local dir=$1 owner=$2
	[[ $owner =~ ^[1-9][0-9]*$ ]] || die "SLUICE_CLUSTER_OWNER must be a process id, got '$owner'"
	if pid_alive "$dir/watchdog.pid"; then return 0; fi
	(
		while kill -0 "$owner" 2>/dev/null; do sleep 1; done
		rm -f "$dir/watchdog.pid"
		cmd_down "$dir"
	) </dev/null >/dev/null 2>&1 &
	echo $! >"$dir/watchdog.pid"
}

cmd_up() {
	local n=${1:?usage: cluster.sh up N [DIR]} dir=${2:-./cluster}
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number, got '$n'"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	local bin voters="" nvoters=$((n < 3 ? n : 3)) addrs="" i
	bin=$(binary "$dir")
	for ((i = 1; i <= nvoters; i++)); do voters+="${voters:+,}$i@$(raft_addr "$i")"; done
	local kafka=""
	for ((i = 1; i <= n; i++)); do addrs+="${addrs:+,}$(client_addr "$i")" kafka+="${kafka:+,}$(kafka_addr "$i")"; done
	echo "$addrs" >"$dir/brokers"
	echo "$kafka" >"$dir/kafka-brokers"
	# The cluster secret the brokers log in to each other with
	# (docs/security.md): made once per cluster directory.
	if [ ! -s "$dir/cluster-secret" ]; then
		(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/cluster-secret")
	fi
	if [ -n "${SLUICE_CLUSTER_OWNER:-}" ]; then start_watchdog "$dir" "$SLUICE_CLUSTER_OWNER"; fi
	local tls=""
	if [ "${SLUICE_CLUSTER_TLS:-}" = 1 ]; then tls=$(make_tls "$dir"); fi
	for ((i = 1; i <= n; i++)); do
		local b="$dir/$i" seeds="" j cmd
		mkdir -p "$b"
		for ((j = 1; j <= n; j++)); do ((j == i)) || seeds+="${seeds:+,}$(gossip_addr "$j")"; done
		cmd="$bin broker --broker-id $i --listen $(client_addr "$i") --raft-addr $(raft_addr "$i") --gossip-addr $(gossip_addr "$i") --kafka-listen $(kafka_addr "$i") --data-dir $b/data --log-format json --cluster-secret-file $dir/cluster-secret"
		if ((i <= nvoters)); then cmd+=" --voters $voters"; else cmd+=" --join $(client_addr 1)"; fi
		if [ -n "$seeds" ]; then cmd+=" --gossip-seeds $seeds"; fi
		if [ -n "$tls" ]; then cmd+=" $tls"; fi
		if [ -n "${SLUICE_BROKER_ARGS:-}" ]; then cmd+=" $SLUICE_BROKER_ARGS"; fi
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
	if pid_alive "$dir/watchdog.pid"; then kill "$(cat "$dir/watchdog.pid")" 2>/dev/null || true; fi
	rm -f "$dir/watchdog.pid"
	# A paused broker would hold SIGTERM pending forever: resume it first.
	for p in "$dir"/*/pid; do
		[ -f "$p" ] || continue
		if pid_alive "$p"; then
			kill -CONT "$(cat "$p")" 2>/dev/null || true
			kill -TERM "$(cat "$p")" 2>/dev/null || true
		fi
	done
	for ((i = 0; i < 100; i++)); do
		local any=0
		for p in "$dir"/*/pid; do [ -f "$p" ] && pid_alive "$p" && any=1; done
		[ $any = 0 ] && break
		sleep 0.1
	done
	for p in "$dir"/*/pid; do
		[ -f "$p" ] || continue
		if pid_alive "$p"; then kill -KILL "$(cat "$p")" 2>/dev/null || true; fi
		rm -f "$p"
	done
}

cmd_status() {
	local dir=${1:-./cluster}
	[ -f "$dir/brokers" ] || die "no cluster in $dir"
	cli "$(binary "$dir")" "$dir" --brokers "$(cat "$dir/brokers")" cluster status
}

cmd_kill() {
	local i=${1:?usage: cluster.sh kill I [DIR]} dir=${2:-./cluster} pid n
	pid_alive "$dir/$i/pid" || die "broker $i is not running"
	pid=$(cat "$dir/$i/pid")
	kill -KILL "$pid"
	rm -f "$dir/$i/pid"
	# SIGKILL is delivered asynchronously: wait until the process is gone
	# (its data-dir lock released), so a start right after finds it free.
	for ((n = 0; n < 100; n++)); do
		pid_gone "$pid" && return 0
		sleep 0.1
	done
	die "broker $i (pid $pid) still running 10 s after SIGKILL"
}

# pid_gone: the process has exited (a zombie waiting to be reaped has
# released everything it held).
pid_gone() {
	[ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

cmd_stop() {
	local i=${1:?usage: cluster.sh stop I [DIR]} dir=${2:-./cluster} pid n
	pid_alive "$dir/$i/pid" || die "broker $i is not running"
	pid=$(cat "$dir/$i/pid")
	kill -TERM "$pid"
	for ((n = 0; n < 300; n++)); do
		pid_alive "$dir/$i/pid" || break
		sleep 0.1
	done
	pid_alive "$dir/$i/pid" && die "broker $i (pid $pid) still running 30 s after SIGTERM"
	rm -f "$dir/$i/pid"
	if grep -q '"msg":"broker stopped".*"close_error"' "$dir/$i/broker.log"; then
		die "broker $i stopped with an error: $(grep '"msg":"broker stopped"' "$dir/$i/broker.log" | tail -1)"
	fi
}

cmd_start() {
	local i=${1:?usage: cluster.sh start I [DIR]} dir=${2:-./cluster}
	start_broker "$dir" "$i"
}

cmd_pause() {
	local i=${1:?usage: cluster.sh pause I [DIR]} dir=${2:-./cluster}
	pid_alive "$dir/$i/pid" || die "broker $i is not running"
	kill -STOP "$(cat "$dir/$i/pid")"
}

cmd_resume() {
	local i=${1:?usage: cluster.sh resume I [DIR]} dir=${2:-./cluster}
	pid_alive "$dir/$i/pid" || die "broker $i is not running"
	kill -CONT "$(cat "$dir/$i/pid")"
}

cmd_wipe() {
	local i=${1:?usage: cluster.sh wipe I [DIR]} dir=${2:-./cluster}
	[ -f "$dir/$i/cmd" ] || die "broker $i was never started in $dir (run up first)"
	if pid_alive "$dir/$i/pid"; then die "broker $i is running (pid $(cat "$dir/$i/pid")): kill or stop it first"; fi
	if [ -d "$dir/$i/data" ]; then find "$dir/$i/data" -mindepth 1 -delete; fi
}

# cmd_free_base prints a base port, a multiple of 100 in 20000-59900,
# none of whose ports BASE+11 .. BASE+10*N+5 is in use (TCP or UDP).
cmd_free_base() {
	local n=${1:?usage: cluster.sh free-base N} b p used
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number, got '$n'"
	for _ in $(seq 50); do
		b=$((20000 + (RANDOM % 400) * 100))
		used=0
		for p in $(seq $((b + 11)) $((b + 10 * n + 5))); do
			if ss -Htuan "sport = :$p" | grep -q .; then used=1; break; fi
		done
		if [ $used = 0 ]; then echo $b; return; fi
	done
	die "no free base port found in 50 tries"
}

case "${1:-}" in
up) shift; cmd_up "$@" ;;
down) shift; cmd_down "$@" ;;
status) shift; cmd_status "$@" ;;
kill) shift; cmd_kill "$@" ;;
stop) shift; cmd_stop "$@" ;;
start) shift; cmd_start "$@" ;;
pause) shift; cmd_pause "$@" ;;
resume) shift; cmd_resume "$@" ;;
wipe) shift; cmd_wipe "$@" ;;
free-base) shift; cmd_free_base "$@" ;;
*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac

#!/usr/bin/env bash
# image-test.sh: test the container image (make image) for real.
#
#   scripts/image-test.sh single    one broker on host networking
#   scripts/image-test.sh compose   deploy/compose.yaml's 3 brokers
#
# single: runs the image with --network host on loopback ports
# ($IMAGE_TEST_PORT, default 27092, and the four above it) and a named
# volume, creates a topic, produces and consumes through it with the CLI
# ($SLUICE_BIN, a host binary; and with kcat through the Kafka port, when
# the broker has --kafka-listen and kcat is installed; /readyz through
# sluice probe when it has --http-addr), stops it with SIGTERM, checks a
# clean exit (status 0, "broker stopped", no error line), then starts a new
# container on the same volume and reads the records back.
#
# compose: brings the compose cluster up (project sluice-test-PID), waits
# for 3 brokers alive (and healthy, when the broker has --http-addr),
# creates an RF 3 topic, produces and consumes
# through the CLI inside a broker, stops one broker (SIGTERM, clean exit),
# produces and consumes again, and tears everything down.
#
# Docker: the daemon that answers, else (root only) dockerd started here
# with --iptables=false --bridge=none and stopped on exit; docker.io (and
# docker-compose for compose) are installed from Debian when missing.
# Nothing is pulled: the image ($IMAGE, default sluice:dev) is built with
# make image once the daemon answers; IMAGE_TEST_BUILD=0 uses it as it is.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-single}
IMAGE=${IMAGE:-sluice:dev}
DOCKER=${DOCKER:-docker}
SLUICE_BIN=${SLUICE_BIN:-$root/bin/sluice}
tmp=$(mktemp -d)
dockerd_pid=""
cleanups=()

say() { echo "image-test: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }

cleanup() {
	local i
	for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do eval "${cleanups[i]}" >/dev/null 2>&1 || true; done
	if [ -n "$dockerd_pid" ]; then
		kill "$dockerd_pid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

apt_install() {
	[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || die "$* missing, and not root with apt-get to install it"
	say "installing $* from Debian"
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_docker() {
	if "$DOCKER" info >/dev/null 2>&1; then return; fi
	command -v dockerd >/dev/null || apt_install docker.io
	[ "$(id -u)" = 0 ] || die "no docker daemon answers, and only root starts one"
	say "starting dockerd (log in $tmp/dockerd.log)"
	dockerd --iptables=false --bridge=none --pidfile "$tmp/dockerd.pid" >"$tmp/dockerd.log" 2>&1 &
	dockerd_pid=$!
	for _ in $(seq 1 300); do
		"$DOCKER" info >/dev/null 2>&1 && return
		kill -0 "$dockerd_pid" 2>/dev/null || { tail -20 "$tmp/dockerd.log" >&2; die "dockerd exited"; }
		sleep 0.1
	done
	die "dockerd did not answer in 30 s"
}

# until SECONDS WHAT CMD...: run CMD until it succeeds, at most SECONDS.
until_ok() {
	local secs=$1 what=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >"$tmp/until.out" 2>&1; do
		[ $SECONDS -lt $deadline ] || { cat "$tmp/until.out" >&2; die "$what: not within ${secs}s"; }
		sleep 0.5
	done
}

# clean_stop CONTAINER: SIGTERM, then a clean exit within 60 s.
clean_stop() {
	local c=$1
	"$DOCKER" kill --signal TERM "$c" >/dev/null
	local code
	code=$(timeout 60 "$DOCKER" wait "$c") || die "$c: still running 60 s after SIGTERM"
	"$DOCKER" logs "$c" >"$tmp/$c.log" 2>&1
	[ "$code" = 0 ] || { tail -20 "$tmp/$c.log" >&2; die "$c: exit status $code after SIGTERM"; }
	grep -q '"msg":"broker stopped"' "$tmp/$c.log" || die "$c: no 'broker stopped' in its log"
	if grep '"level":"error"' "$tmp/$c.log" >&2; then die "$c: error lines in its log"; fi
	say "$c: SIGTERM, exit 0, 'broker stopped', no error line"
}

single() {
	[ -x "$SLUICE_BIN" ] || die "no CLI at $SLUICE_BIN (make build)"
	local port=${IMAGE_TEST_PORT:-27092} name="sluice-image-test-$$"
	local brokers="127.0.0.1:$port" vol="$name"
	"$DOCKER" volume create "$vol" >/dev/null
	cleanups+=("$DOCKER volume rm -f $vol")
	cleanups+=("$DOCKER rm -f $name $name-2")
	local env=(-e "SLUICE_LISTEN=127.0.0.1:$port" -e "SLUICE_HTTP_ADDR=127.0.0.1:$((port + 3))"
		-e "SLUICE_KAFKA_LISTEN=127.0.0.1:$((port + 4))")
	"$DOCKER" run -d --name "$name" --network host -v "$vol:/var/lib/sluice" "${env[@]}" "$IMAGE" >/dev/null
	until_ok 60 "broker up" "$SLUICE_BIN" cluster status --brokers "$brokers" --timeout 2s
	"$DOCKER" exec "$name" /usr/local/bin/sluice version | sed 's/^/  /' >&2
	if has_flag http-addr; then
		until_ok 60 "/readyz" "$DOCKER" exec "$name" /usr/local/bin/sluice probe "http://127.0.0.1:$((port + 3))/readyz"
		say "/readyz answers 2xx"
	else
		say "this broker has no --http-addr yet: /readyz not checked"
	fi
	"$SLUICE_BIN" topic create image-test --partitions 3 --brokers "$brokers" >/dev/null
	seq 1 1000 >"$tmp/want"
	"$SLUICE_BIN" produce image-test --brokers "$brokers" <"$tmp/want"
	"$SLUICE_BIN" consume image-test --from-beginning --max-messages 1000 --brokers "$brokers" | sort -n >"$tmp/got"
	cmp -s "$tmp/want" "$tmp/got" || die "consumed $(wc -l <"$tmp/got") records, not the 1000 produced"
	say "produced and consumed 1000 records through the container"
	if ! has_flag kafka-listen; then
		say "this broker has no --kafka-listen yet: the Kafka port not checked"
	elif ! command -v kcat >/dev/null; then
		say "no kcat: the Kafka port not checked"
	else
		timeout 60 kcat -C -q -e -o beginning -t image-test -b "127.0.0.1:$((port + 4))" | sort -n >"$tmp/got"
		cmp -s "$tmp/want" "$tmp/got" || die "kcat consumed $(wc -l <"$tmp/got") records, not 1000"
		say "kcat consumed the 1000 records from the Kafka port"
	fi
	clean_stop "$name"

	# A new container on the same volume has the records: the unprivileged
	# user wrote the volume, and the clean shutdown kept everything.
	"$DOCKER" run -d --name "$name-2" --network host -v "$vol:/var/lib/sluice" "${env[@]}" "$IMAGE" >/dev/null
	until_ok 60 "broker up again" "$SLUICE_BIN" cluster status --brokers "$brokers" --timeout 2s
	"$SLUICE_BIN" consume image-test --from-beginning --max-messages 1000 --brokers "$brokers" | sort -n >"$tmp/got"
	cmp -s "$tmp/want" "$tmp/got" || die "after a restart: consumed $(wc -l <"$tmp/got") records, not 1000"
	say "a new container on the volume reads the 1000 records back"
	clean_stop "$name-2"
	say "PASS single"
}

compose() {
	local cmd
	if "$DOCKER" compose version >/dev/null 2>&1; then
		cmd=("$DOCKER" compose)
	else
		command -v docker-compose >/dev/null || apt_install docker-compose
		cmd=(docker-compose)
	fi
	local project="sluice-test-$$"
	# The compose file needs the cluster secret (docs/security.md).
	SLUICE_CLUSTER_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
	export SLUICE_CLUSTER_SECRET
	local dc=("${cmd[@]}" -f "$root/deploy/compose.yaml" -p "$project")
	cleanups+=("${dc[*]} down -v --timeout 30")
	SLUICE_IMAGE=$IMAGE "${dc[@]}" up -d >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log" >&2; die "compose up"; }
	local all=broker1:7092,broker2:7092,broker3:7092
	cli() { local b=$1; shift; "${dc[@]}" exec -T "$b" /usr/local/bin/sluice --brokers "$all" --timeout 10s "$@"; }
	alive3() { cli broker1 cluster status | grep -q 'brokers: 3 alive of 3'; }
	until_ok 90 "3 brokers alive" alive3
	say "3 brokers alive"
	if has_flag http-addr; then
		healthy() {
			local b
			for b in broker1 broker2 broker3; do
				[ "$("$DOCKER" inspect --format '{{.State.Health.Status}}' "$("${dc[@]}" ps -q "$b")")" = healthy ] || return 1
			done
		}
		until_ok 120 "3 brokers healthy (/readyz)" healthy
		say "3 brokers healthy: their /readyz health checks pass"
	else
		say "this broker has no --http-addr yet: health checks not checked"
	fi
	cli broker1 topic create compose-test --partitions 3 --replication-factor 3 >/dev/null
	seq 1 500 >"$tmp/want"
	cli broker2 produce compose-test <"$tmp/want"
	cli broker3 consume compose-test --from-beginning --max-messages 500 | sort -n >"$tmp/got"
	cmp -s "$tmp/want" "$tmp/got" || die "consumed $(wc -l <"$tmp/got") records, not the 500 produced"
	say "RF 3 topic: produced and consumed 500 records"

	local c2
	c2=$("${dc[@]}" ps -q broker2)
	"${dc[@]}" stop --timeout 30 broker2 >/dev/null 2>&1
	"$DOCKER" logs "$c2" >"$tmp/broker2.log" 2>&1
	[ "$("$DOCKER" inspect --format '{{.State.ExitCode}}' "$c2")" = 0 ] || die "broker2: non-zero exit after SIGTERM"
	grep -q '"msg":"broker stopped"' "$tmp/broker2.log" || die "broker2: no 'broker stopped' in its log"
	say "broker2 stopped cleanly"
	seq 501 1000 >"$tmp/more"
	cat "$tmp/want" "$tmp/more" >"$tmp/want2"
	all=broker1:7092,broker3:7092
	cli broker1 produce compose-test <"$tmp/more"
	cli broker3 consume compose-test --from-beginning --max-messages 1000 | sort -n >"$tmp/got"
	cmp -s "$tmp/want2" "$tmp/got" || die "with broker2 down: consumed $(wc -l <"$tmp/got") records, not 1000"
	say "broker2 down: produced 500 more, consumed all 1000"
	say "PASS compose"
}

ensure_docker
if [ "${IMAGE_TEST_BUILD:-1}" = 1 ]; then
	# Built here, once a daemon answers: make image needs one.
	make -C "$root" --no-print-directory image IMAGE="$IMAGE" DOCKER="$DOCKER" >"$tmp/image.log" 2>&1 ||
		{ tail -30 "$tmp/image.log" >&2; die "make image"; }
	say "built $IMAGE"
fi
"$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE (make image)"
# Checks of endpoints other front ends add run when the broker has them.
"$DOCKER" run --rm "$IMAGE" broker --help >"$tmp/help" 2>&1 || die "broker --help in the image"
has_flag() { grep -q -- "--$1 " "$tmp/help"; }
case $mode in
single) single ;;
compose) compose ;;
*) die "usage: $0 single|compose" ;;
esac

#!/usr/bin/env bash
# netns.sh: hosts for the chaos suite, one Linux network namespace each, on a
# private bridge, with iptables to cut the links between them. Run as root.
#
#   scripts/netns.sh up N         create hosts 1..N (namespaces sluice-h1..hN),
#                                 the bridge sluice-br0 and a veth pair each
#   scripts/netns.sh down         remove every namespace (and the processes
#                                 in it), veth, bridge and rule this script
#                                 made; safe to run when nothing exists
#   scripts/netns.sh cut A B      drop all traffic (TCP, UDP, all IP) between
#                                 hosts A and B, both ways, silently: each
#                                 drops what arrives from the other
#   scripts/netns.sh heal A B     undo cut A B
#   scripts/netns.sh isolate A    cut A from every other host; the root
#                                 namespace (the clients) still reaches A
#   scripts/netns.sh rejoin A     undo isolate A
#   scripts/netns.sh cutclients A drop, in the root namespace, everything
#                                 from host A: the clients lose A (their
#                                 packets reach it, its answers are lost),
#                                 the hosts keep each other
#   scripts/netns.sh healclients A
#                                 undo cutclients A
#   scripts/netns.sh cutport A PORT
#                                 drop TCP and UDP to and from PORT between
#                                 host A and every other host, both ways
#                                 (e.g. only the gossip port); other ports
#                                 and the root namespace still reach A
#   scripts/netns.sh healport A   undo every cutport A
#   scripts/netns.sh redirect A B PORT TOPORT
#                                 in host A, TCP connections to host B's
#                                 PORT go to 127.0.0.1:TOPORT in A (a proxy
#                                 there); A's open connections to B:PORT are
#                                 reset so that they come back through it
#   scripts/netns.sh unredirect A undo every redirect in host A
#   scripts/netns.sh exec A CMD.. run CMD in host A's namespace
#   scripts/netns.sh addr A       print host A's address
#   scripts/netns.sh status       list the hosts and the rules in force
#
# Addresses: 10.77.0.1/24 on the bridge in the root namespace, where the
# clients run; host I is 10.77.0.(10+I) on eth0 inside its namespace. No
# other address range is used (IPv6 is disabled on every interface made
# here), and up refuses to run if 10.77.0.0/24 is already in use on the
# machine. Every iptables rule carries a comment that starts with
# "sluice-netns", so heal, rejoin and down find them even after a crash.
# iptables (the Debian package) is installed with apt-get when missing.
set -euo pipefail

NS_PREFIX=sluice-h
BRIDGE=sluice-br0
VETH_PREFIX=sluice-v
NET=10.77.0
TAG=sluice-netns
MAX_HOSTS=200
LOCK=/run/lock/sluice-netns.lock

die() { echo "netns.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
command -v ip >/dev/null || die "ip not found (install the iproute2 package)"

# One netns.sh at a time: the commands edit shared kernel state.
mkdir -p "$(dirname "$LOCK")"
exec 9>"$LOCK"
flock -w 30 9 || die "another netns.sh holds $LOCK"

host_addr() { echo "$NET.$((10 + $1))"; }
ns() { echo "$NS_PREFIX$1"; }

check_host() {
	[[ "$1" =~ ^[1-9][0-9]*$ ]] && [ "$1" -le "$MAX_HOSTS" ] || die "bad host number: $1"
	ip netns list | grep -qx "$(ns "$1")\( .*\)\?" || die "host $1 does not exist (run: netns.sh up N)"
}

# Our namespaces, by number.
hosts() {
	ip netns list | sed -n "s/^$NS_PREFIX\([0-9][0-9]*\)\( .*\)\?$/\1/p" | sort -n
}

need_iptables() {
	command -v iptables >/dev/null && return
	echo "netns.sh: iptables missing, installing it with apt-get" >&2
	command -v apt-get >/dev/null || die "iptables missing and no apt-get to install it"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >&2 || die "apt-get install iptables failed"
	command -v iptables >/dev/null || die "iptables still missing after apt-get install"
}

# ipt NS ARGS...: iptables in host namespace NS ("" for the root namespace).
ipt() {
	local n=$1; shift
	if [ -n "$n" ]; then
		ip netns exec "$n" iptables -w 5 "$@"
	else
		iptables -w 5 "$@"
	fi
}

# drop_tagged NS TAG [TABLE]: delete every rule of TABLE (filter by
# default) in NS whose comment is TAG, or starts with TAG when TAG ends in
# '*'.
drop_tagged() {
	local n=$1 tag=$2 table=${3:-filter} rule
	local pat="--comment ${tag%\*}"
	[ "${tag: -1}" = '*' ] || pat="$pat "
	local rules
	rules=$(ipt "$n" -t "$table" -S 2>/dev/null) || return 0
	while IFS= read -r rule; do
		rule=${rule//\"/} # iptables-nft quotes comments; the tag needs no quotes
		case "$rule " in
		-A\ *"$pat"*)
			# The tag has no spaces, so the rule splits back into its words.
			# shellcheck disable=SC2086
			ipt "$n" -t "$table" -D ${rule#-A } ;;
		esac
	done <<<"$rules"
}

# add_drop NS TAG PEER: drop everything arriving in NS from PEER. Cuts drop
# on the receiving side only: a sender sees silence and timeouts, as in a
# real partition, where an OUTPUT rule would fail its sends with EPERM.
add_drop() {
	ipt "$1" -I INPUT -s "$3" -m comment --comment "$2" -j DROP
}

cmd_up() {
	local n=${1:-}
	[[ "$n" =~ ^[1-9][0-9]*$ ]] && [ "$n" -le "$MAX_HOSTS" ] || die "usage: netns.sh up N (1..$MAX_HOSTS)"
	[ -z "$(hosts)" ] || die "hosts exist already (run: netns.sh down)"
	cmd_down # leftovers of a crashed up: a bridge, veths, root rules
	if ip -4 addr show | grep -q "inet $NET\."; then
		die "$NET.0/24 is in use on this machine; refusing to touch it"
	fi
	if ip -4 route show | grep -q "^$NET\.0/24"; then
		die "a route to $NET.0/24 exists already; refusing to touch it"
	fi
	ip link add "$BRIDGE" type bridge 2>/dev/null || die "cannot create bridge $BRIDGE (kernel without bridge support?)"
	# IPv4 only: no IPv6 link-local addresses, which the IPv4 cuts would
	# not cover.
	[ ! -w /proc/sys/net/ipv6/conf/$BRIDGE/disable_ipv6 ] || echo 1 >/proc/sys/net/ipv6/conf/$BRIDGE/disable_ipv6
	ip addr add "$NET.1/24" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	# With br_netfilter loaded, bridged frames traverse the root namespace's
	# FORWARD chain; a DROP policy there (Docker sets one) would cut every
	# host off. Accept the bridge's own traffic, tagged for down.
	if [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" = 1 ]; then
		need_iptables
		ipt "" -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$TAG:bridge" -j ACCEPT
	fi
	local i f
	for i in $(seq 1 "$n"); do
		ip netns add "$(ns "$i")"
		# /proc/sys/net is the namespace's own when read from inside it.
		ip netns exec "$(ns "$i")" sh -c 'for d in all default; do
			f=/proc/sys/net/ipv6/conf/$d/disable_ipv6
			[ ! -w "$f" ] || echo 1 >"$f"
		done'
		ip link add "$VETH_PREFIX$i" type veth peer name eth0 netns "$(ns "$i")" 2>/dev/null ||
			die "cannot create veth pair for host $i (kernel without veth support?)"
		f=/proc/sys/net/ipv6/conf/$VETH_PREFIX$i/disable_ipv6
		[ ! -w "$f" ] || echo 1 >"$f"
		ip link set "$VETH_PREFIX$i" master "$BRIDGE"
		ip link set "$VETH_PREFIX$i" up
		ip -n "$(ns "$i")" link set lo up
		ip -n "$(ns "$i")" addr add "$(host_addr "$i")/24" dev eth0
		ip -n "$(ns "$i")" link set eth0 up
	done
	need_iptables
	echo "netns.sh: $n hosts up: $(for i in $(seq 1 "$n"); do printf '%s=%s ' "$i" "$(host_addr "$i")"; done)"
}

cmd_down() {
	local i n pid
	for i in $(hosts); do
		n=$(ns "$i")
		# Gone with the namespace anyway; removed first in case a process
		# we cannot kill keeps the namespace alive.
		if command -v iptables >/dev/null; then
			drop_tagged "$n" "$TAG*" nat
		fi
		# Processes keep a deleted namespace alive: end them first.
		for pid in $(ip netns pids "$n" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null || true
		done
		ip netns del "$n" 2>/dev/null || true
	done
	# Deleting a namespace deletes its veth end and so the pair; these are
	# leftovers of an up that died half way.
	for i in $(ip -o link show 2>/dev/null | sed -n "s/^[0-9]*: \(${VETH_PREFIX}[0-9][0-9]*\)@.*/\1/p"); do
		ip link del "$i" 2>/dev/null || true
	done
	ip link del "$BRIDGE" 2>/dev/null || true
	if command -v iptables >/dev/null; then
		drop_tagged "" "$TAG*"
	fi
}

cmd_cut() {
	local a=${1:-} b=${2:-}
	check_host "$a"; check_host "$b"
	[ "$a" != "$b" ] || die "cut $a $a: a host cannot be cut from itself"
	need_iptables
	local tag
	tag="$TAG:cut:$(printf '%s\n' "$a" "$b" | sort -n | paste -sd:)"
	cmd_heal "$a" "$b"
	add_drop "$(ns "$a")" "$tag" "$(host_addr "$b")"
	add_drop "$(ns "$b")" "$tag" "$(host_addr "$a")"
}

cmd_heal() {
	local a=${1:-} b=${2:-}
	check_host "$a"; check_host "$b"
	command -v iptables >/dev/null || return 0
	local tag
	tag="$TAG:cut:$(printf '%s\n' "$a" "$b" | sort -n | paste -sd:)"
	drop_tagged "$(ns "$a")" "$tag"
	drop_tagged "$(ns "$b")" "$tag"
}

cmd_isolate() {
	local a=${1:-}
	check_host "$a"
	need_iptables
	local i tag=$TAG:isolate:$a
	cmd_rejoin "$a"
	# Inserted in reverse: the bridge address (the clients) is accepted
	# before the rest of the subnet is dropped.
	add_drop "$(ns "$a")" "$tag" "$NET.0/24"
	ipt "$(ns "$a")" -I INPUT -s "$NET.1" -m comment --comment "$tag" -j ACCEPT
	for i in $(hosts); do
		[ "$i" = "$a" ] || add_drop "$(ns "$i")" "$tag" "$(host_addr "$a")"
	done
}

# drop_everywhere TAG: drop_tagged TAG in every host.
drop_everywhere() {
	local i
	for i in $(hosts); do
		drop_tagged "$(ns "$i")" "$1"
	done
}

cmd_rejoin() {
	local a=${1:-}
	check_host "$a"
	command -v iptables >/dev/null || return 0
	drop_everywhere "$TAG:isolate:$a"
}

# Clients run in the root namespace: a drop there of what A sends cuts them
# off A silently (connects and requests time out) and leaves the hosts'
# links, which do not pass through the root namespace's INPUT, alone.
cmd_cutclients() {
	local a=${1:-}
	check_host "$a"
	need_iptables
	cmd_healclients "$a"
	add_drop "" "$TAG:clients:$a" "$(host_addr "$a")"
}

cmd_healclients() {
	local a=${1:-}
	check_host "$a"
	command -v iptables >/dev/null || return 0
	drop_tagged "" "$TAG:clients:$a"
}

# A TCP port number.
check_port() {
	[[ "$1" =~ ^[1-9][0-9]*$ ]] && [ "$1" -le 65535 ] || die "bad port: $1"
}

# cutport A PORT: between host A and each other host B, drop TCP and UDP
# whose source or destination port is PORT, on the receiving side (in A
# what comes from B, in B what comes from A): both the connections and
# datagrams A sends to B:PORT and those B sends to A:PORT are lost, as are
# the answers from PORT. Nothing else between them is cut.
cmd_cutport() {
	local a=${1:-} port=${2:-}
	check_host "$a"
	check_port "$port"
	need_iptables
	local i p dir tag=$TAG:port:$a
	cmd_healport "$a"
	for i in $(hosts); do
		[ "$i" != "$a" ] || continue
		for p in tcp udp; do
			for dir in --dport --sport; do
				ipt "$(ns "$a")" -I INPUT -s "$(host_addr "$i")" -p "$p" "$dir" "$port" -m comment --comment "$tag" -j DROP
				ipt "$(ns "$i")" -I INPUT -s "$(host_addr "$a")" -p "$p" "$dir" "$port" -m comment --comment "$tag" -j DROP
			done
		done
	done
}

cmd_healport() {
	local a=${1:-}
	check_host "$a"
	command -v iptables >/dev/null || return 0
	drop_everywhere "$TAG:port:$a"
}

# redirect A B PORT TOPORT: in host A, new TCP connections to host B's
# PORT go to 127.0.0.1:TOPORT in A instead (a nat OUTPUT REDIRECT), where a
# proxy forwards them to B. A rule only catches connections that start
# after it, so A's established connections to B:PORT that do not already
# go through TOPORT are then destroyed (ss -K: an RST to both ends) and
# come back through the proxy.
cmd_redirect() {
	local a=${1:-} b=${2:-} port=${3:-} to=${4:-}
	check_host "$a"; check_host "$b"
	[ "$a" != "$b" ] || die "redirect $a $a: a host's links to itself are not redirected"
	check_port "$port"; check_port "$to"
	need_iptables
	local n dst tag
	n=$(ns "$a")
	dst=$(host_addr "$b")
	tag=$TAG:redirect:$dst:$port
	drop_tagged "$n" "$tag" nat
	ipt "$n" -t nat -A OUTPUT -p tcp -d "$dst" --dport "$port" -m comment --comment "$tag" -j REDIRECT --to-ports "$to"
	# Listed in this order, a connection the rule caught between the two
	# listings is in the second one and so spared.
	local direct proxied local_addr
	direct=$(ip netns exec "$n" ss -Htn state established dst "$dst" dport = ":$port" | awk '{print $3}')
	proxied=$(ip netns exec "$n" ss -Htn state connected src 127.0.0.1 sport = ":$to" | awk '{print $5}')
	for local_addr in $direct; do
		grep -qxF -- "$local_addr" <<<"$proxied" && continue
		ip netns exec "$n" ss -HtnK state established src "${local_addr%:*}" sport = ":${local_addr##*:}" \
			dst "$dst" dport = ":$port" >/dev/null
	done
}

# unredirect A: remove every redirect in host A. Connections that went
# through a proxy are no longer translated afterwards: A's packets on them
# go straight to B (which resets them) and the proxy's FIN or RST comes
# from 127.0.0.1 and reaches no socket. End them through the proxy first.
cmd_unredirect() {
	local a=${1:-}
	check_host "$a"
	command -v iptables >/dev/null || return 0
	drop_tagged "$(ns "$a")" "$TAG:redirect:*" nat
}

cmd_status() {
	local i
	for i in $(hosts); do
		echo "host $i $(ns "$i") $(host_addr "$i")"
		if command -v iptables >/dev/null; then
			ipt "$(ns "$i")" -S | grep -F -- "$TAG" | sed 's/^/  /' || true
			ipt "$(ns "$i")" -t nat -S | grep -F -- "$TAG" | sed 's/^/  nat: /' || true
		fi
	done
	if command -v iptables >/dev/null; then
		ipt "" -S | grep -F -- "$TAG:clients" | sed 's/^/  root: /' || true
	fi
}

case "${1:-}" in
up) shift; cmd_up "$@" ;;
down) cmd_down ;;
cut) shift; cmd_cut "$@" ;;
heal) shift; cmd_heal "$@" ;;
isolate) shift; cmd_isolate "$@" ;;
rejoin) shift; cmd_rejoin "$@" ;;
cutclients) shift; cmd_cutclients "$@" ;;
cutport) shift; cmd_cutport "$@" ;;
healport) shift; cmd_healport "$@" ;;
redirect) shift; cmd_redirect "$@" ;;
unredirect) shift; cmd_unredirect "$@" ;;
healclients) shift; cmd_healclients "$@" ;;
exec)
	shift
	a=${1:-}
	check_host "$a"
	shift
	[ $# -gt 0 ] || die "usage: netns.sh exec A CMD..."
	exec 9>&- # do not hold the lock for the command's lifetime
	exec ip netns exec "$(ns "$a")" "$@"
	;;
addr) check_host "${2:-}"; host_addr "$2" ;;
status) cmd_status ;;
*) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac

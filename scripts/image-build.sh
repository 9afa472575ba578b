#!/usr/bin/env bash
# image-build.sh: build the broker image (deploy/Dockerfile) from local
# files only; make image runs it (GO_IMAGE=local, the default).
#
# deploy/Dockerfile's build stage starts from GO_IMAGE, the official Go
# image by default, and downloads the modules; where no registry and no
# module proxy can be reached from a build, this script gives it both from
# the host instead:
#
#  1. The builder image $BUILDER_IMAGE (sluice-build:<go version>-<hash of
#     its recipe below>), made once with docker import from a root file system
#     of a static busybox (for RUN's shell), the host's Go toolchain ($GO
#     env GOROOT, without its tests, docs and the toolchain's own source)
#     and the host's CA certificates ($CA_CERTS), with GOPROXY=off. While
#     the Go version and the recipe stay the same it is reused. busybox is
#     $BUSYBOX, else the host's busybox if it is static, else Debian's
#     busybox-static package (apt-get download).
#  2. A temporary context ($IMAGE_DIR/context): the source (git ls-files:
#     tracked files and untracked ones not ignored) and vendor.tar.gz, the
#     modules ($GO mod vendor), which the Dockerfile unpacks instead of
#     downloading them. .dockerignore applies to it as to a checkout.
#  3. docker build --network none with GO_IMAGE=$BUILDER_IMAGE, tagged
#     $IMAGE, stamped with $VERSION, $COMMIT and $BUILD_DATE.
#  4. The build cache of sluice's own packages, /out/gocache.tar in the
#     build stage, is copied out to $IMAGE_GOCACHE (default
#     ~/.cache/sluice/image-gocache.tar, beside Go's own build cache, so
#     that a new clone finds it) and put in the next build's context,
#     which then compiles only what changed. It holds every version of
#     every package since it was started: past $IMAGE_GOCACHE_MAX_MB (256)
#     MB it is dropped and starts again. The build stage before is removed
#     (its ID in $IMAGE_GOCACHE.stage).
#
# The image is built for the host's architecture.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
GO=${GO:-go}
DOCKER=${DOCKER:-docker}
IMAGE=${IMAGE:-sluice:dev}
IMAGE_DIR=${IMAGE_DIR:-bin/image}
CA_CERTS=${CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
IMAGE_GOCACHE=${IMAGE_GOCACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/image-gocache.tar}

say() { echo "image-build: $*" >&2; }
die() { say "$*"; exit 1; }

# static_busybox DIR: the path of a static busybox, downloaded into DIR
# if the host has none.
static_busybox() {
	local dir=$1 b
	if [ -n "${BUSYBOX:-}" ]; then echo "$BUSYBOX"; return; fi
	b=$(command -v busybox || true)
	# ldd refuses a static executable.
	if [ -n "$b" ] && command -v ldd >/dev/null && ! ldd "$b" >/dev/null 2>&1; then echo "$b"; return; fi
	say "no static busybox on the host: downloading Debian's busybox-static"
	(cd "$dir" && apt-get download busybox-static >/dev/null 2>&1) ||
		{ [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null && (cd "$dir" && apt-get download busybox-static >/dev/null); } ||
		die "no static busybox: apt-get download busybox-static failed (install busybox-static, or set BUSYBOX=)"
	dpkg-deb -x "$dir"/busybox-static_*.deb "$dir/deb"
	echo "$dir/deb/bin/busybox"
}

# builder: make $BUILDER_IMAGE unless it is there.
builder() {
	if "$DOCKER" image inspect "$BUILDER_IMAGE" >/dev/null 2>&1; then
		say "reusing the builder image $BUILDER_IMAGE"
		return
	fi
	[ -r "$CA_CERTS" ] || die "no CA certificates at $CA_CERTS (apt-get install ca-certificates, or CA_CERTS=...)"
	local goroot dir busybox a
	goroot=$($GO env GOROOT)
	dir="$IMAGE_DIR/builder"
	rm -rf "$dir" && mkdir -p "$dir/rootfs"
	busybox=$(static_busybox "$dir")
	local fs="$dir/rootfs"
	mkdir -p "$fs/bin" "$fs/etc/ssl/certs" "$fs/usr/local" "$fs/root" "$fs/tmp" "$fs/go"
	chmod 1777 "$fs/tmp"
	cp "$busybox" "$fs/bin/busybox"
	# Hard links: tar -h below copies what symbolic links point at.
	for a in $("$fs/bin/busybox" --list); do
		[ "$a" = busybox ] || ln "$fs/bin/busybox" "$fs/bin/$a"
	done
	cp "$CA_CERTS" "$fs/etc/ssl/certs/ca-certificates.crt"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$fs/etc/passwd"
	printf 'root:x:0:\n' >"$fs/etc/group"
	# The toolchain is not copied: tar follows this link (and any in a
	# distribution's GOROOT) into the image.
	ln -s "$goroot" "$fs/usr/local/go"
	say "making the builder image $BUILDER_IMAGE from $goroot ($($GO env GOVERSION))"
	tar -h -C "$fs" --exclude=./usr/local/go/test --exclude=./usr/local/go/api --exclude=./usr/local/go/doc \
		--exclude=./usr/local/go/misc --exclude=./usr/local/go/src/cmd --exclude=./usr/local/go/pkg/obj \
		--owner=0 --group=0 -c . |
		"$DOCKER" import \
			--change 'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'ENV GOPATH=/go GOTOOLCHAIN=local GOPROXY=off' \
			--change 'LABEL org.opencontainers.image.description="sluice build stage: busybox and the host Go toolchain (scripts/image-build.sh)"' \
			- "$BUILDER_IMAGE" >/dev/null
	rm -rf "$dir"
	local v
	v=$("$DOCKER" run --rm --network none "$BUILDER_IMAGE" go version) || die "the builder image $BUILDER_IMAGE does not run go"
	say "builder image $BUILDER_IMAGE: $v"
}

# context: the source and the vendored modules in $IMAGE_DIR/context.
context() {
	local ctx="$IMAGE_DIR/context"
	rm -rf "$ctx" && mkdir -p "$ctx"
	# Deleted files git still tracks are skipped.
	git ls-files -z --cached --others --exclude-standard |
		tar --null -T - --ignore-failed-read -c 2>/dev/null | tar -C "$ctx" -x
	[ -f "$ctx/go.mod" ] || die "no go.mod in the context: is $root a git checkout?"
	"$GO" mod vendor -o "$IMAGE_DIR/vendor"
	# The same bytes for the same modules: the Dockerfile's module layers
	# stay cached while go.sum does not change.
	tar -C "$IMAGE_DIR" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -c vendor | gzip -n >"$ctx/vendor.tar.gz"
	rm -rf "$IMAGE_DIR/vendor"
	local keep="$IMAGE_GOCACHE"
	if [ -f "$keep" ] && [ "$(du -m "$keep" | cut -f1)" -gt "${IMAGE_GOCACHE_MAX_MB:-256}" ]; then
		say "dropping the kept build cache ($(du -m "$keep" | cut -f1) MB)"
		rm -f "$keep"
	fi
	if [ -f "$keep" ]; then ln "$keep" "$ctx/gocache.tar" 2>/dev/null || cp "$keep" "$ctx/gocache.tar"; fi
}

# keep_cache LOG: copy the build stage's /out/gocache.tar to
# $IMAGE_GOCACHE, and remove the build stage of the build before: each
# holds a copy of the cache. The build stage's image is the last one the
# build's output LOG names before the FROM scratch step (docker's classic
# builder; with another the cache is not kept).
keep_cache() {
	local id c last="$IMAGE_GOCACHE.stage" old
	id=$(awk '/^Step [0-9]+\/[0-9]+ : FROM scratch/ { print last; exit } / ---> [0-9a-f]+$/ { last = $2 }' "$1")
	[ -n "$id" ] && c=$("$DOCKER" create "$id" true) || return 1
	mkdir -p "$(dirname "$IMAGE_GOCACHE")"
	# Renamed into place: a build running beside this one reads a whole file.
	"$DOCKER" cp "$c:/out/gocache.tar" "$IMAGE_GOCACHE.$$" >/dev/null
	local rc=$?
	"$DOCKER" rm "$c" >/dev/null
	[ $rc = 0 ] && mv "$IMAGE_GOCACHE.$$" "$IMAGE_GOCACHE" || return 1
	# Removed after this build: the layers it shares with this one (the
	# compiled modules) stay.
	old=$(cat "$last" 2>/dev/null || true)
	echo "$id" >"$last"
	if [ -n "$old" ] && [ "$old" != "$id" ]; then "$DOCKER" rmi "$old" >/dev/null 2>&1 || true; fi
}

# The builder's tag names the Go version and a hash of the functions that
# make it: a change of either makes a new one.
BUILDER_IMAGE=${BUILDER_IMAGE:-sluice-build:$($GO env GOVERSION)-$(declare -f static_busybox builder | sha256sum | cut -c1-8)}
mkdir -p "$IMAGE_DIR"
builder
say "builder ready after ${SECONDS}s"
context
say "context ready after ${SECONDS}s; building $IMAGE (deploy/Dockerfile, GO_IMAGE=$BUILDER_IMAGE, no network)"
args=(--network none -f deploy/Dockerfile --build-arg GO_IMAGE="$BUILDER_IMAGE"
	--build-arg VERSION="${VERSION:-}" --build-arg COMMIT="${COMMIT:-}" --build-arg BUILD_DATE="${BUILD_DATE:-}")
"$DOCKER" build "${args[@]}" -t "$IMAGE" "$IMAGE_DIR/context" | tee "$IMAGE_DIR/build.log"
say "built $IMAGE after ${SECONDS}s"
if keep_cache "$IMAGE_DIR/build.log"; then
	say "kept the build cache in $IMAGE_GOCACHE ($(du -m "$IMAGE_GOCACHE" | cut -f1) MB) after ${SECONDS}s"
else
	rm -f "$IMAGE_GOCACHE.$$"
	say "the build cache was not kept: the next build compiles everything"
fi
rm -rf "$IMAGE_DIR/context"

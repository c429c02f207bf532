#!/usr/bin/env bash
# packaging/build-runtime-image.sh — build the runtime image from a prebuilt klaxon,
# with no container registry: the base is `docker import`ed from this machine's own
# glibc files (the few the binary links), then packaging/Dockerfile.runtime copies
# the stripped binary in.
#
#   cargo build --release -p klaxon --locked
#   bash packaging/build-runtime-image.sh [BINARY] [TAG]
#
#   BINARY  default target/release/klaxon
#   TAG     default klaxon:runtime
#
# The engine is the docker CLI's (DOCKER_HOST, or the default socket). Build the
# binary on the distribution the image should carry (glibc comes from the host),
# e.g. Debian 12 for a bookworm-like base. It prints the image size.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BINARY=${1:-$ROOT_DIR/target/release/klaxon}
TAG=${2:-klaxon:runtime}
BASE=${KLAXON_RUNTIME_BASE:-klaxon/runtime-base:local}

[ -x "$BINARY" ] || { echo "build-runtime-image: $BINARY not found (cargo build --release -p klaxon --locked)" >&2; exit 1; }
command -v ldd >/dev/null || { echo "build-runtime-image: ldd is needed" >&2; exit 1; }

WORK=$(mktemp -d /tmp/klaxon-runtime.XXXX)
trap 'rm -rf "$WORK"' EXIT

# 1. The base: the dynamic loader and the libraries the binary links, an
#    /etc/passwd with the klaxon user (uid 10001), and the directories it writes.
root=$WORK/rootfs
mkdir -p "$root"/{etc/klaxon,tmp,var/lib/klaxon,usr/local/bin,proc,sys,dev}
chmod 1777 "$root/tmp"
ldd "$BINARY" | awk '/=> \// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }' | sort -u | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
printf 'root:x:0:0:root:/root:/nonexistent\nklaxon:x:10001:10001:klaxon:/var/lib/klaxon:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n' >"$root/etc/passwd"
printf 'root:x:0:\nklaxon:x:10001:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
# Everything root's, except the data directory (a volume: Docker copies its
# ownership into a new volume), which is klaxon's: no chown, so no root needed.
tar -C "$root" --owner=0 --group=0 --numeric-owner --exclude=./var/lib/klaxon -cf "$WORK/base.tar" .
tar -C "$root" --owner=10001 --group=10001 --numeric-owner -rf "$WORK/base.tar" ./var/lib/klaxon
docker import -c 'ENV PATH=/usr/local/bin' "$WORK/base.tar" "$BASE" >/dev/null

# 2. The image: only the stripped binary in the build context.
ctx=$WORK/context
mkdir -p "$ctx"
cp "$BINARY" "$ctx/klaxon"
strip "$ctx/klaxon" 2>/dev/null || true
cp "$ROOT_DIR/packaging/Dockerfile.runtime" "$ctx/Dockerfile"
cp "$ROOT_DIR/packaging/runtime.dockerignore" "$ctx/.dockerignore"
DOCKER_BUILDKIT=0 docker build --network none --build-arg "BASE=$BASE" -t "$TAG" "$ctx" >"$WORK/build.log" 2>&1 ||
    { cat "$WORK/build.log" >&2; exit 1; }
size=$(docker image inspect -f '{{.Size}}' "$TAG")
echo "built $TAG: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1000000 }'))"

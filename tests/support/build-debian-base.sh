#!/bin/sh
# Make a minimal Debian image from Debian packages (no registry pull):
#   build-debian-base.sh [IMAGE [SUITE]]
# (defaults localhost/pgha-test/debian:bookworm and bookworm; trixie is served
# by the same mirror and gives the PostgreSQL 17 stand-in its base).
# Uses the machine's apt mirror; needs root, debootstrap and podman.
set -eu
image=${1:-localhost/pgha-test/debian:bookworm}
suite=${2:-bookworm}
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
rootfs=$(mktemp -d /var/tmp/pgha-debootstrap.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
# Tag the base with a label so that tests can tell it is ours.
tar -C "$rootfs" --numeric-owner -c . \
  | podman import --change 'CMD ["/bin/bash"]' --change "LABEL io.pgha.test-image=debian-$suite" - "$image" >/dev/null
podman image inspect --format '{{.Id}}' "$image"

#!/usr/bin/env bash
# Image size against its base, in the same run: the full-set image (the
# default C/SQL set + supabase_vault + pgtap, pg_cron from source; what
# tests/full_set.rs builds) on the Spilo stand-in, with release binaries.
# Target: growth over the base <= 40 MB.
#
#   benches/image_size.sh [IMAGE]
#
# With IMAGE, measures that image against the base named by its
# io.pgha.base-image label instead of building one. Sizes are Podman's
# (uncompressed layers). Also lists the largest paths the image adds.
#
# Needs: root, podman, jq, the stand-in of this tree (built by the tests:
# `cargo test --test full_set_standin`), the upstream archives
# (PGHA_TEST_SOURCES, default ../shared/sources; else the catalog's URLs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v jq >/dev/null || { echo "missing jq: apt-get install jq" >&2; exit 4; }

image=${1:-}
# The tests' engine lock (tests/common/images.rs: flock on a file, released
# when its holder ends), held while
# this builds and removes its image: Podman loses layers when a build reuses
# cached layers that a concurrent removal prunes.
lock=/tmp/pgha-test-engine.flock
# The tests' engine lock: flock(1) on the tests' lock file (fd 9).
engine_lock() { exec 9>"$lock"; flock -w 1200 9 || { echo "waited 20 min for $lock" >&2; exit 1; }; }
engine_unlock() { exec 9>&-; }
cleanup() { engine_unlock; }
trap 'cleanup' EXIT
if [ -z "$image" ]; then
    # The stand-in's tag is 15-<first 12 hex of sha256 over its support files'
    # names and contents, in byte order> (tests/common/images.rs).
    digest=$(cd tests/support/spilo-standin && for f in $(LC_ALL=C ls); do printf '%s' "$f"; cat "$f"; done \
        | sha256sum | cut -c1-12)
    base=localhost/pgha-test/spilo-standin:15-$digest
    podman image exists "$base" || {
        echo "missing $base: run \`cargo test --test full_set_standin\` first" >&2; exit 4; }
    sources=${PGHA_TEST_SOURCES:-$root/../shared/sources}
    mirror=()
    [ -e "$sources" ] && mirror=(--mirror "$sources")
    cargo build --release --quiet --bin pgha-image --bin pgha-bootstrap
    work=$(mktemp -d /var/tmp/pgha-bench-size.XXXXXX)
    image=localhost/pgha-bench/image-size:$$
    cleanup() {
        engine_lock
        podman image rm -f "$image" >/dev/null 2>&1 || true
        engine_unlock
        rm -rf "$work"
    }
    engine_lock
    target/release/pgha-image --progress quiet build --engine podman --tag "$image" \
        --base-image "$base" --pg 15 --base-glibc 2.36 --base-lib libcurl=7.88 \
        --base-preload pg_stat_statements,pg_cron \
        --extensions vector,pgjwt,http,pg_hashids,pgsodium,pg_net,pg_cron,supabase_vault,pgtap \
        --from-source pg_cron --bootstrap-bin target/release/pgha-bootstrap \
        --cache-dir "$work/cache" --out "$work/out" "${mirror[@]}" >/dev/null
    engine_unlock
else
    base=$(podman image inspect --format '{{index .Config.Labels "io.pgha.base-image"}}' "$image")
fi

size() { podman image inspect --format '{{.Size}}' "$1"; }
base_size=$(size "$base")
image_size=$(size "$image")
growth=$((image_size - base_size))
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }
echo "base    $base  $(mb "$base_size")"
echo "image   $image  $(mb "$image_size")"
echo "growth  $(mb "$growth")  (target <= 40 MB: $([ "$growth" -le 40000000 ] && echo met || echo MISSED))"
echo
echo "sizes in the image of the paths the build adds to (base content there included):"
podman run --rm --entrypoint sh "$image" -c '
    du -sk /usr/local/bin/pgha-bootstrap /usr/lib/postgresql/15/lib /usr/share/postgresql/15/extension \
        /usr/lib/x86_64-linux-gnu/libsodium.so.* /var/cache/apt /var/lib/apt/lists 2>/dev/null | sort -rn | head -8'
echo
echo "layers over the base:"
podman history --format '{{.Size}}\t{{.CreatedBy}}' "$image" \
    | head -n $(( $(podman history -q "$image" | wc -l) - $(podman history -q "$base" | wc -l) )) \
    | awk -F'\t' '$1 != "0B" {printf "  %-10s %s\n", $1, substr($2, 1, 90)}'

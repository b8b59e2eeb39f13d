#!/usr/bin/env bash
# Export and rebuild benchmarks, each against its baseline in the same run.
#
#   benches/export.sh [IMAGE]      (default: the Spilo stand-in the tests build)
#
# 1. `pgha-image export` (default: zstd level 1) wall time vs `podman save` to /dev/null
#    (target: <= 1.3x), and the export's size vs `gzip -6` of the same tar.
# 2. A no-change rebuild through Engine::build (benches/engine_rebuild.rs)
#    vs `podman build` of the same context, both fully cached.
# ROUNDS (default 5) runs each, alternating; medians are reported.
set -euo pipefail
cd "$(dirname "$0")/.."
# The newest stand-in (its tag is 15-<digest of tests/support/spilo-standin>).
IMAGE=${1:-$(podman images --format '{{.Repository}}:{{.Tag}}' --filter 'reference=localhost/pgha-test/spilo-standin:15-*' | head -1)}
ROUNDS=${ROUNDS:-5}

podman image exists "$IMAGE" || {
    echo "image $IMAGE is absent: build it with \`cargo test --test engine_standin\` (or pass another IMAGE)" >&2
    exit 4
}
cargo build --release --quiet --bin pgha-image
BIN=target/release/pgha-image
tmp=$(mktemp -d /var/tmp/pgha-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

podman save --format docker-archive "$IMAGE" > /dev/null   # warm the page cache
save_t=() export_t=()
for i in $(seq "$ROUNDS"); do
    s=$(now); podman save --format docker-archive "$IMAGE" > /dev/null; e=$(now)
    save_t+=($(( (e - s) / 1000000 )))
    rm -f "$tmp"/x.tar.zst*
    s=$(now); "$BIN" --progress quiet export --engine podman --force --tag "$IMAGE" -o "$tmp/x.tar.zst" > /dev/null; e=$(now)
    export_t+=($(( (e - s) / 1000000 )))
done
save_ms=$(printf '%s\n' "${save_t[@]}" | median)
export_ms=$(printf '%s\n' "${export_t[@]}" | median)
zst_size=$(stat -c %s "$tmp/x.tar.zst")
tar_size=$(awk -F'"uncompressed_size": ' 'NF>1{sub(/,.*/,"",$2); print $2}' "$tmp/x.tar.zst.manifest.json")

# For information: zstd level 3 (smaller, slower).
rm -f "$tmp"/x3.tar.zst*
s=$(now); "$BIN" --progress quiet export --engine podman --force --level 3 --tag "$IMAGE" -o "$tmp/x3.tar.zst" > /dev/null; e=$(now)
l3_ms=$(( (e - s) / 1000000 ))
l3_size=$(stat -c %s "$tmp/x3.tar.zst")

s=$(now); podman save --format docker-archive "$IMAGE" | gzip -6 > "$tmp/x.tar.gz"; e=$(now)
gzip_ms=$(( (e - s) / 1000000 ))
gz_size=$(stat -c %s "$tmp/x.tar.gz")

awk -v img="$IMAGE" -v r="$ROUNDS" -v sv="$save_ms" -v ex="$export_ms" -v gz="$gzip_ms" \
    -v zs="$zst_size" -v gs="$gz_size" -v ts="$tar_size" -v l3="$l3_ms" -v l3s="$l3_size" 'BEGIN {
    printf "image: %s (tar %.1f MB), medians of %d runs\n", img, ts/1e6, r
    printf "export (zstd, default):%6d ms   %8.1f MB\n", ex, zs/1e6
    printf "export --level 3:      %6d ms   %8.1f MB   (one run)\n", l3, l3s/1e6
    printf "podman save >/dev/null:%6d ms\n", sv
    printf "podman save | gzip -6: %6d ms   %8.1f MB   (one run)\n", gz, gs/1e6
    printf "export / save time:    %.2fx (target <= 1.3x)\n", ex/sv
    printf "export / gzip-6 size:  %.2fx\n", zs/gs
}'

# 2. Rebuild: a small multi-stage context like the generated ones.
ctx="$tmp/ctx"; mkdir -p "$ctx/src"
head -c 4000000 /dev/urandom > "$ctx/src/blob.bin"
for n in a b c; do printf 'extension %s\n' "$n" > "$ctx/src/$n.sql"; done
base=localhost/pgha-test/debian:bookworm
cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM $base AS ext-a
COPY src/a.sql /out/a.sql
RUN sha256sum /out/a.sql > /out/a.sum
FROM $base AS ext-b
COPY src/b.sql src/blob.bin /out/
RUN sha256sum /out/* > /out/b.sum
FROM $base
COPY --from=ext-a /out/ /usr/share/ext/
COPY --from=ext-b /out/ /usr/share/ext/
COPY src/c.sql /usr/share/ext/c.sql
DOCKERFILE
cargo bench --quiet --bench engine_rebuild -- "$ctx" podman "$((ROUNDS + 2))"

#!/usr/bin/env bash
# No-change rebuild: `pgha-image build` (sources from the cache, the identical
# context regenerated, the engine's build with every layer cached) against the
# engine's own cached rebuild of the same context (`podman build` with the
# same arguments our build passes). Both after one warm-up build; best of N.
#
# Needs: root, podman, jq, the Spilo stand-in image (made by the tests:
# `cargo test --test generate_build`), and the upstream tarballs of
# scripts/install-test-prereqs.sh. Usage: benches/rebuild.sh [RUNS]
set -euo pipefail

runs=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/benches/lib.sh"
# The newest stand-in (its tag is 15-<digest of tests/support/spilo-standin>).
base=$(podman images --format '{{.Repository}}:{{.Tag}}' --filter 'reference=localhost/pgha-test/spilo-standin:15-*' | head -1)
tag=localhost/pgha-bench/rebuild:$$
upstream=${PGHA_TEST_FIXTURES:-/var/cache/pgha-image-test}/upstream

podman image exists "$base" || { echo "missing $base: run cargo test --test generate_build first" >&2; exit 4; }
command -v jq >/dev/null || { echo "missing jq: apt-get install jq" >&2; exit 4; }

(cd "$root" && cargo build -q --bins)
bin=$root/target/debug/pgha-image
work=$(mktemp -d)
cleanup() { podman image rm -f "$tag" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/mirror"
cp "$upstream/pgvector_0.8.0.orig.tar.gz" "$work/mirror/vector-0.8.0.tar.gz"
cp "$upstream/pgtap_1.3.3.orig.tar.gz" "$work/mirror/pgtap-1.3.3.tar.gz"

ours=("$bin" --progress quiet --cache-dir "$work/cache" build --engine podman --tag "$tag"
      --base-image "$base" --pg 15 --extensions vector,pgtap --mirror "$work/mirror"
      --out "$work/out" --bootstrap-bin "$root/target/debug/pgha-bootstrap")

echo "warm-up build (fills the source cache and the engine's layer cache)..." >&2
"${ours[@]}" >/dev/null

# The engine command our build runs, with the same build arguments and label.
engine_args "$work/out" "$tag"

# Interleaved, so that both see the same machine load; best of $runs each.
t_engine="" t_ours=""
for _ in $(seq "$runs"); do
    t_engine=$(min "$t_engine" "$(timed "${engine[@]}")")
    t_ours=$(min "$t_ours" "$(timed "${ours[@]}")")
done
ratio=$(ratio "$t_ours" "$t_engine")
printf '| path | best of %s | ratio |\n|---|---|---|\n' "$runs"
printf '| `podman build --layers` of the same context, same args (baseline) | %.3f s | 1.00x |\n' "$t_engine"
printf '| `pgha-image build` (fetch from cache + generate + podman build) | %.3f s | %sx |\n' "$t_ours" "$ratio"

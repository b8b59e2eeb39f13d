#!/usr/bin/env bash
# The default set WITH pg_graphql (a Rust/pgrx extension, built offline from
# vendored crates) on the bookworm Spilo stand-in:
#
# - no-change rebuild: `pgha-image build` (sources and crates from the cache,
#   the identical context regenerated, every layer cached) against the
#   engine's own cached rebuild of the same context (`podman build` with the
#   arguments our build passes); best of RUNS each, interleaved; ratio.
# - with --cold: the pg_graphql stages cold (`podman build --no-cache
#   --target ext-pg_graphql`: the toolchain copy, cargo-pgrx and pg_graphql
#   compiled from scratch, apt included), against the same build of the C
#   stage of pg_net (`--target ext-pg_net`, also --no-cache) as the baseline.
#
# The sources: ../shared/sources (or PGHA_TEST_SOURCES) with pg_graphql from
# partial/, under a copy of the catalog that pins that archive's digest (as
# tests/pgrx_offline.rs does; the shipped catalog keeps upstream's); the
# crates from crates.io. Needs: root, podman, jq, bc, and the stand-ins made
# by the tests (`cargo test --test pgrx_offline -- --include-ignored`).
# Usage: benches/pgrx.sh [RUNS] [--cold]   (env MAJOR: 15, the default, on the
# bookworm stand-in, or 17 on the trixie one)
# Takes the tests' engine lock (/tmp/pgha-test-engine.flock) while it builds.
set -euo pipefail

runs=${1:-3}
cold=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/benches/lib.sh"
sources=${PGHA_TEST_SOURCES:-$root/../shared/sources}
major=${MAJOR:-15}
case $major in 15|17) ;; *) echo "MAJOR must be 15 or 17" >&2; exit 2 ;; esac
base=$(podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=localhost/pgha-test/spilo-standin:$major-*" | head -1)
rust_tag=$(podman images --format '{{.Repository}}:{{.Tag}}' --filter 'reference=localhost/pgha-test/rust:*-*' | head -1)
tag=localhost/pgha-bench/pgrx:$$

[ -n "$base" ] || { echo "no Spilo stand-in: run cargo test --test pgrx_offline -- --include-ignored first" >&2; exit 4; }
[ -n "$rust_tag" ] || { echo "no Rust stand-in: run cargo test --test pgrx_offline -- --include-ignored first" >&2; exit 4; }
[ -f "$sources/partial/pg_graphql-1.5.11.tar.gz" ] || { echo "missing $sources/partial/pg_graphql-1.5.11.tar.gz" >&2; exit 4; }
for p in jq bc; do command -v $p >/dev/null || { echo "missing $p: apt-get install $p" >&2; exit 4; }; done
rust="localhost/pgha-test/rust@$(podman image inspect --format '{{.Digest}}' "$rust_tag")"

(cd "$root" && cargo build -q --bins)
bin=$root/target/debug/pgha-image
work=$(mktemp -d)
lock=/tmp/pgha-test-engine.flock
cleanup() {
    podman image rm -f "$tag" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# The tests' engine lock: flock(1) on the tests' lock file, held until this script exits.
exec 9>"$lock"
flock 9

# The test catalog (pg_graphql pinned to the partial archive) and the source mirror.
mkdir -p "$work/catalog" "$work/mirror"
cp "$root"/extensions/*.toml "$work/catalog/"
partial=$(awk '$2 == "pg_graphql-1.5.11.tar.gz" {print $1}' "$sources/partial/SHA256SUMS")
sed -i "s/b93d195e3306bfcfbad51b7bc24d2873e7f42223448044cb6b0aecdb9e60de45/$partial/" "$work/catalog/pg_graphql.toml"
ln -s "$sources"/*.tar.gz "$work/mirror/"
ln -s "$sources/partial/pg_graphql-1.5.11.tar.gz" "$work/mirror/"

ours=("$bin" --progress quiet --catalog "$work/catalog" --cache-dir "$work/cache" build --engine podman
      --tag "$tag" -e default --base-image "$base" --rust-image "$rust" --mirror "$work/mirror"
      --crates-mirror https://static.crates.io --out "$work/out"
      --bootstrap-bin "$(bootstrap_bin "$root" "$work")")

echo "warm-up build (fills the source and crate cache and the engine's layer cache; long when cold)..." >&2
t_first=$(timed "${ours[@]}")
echo "first build: $t_first s" >&2

if [ "$cold" = --cold ]; then
    t_c=$(timed podman build --no-cache --layers=false --target ext-pg_net "$work/out/context")
    t_rust=$(timed podman build --no-cache --layers=false --target ext-pg_graphql "$work/out/context")
    printf '| cold stage (`podman build --no-cache --target`) | wall | ratio |\n|---|---|---|\n'
    printf '| ext-pg_net (C, baseline) | %.1f s | 1.00x |\n' "$t_c"
    printf '| ext-pg_graphql (toolchain copy + cargo-pgrx + pg_graphql) | %.1f s | %sx |\n' \
        "$t_rust" "$(ratio "$t_rust" "$t_c")"
fi

# The engine command our build runs, with the same build arguments and label.
engine_args "$work/out" "$tag"

t_engine="" t_ours=""
for _ in $(seq "$runs"); do
    t_engine=$(min "$t_engine" "$(timed "${engine[@]}")")
    t_ours=$(min "$t_ours" "$(timed "${ours[@]}")")
done
ratio=$(ratio "$t_ours" "$t_engine")
printf '| no-change rebuild, default set with pg_graphql, PostgreSQL %s | best of %s | ratio |\n|---|---|---|\n' "$major" "$runs"
printf '| `podman build --layers` of the same context, same args (baseline) | %.3f s | 1.00x |\n' "$t_engine"
printf '| `pgha-image build` (sources and crates from the cache, generate, podman build) | %.3f s | %sx |\n' \
    "$t_ours" "$ratio"

#!/usr/bin/env bash
# Cold default-set image per PostgreSQL major: `pgha-image build --no-cache`
# (sources fetched from a --mirror directory into an empty cache, the context
# generated, the engine's build with no layer cache) against the engine's own
# `podman build --no-cache` of the same context with the same arguments
# (the baseline, measured in the same run, interleaved). The default set
# without pg_graphql (a pgrx build, measured on its own), taken from the
# catalog; pg_cron built from its pinned source.
#
# Needs: root, podman, jq, bc, the Spilo stand-ins of the tests (made by
# `cargo test --test engine_standin -- --include-ignored`), and the pinned
# archives (PGHA_TEST_SOURCES, default ../shared/sources).
# Usage: benches/cold_default.sh [MAJORS]   (default "15 17")
# Takes the tests' engine lock (/tmp/pgha-test-engine.flock) while it builds.
set -euo pipefail

majors=${1:-"15 17"}
root=$(cd "$(dirname "$0")/.." && pwd)
sources=${PGHA_TEST_SOURCES:-$root/../shared/sources}
[ -d "$sources" ] || { echo "missing $sources (the pinned archives): set PGHA_TEST_SOURCES" >&2; exit 4; }
for p in podman jq bc; do
    command -v "$p" >/dev/null || { echo "missing $p: apt-get install $p" >&2; exit 4; }
done

(cd "$root" && cargo build -q --bins)
bin=$root/target/debug/pgha-image
work=$(mktemp -d)
tag=localhost/pgha-bench/cold-default:$$
lock=/tmp/pgha-test-engine.flock
cleanup() {
    podman image rm -f "$tag" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# The tests' engine lock: flock(1) on the tests' lock file, held until this script exits.
exec 9>"$lock"
flock 9

extensions=$("$bin" extensions list --json \
    | jq -r '[.[] | select(.set == "default" and .build.kind != "pgrx") | .name] | join(",")')
facts() { case $1 in 15) echo "2.36 7.88" ;; 17) echo "2.41 8.14" ;; esac; }
timed() { local s e; s=$(date +%s.%N); "$@" >"$work/last.log" 2>&1 || { tail -30 "$work/last.log" >&2; return 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }

printf 'extensions: %s\n\n' "$extensions"
printf '| major | `podman build --no-cache` of the same context (baseline) | `pgha-image build --no-cache` (fetch + generate + build) | ratio |\n|---|---|---|---|\n'
for major in $majors; do
    base=$(podman images --format '{{.Repository}}:{{.Tag}}' \
        --filter "reference=localhost/pgha-test/spilo-standin:$major-*" | head -1)
    [ -n "$base" ] || { echo "no stand-in of $major: cargo test --test engine_standin -- --include-ignored" >&2; exit 4; }
    read -r glibc curl <<<"$(facts "$major")"
    sel=(--base-image "$base" --pg "$major" --base-glibc "$glibc" --base-lib "libcurl=$curl"
         --base-preload pg_stat_statements,pg_cron --extensions "$extensions" --from-source pg_cron
         --mirror "$sources" --bootstrap-bin "$root/target/debug/pgha-bootstrap")
    rm -rf "$work/cache" "$work/out"
    ours=("$bin" --progress quiet build --cache-dir "$work/cache" --no-cache --engine podman
          --tag "$tag" --out "$work/out" "${sel[@]}")
    t_ours=$(timed "${ours[@]}")
    engine=(podman build --no-cache --tag "$tag" --iidfile "$work/iid")
    while IFS= read -r kv; do engine+=(--build-arg "$kv"); done \
        < <(jq -r '.build_args | to_entries[] | "\(.key)=\(.value)"' "$work/out/manifest.json")
    while IFS= read -r kv; do engine+=(--label "$kv"); done \
        < <(jq -r '.labels | to_entries[] | "\(.key)=\(.value)"' "$work/out/manifest.json")
    engine+=(--layers "$work/out/context")
    t_engine=$(timed "${engine[@]}")
    ratio=$(echo "scale=2; $t_ours / $t_engine" | bc | sed "s/^\./0./")
    printf '| %s | %.1f s | %.1f s | %sx |\n' "$major" "$t_engine" "$t_ours" "$ratio"
done

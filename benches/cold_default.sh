#!/usr/bin/env bash
# Cold default-set image per PostgreSQL major, as a new user builds it:
# `pgha-image build -e default,-pg_graphql --no-cache --base-image STANDIN
# --mirror DIR` (the base's facts probed, the sources fetched from the mirror
# into an empty cache and verified, the context generated, the engine's build
# with no layer cache) against the engine's own `podman build --no-cache` of
# the same context with the same arguments (the baseline, in the same run).
# pg_graphql (a pgrx build) is left out here and measured by benches/pgrx.sh.
#
# Needs: root, podman, jq, bc, the Spilo stand-ins of the tests (made by
# `cargo test --test base_probe -- --include-ignored`), and the pinned
# archives (PGHA_TEST_SOURCES, default ../shared/sources).
# Usage: benches/cold_default.sh [MAJORS]   (default "15 17")
# Takes the tests' engine lock (/tmp/pgha-test-engine.flock) while it builds.
set -euo pipefail

majors=${1:-"15 17"}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/benches/lib.sh"
sources=${PGHA_TEST_SOURCES:-$root/../shared/sources}
[ -d "$sources" ] || { echo "missing $sources (the pinned archives): set PGHA_TEST_SOURCES" >&2; exit 4; }
for p in podman jq bc; do
    command -v "$p" >/dev/null || { echo "missing $p: apt-get install $p" >&2; exit 4; }
done

(cd "$root" && cargo build -q --bins)
bin=$root/target/debug/pgha-image
work=$(mktemp -d)
tag=localhost/pgha-bench/cold-default:$$
cleanup() {
    podman image rm -f "$tag" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
bootstrap=$(bootstrap_bin "$root" "$work")
# The tests' engine lock: flock(1) on the tests' lock file, held until this script exits.
exec 9>/tmp/pgha-test-engine.flock
flock 9

printf '| major | extensions built | `podman build --no-cache` of the same context (baseline) | `pgha-image build --no-cache` (probe + fetch + generate + build) | ratio |\n|---|---|---|---|---|\n'
for major in $majors; do
    base=$(podman images --format '{{.Repository}}:{{.Tag}}' \
        --filter "reference=localhost/pgha-test/spilo-standin:$major-*" | head -1)
    [ -n "$base" ] || { echo "no stand-in of $major: cargo test --test base_probe -- --include-ignored" >&2; exit 4; }
    rm -rf "$work/cache" "$work/out"
    ours=("$bin" --progress quiet build --cache-dir "$work/cache" --no-cache --engine podman
          --tag "$tag" --out "$work/out" --base-image "$base" -e default,-pg_graphql
          --mirror "$sources" --bootstrap-bin "$bootstrap")
    t_ours=$(timed "${ours[@]}")
    built=$(jq -r '[.extensions[] | select(.stage != null) | .name] | join(" ")' "$work/out/manifest.json")
    engine_args "$work/out" "$tag" --no-cache
    t_engine=$(timed "${engine[@]}")
    printf '| %s | %s | %.1f s | %.1f s | %sx |\n' "$major" "$built" "$t_engine" "$t_ours" "$(ratio "$t_ours" "$t_engine")"
done

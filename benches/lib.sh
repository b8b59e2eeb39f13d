# Shared by the build benches (sourced, not run).

# timed CMD...: run CMD, its output kept aside; print its wall time in
# seconds, or on failure the command and the end of its output, and fail.
timed() {
    local s e log
    log=$(mktemp)
    s=$(date +%s.%N)
    if ! "$@" >"$log" 2>&1; then
        { echo "failed: $*"; tail -25 "$log"; } >&2
        rm -f "$log"
        return 1
    fi
    e=$(date +%s.%N)
    rm -f "$log"
    echo "$e - $s" | bc
}

# min A B: the smaller of two times (A may be empty).
min() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc)" = 1 ]; then echo "$2"; else echo "$1"; fi; }

# ratio A B: A / B with two decimals.
ratio() { echo "scale=2; $1 / $2" | bc | sed "s/^\./0./"; }

# engine_args OUT TAG [--no-cache]: sets the array `engine` to the engine command that
# `pgha-image build --out OUT --tag TAG` ran (src/pipeline.rs): the manifest's
# build arguments, one `--label` (the build's inputs, read back from the
# image TAG) and `--jobs` (stages built in parallel, one per core, as
# src/engine/build.rs asks Podman for). Not the manifest's other labels: those
# come from the Dockerfile, and Podman writes `--label` values into every
# cached stage. `--no-cache`: what `build --no-cache` adds.
engine_args() {
    local out=$1 tag=$2 no_cache=${3:-} kv inputs
    engine=(podman build --tag "$tag" --iidfile "$(mktemp)")
    while IFS= read -r kv; do engine+=(--build-arg "$kv"); done \
        < <(jq -r '.build_args | to_entries[] | "\(.key)=\(.value)"' "$out/manifest.json")
    inputs=$(podman image inspect --format '{{index .Config.Labels "io.pgha.build-inputs"}}' "$tag")
    [ -n "$inputs" ] && [ "$inputs" != "<no value>" ] || { echo "$tag has no io.pgha.build-inputs label" >&2; return 1; }
    engine+=(--label "io.pgha.build-inputs=$inputs" --jobs "$(nproc)")
    [ -z "$no_cache" ] || engine+=("$no_cache")
    engine+=(--layers "$out/context")
}

# bootstrap_bin ROOT DIR: the debug pgha-bootstrap without its debug info,
# written to DIR (14 MB rather than 170 MB; the release binary is ~5 MB), as
# the tests pass it: the image carries it, so its size is copied and hashed
# by both our build and the engine's, which would swamp what is measured.
bootstrap_bin() {
    strip --strip-debug -o "$2/pgha-bootstrap" "$1/target/debug/pgha-bootstrap"
    echo "$2/pgha-bootstrap"
}

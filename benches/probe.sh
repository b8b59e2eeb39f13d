#!/bin/sh
# The base probe's cost (issue 14's target: reading a base's facts takes
# at most 3 s with a warm engine), against the baseline of the same engine
# starting and removing a container of the same base that does nothing:
# `podman run --rm --network none BASE true`. Each round runs the baseline,
# then `pgha-image plan` with an empty cache directory (so the base is really
# probed: run once with the probe script, the facts parsed and cached), then
# the same plan again (the facts read from the cache by the image's id).
#
#   benches/probe.sh BASE [ROUNDS]
#
# BASE: a Spilo-like image in the engine's store (the tests' stand-in:
# localhost/pgha-test/spilo-standin:15-<digest>). PGHA_IMAGE: the tool
# (default target/debug/pgha-image). Prints a Markdown table, medians last.
set -eu
base=${1:?usage: benches/probe.sh BASE [ROUNDS]}
rounds=${2:-5}
tool=${PGHA_IMAGE:-target/debug/pgha-image}
engine=${ENGINE:-podman}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

# Warm the engine and the image's layers once.
"$engine" run --rm --network none "$base" true >/dev/null
printf '| round | baseline: run --rm BASE true | probe (plan, empty cache) | ratio | plan, cached facts |\n|---|---|---|---|---|\n'
i=0
while [ "$i" -lt "$rounds" ]; do
    i=$((i + 1))
    t=$(now)
    "$engine" run --rm --network none "$base" true >/dev/null
    b=$(since "$t")
    cache="$work/cache-$i"
    t=$(now)
    "$tool" --cache-dir "$cache" --progress plain plan --engine "$engine" --base-image "$base" -e vector >/dev/null 2>&1 \
        || { echo "plan failed" >&2; exit 1; }
    p=$(since "$t")
    t=$(now)
    "$tool" --cache-dir "$cache" --progress plain plan --engine "$engine" --base-image "$base" -e vector >/dev/null 2>&1
    c=$(since "$t")
    echo "$b" >> "$work/b"; echo "$p" >> "$work/p"; echo "$c" >> "$work/c"
    printf '| %s | %.2f s | %.2f s | %.2f | %.2f s |\n' "$i" "$b" "$p" "$(echo "$p / $b" | bc -l)" "$c"
done
mb=$(median < "$work/b"); mp=$(median < "$work/p"); mc=$(median < "$work/c")
printf '| median | %.2f s | %.2f s | %.2f | %.2f s |\n' "$mb" "$mp" "$(echo "$mp / $mb" | bc -l)" "$mc"

#!/usr/bin/env bash
# Verification throughput: hashing a 1 GiB source through pgha-image's fetch
# path versus `sha256sum` on the same file, measured in the same run.
#
#   benches/verify_throughput.sh            # 1 GiB, best of 3
#   SIZE_MIB=256 RUNS=5 benches/verify_throughput.sh
#
# Figures: wall time and CPU time (user + sys), each the best of RUNS;
# throughput in MiB/s; ratio = sha256sum's time / ours (>= 1.0: at least as
# fast as sha256sum). On a shared machine the CPU figures are the steadier.
#   sha256sum            sha256sum FILE (the baseline)
#   fetch --mirror DIR   copy from a mirror directory into the cache, hashing
#                        while copying (read 1 GiB + write 1 GiB + hash)
#   cache re-verify      fetch again: the cache entry is re-hashed, no copy
#   fetch --mirror HTTP  download from a loopback HTTP mirror (python3
#                        http.server), hashing while streaming into the cache
# The file is in the page cache for every run (it is read once first), so
# the figures compare CPU cost, not the disk.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}

cargo build --release --bin pgha-image --quiet
bin=$PWD/target/release/pgha-image

work=$(mktemp -d "${TMPDIR:-/tmp}/pgha-verify-bench.XXXXXX")
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/mirror" "$work/catalog"
file=$work/mirror/bench-1.0.tar.gz
echo "making a ${SIZE_MIB} MiB file..." >&2
head -c $((SIZE_MIB << 20)) /dev/urandom >"$file"
cat "$file" >/dev/null

# best_of CMD...: "WALL_NS CPU_NS", each the least of RUNS runs (CPU = user +
# sys of the command). $BEFORE, if set, is evaluated before each run.
best_of() {
    local i out best_w= best_c= w c
    for ((i = 0; i < RUNS; i++)); do
        [ -n "${BEFORE:-}" ] && eval "$BEFORE"
        out=$(python3 - "$@" <<'PY'
import os, subprocess, sys, time
t0 = time.perf_counter_ns()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.perf_counter_ns() - t0
u = os.times()
if r.returncode != 0:
    sys.exit(f"benchmark command failed ({r.returncode}): {sys.argv[1:]}")
print(wall, int((u.children_user + u.children_system) * 1e9))
PY
        )
        [ -n "$out" ] || exit 1
        read -r w c <<<"$out"
        if [ -z "$best_w" ] || [ "$w" -lt "$best_w" ]; then best_w=$w; fi
        if [ -z "$best_c" ] || [ "$c" -lt "$best_c" ]; then best_c=$c; fi
    done
    echo "$best_w $best_c"
}

sha=$(sha256sum "$file" | cut -d' ' -f1)
cat >"$work/catalog/bench.toml" <<TOML
name = "bench"
description = "verification benchmark"
license = "MIT"
set = "default"
version = "1.0"
pg_majors = { min = 10 }

[build]
kind = "pgxs"

[[versions]]
version = "1.0"
tag = "v1.0"
url = "https://bench.invalid/bench/archive/refs/tags/v1.0.tar.gz"
sha256 = "$sha"
provenance = "reproduced-only"
TOML

pgha=("$bin" --catalog "$work/catalog" --cache-dir "$work/cache" --progress quiet
    fetch --max-size $((SIZE_MIB + 1))M)

t_sum=$(best_of sha256sum "$file") || exit 1
BEFORE='rm -rf "$work/cache"'
t_dir=$(best_of "${pgha[@]}" --mirror "$work/mirror") || exit 1
BEFORE=
"${pgha[@]}" --mirror "$work/mirror" >/dev/null
t_hit=$(best_of "${pgha[@]}" --offline) || exit 1

t_http=
if command -v python3 >/dev/null; then
    python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$work/mirror" >"$work/http.log" 2>&1 &
    server_pid=$!
    port=
    for _ in $(seq 50); do
        port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/http.log" | head -1)
        [ -n "$port" ] && break
        sleep 0.1
    done
    if [ -n "$port" ]; then
        BEFORE='rm -rf "$work/cache"'
        t_http=$(best_of "${pgha[@]}" --mirror "http://127.0.0.1:$port") || exit 1
        BEFORE=
    fi
fi

report() { # label "wall cpu"
    python3 - "$1" $2 $t_sum "$SIZE_MIB" <<'PY'
import sys
label, w, c, bw, bc, mib = sys.argv[1], *map(int, sys.argv[2:6]), int(sys.argv[6])
print(f"{label:<20} wall {w/1e9:7.3f} s {mib/(w/1e9):7.0f} MiB/s {bw/w:5.2f}x | "
      f"cpu {c/1e9:7.3f} s {mib/(c/1e9):7.0f} MiB/s {bc/c:5.2f}x")
PY
}

echo "verification of a ${SIZE_MIB} MiB file, best of ${RUNS} (sha256 ${sha:0:16}...); ratios vs sha256sum, >1 = faster"
report "sha256sum" "$t_sum"
report "fetch --mirror DIR" "$t_dir"
report "cache re-verify" "$t_hit"
[ -n "$t_http" ] && report "fetch --mirror HTTP" "$t_http"
echo "target: fetch --mirror DIR >= 0.90x sha256sum"

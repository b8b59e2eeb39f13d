#!/bin/sh
# Wall time of `pgha-image verify` against the baseline of the same image
# started by hand: `podman run` with the secrets mounted, then waiting for
# Patroni to report a leader (GET /primary on 8008). Issue 8's targets:
# one member at most 60 s beyond the image's own start-up, three members at
# most 3 min.
#
#   benches/verify.sh IMAGE [ROUNDS]
#
# IMAGE: an image made by `pgha-image build` (the tests' full-set image:
# localhost/pgha-test/full-set:<digest>). PGHA_IMAGE: the tool (default
# target/debug/pgha-image; the time is the engine's, not the tool's).
set -eu
image=${1:?usage: benches/verify.sh IMAGE [ROUNDS]}
rounds=${2:-1}
tool=${PGHA_IMAGE:-target/debug/pgha-image}
engine=${ENGINE:-podman}

secrets=$(mktemp -d)
name=pgha-bench-verify-$$
cleanup() { "$engine" rm -f -v "$name" >/dev/null 2>&1 || true; rm -rf "$secrets"; }
trap cleanup EXIT INT TERM
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
hex 32 > "$secrets/pgsodium_root_key"
hex 18 > "$secrets/password"
hex 32 > "$secrets/jwt_secret"
chmod 0755 "$secrets"; chmod 0644 "$secrets"/*

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

printf '| round | baseline: run + leader | verify, 1 member | verify, 3 members |\n|---|---|---|---|\n'
i=0
while [ "$i" -lt "$rounds" ]; do
    i=$((i + 1))
    t=$(now)
    "$engine" run -d --name "$name" -v "$secrets:/run/secrets/supabase:ro" "$image" >/dev/null
    until "$engine" exec "$name" curl -fsS -o /dev/null http://127.0.0.1:8008/primary 2>/dev/null; do sleep 0.2; done
    base=$(since "$t")
    "$engine" rm -f -v "$name" >/dev/null

    t=$(now)
    "$tool" --progress plain verify --engine "$engine" "$image" >/dev/null 2>&1 || { echo "verify (1 member) failed" >&2; exit 1; }
    one=$(since "$t")

    t=$(now)
    "$tool" --progress plain verify --engine "$engine" --members 3 "$image" >/dev/null 2>&1 || { echo "verify (3 members) failed" >&2; exit 1; }
    three=$(since "$t")
    printf '| %s | %.1f s | %.1f s | %.1f s |\n' "$i" "$base" "$one" "$three"
done

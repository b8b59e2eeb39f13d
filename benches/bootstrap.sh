#!/usr/bin/env bash
# Benchmark of pgha-bootstrap, baseline measured in the same run:
#   1. first apply on an empty database   vs   `psql -f` of the same SQL
#      (the migrations of sql/ concatenated, the _supabase step as
#      CREATE DATABASE + \connect, and the same CREATE EXTENSION statements);
#   2. a no-op re-run (the whole process: start, connect, read the ledger,
#      nothing to do, exit).
# Targets: first apply <= 1.3x psql; no-op re-run < 50 ms.
#
# One PostgreSQL 15 cluster (default durability settings) in a temp dir,
# as the postgres user, on a free port; each round uses fresh databases and
# drops the cluster-wide roles afterwards, so every first apply starts empty.
# Usage: benches/bootstrap.sh [ROUNDS]   (default 7; PROFILE=debug to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-7}
PGBIN=/usr/lib/postgresql/15/bin
PROFILE=${PROFILE:-release}

[ "$(id -u)" = 0 ] || { echo "run as root (the cluster runs as the postgres user)" >&2; exit 4; }
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL 15 is missing: run scripts/install-test-prereqs.sh" >&2; exit 4; }

if [ "$PROFILE" = release ]; then
  cargo build --release --quiet --bin pgha-bootstrap
else
  cargo build --quiet --bin pgha-bootstrap
fi
BIN=$PWD/target/$PROFILE/pgha-bootstrap

work=$(mktemp -d /tmp/pgha-bench.XXXXXX)
chown postgres:postgres "$work"; chmod 755 "$work"
cleanup() {
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
runuser -u postgres -- "$PGBIN/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
printf "port = %s\nunix_socket_directories = '%s'\nlisten_addresses = ''\n" "$port" "$work" >> "$work/data/postgresql.conf"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w start >/dev/null

PSQL=("$PGBIN/psql" -X -q -h "$work" -p "$port" -U postgres -v ON_ERROR_STOP=1)
EXTS=("uuid-ossp" "pgcrypto" "pg_stat_statements")
cat > "$work/bootstrap.toml" <<TOML
[connection]
socket_dir = "$work"
port = $port
[secrets]
dir = "$work/no-secrets"
[extensions]
create = ["uuid-ossp", "pgcrypto", "pg_stat_statements"]
required = ["uuid-ossp", "pgcrypto", "pg_stat_statements"]
TOML

# The same SQL for psql.
all="$work/all.sql"
: > "$all"
for f in sql/[0-9]*.sql; do
  directive=$(grep -m1 -E '^-- pgha: ' "$f" || true)
  if [ -n "$directive" ]; then
    db=$(sed -E 's/.*database=([^ ]+).*/\1/' <<<"$directive")
    owner=$(sed -E 's/.*owner=([^ ]+).*/\1/' <<<"$directive")
    printf 'CREATE DATABASE %s OWNER %s;\n\\connect %s\n' "$db" "$owner" "$db" >> "$all"
    cat "$f" >> "$all"
    printf '\n\\connect :bench_db\n' >> "$all"
  else
    cat "$f" >> "$all"; printf '\n' >> "$all"
  fi
done
for e in "${EXTS[@]}"; do
  printf 'CREATE EXTENSION IF NOT EXISTS "%s" WITH SCHEMA extensions CASCADE;\n' "$e" >> "$all"
done

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
reset_cluster() { # $1: the database to drop
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $1" -c "DROP DATABASE IF EXISTS _supabase" >/dev/null
  "${PSQL[@]}" -d postgres -c "DROP ROLE IF EXISTS supabase_admin, authenticator, anon, authenticated, service_role,
    supabase_auth_admin, supabase_storage_admin, supabase_functions_admin, supabase_replication_admin,
    supabase_read_only_user, dashboard_user, pgbouncer" >/dev/null 2>&1 \
  || "${PSQL[@]}" -d postgres -c "ALTER ROLE postgres RESET search_path; REVOKE anon, authenticated, service_role FROM postgres;
    DROP ROLE supabase_admin, authenticator, anon, authenticated, service_role, supabase_auth_admin,
    supabase_storage_admin, supabase_functions_admin, supabase_replication_admin, supabase_read_only_user,
    dashboard_user, pgbouncer" >/dev/null
  "${PSQL[@]}" -d postgres -c "ALTER ROLE postgres RESET ALL" >/dev/null
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

ours=(); theirs=(); noop=(); select1=()
for i in $(seq 1 "$ROUNDS"); do
  # pgha-bootstrap, first apply
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE b$i" >/dev/null
  t=$(date +%s%N)
  "$BIN" --config "$work/bootstrap.toml" apply -q --dsn "host=$work port=$port user=postgres dbname=b$i"
  ours+=("$(ms_since "$t")")
  # no-op re-runs of the whole process
  for _ in 1 2 3; do
    t=$(date +%s%N)
    "$BIN" --config "$work/bootstrap.toml" apply -q --dsn "host=$work port=$port user=postgres dbname=b$i"
    noop+=("$(ms_since "$t")")
  done
  # for scale: the smallest whole-process client round trip
  for _ in 1 2 3; do
    t=$(date +%s%N)
    "${PSQL[@]}" -d "b$i" -c "SELECT 1" >/dev/null
    select1+=("$(ms_since "$t")")
  done
  reset_cluster "b$i"
  # psql -f of the same SQL
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE p$i" >/dev/null
  t=$(date +%s%N)
  "${PSQL[@]}" -d "p$i" -v bench_db="p$i" -f "$all" >"$work/psql.out" 2>&1 || { cat "$work/psql.out" >&2; exit 1; }
  theirs+=("$(ms_since "$t")")
  reset_cluster "p$i"
done

o=$(printf '%s\n' "${ours[@]}" | median)
p=$(printf '%s\n' "${theirs[@]}" | median)
n=$(printf '%s\n' "${noop[@]}" | median)
s1=$(printf '%s\n' "${select1[@]}" | median)
ratio=$(awk -v a="$o" -v b="$p" 'BEGIN { printf "%.2f", a / b }')
echo "rounds: $ROUNDS ($PROFILE build); all times are medians"
echo "first apply, pgha-bootstrap:  $o ms   (runs: ${ours[*]})"
echo "first apply, psql -f:         $p ms   (runs: ${theirs[*]})"
echo "ratio pgha-bootstrap / psql:  $ratio   (target <= 1.30: $(awk -v r="$ratio" 'BEGIN { print (r <= 1.3) ? "met" : "MISSED" }'))"
echo "no-op re-run (whole process): $n ms   (target < 50 ms: $( [ "$n" -lt 50 ] && echo met || echo MISSED ))"
echo "for scale, psql -c 'SELECT 1' (whole process): $s1 ms"

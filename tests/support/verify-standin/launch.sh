#!/bin/sh
# The Spilo stand-in's /launch.sh (tests/support/spilo-standin/launch.sh) with
# three more points of Spilo that `pgha-image verify` relies on:
# - SPILO_CONFIGURATION (YAML/JSON) is merged over the generated configuration
#   as Spilo does it: dicts merge, scalars and lists of the user win;
# - ETCD_HOST (host:port) selects an external etcd; only without it is a local
#   etcd started (Spilo's single-node demo mode).
# Remove this directory once the shared stand-in does both.
set -eu
[ "${1:-}" = init ] || exec "$@"

HUMAN_ROLE=${HUMAN_ROLE:-zalandos}
SCOPE=${SCOPE:-standin}
PGUSER_SUPERUSER=${PGUSER_SUPERUSER:-postgres}
PGPASSWORD_SUPERUSER=${PGPASSWORD_SUPERUSER:-zalando}
PGUSER_STANDBY=${PGUSER_STANDBY:-standby}
PGPASSWORD_STANDBY=${PGPASSWORD_STANDBY:-standby}
PGROOT=/home/postgres/pgdata/pgroot
PGDATA=$PGROOT/data
NAME=$(hostname)
IP=$(hostname -i 2>/dev/null | awk '{print $1}')
[ -n "$IP" ] || IP=127.0.0.1

mkdir -p "$PGROOT" /run/postgresql /run/etcd
chown -R postgres:postgres /home/postgres /run/postgresql
chmod 2775 /run/postgresql

cat > /run/postgres.yml <<YAML
scope: $SCOPE
name: $NAME
restapi:
  listen: 0.0.0.0:8008
  connect_address: $IP:8008
etcd:
  host: ${ETCD_HOST:-127.0.0.1:2379}
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 33554432
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: logical
        max_wal_senders: 10
        max_replication_slots: 10
        hot_standby: 'on'
  initdb:
  - encoding: UTF8
  - locale: C.UTF-8
  - data-checksums
  - auth-host: md5
  - auth-local: trust
  post_init: /scripts/post_init.sh "$HUMAN_ROLE"
postgresql:
  name: $NAME
  listen: 0.0.0.0:5432
  connect_address: $IP:5432
  data_dir: $PGDATA
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: /run/postgresql/pgpass
  # As Spilo's basebackup.sh: replicas clone with a fast checkpoint.
  basebackup:
  - checkpoint: fast
  authentication:
    superuser:
      username: $PGUSER_SUPERUSER
      password: $PGPASSWORD_SUPERUSER
    replication:
      username: $PGUSER_STANDBY
      password: $PGPASSWORD_STANDBY
  callbacks:
    on_role_change: /scripts/on_role_change.sh "$HUMAN_ROLE" true
  parameters:
    unix_socket_directories: /run/postgresql
    shared_preload_libraries: 'bg_mon_absent_placeholder'
    cron.database_name: postgres
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 md5
  - host all all ::1/128 md5
  - host replication $PGUSER_STANDBY 0.0.0.0/0 md5
  - host all all 0.0.0.0/0 md5
YAML
# Spilo's default preload list minus what the stand-in does not have
# (bg_mon, pgextwlist, pg_auth_mon, set_user, timescaledb, pg_stat_kcache).
sed -i "s/'bg_mon_absent_placeholder'/'pg_stat_statements,pg_cron'/" /run/postgres.yml
# A user-given configuration is merged as Spilo merges it.
if [ -n "${SPILO_CONFIGURATION:-}" ]; then
    python3 - <<'PY'
import os, yaml
def merge(base, user):
    for k, v in user.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
with open('/run/postgres.yml') as f:
    cfg = yaml.safe_load(f)
merge(cfg, yaml.safe_load(os.environ['SPILO_CONFIGURATION']) or {})
with open('/run/postgres.yml', 'w') as f:
    yaml.safe_dump(cfg, f, default_flow_style=False)
PY
fi
chown postgres:postgres /run/postgres.yml
chmod 0600 /run/postgres.yml

if [ -z "${ETCD_HOST:-}" ]; then
    # Local etcd (v2 API for python3-etcd), as Spilo does without DCS variables.
    etcd --name "$NAME" --data-dir /run/etcd/data \
         --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
         --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
         --initial-cluster "$NAME=http://127.0.0.1:2380" --enable-v2=true >/run/etcd/etcd.log 2>&1 &
    i=0
    until curl -fsS http://127.0.0.1:2379/health >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "launch.sh: etcd did not start" >&2; cat /run/etcd/etcd.log >&2; exit 1; }
        sleep 0.2
    done
fi

# runit strips Patroni's environment: only these survive.
exec runuser -u postgres -- env -i \
    PATH="/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    HOME=/home/postgres PGHOME=/home/postgres LC_ALL=C.UTF-8 HOSTNAME="$NAME" \
    patroni /run/postgres.yml

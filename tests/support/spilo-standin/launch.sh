#!/bin/sh
# Stand-in for Spilo's /launch.sh (behaviour of zalando/spilo's
# postgres-appliance/launch.sh and runit/{patroni,etcd}/run):
# - `launch.sh init` (the CMD) starts over as `/bin/sh /launch.sh` by that
#   absolute path (Spilo re-executes itself under dumb-init), so a wrapper
#   installed at /launch.sh by a derived image runs a second time, then;
# - configure_spilo.py writes /run/postgres.yml from the environment and
#   SPILO_CONFIGURATION (see its docstring for the rules);
# - a local etcd runs when the configuration names no DCS (Spilo's demo mode);
# - Patroni runs as `postgres` with the environment stripped as runit's
#   patroni/run script strips it: only PATH, HOSTNAME, PGHOME, LC_ALL, POD_IP,
#   POD_NAMESPACE, ENABLE_PG_MON and KUBERNETES_{SERVICE,PORT,ROLE}* survive,
#   plus HOME=/home/postgres.
# Deviations: no dumb-init and no runit supervision (Patroni is not restarted
# when it exits: the container ends).
set -eu
if [ "${1:-}" = init ]; then
    exec /bin/sh /launch.sh
fi
if [ "$#" -gt 0 ]; then
    exec "$@"
fi

PGROOT=${PGROOT:-/home/postgres/pgdata/pgroot}
mkdir -p "$PGROOT" /run/postgresql /run/certs /run/tmp
chown -R postgres:postgres /home/postgres /run/postgresql /run/certs
chmod 2775 /run/postgresql
chmod 01777 /run/tmp

python3 /scripts/configure_spilo.py

if [ -d /run/service/etcd ]; then
    # The v2 API too: Debian's Patroni 3.0.2 talks to `etcd:` through python3-etcd.
    mkdir -p /run/etcd
    env -i /usr/bin/etcd --name "$(hostname)" --data-dir /run/etcd/data \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster "$(hostname)=http://127.0.0.1:2380" --enable-v2=true >/run/etcd/etcd.log 2>&1 &
    i=0
    until curl -fsS http://127.0.0.1:2379/health >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "launch.sh: etcd did not start" >&2; cat /run/etcd/etcd.log >&2; exit 1; }
        sleep 0.2
    done
fi

# runit's patroni/run: keep only these variables.
keep=$(env | sed -n \
    -e 's/^\(PATH\|HOSTNAME\|PGHOME\|LC_ALL\|POD_IP\|POD_NAMESPACE\|ENABLE_PG_MON\)=.*/\1/p' \
    -e 's/^\(KUBERNETES_\(SERVICE\|PORT\|ROLE\)\(_[A-Za-z0-9_]*\)\{0,1\}\)=.*/\1/p')
set --
for name in $keep; do
    eval "set -- \"\$@\" \"$name=\${$name}\""
done
exec runuser -u postgres -- env -i "$@" HOME=/home/postgres patroni /run/postgres.yml

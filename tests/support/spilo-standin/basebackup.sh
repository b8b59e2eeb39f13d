#!/bin/sh
# Stand-in for Spilo's /scripts/basebackup.sh (Patroni's create_replica_method
# `basebackup_fast_xlog`): a replica's data directory from the leader with
# pg_basebackup, streaming WAL, with a fast checkpoint. Patroni calls it with
# --scope= --role= --datadir= --connstring= and the method's options (--retries=).
DATA=; CONN=; RETRIES=1
for arg in "$@"; do
    case $arg in
        --datadir=*) DATA=${arg#*=} ;;
        --connstring=*) CONN=${arg#*=} ;;
        --retries=*) RETRIES=${arg#*=} ;;
    esac
done
[ -n "$DATA" ] && [ -n "$CONN" ] || { echo "basebackup.sh: --datadir and --connstring are needed" >&2; exit 2; }
attempt=0
while :; do
    attempt=$((attempt + 1))
    rm -rf "$DATA"
    pg_basebackup --pgdata="$DATA" -X stream --checkpoint=fast --dbname="$CONN" && exit 0
    [ "$attempt" -lt "$RETRIES" ] || exit 1
    sleep 1
done

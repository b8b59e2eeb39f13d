#!/bin/sh
# Stand-in for Spilo's on_role_change callback. Called by Patroni as
#   on_role_change.sh <HUMAN_ROLE> true on_role_change <role> <scope>
# After every promotion it runs post_init.sh with the literal word `postgres`.
HUMAN_ROLE=$1
role=${4:-}
case "$role" in
    master|primary)
        exec /scripts/post_init.sh "$HUMAN_ROLE" postgres >>/run/postgresql/on_role_change.log 2>&1 ;;
esac
exit 0

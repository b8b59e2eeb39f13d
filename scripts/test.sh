#!/usr/bin/env bash
# The whole test suite: installs the system prerequisites (PostgreSQL 15,
# Patroni, etcd, HAProxy, Podman, debootstrap, two upstream tarballs), then
# runs every test (`--include-ignored`: the slow tier too; plain `cargo test`
# is the fast tier). Run as root on Debian/Ubuntu (the tests start PostgreSQL as
# the postgres user and use rootful Podman).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-prereqs.sh
cargo test --locked "$@" -- --include-ignored

#!/usr/bin/env bash
# Installs (idempotently) the system pieces the test suite runs against:
# PostgreSQL 15, Patroni + etcd, HAProxy, Podman (with runc) and debootstrap,
# plus two real upstream source tarballs (pgvector 0.8.0, pgtap 1.3.3) from
# Debian's trixie source packages. Needs root (or sudo) on Debian/Ubuntu.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

FIXTURES="${PGHA_TEST_FIXTURES:-/var/cache/pgha-image-test}"

packages=(
  postgresql-15 postgresql-15-cron postgresql-15-pgtap postgresql-server-dev-15
  patroni python3-etcd etcd-server etcd-client haproxy
  podman runc debootstrap uidmap
  curl ca-certificates dpkg-dev binutils
  libsodium-dev libcurl4-openssl-dev
  # Podman pods (tests/common/cluster.rs) need catatonit for their pause image;
  # the deployment tests run the rendered compose files with Debian's
  # docker-compose (1.29) against a real dockerd (docker.io).
  catatonit docker.io docker-compose
  # verify tests validate the JUnit report against its XSD.
  libxml2-utils
  # ship tests (tests/common/vms.rs): sshd per VM, a dockerd, zstd on the hosts.
  openssh-server openssh-client iproute2 zstd perl util-linux
  # secrets tests check the made certificates with openssl's own verifier.
  openssl
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

trixie_src=/etc/apt/sources.list.d/trixie-src.sources
if [ ! -f "$trixie_src" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  # A deb-src entry for trixie made from the machine's own sources file.
  sed -e 's/^Types: deb$/Types: deb-src/' -e 's/^Suites: .*/Suites: trixie/' \
      /etc/apt/sources.list.d/debian.sources \
    | awk 'BEGIN{RS="";ORS="\n\n"} NR==1' | $SUDO tee "$trixie_src" >/dev/null
  need_update=1
fi

if [ ${#missing[@]} -gt 0 ] || [ "${need_update:-0}" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian starts services on install in some setups; the tests start their own.
for svc in etcd patroni haproxy postgresql; do
  $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
done

# crun cannot set rlimits or use cgroups on these machines; runc can.
conf=/etc/containers/containers.conf
if ! grep -qs 'runtime = "runc"' "$conf"; then
  $SUDO mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n' | $SUDO tee "$conf" >/dev/null
fi

# Real upstream tarballs (byte-identical to the GitHub archives in the catalog).
# Only the .orig.tar.gz files matter: other parts of a source package may 404.
$SUDO mkdir -p "$FIXTURES/upstream"
want_vector=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
want_pgtap=325ea79d0d2515bce96bce43f6823dcd3effbd6c54cb2a4d6c2384fffa3a14c7
have() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
if ! have "$FIXTURES/upstream/pgvector_0.8.0.orig.tar.gz" "$want_vector" \
   || ! have "$FIXTURES/upstream/pgtap_1.3.3.orig.tar.gz" "$want_pgtap"; then
  (cd "$FIXTURES/upstream" && $SUDO apt-get source --download-only -qq pgvector pgtap >/dev/null 2>&1) || true
fi
for f in "pgvector_0.8.0.orig.tar.gz $want_vector" "pgtap_1.3.3.orig.tar.gz $want_pgtap"; do
  set -- $f
  if ! have "$FIXTURES/upstream/$1" "$2"; then
    echo "error: could not obtain $1 (sha256 $2) through apt-get source from Debian trixie" >&2
    echo "hint: check that $trixie_src exists and that 'apt-get update' succeeds" >&2
    exit 1
  fi
done

# The Supabase extensions the bootstrap's grant tests exercise by behaviour
# (pgsodium, pg_net 0.9.2, supabase_vault, pgjwt), built with PGXS from the
# real upstream archives (PGHA_TEST_SOURCES, default ../shared/sources next to
# the repository) and installed into the system PostgreSQL 15. Idempotent: an
# extension whose control file is installed is left alone.
SOURCES="${PGHA_TEST_SOURCES:-$(cd "$(dirname "$0")/.." && pwd)/../shared/sources}"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
ext_dir="$($PG_CONFIG --sharedir)/extension"
for spec in "pgsodium pgsodium-3.1.8" "pg_net pg_net-0.9.2" "supabase_vault supabase_vault-0.3.1" "pgjwt pgjwt-0.2.0"; do
  set -- $spec
  [ -f "$ext_dir/$1.control" ] && continue
  archive="$SOURCES/$2.tar.gz"
  if [ ! -f "$archive" ]; then
    echo "error: $archive not found (set PGHA_TEST_SOURCES to the directory of the upstream archives)" >&2
    exit 1
  fi
  want=$(awk -v f="$2.tar.gz" '$2 == f {print $1}' "$SOURCES/SHA256SUMS" 2>/dev/null || true)
  if [ -n "$want" ] && ! have "$archive" "$want"; then
    echo "error: $archive does not match its SHA256SUMS entry" >&2
    exit 1
  fi
  build=$(mktemp -d)
  tar -xzf "$archive" -C "$build" --strip-components=1
  echo "building $1 from $archive"
  (cd "$build" && make -s PG_CONFIG="$PG_CONFIG" USE_PGXS=1 -j2 >/dev/null 2>"$build.log" \
     && $SUDO make -s PG_CONFIG="$PG_CONFIG" USE_PGXS=1 install >/dev/null 2>>"$build.log") \
    || { cat "$build.log" >&2; echo "error: building $1 failed" >&2; exit 1; }
  rm -rf "$build" "$build.log"
done

echo "test prerequisites ready (fixtures in $FIXTURES)"

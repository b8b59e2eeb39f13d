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
  curl ca-certificates dpkg-dev
  openssh-server openssh-client docker.io iproute2 zstd perl util-linux
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

echo "test prerequisites ready (fixtures in $FIXTURES)"

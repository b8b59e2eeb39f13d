#!/usr/bin/env bash
# Ship an upgrade (one extension layer changed) to three VMs, against the
# seeds' way in the same run:
#
#   benches/ship.sh [BASE_IMAGE]     (root; default: the Spilo stand-in the tests build)
#
# VMs: three network namespaces (10.214.X.2) with their own key-only sshd; two
# with Podman on their own storage root, one with a real dockerd (docker.io)
# on a private socket. Both versions are built on BASE_IMAGE; every VM holds
# v1 first (not timed). Then, each timed from an empty local cache:
#   seed: podman save v2 | gzip -6 > file; per VM, in turn: scp, ssh 'gunzip -c | docker|podman load'
#   ship: pgha-image ship v2 --to vm1,vm2,vm3
# Reported: bytes on the wire (target <= 5% of a full `pgha-image export`)
# and wall time (target <= 1/3 of the seed's). EXT_MB (default 8) is the size
# of the changed extension layer (random bytes: compression does not help).
set -euo pipefail
cd "$(dirname "$0")/.."
# The stand-in's tag carries the digest of its support files (tests/common/images.rs): the newest one.
BASE=${1:-$(podman images --sort created --format '{{.Repository}}:{{.Tag}}' localhost/pgha-test/spilo-standin 2>/dev/null | grep ':15-' | head -n1)}
BASE=${BASE:-localhost/pgha-test/spilo-standin:15}
EXT_MB=${EXT_MB:-8}
BIN=${PGHA_IMAGE:-target/release/pgha-image}

[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces, sshd, dockerd)" >&2; exit 4; }
for p in sshd dockerd ip nsenter ssh scp podman zstd; do
    command -v "$p" >/dev/null || [ -x "/usr/sbin/$p" ] || { echo "missing $p: run scripts/install-test-prereqs.sh" >&2; exit 4; }
done
podman image exists "$BASE" || {
    echo "image $BASE is absent: build it with \`cargo test --test engine_standin\` (or pass another)" >&2
    exit 4
}
[ -n "${PGHA_IMAGE:-}" ] || cargo build --release --quiet --bin pgha-image

# Builds and removals take the tests' engine lock (tests/common/images.rs:
# Podman 4.3 loses layers when a build races a concurrent rmi).
LOCK=/tmp/pgha-test-engine.flock
lock() { exec 9>"$LOCK"; flock 9; }
unlock() { exec 9>&-; }

tmp=$(mktemp -d /var/tmp/pgha-ship-bench.XXXXXX)
tag=pgha-bench-ship-$$
nss=()
dpid=""
cleanup() {
    set +e
    [ -n "$dpid" ] && kill "$dpid" 2>/dev/null && sleep 3
    for ns in "${nss[@]}"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    done
    for d in "$tmp"/vm*; do
        [ -f "$d/storage.conf" ] && CONTAINERS_STORAGE_CONF="$d/storage.conf" podman rmi -a -f >/dev/null 2>&1
    done
    grep -o " $tmp[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    for ns in "${nss[@]}"; do ip link del "h5b${ns##*-}" 2>/dev/null; ip netns del "$ns" 2>/dev/null; done
    lock
    podman rmi -f "localhost/$tag/app:v1" "localhost/$tag/app:v2" "localhost/$tag/common:1" >/dev/null 2>&1
    unlock
    rm -rf "$tmp"
}
trap cleanup EXIT

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

# Images: BASE + one common layer, then v1/v2 differing in the top ("extension") layer.
mkdir -p "$tmp/ctx"
build() { printf 'FROM %s\nRUN %s\n' "$2" "$3" > "$tmp/ctx/Containerfile"; podman build -q -t "$1" "$tmp/ctx" >/dev/null; }
lock
build "localhost/$tag/common:1" "$BASE" "echo common > /common.txt"
build "localhost/$tag/app:v1" "localhost/$tag/common:1" "echo 1.0 > /ext.version && head -c ${EXT_MB}M /dev/urandom > /usr/local/lib/ext.so"
build "localhost/$tag/app:v2" "localhost/$tag/common:1" "echo 1.1 > /ext.version && head -c ${EXT_MB}M /dev/urandom > /usr/local/lib/ext.so"
unlock

# Three VMs.
ssh-keygen -q -t ed25519 -N '' -f "$tmp/key"
mkdir -p /run/sshd
: > "$tmp/known_hosts"
hosts=()
i=0
for kind in podman podman docker; do
    i=$((i + 1))
    x=$(( ($$ + i * 11) % 250 + 1 ))
    while ! ip netns add "pgha-h5b-$x" 2>/dev/null; do x=$(( x % 250 + 1 )); done
    ns="pgha-h5b-$x"; nss+=("$ns")
    d="$tmp/vm$i"; mkdir -p "$d/cache"
    ip link add "h5b$x" type veth peer name "h5c$x"
    ip link set "h5c$x" netns "$ns"
    ip addr add "10.214.$x.1/24" dev "h5b$x"; ip link set "h5b$x" up
    ip -n "$ns" addr add "10.214.$x.2/24" dev "h5c$x"; ip -n "$ns" link set "h5c$x" up; ip -n "$ns" link set lo up
    env="XDG_CACHE_HOME=$d/cache PATH=/usr/sbin:/usr/bin:/sbin:/bin"
    if [ $kind = podman ]; then
        printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/graph"\nrunroot = "%s/run"\n' "$d" "$d" > "$d/storage.conf"
        env="$env CONTAINERS_STORAGE_CONF=$d/storage.conf DOCKER_HOST=unix://$d/none.sock"
    else
        nsenter --net="/run/netns/$ns" dockerd -H "unix://$d/docker.sock" --data-root "$d/docker-root" \
            --exec-root "$d/docker-exec" --pidfile "$d/docker.pid" --iptables=false --bridge=none \
            > "$d/dockerd.log" 2>&1 &
        dpid=$!
        for _ in $(seq 100); do DOCKER_HOST="unix://$d/docker.sock" /usr/bin/docker version >/dev/null 2>&1 && break; sleep 0.3; done
        env="$env DOCKER_HOST=unix://$d/docker.sock"
    fi
    ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
    cp "$tmp/key.pub" "$d/authorized_keys"
    cat > "$d/sshd_config" <<CFG
ListenAddress 10.214.$x.2:22
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
LogLevel ERROR
Subsystem sftp internal-sftp
SetEnv $env
CFG
    nsenter --net="/run/netns/$ns" /usr/sbin/sshd -f "$d/sshd_config"
    echo "10.214.$x.2 $(cut -d' ' -f1,2 "$d/host_key.pub")" >> "$tmp/known_hosts"
    hosts+=("root@10.214.$x.2")
    eval "kind_$i=$kind"
done
sshopts=(-o "UserKnownHostsFile=$tmp/known_hosts" -o GlobalKnownHostsFile=/dev/null -o "IdentityFile=$tmp/key" -o IdentitiesOnly=yes -o BatchMode=yes)
shipopts=()
for o in "UserKnownHostsFile=$tmp/known_hosts" GlobalKnownHostsFile=/dev/null "IdentityFile=$tmp/key" IdentitiesOnly=yes; do
    shipopts+=(--ssh-option "$o")
done
for _ in $(seq 50); do ssh "${sshopts[@]}" "${hosts[2]}" true 2>/dev/null && break; sleep 0.2; done
to=$(IFS=,; echo "${hosts[*]}")

# Every VM holds v1 (not timed).
"$BIN" --progress quiet --cache-dir "$tmp/c0" ship "localhost/$tag/app:v1" --engine podman --to "$to" "${shipopts[@]}" >/dev/null

# A full export, for the size reference.
"$BIN" --progress quiet export --engine podman --tag "localhost/$tag/app:v2" -o "$tmp/full.tar.zst" >/dev/null
full=$(stat -c %s "$tmp/full.tar.zst")
rm -f "$tmp"/full.tar.zst*

# The seeds' way.
s=$(now)
podman save --format docker-archive "localhost/$tag/app:v2" | gzip -6 > "$tmp/v2.tar.gz"
i=0
for h in "${hosts[@]}"; do
    i=$((i + 1)); eval "kind=\$kind_$i"
    scp -q "${sshopts[@]}" "$tmp/v2.tar.gz" "$h:$tmp/vm$i/v2.tar.gz"
    ssh "${sshopts[@]}" "$h" "gunzip -c $tmp/vm$i/v2.tar.gz | $kind load >/dev/null 2>&1 && rm $tmp/vm$i/v2.tar.gz"
done
e=$(now)
seed_ms=$(ms "$s" "$e")
seed_bytes=$(( $(stat -c %s "$tmp/v2.tar.gz") * 3 ))
rm -f "$tmp/v2.tar.gz"
# Back to v1 only, so that ship finds what the seed's way found.
i=0
for h in "${hosts[@]}"; do
    i=$((i + 1)); eval "kind=\$kind_$i"
    ssh "${sshopts[@]}" "$h" "$kind rmi localhost/$tag/app:v2 >/dev/null"
done

s=$(now)
"$BIN" --progress quiet --cache-dir "$tmp/c1" ship "localhost/$tag/app:v2" --engine podman --to "$to" "${shipopts[@]}" --json > "$tmp/ship.json"
e=$(now)
ship_ms=$(ms "$s" "$e")
ship_bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_sent"])' "$tmp/ship.json")
ok=$(python3 -c 'import json,sys; print(sum(h["ok"] for h in json.load(open(sys.argv[1]))["hosts"]))' "$tmp/ship.json")
python3 -c 'import json,sys; [print("  ", h["host"], h["engine"], "held", h["layers_held"], "sent", h["layers_sent"], h["bytes_sent"], "bytes") for h in json.load(open(sys.argv[1]))["hosts"]]' "$tmp/ship.json"
[ "$ok" = 3 ] || { cat "$tmp/ship.json"; echo "ship failed on some VM" >&2; exit 1; }
# Every VM has the right image.
id=$(podman image inspect --format '{{.Id}}' "localhost/$tag/app:v2")
i=0
for h in "${hosts[@]}"; do
    i=$((i + 1)); eval "kind=\$kind_$i"
    got=$(ssh "${sshopts[@]}" "$h" "$kind image inspect --format '{{.Id}}' localhost/$tag/app:v2")
    [ "${got#sha256:}" = "${id#sha256:}" ] || { echo "VM $h has $got, not $id" >&2; exit 1; }
done

tar_size=$(podman image inspect --format '{{.Size}}' "localhost/$tag/app:v2")
awk -v base="$BASE" -v ext="$EXT_MB" -v full="$full" -v ts="$tar_size" -v sb="$seed_bytes" -v sm="$seed_ms" \
    -v b="$ship_bytes" -v m="$ship_ms" 'BEGIN {
    printf "image: %s + one %d MiB extension layer (image %.0f MB; full export %.1f MB)\n", base, ext, ts/1e6, full/1e6
    printf "seed (save|gzip, scp, load x3): %8d ms  %10.1f MB on the wire\n", sm, sb/1e6
    printf "pgha-image ship (3 VMs):        %8d ms  %10.2f MB on the wire\n", m, b/1e6
    printf "ship bytes per VM / full export: %.2f%% (target <= 5%%)\n", 100*b/3/full
    printf "ship time / seed time:           %.2f (target <= 0.33)\n", m/sm
}'

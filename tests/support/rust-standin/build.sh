#!/bin/sh
# Make a stand-in for the official Rust image (rust:<version>-<debian>) from
# the host's rustup toolchain, with the official image's layout:
# /usr/local/rustup (RUSTUP_HOME, the toolchain named <version>-<triple>, set
# as the default) and /usr/local/cargo/bin (CARGO_HOME: rustup and its
# proxies cargo, rustc, rustdoc). Upstream's toolchain binaries need glibc
# 2.17+, so they run in any stage the generated Dockerfile copies them into.
#   build.sh IMAGE [TOOLCHAIN]   (TOOLCHAIN: a rustup toolchain name, default stable)
# Prints the image id. Needs root, podman and the host's ~/.rustup.
set -eu
image=$1
toolchain=${2:-stable}
rustc=$(rustup which --toolchain "$toolchain" rustc)
dir=$(dirname "$(dirname "$rustc")")
version=$("$rustc" -V | awk '{print $2}')
triple=$("$rustc" -vV | awk '/^host:/{print $2}')
name="$version-$triple"
ctx=$(mktemp -d /var/tmp/pgha-rust-standin.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rustup/toolchains/$name" "$ctx/cargo/bin"
# The toolchain without its documentation (share/): what building needs.
for d in bin lib libexec etc; do
    [ -d "$dir/$d" ] && cp -a "$dir/$d" "$ctx/rustup/toolchains/$name/"
done
printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' "$name" > "$ctx/rustup/settings.toml"
cp "$(command -v rustup)" "$ctx/cargo/bin/rustup"
for p in cargo rustc rustdoc; do ln "$ctx/cargo/bin/rustup" "$ctx/cargo/bin/$p"; done
cat > "$ctx/Containerfile" <<CF
FROM scratch
COPY rustup/ /usr/local/rustup/
COPY cargo/ /usr/local/cargo/
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin RUST_VERSION=$version
LABEL io.pgha.test-image=rust-standin io.pgha.rust-version=$version
CF
podman build -q --timestamp 0 -t "$image" "$ctx"

//! A test whose prerequisite is missing fails, saying how to install it; it
//! never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The command the README gives for installing everything the tests need.
pub const INSTALL: &str =
    "run `scripts/install-test-prereqs.sh` as root (or the whole suite with `scripts/test.sh`)";

/// Where `install-test-prereqs.sh` puts the real upstream tarballs.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("PGHA_TEST_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/pgha-image-test"))
}

/// Path of a program, found on PATH or at one of `extra` locations; panics
/// with an install hint naming `package` when it is absent.
pub fn require_program(name: &str, package: &str, extra: &[&str]) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(extra.iter().copied())
    {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "prerequisite missing: `{name}` (Debian package {package}) is not installed.\n\
         To install it: {INSTALL}, or `apt-get install -y {package}`."
    );
}

/// A file the tests need (e.g. an upstream tarball); panics with an install hint when absent.
pub fn require_file(path: &Path, what: &str) -> PathBuf {
    assert!(
        path.is_file(),
        "prerequisite missing: {what} at {}.\nTo get it: {INSTALL}.",
        path.display()
    );
    path.to_path_buf()
}

/// Whether the tests run as root (the fast tier runs as any user).
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// The tests run PostgreSQL as the `postgres` user and rootful Podman: they need root.
pub fn require_root() {
    let uid = Command::new("id").arg("-u").output().expect("run id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "these tests must run as root (they start PostgreSQL as the postgres user and use rootful Podman): \
         run `sudo scripts/test.sh`"
    );
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests
/// that start their own servers right away).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

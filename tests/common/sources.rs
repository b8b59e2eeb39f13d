//! Where the tests take the real upstream extension sources from:
//! `PGHA_TEST_SOURCES` (a `--mirror` directory or URL), else
//! `../shared/sources` relative to the repository when it exists (the
//! pinned archives, byte-identical to the catalog's URLs), else the catalog's
//! own URLs — so a machine with internet access runs the same tests. Never a
//! skip: whichever it is, the tool verifies every digest as for any mirror.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The source of the extension archives for this test run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    /// A `--mirror` directory or URL.
    Mirror(OsString),
    /// The catalog's upstream URLs.
    Upstream,
}

pub fn sources() -> Sources {
    if let Some(s) = std::env::var_os("PGHA_TEST_SOURCES").filter(|s| !s.is_empty()) {
        return Sources::Mirror(s);
    }
    let shared = shared_dir();
    if shared.is_dir() {
        return Sources::Mirror(shared.into_os_string());
    }
    Sources::Upstream
}

/// `../shared/sources` next to the repository.
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/sources")
}

/// The `pgha-image fetch/generate/build` arguments that take the sources from there.
pub fn fetch_args() -> Vec<OsString> {
    match sources() {
        Sources::Mirror(m) => vec!["--mirror".into(), m],
        Sources::Upstream => Vec::new(),
    }
}

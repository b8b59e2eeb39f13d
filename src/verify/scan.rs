//! Looking for secrets in an image: its environment, labels and layer
//! history, and every file of every layer of `save` (a file deleted by a
//! later layer is still in the earlier one, and anyone who pulls the image
//! has it).
//!
//! What counts as a secret: private-key PEM blocks, cloud and forge tokens
//! with a recognisable shape (AWS access key ids, GitHub tokens, JWTs),
//! files whose name is a credential's (`.pgpass`, `id_rsa`,
//! `.aws/credentials`, a mounted-secret path such as `/run/secrets/…`), and in
//! the environment, labels and history an assignment to a name that says
//! password, secret, token or key. Findings name the place and the kind,
//! never the value.

use regex::bytes::{Regex, RegexSet};
use std::io::Read;
use std::sync::LazyLock;

/// Files up to this size are read whole; bigger ones are scanned as a
/// stream of windows of this size.
const MAX_SCANNED_FILE: u64 = 16 * 1024 * 1024;
/// How much each window of a big file repeats of the previous one: more
/// than any secret the patterns match (a 16384-bit RSA key in PEM is ~13 KiB),
/// so one that straddles a boundary is seen whole in the next window.
const WINDOW_OVERLAP: usize = 64 * 1024;

/// Known, deliberate key material that is not a leak of the build: Debian's
/// ssl-cert package makes this self-signed "snakeoil" key at install time.
const ALLOWED_PATHS: &[&str] = &["etc/ssl/private/ssl-cert-snakeoil.key"];

const CONTENT_KINDS: &[(&str, &str)] = &[
    (
        "a private key (PEM)",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----\r?\n(?:[A-Za-z0-9+/=:,\- ]*\r?\n){2,}?[A-Za-z0-9+/=]{20,}\r?\n",
    ),
    ("an AWS access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("a GitHub token", r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    (
        "a JSON Web Token",
        r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,}",
    ),
];

/// The literals every content pattern contains: files without any are not
/// looked at further (one fast multi-literal search instead of every pattern).
static PREFILTER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"PRIVATE KEY-----|AKIA|ASIA|gh[pousr]_|eyJ").expect("pattern compiles"));

static CONTENT: LazyLock<RegexSet> =
    LazyLock::new(|| RegexSet::new(CONTENT_KINDS.iter().map(|(_, r)| *r)).expect("patterns compile"));
static CONTENT_EACH: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    CONTENT_KINDS
        .iter()
        .map(|(_, r)| Regex::new(r).expect("pattern compiles"))
        .collect()
});

/// File names that are credentials whatever they hold (relative to /).
static SECRET_PATH: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"(?x)^(?:
            run/secrets/.+
          | (?:.*/)?\.pgpass
          | (?:.*/)?\.aws/credentials
          | (?:.*/)?\.docker/config\.json
          | (?:.*/)?\.git-credentials
          | (?:.*/)?\.netrc
          | (?:.*/)?id_(?:rsa|dsa|ecdsa|ed25519)
          | (?:.*/)?pgsodium_root_key
        )$",
    )
    .expect("pattern compiles")
});

/// `NAME=value` where NAME says it holds a secret and value is set.
static ASSIGNMENT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"(?i)\b([A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY)[A-Z0-9_]*)=([^\s$'\x22][^\s'\x22]*|'[^']+'|\x22[^\x22]+\x22)",
    )
    .expect("pattern compiles")
});

/// One secret found: where, and what kind (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub place: String,
    pub kind: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.kind)
    }
}

/// Secrets in a text (an environment entry, a label, a history line).
pub fn scan_text(place: &str, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for c in ASSIGNMENT.captures_iter(text) {
        out.push(Finding {
            place: place.to_string(),
            kind: format!("a value assigned to {}", &c[1]),
        });
    }
    for (i, re) in CONTENT_EACH.iter().enumerate() {
        if re.is_match(text.as_bytes()) && !is_example(text.as_bytes(), re) {
            out.push(Finding {
                place: place.to_string(),
                kind: CONTENT_KINDS[i].0.to_string(),
            });
        }
    }
    out
}

/// Documentation examples (AWS's `AKIAIOSFODNN7EXAMPLE`) are not secrets.
fn is_example(hay: &[u8], re: &Regex) -> bool {
    re.find_iter(hay)
        .all(|m| m.as_bytes().windows(7).any(|w| w == b"EXAMPLE"))
}

/// Secrets in one file of a layer.
pub fn scan_file(place: &str, path: &str, content: Option<&[u8]>) -> Vec<Finding> {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    if ALLOWED_PATHS.contains(&path) {
        return Vec::new();
    }
    let mut out = Vec::new();
    if SECRET_PATH.is_match(path) {
        out.push(Finding {
            place: format!("{place} /{path}"),
            kind: "a credential file".into(),
        });
    }
    // Executables and libraries are judged by name only: they hold key
    // *formats* and test vectors (libgnutls has a PEM key), not a build's secrets.
    if let Some(bytes) = content.filter(|b| !b.starts_with(b"\x7fELF")) {
        for i in content_kinds(bytes) {
            out.push(Finding {
                place: format!("{place} /{path}"),
                kind: CONTENT_KINDS[i].0.to_string(),
            });
        }
    }
    out
}

/// The [`CONTENT_KINDS`] (by index) found in `bytes`.
fn content_kinds(bytes: &[u8]) -> Vec<usize> {
    if !PREFILTER.is_match(bytes) {
        return Vec::new();
    }
    CONTENT
        .matches(bytes)
        .iter()
        .filter(|&i| !is_example(bytes, &CONTENT_EACH[i]))
        .collect()
}

/// Secrets in a file too big to read whole: its name, then its content in
/// windows of [`MAX_SCANNED_FILE`] bytes that overlap by [`WINDOW_OVERLAP`]
/// (memory stays at one window). An executable is judged by name only.
fn scan_big_file(place: &str, path: &str, mut r: impl Read) -> std::io::Result<Vec<Finding>> {
    let mut out = scan_file(place, path, None);
    let mut kinds = std::collections::BTreeSet::new();
    let mut window: Vec<u8> = Vec::with_capacity(MAX_SCANNED_FILE as usize);
    let mut first = true;
    loop {
        let keep = window.len();
        (&mut r)
            .take(MAX_SCANNED_FILE - keep as u64)
            .read_to_end(&mut window)?;
        if first && window.starts_with(b"\x7fELF") {
            return Ok(out);
        }
        first = false;
        let ended = window.len() < MAX_SCANNED_FILE as usize;
        kinds.extend(content_kinds(&window));
        if ended {
            break;
        }
        window.drain(..window.len() - WINDOW_OVERLAP);
    }
    let path = path.trim_start_matches("./").trim_start_matches('/');
    out.extend(kinds.into_iter().map(|i| Finding {
        place: format!("{place} /{path}"),
        kind: CONTENT_KINDS[i].0.to_string(),
    }));
    Ok(out)
}

/// Scan every layer of a `save` archive (docker-archive: `<id>.tar` or
/// `<id>/layer.tar` entries; OCI layout: `blobs/sha256/<hex>`). Layers are
/// numbered in archive order.
pub fn scan_archive(archive: impl Read) -> std::io::Result<(usize, Vec<Finding>)> {
    let mut outer = tar::Archive::new(archive);
    let mut findings = Vec::new();
    let mut layers = 0;
    for entry in outer.entries()? {
        let entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path()?.to_string_lossy().into_owned();
        let is_layer = name.ends_with(".tar") || name.starts_with("blobs/");
        if !is_layer || name.ends_with(".json") {
            continue;
        }
        let short: String = name
            .trim_start_matches("blobs/sha256/")
            .trim_end_matches("/layer.tar")
            .trim_end_matches(".tar")
            .chars()
            .take(12)
            .collect();
        let mut inner = tar::Archive::new(entry);
        let Ok(entries) = inner.entries() else { continue };
        let mut counted = false;
        for e in entries {
            // A blob that is not a tar (a config) ends the iteration with an error.
            let Ok(mut e) = e else { break };
            if !counted {
                layers += 1;
                counted = true;
            }
            let place = format!("layer {layers} ({short})");
            let Ok(path) = e.path().map(|p| p.to_string_lossy().into_owned()) else {
                continue;
            };
            let kind = e.header().entry_type();
            if !kind.is_file() {
                continue;
            }
            if path.rsplit('/').next().is_some_and(|b| b.starts_with(".wh.")) {
                continue;
            }
            let size = e.header().size().unwrap_or(0);
            if size > MAX_SCANNED_FILE {
                findings.extend(scan_big_file(&place, &path, &mut e)?);
                continue;
            }
            let mut buf = Vec::with_capacity(size as usize);
            // ELF files are judged by name only: read their magic, skip the rest.
            (&mut e).take(4).read_to_end(&mut buf)?;
            if buf.as_slice() != b"\x7fELF" {
                e.read_to_end(&mut buf)?;
            }
            findings.extend(scan_file(&place, &path, Some(&buf)));
        }
    }
    Ok((layers, findings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_files_are_scanned_in_overlapping_windows() {
        // A key straddling the first window's end, in a 17.5 MB file.
        let mut big = vec![b'.'; MAX_SCANNED_FILE as usize - 100];
        big.extend_from_slice(PEM.as_bytes());
        big.resize(17_500_000, b'.');
        let f = scan_big_file("layer 1", "opt/big.bin", &big[..]).unwrap();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, "a private key (PEM)");
        assert_eq!(f[0].place, "layer 1 /opt/big.bin");
        let clean = vec![b'.'; 40_000_000];
        assert!(
            scan_big_file("layer 1", "opt/clean.bin", &clean[..])
                .unwrap()
                .is_empty()
        );
        let mut elf = b"\x7fELF".to_vec();
        elf.extend_from_slice(&big);
        assert!(
            scan_big_file("layer 1", "usr/lib/x.so", &elf[..])
                .unwrap()
                .is_empty()
        );
    }

    const PEM: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
        b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n\
        QyNTUxOQAAACDd1hJ3DkN7Z1bV2m8m0s0pKfV3r2p6bFhQ2kq0x7q8lwAAAJg3w4a9N8OG\n\
        vQAAAAtzc2gtZWQyNTUxOQAAACDd1hJ3DkN7Z1bV2m8m0s0pKfV3r2p6bFhQ2kq0x7q8lw\n\
        -----END OPENSSH PRIVATE KEY-----\n";

    #[test]
    fn content_patterns() {
        assert_eq!(
            scan_file("l1", "root/key", Some(PEM.as_bytes()))[0].kind,
            "a private key (PEM)"
        );
        // The bare header, as libcrypto holds it, is not a key.
        assert!(
            scan_file(
                "l1",
                "usr/lib/libcrypto.so",
                Some(b"-----BEGIN PRIVATE KEY-----\0")
            )
            .is_empty()
        );
        assert_eq!(
            scan_file("l1", "etc/x.conf", Some(b"key=AKIAZ7Q2LMNOPQRSTUVW\n"))[0].kind,
            "an AWS access key id"
        );
        assert!(scan_file("l1", "usr/share/doc/x", Some(b"AKIAIOSFODNN7EXAMPLE")).is_empty());
        let f = scan_file("l2", "./root/.aws/credentials", Some(b"x"));
        assert_eq!(f[0].place, "l2 /root/.aws/credentials");
        assert!(
            scan_file(
                "l1",
                "etc/ssl/private/ssl-cert-snakeoil.key",
                Some(PEM.as_bytes())
            )
            .is_empty()
        );
        let elf = [b"\x7fELF\x02".as_slice(), PEM.as_bytes()].concat();
        assert!(scan_file("l1", "usr/lib/libgnutls.so.30", Some(&elf)).is_empty());
    }

    #[test]
    fn text_patterns_name_the_variable_not_the_value() {
        let f = scan_text("env", "PGPASSWORD_SUPERUSER=hunter22");
        assert_eq!(f[0].kind, "a value assigned to PGPASSWORD_SUPERUSER");
        assert!(!f[0].to_string().contains("hunter22"));
        assert!(scan_text("history", "ENV PGVERSION=15 PGHOME=/home/postgres").is_empty());
        assert!(scan_text("history", "RUN --mount=type=secret,id=npm make").is_empty());
        assert!(scan_text("history", "ARG TOKEN=$TOKEN").is_empty());
        assert_eq!(scan_text("history", "ENV API_TOKEN='abc def'").len(), 1);
    }

    #[test]
    fn archive_layers_are_scanned_including_deleted_files() {
        let layer = |files: &[(&str, &[u8])]| {
            let mut b = tar::Builder::new(Vec::new());
            for (p, c) in files {
                let mut h = tar::Header::new_gnu();
                h.set_size(c.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, p, *c).unwrap();
            }
            b.into_inner().unwrap()
        };
        let l1 = layer(&[("root/.ssh/id_ed25519", PEM.as_bytes()), ("etc/hostname", b"x")]);
        let l2 = layer(&[("root/.ssh/.wh.id_ed25519", b"")]);
        let mut outer = tar::Builder::new(Vec::new());
        for (n, l) in [("aaa/layer.tar", &l1), ("bbb/layer.tar", &l2)] {
            let mut h = tar::Header::new_gnu();
            h.set_size(l.len() as u64);
            h.set_mode(0o644);
            outer.append_data(&mut h, n, l.as_slice()).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        outer.append_data(&mut h, "manifest.json", &b"[]"[..]).unwrap();
        let (layers, f) = scan_archive(outer.into_inner().unwrap().as_slice()).unwrap();
        assert_eq!(layers, 2);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f.iter().all(|x| x.place == "layer 1 (aaa) /root/.ssh/id_ed25519"),
            "{f:?}"
        );
    }
}

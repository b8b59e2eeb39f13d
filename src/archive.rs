//! Checking that a source archive (`.tar.gz`, `.tar.zst`, plain `.tar`;
//! the format is recognised by its magic bytes, not its name) is safe to
//! unpack, before the build unpacks it.
//!
//! Every entry is checked: no absolute paths, no `..` components, no path
//! through a symbolic link, no symbolic or hard link whose target leaves the
//! archive's tree, no device files or FIFOs.
//!
//! The image build unpacks sources differently: `tar -x --strip-components=1`
//! (GNU tar) drops the first component of every path and of every hard
//! link's target. So when an archive has a single top-level directory, its
//! paths are checked again as they are once that directory is stripped:
//! `top/up -> ..` is inside the archive's tree but outside the source after
//! the strip; `./top/x` loses its `.`, not `top`; a hard link to `top` itself
//! or to a path outside `top` would point outside the source.

use crate::error::{Diagnostic, ExitCode};
use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{archive}: entry {entry:?} {reason}")]
    Unsafe {
        archive: PathBuf,
        entry: String,
        reason: String,
    },
    #[error("{archive}: cannot read the archive")]
    Read {
        archive: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{archive}: the archive has no entries")]
    Empty { archive: PathBuf },
    #[error("{archive}: not a .tar, .tar.gz or .tar.zst archive")]
    NotAnArchive {
        archive: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Diagnostic for ArchiveError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            ArchiveError::Unsafe { .. } => {
                "the archive tries to write outside its own directory; do not use \
                it (its digest in the catalog should not have matched a hostile file: check the source)"
                    .into()
            }
            ArchiveError::Read { .. } => "check that the file exists and can be read".into(),
            ArchiveError::Empty { .. } | ArchiveError::NotAnArchive { .. } => {
                "the catalog pins a file that is not a source archive: check its url (a GitHub \
                archive/refs/tags/TAG.tar.gz) and sha256"
                    .into()
            }
        })
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            ArchiveError::Unsafe { .. } => ExitCode::Verification,
            ArchiveError::Empty { .. } | ArchiveError::NotAnArchive { .. } => ExitCode::Usage,
            _ => ExitCode::Failure,
        }
    }
}

/// What an archive holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// The single top-level directory all entries live under, if there is one
    /// (e.g. `pgvector-0.8.0` for a GitHub archive).
    pub top_level: Option<String>,
    /// Files, directories and links (not the pax/GNU metadata entries).
    pub entries: u64,
    /// Total size of the regular files, in bytes.
    pub size: u64,
}

enum Format {
    Gzip,
    Zstd,
    Tar,
}

fn sniff(path: &Path) -> io::Result<Format> {
    let mut magic = [0u8; 4];
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < magic.len() {
        match f.read(&mut magic[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(match magic {
        [0x1f, 0x8b, ..] => Format::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Format::Zstd,
        _ => Format::Tar,
    })
}

fn open(path: &Path) -> io::Result<tar::Archive<Box<dyn Read>>> {
    let file = BufReader::with_capacity(1 << 20, File::open(path)?);
    let reader: Box<dyn Read> = match sniff(path)? {
        Format::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Format::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file)?),
        Format::Tar => Box::new(file),
    };
    Ok(tar::Archive::new(reader))
}

/// A checked entry path: its normal components.
fn normalize(raw: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(s) => out.push(
                s.to_str()
                    .ok_or_else(|| "is not valid UTF-8".to_string())?
                    .to_string(),
            ),
            Component::CurDir => {}
            Component::ParentDir => return Err("has a `..` component".into()),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path".into()),
        }
    }
    Ok(out)
}

/// A link target resolved lexically against `base` (components of the
/// directory it is relative to).
struct Resolved {
    /// The target's components from the tree's root.
    target: Vec<String>,
    /// Every directory the resolution walked through (to be checked against
    /// symbolic links: `d/..` where `d` is a link does not lead to `.`).
    walked: Vec<Vec<String>>,
}

fn resolve(base: &[String], target: &Path) -> Result<Resolved, &'static str> {
    let mut cur: Vec<String> = base.to_vec();
    let mut walked = Vec::new();
    let comps: Vec<Component> = target.components().collect();
    for (i, c) in comps.iter().enumerate() {
        match c {
            Component::Normal(s) => {
                cur.push(s.to_string_lossy().into_owned());
                if i + 1 < comps.len() {
                    walked.push(cur.clone());
                }
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if cur.pop().is_none() {
                    return Err("points outside the archive's tree");
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute link"),
        }
    }
    Ok(Resolved { target: cur, walked })
}

struct Link {
    entry: String,
    path: Vec<String>,
    /// The target as written in the archive.
    raw_target: PathBuf,
    /// The target, resolved against the tree's root.
    target: Resolved,
    hard: bool,
}

/// Whether a path's first component is `.` (which `--strip-components`
/// counts as a component).
fn dot_first(p: &Path) -> bool {
    matches!(p.components().next(), Some(Component::CurDir))
}

/// Walk every entry, checking it, without writing anything: as the archive
/// is, and, when it has a single top-level directory, as the build's
/// `tar --strip-components=1` would write it (see the module docs).
pub fn check(archive: &Path) -> Result<Summary, ArchiveError> {
    let open_err = |source| ArchiveError::Read {
        archive: archive.to_path_buf(),
        source,
    };
    // Once the file is open, a failure to parse means it is not an archive.
    let read = |source: io::Error| match source.kind() {
        io::ErrorKind::InvalidData
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::Other => ArchiveError::NotAnArchive {
            archive: archive.to_path_buf(),
            source,
        },
        _ => ArchiveError::Read {
            archive: archive.to_path_buf(),
            source,
        },
    };
    let unsafe_entry = |entry: &str, reason: &str| ArchiveError::Unsafe {
        archive: archive.to_path_buf(),
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    let mut ar = open(archive).map_err(open_err)?;
    let mut symlinks: HashSet<Vec<String>> = HashSet::new();
    let mut links: Vec<Link> = Vec::new();
    let mut tops: BTreeSet<String> = BTreeSet::new();
    let mut top_is_file = false;
    let mut entries = 0u64;
    let mut size = 0u64;
    let mut paths: Vec<(String, Vec<String>)> = Vec::new();
    // Entries whose path starts with `./`.
    let mut dotted: Vec<String> = Vec::new();
    for e in ar.entries().map_err(read)? {
        let e = e.map_err(read)?;
        let kind = e.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName
        ) || kind == tar::EntryType::GNULongLink
        {
            continue;
        }
        let raw = e.path().map_err(read)?.into_owned();
        let shown = raw.display().to_string();
        let comps = normalize(&raw).map_err(|r| unsafe_entry(&shown, &r))?;
        if comps.is_empty() {
            // "./" itself.
            continue;
        }
        entries += 1;
        if dot_first(&raw) {
            dotted.push(shown.clone());
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                size += e.size();
                if comps.len() == 1 {
                    top_is_file = true;
                }
            }
            tar::EntryType::Directory => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let hard = kind == tar::EntryType::Link;
                let target = e
                    .link_name()
                    .map_err(read)?
                    .ok_or_else(|| unsafe_entry(&shown, "is a link without a target"))?
                    .into_owned();
                // Symlinks are relative to their directory, hard links to the root.
                let base = if hard { &[][..] } else { &comps[..comps.len() - 1] };
                let resolved = resolve(base, &target).map_err(|r| {
                    unsafe_entry(
                        &shown,
                        &format!("is a link to {:?} that {r}", target.display().to_string()),
                    )
                })?;
                if hard && resolved.target.is_empty() {
                    return Err(unsafe_entry(&shown, "is a hard link to the tree's root"));
                }
                if !hard {
                    symlinks.insert(comps.clone());
                    if comps.len() == 1 {
                        top_is_file = true;
                    }
                }
                links.push(Link {
                    entry: shown.clone(),
                    path: comps.clone(),
                    raw_target: target,
                    target: resolved,
                    hard,
                });
            }
            other => {
                return Err(unsafe_entry(
                    &shown,
                    &format!("has an unsupported type ({other:?}): only files, directories and links"),
                ));
            }
        }
        tops.insert(comps[0].clone());
        paths.push((shown, comps));
    }
    if entries == 0 {
        return Err(ArchiveError::Empty {
            archive: archive.to_path_buf(),
        });
    }
    // No entry may be written through a symlink, and no link may resolve
    // through one (which could lead anywhere).
    let through = |p: &[String]| (1..p.len()).any(|i| symlinks.contains(&p[..i]));
    for (shown, comps) in &paths {
        if through(comps) {
            return Err(unsafe_entry(shown, "lies under a symbolic link"));
        }
    }
    for l in &links {
        let t = &l.target.target;
        let via_link = l.target.walked.iter().any(|w| symlinks.contains(w));
        if via_link || through(t) || (l.hard && symlinks.contains(t)) {
            return Err(unsafe_entry(
                &l.entry,
                &format!(
                    "is a {} link whose target passes through a symbolic link",
                    if l.hard { "hard" } else { "symbolic" }
                ),
            ));
        }
        if l.hard && t == &l.path {
            return Err(unsafe_entry(&l.entry, "is a hard link to itself"));
        }
    }
    let top_level = (tops.len() == 1 && !top_is_file).then(|| tops.into_iter().next().expect("one"));
    if let Some(top) = &top_level {
        check_stripped(top, &dotted, &links).map_err(|(entry, reason)| unsafe_entry(&entry, &reason))?;
    }
    Ok(Summary {
        top_level,
        entries,
        size,
    })
}

/// The archive as `tar --strip-components=1` writes it (GNU tar 1.34
/// semantics: the first component of each path and of each hard link's
/// target is dropped, `.` counting as one; symbolic link targets are kept).
/// Returns the offending entry and why.
fn check_stripped(top: &str, dotted: &[String], links: &[Link]) -> Result<(), (String, String)> {
    if let Some(entry) = dotted.first() {
        return Err((
            entry.clone(),
            format!(
                "starts with `./`: the build's --strip-components=1 would strip the `.` instead of \
                the top directory {top:?}, so the source would not be where the build looks"
            ),
        ));
    }
    for l in links {
        let shown_target = l.raw_target.display().to_string();
        if l.hard {
            let t = &l.target.target;
            if dot_first(&l.raw_target) || t.len() < 2 || t[0] != top {
                return Err((
                    l.entry.clone(),
                    format!(
                        "is a hard link to {shown_target:?}, which lies outside the source once the \
                        build strips the top directory {top:?}"
                    ),
                ));
            }
        } else {
            // Relative to its directory in the stripped tree.
            let base = &l.path[1..l.path.len() - 1];
            if resolve(base, &l.raw_target).is_err() {
                return Err((
                    l.entry.clone(),
                    format!(
                        "is a link to {shown_target:?} that points outside the source once the build \
                        strips the top directory {top:?}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_stays_inside() {
        let base = vec!["a".to_string(), "b".to_string()];
        let r = resolve(&base, Path::new("../c/d")).unwrap();
        assert_eq!(r.target, ["a", "c", "d"]);
        assert_eq!(r.walked, [vec!["a".to_string(), "c".to_string()]]);
        assert!(resolve(&base, Path::new("../../..")).is_err());
        assert!(resolve(&base, Path::new("/etc")).is_err());
        assert!(normalize(Path::new("a/../b")).is_err());
        assert_eq!(normalize(Path::new("./a/b")).unwrap(), ["a", "b"]);
    }
}

//! The tests' source archives: one builder for well-formed ones (a top
//! directory holding files, as upstream releases are), one for hostile ones
//! (entry names and link targets written verbatim: the tar crate's builder
//! refuses `..` and absolute paths, which is exactly what those tests need).

use pgha_image::hash::Sha256Digest;
use std::io::Write;
use std::path::Path;

/// A real `.tar.gz` with a top-level directory `top/` holding `files`
/// (mode 0644, mtime 0: the same bytes every run).
pub fn tar_gz(top: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_mtime(0);
    b.append_data(&mut h, format!("{top}/"), std::io::empty())
        .unwrap();
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, format!("{top}/{name}"), *data).unwrap();
    }
    gz(&b.into_inner().unwrap())
}

/// One raw tar entry, its name (and link target) written verbatim.
pub enum RawEntry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Fifo(&'a str),
}

/// An uncompressed tar of `entries`, written without any checks.
pub fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, kind, link, data): (&str, tar::EntryType, Option<&str>, &[u8]) = match e {
            RawEntry::Dir(n) => (n, tar::EntryType::Directory, None, b""),
            RawEntry::File(n, d) => (n, tar::EntryType::Regular, None, d),
            RawEntry::Symlink(n, t) => (n, tar::EntryType::Symlink, Some(t), b""),
            RawEntry::Hardlink(n, t) => (n, tar::EntryType::Link, Some(t), b""),
            RawEntry::Fifo(n) => (n, tar::EntryType::Fifo, None, b""),
        };
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(t) = link {
                old.linkname[..t.len()].copy_from_slice(t.as_bytes());
            }
        }
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Gzip `bytes`.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Write `bytes` to `dir/name`; their digest, as a catalog pins it.
pub fn save(dir: &Path, name: &str, bytes: &[u8]) -> Sha256Digest {
    std::fs::write(dir.join(name), bytes).unwrap();
    Sha256Digest::of(bytes)
}

//! File-system acts that must be done one way everywhere: writing a file so
//! that it is either complete or absent, `sha256sum` checksum files, and the
//! deterministic tar of a directory.
//!
//! **Atomic write.** Content goes to a hidden temporary file in the
//! destination's own directory (`.NAME.XXXXXX.partial`, so the rename stays on
//! one file system), is fsynced, renamed over the final name, and the
//! directory is fsynced. A crash leaves either the old file or the new one,
//! plus at worst a hidden `.partial`; an error removes the temporary file.
//! [`write_atomic`] does it for bytes in memory, [`AtomicFile`] for a stream.
//!
//! The temporary names carry the writer's process id, so that what a killed
//! process left can be told from what a running one is writing
//! ([`remove_stale`]).
//!
//! **Checksum files** are what `sha256sum` writes and `sha256sum -c` reads:
//! one `<64 hex>  <name>` line per file (`*<name>` for binary mode is read too).
//!
//! **Deterministic tar.** [`write_dir_tar`] writes a directory with entries
//! sorted by their full relative path (byte order), every mtime the given
//! one, owner and group 0 without names, modes 0755 for directories and
//! executables and 0644 for the rest, GNU headers; symlinks are kept as links.

use crate::hash::Sha256Digest;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why [`read_regular_bounded`] refused a file.
#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A FIFO, socket, device or directory: reading it could block for ever
    /// or never end.
    #[error("not a regular file (it is a {kind})")]
    NotRegular { kind: &'static str },
    #[error("larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("not finished after {seconds} s")]
    TimedOut { seconds: u64 },
}

/// The limit for a small file a user or an image hands over: a
/// configuration, a manifest, a checksum file, a record (they are KiBs).
pub const SMALL_FILE_MAX_BYTES: u64 = 1024 * 1024;

/// [`read_regular_bounded`] as `std::fs::read` would answer: a refusal is
/// an `InvalidData` error that says why (and `NotFound` stays `NotFound`).
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read_regular_bounded(path, limit).map_err(|e| match e {
        BoundedReadError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    })
}

/// [`read_limited`] as text.
pub fn read_limited_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_limited(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// What kind of file `ft` is, in words.
pub fn file_kind(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        "regular file"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "symbolic link"
    }
}

/// Read a file that a user or an image controls, with a size limit: symbolic
/// links are followed, but the file they end at must be a regular file (it
/// is opened with `O_NONBLOCK`, so a FIFO cannot block the open, and checked
/// with `fstat` before a byte is read), and at most `limit` bytes are
/// accepted (reading stops at `limit + 1`).
pub fn read_regular_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(BoundedReadError::NotRegular {
            kind: file_kind(&meta.file_type()),
        });
    }
    let mut out = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(BoundedReadError::TooLarge { limit });
    }
    Ok(out)
}

/// Wait for `child` (spawned with piped stdout and stderr), collecting what
/// it writes, at most `limit` bytes on each: a child that writes more is
/// killed, and the answer is [`BoundedReadError::TooLarge`]; one still
/// writing after `time_limit` is killed too ([`BoundedReadError::TimedOut`]).
/// For commands whose output an image controls.
pub fn output_bounded(
    mut child: std::process::Child,
    limit: u64,
    time_limit: Option<std::time::Duration>,
) -> Result<std::process::Output, BoundedReadError> {
    use std::io::Read;
    let (tx, rx) = std::sync::mpsc::channel::<(bool, io::Result<Vec<u8>>)>();
    let collect = |is_out: bool, r: Option<Box<dyn Read + Send>>| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let res = match r {
                Some(r) => r.take(limit + 1).read_to_end(&mut v).map(|_| v),
                None => Ok(v),
            };
            let _ = tx.send((is_out, res));
        });
    };
    collect(
        true,
        child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    collect(
        false,
        child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    drop(tx);
    let (mut stdout, mut stderr) = (None, None);
    // Whichever stream ends first is looked at first: a stream past the
    // limit kills the child at once (it may be blocked writing the other).
    let deadline = time_limit.map(|t| (std::time::Instant::now() + t, t.as_secs()));
    loop {
        let next = match deadline {
            None => rx.recv().ok(),
            Some((at, seconds)) => {
                match rx.recv_timeout(at.saturating_duration_since(std::time::Instant::now())) {
                    Ok(n) => Some(n),
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(BoundedReadError::TimedOut { seconds });
                    }
                }
            }
        };
        let Some((is_out, res)) = next else { break };
        if matches!(&res, Ok(v) if v.len() as u64 > limit) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BoundedReadError::TooLarge { limit });
        }
        if is_out {
            stdout = Some(res);
        } else {
            stderr = Some(res);
        }
    }
    let status = child.wait()?;
    let missing = || Err(io::Error::other("an output reader stopped"));
    Ok(std::process::Output {
        status,
        stdout: stdout.unwrap_or_else(missing)?,
        stderr: stderr.unwrap_or_else(missing)?,
    })
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Why `file` cannot be written as a file, found without writing anything:
/// it names a directory (an existing one, or with a trailing `/`), or its
/// directory is missing or not a directory. None: it can be tried.
///
/// Every command that writes an output file checks it with this before it
/// starts its work, so a typo fails at once rather than after the work.
pub fn output_file_problem(file: &Path) -> Option<String> {
    if file.file_name().is_none() || file.to_str().is_some_and(|s| s.ends_with('/')) {
        return Some("it names a directory, not a file".into());
    }
    if fs::metadata(file).is_ok_and(|m| m.is_dir()) {
        return Some("it is a directory".into());
    }
    let dir = parent_dir(file);
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => None,
        Ok(_) => Some(format!("{} is not a directory", dir.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Some(format!("the directory {} does not exist", dir.display()))
        }
        Err(e) => Some(format!("{}: {e}", dir.display())),
    }
}

/// Files get the usual mode (0666 less the umask), not a temporary file's 0600.
fn file_mode() -> fs::Permissions {
    fs::Permissions::from_mode(0o666)
}

/// A file being written under a hidden temporary name next to its final
/// name; [`AtomicFile::commit`] puts it in place, dropping it removes it.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl AtomicFile {
    /// Create the temporary file for `dest` (in `dest`'s directory). This
    /// fails early when the directory is missing or not writable.
    pub fn create(dest: &Path) -> io::Result<Self> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.{}.", std::process::id()))
            .suffix(".partial")
            .permissions(file_mode())
            .tempfile_in(parent_dir(dest))?;
        Ok(Self {
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// The temporary file's path (for messages).
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// fsync, rename over the final name (replacing a file there), fsync the directory.
    pub fn commit(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        let dest = self.dest;
        self.tmp.persist(&dest).map_err(|e| e.error)?;
        sync_dir(parent_dir(&dest))
    }
}

impl AtomicFile {
    /// [`AtomicFile::commit`], but fail with `AlreadyExists` rather than
    /// replace a file that is at the final name by now.
    pub fn commit_new(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        let dest = self.dest;
        self.tmp.persist_noclobber(&dest).map_err(|e| e.error)?;
        sync_dir(parent_dir(&dest))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// Write `bytes` to `path` atomically (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Remove the entries of `dir` named `<prefix><pid><non-digit>…` whose
/// process is gone: what a killed run left (its [`AtomicFile`] is
/// `.NAME.<pid>.XXXXXX.partial`). Entries of live processes, and anything
/// not of that form, are left alone. Returns what was removed.
pub fn remove_stale(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return removed;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(pid) = digits.parse::<i32>() else {
            continue;
        };
        if digits.len() == rest.len() || pid <= 0 || process_alive(pid) {
            continue;
        }
        let path = e.path();
        let gone = match e.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// A temporary directory beside `out` (`.NAME.tmp-XXXXXX` in its parent),
/// to be filled and then put in place by [`replace_dir`]: the rename stays
/// on one file system. On error, the path that could not be used.
pub fn sibling_tempdir(out: &Path) -> Result<tempfile::TempDir, (PathBuf, io::Error)> {
    let parent = parent_dir(out);
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempdir_in(parent)
        .map_err(|e| (parent.to_path_buf(), e))
}

/// Put the directory `tmp` where `out` is (both in `out`'s parent, one file
/// system): an earlier `out` is moved aside first, put back when the new one
/// cannot be moved in, and removed last; `tmp` is removed on any failure.
/// The error names the path whose rename failed. Nobody ever sees a
/// half-written `out`.
pub fn replace_dir(tmp: &Path, out: &Path) -> Result<(), (PathBuf, io::Error)> {
    let parent = parent_dir(out);
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let had_old = fs::symlink_metadata(out).is_ok();
    if had_old {
        if fs::symlink_metadata(&old).is_ok() {
            // Left by an earlier run of this pid that died between the renames.
            let _ = fs::remove_dir_all(&old);
        }
        if let Err(e) = fs::rename(out, &old) {
            let _ = fs::remove_dir_all(tmp);
            return Err((out.to_path_buf(), e));
        }
    }
    if let Err(e) = fs::rename(tmp, out) {
        if had_old {
            let _ = fs::rename(&old, out);
        }
        let _ = fs::remove_dir_all(tmp);
        return Err((out.to_path_buf(), e));
    }
    if had_old {
        let _ = fs::remove_dir_all(&old);
    }
    let _ = sync_dir(parent);
    Ok(())
}

/// fsync a directory, so that a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// One line of a checksum file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumLine {
    pub sha256: Sha256Digest,
    pub name: String,
}

/// Why a checksum file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ChecksumFileError {
    #[error("cannot read it")]
    Io(#[from] io::Error),
    #[error("line {line} is not `<64 hex>  <name>`")]
    Malformed { line: usize },
    #[error("it lists no file")]
    Empty,
}

/// The text of a checksum file for these files, in the order given.
pub fn checksum_text(lines: &[ChecksumLine]) -> String {
    lines
        .iter()
        .map(|l| format!("{}  {}\n", l.sha256, l.name))
        .collect()
}

/// Write a checksum file atomically.
pub fn write_checksum_file(path: &Path, lines: &[ChecksumLine]) -> io::Result<()> {
    write_atomic(path, checksum_text(lines).as_bytes())
}

/// Parse the text of a checksum file (blank lines are skipped).
pub fn parse_checksums(text: &str) -> Result<Vec<ChecksumLine>, ChecksumFileError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = ChecksumFileError::Malformed { line: i + 1 };
        let (hex, rest) = line.split_once(' ').ok_or(bad)?;
        let sha256: Sha256Digest = hex
            .parse()
            .map_err(|_| ChecksumFileError::Malformed { line: i + 1 })?;
        // "<hex>  name" (text mode) or "<hex> *name" (binary mode).
        let name = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .unwrap_or(rest);
        if name.is_empty() || hex.len() != 64 {
            return Err(ChecksumFileError::Malformed { line: i + 1 });
        }
        out.push(ChecksumLine {
            sha256,
            name: name.to_string(),
        });
    }
    if out.is_empty() {
        return Err(ChecksumFileError::Empty);
    }
    Ok(out)
}

/// Read a checksum file.
pub fn read_checksum_file(path: &Path) -> Result<Vec<ChecksumLine>, ChecksumFileError> {
    parse_checksums(&read_limited_text(path, SMALL_FILE_MAX_BYTES)?)
}

/// Write `root` as a deterministic tar (see the module docs) into `w`,
/// every mtime `mtime`; returns `w`.
pub fn write_dir_tar<W: Write>(root: &Path, mtime: u64, w: W) -> io::Result<W> {
    let mut entries = walk_tree(root)?;
    // Full relative paths in byte order: one order whatever the walk's.
    entries.sort_by(|a, b| {
        a.0.as_os_str()
            .as_encoded_bytes()
            .cmp(b.0.as_os_str().as_encoded_bytes())
    });
    let mut builder = tar::Builder::new(w);
    for (rel, ft) in entries {
        let full = root.join(&rel);
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        let name = rel.to_string_lossy().into_owned();
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            builder.append_data(&mut h, format!("{name}/"), io::empty())?;
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            builder.append_link(&mut h, &name, fs::read_link(&full)?)?;
        } else {
            let f = File::open(&full)?;
            let meta = f.metadata()?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            });
            h.set_size(meta.len());
            builder.append_data(&mut h, &name, f)?;
        }
    }
    builder.into_inner()
}

/// Every entry under `root` (directories too, symlinks not followed), as
/// (path relative to `root`, its type), in no particular order.
/// Why `dir` cannot be replaced without losing something, or `None` when
/// every file in it is one `recorded` lists (relative path → the digest it
/// was written with; `None` for a file still being written) and still has
/// that digest. `own` is the record's own file; `tool` names the command
/// for the message. The rule `generate` and `manifests` share for `--out`.
pub fn unrecorded_file(
    dir: &Path,
    recorded: &std::collections::BTreeMap<String, Option<Sha256Digest>>,
    own: &str,
    tool: &str,
) -> io::Result<Option<String>> {
    for (rel, ft) in walk_tree(dir)? {
        if ft.is_dir() {
            continue;
        }
        let rel = rel.to_string_lossy().into_owned();
        if rel == own {
            continue;
        }
        if !ft.is_file() {
            return Ok(Some(format!(
                "{rel} is not a regular file; {tool} never writes one"
            )));
        }
        let Some(expected) = recorded.get(&rel) else {
            return Ok(Some(format!("{rel} is not a file {tool} wrote")));
        };
        if let Some(expected) = expected {
            let (actual, _) = Sha256Digest::of_file(&dir.join(&rel))?;
            if actual != *expected {
                return Ok(Some(format!("{rel} was changed since {tool} wrote it")));
            }
        }
    }
    Ok(None)
}

pub fn walk_tree(root: &Path) -> io::Result<Vec<(PathBuf, fs::FileType)>> {
    let mut entries = Vec::new();
    walk(root, Path::new(""), &mut entries)?;
    Ok(entries)
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, fs::FileType)>) -> io::Result<()> {
    for e in fs::read_dir(root.join(rel))? {
        let e = e?;
        let rel_path = rel.join(e.file_name());
        let ft = e.file_type()?;
        out.push((rel_path.clone(), ft));
        if ft.is_dir() {
            walk(root, &rel_path, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f"]);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o044,
            0o044 & !umask()
        );
    }

    fn umask() -> u32 {
        // SAFETY: umask is async-signal-safe; set it back at once.
        unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        }
    }

    #[test]
    fn a_dropped_atomic_file_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("g");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"half").unwrap();
        let own = format!(".g.{}.", std::process::id());
        assert!(f.path().file_name().unwrap().to_string_lossy().starts_with(&own));
        // Ours (a live process): not stale.
        assert!(remove_stale(d.path(), ".g.").is_empty());
        drop(f);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn stale_entries_of_dead_processes_are_removed() {
        let d = tempfile::tempdir().unwrap();
        // A process that has exited: its pid is free (until reused, when it is left alone).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        fs::write(d.path().join(format!(".g.{dead}.abc.partial")), "x").unwrap();
        fs::create_dir(d.path().join(format!(".g.pgha-save-{dead}-abc"))).unwrap();
        fs::write(d.path().join(format!(".g.{dead}.abc.partial.keep")), "x").unwrap();
        fs::write(d.path().join(".g.sha256.1.abc.partial"), "x").unwrap();
        fs::write(d.path().join("g"), "user").unwrap();
        assert_eq!(remove_stale(d.path(), ".g.").len(), 2);
        assert_eq!(remove_stale(d.path(), ".g.pgha-save-").len(), 1);
        let mut left: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".g.sha256.1.abc.partial", "g"]);
    }

    #[test]
    fn checksum_files_round_trip_and_read_sha256sum_forms() {
        let a = Sha256Digest::of(b"a");
        let lines = vec![ChecksumLine {
            sha256: a,
            name: "x y.tar".into(),
        }];
        assert_eq!(parse_checksums(&checksum_text(&lines)).unwrap(), lines);
        assert_eq!(
            parse_checksums(&format!("\n{a} *x y.tar\n")).unwrap(),
            lines,
            "binary mode"
        );
        assert!(matches!(
            parse_checksums("nothing here"),
            Err(ChecksumFileError::Malformed { line: 1 })
        ));
        assert!(matches!(parse_checksums(" \n"), Err(ChecksumFileError::Empty)));
        assert!(parse_checksums(&format!("sha256:{a}  f\n")).is_err());
    }

    #[test]
    fn dir_tar_is_sorted_by_full_path_and_deterministic() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("a")).unwrap();
        fs::create_dir_all(d.path().join("a-b")).unwrap();
        fs::write(d.path().join("a/x"), "x").unwrap();
        fs::write(d.path().join("a-b/y"), "y").unwrap();
        fs::write(d.path().join("run"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(d.path().join("run"), fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink("run", d.path().join("link")).unwrap();
        let one = write_dir_tar(d.path(), 7, Vec::new()).unwrap();
        let two = write_dir_tar(d.path(), 7, Vec::new()).unwrap();
        assert_eq!(one, two);
        let mut ar = tar::Archive::new(&one[..]);
        let got: Vec<(String, u32, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        let names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(names, ["a/", "a-b/", "a-b/y", "a/x", "link", "run"]);
        assert!(got.iter().all(|g| g.2 == 7));
        assert_eq!(got.iter().find(|g| g.0 == "run").unwrap().1, 0o755);
        assert_eq!(got.iter().find(|g| g.0 == "a/x").unwrap().1, 0o644);
    }
}

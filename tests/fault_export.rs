//! The promise of `export` and `load` against a hostile but realistic user:
//! an existing file is never overwritten without --force, a bad target or
//! tag is refused before the engine does any work, a full disk leaves
//! nothing behind, and `load` says exit 2 (not 1) for data that is not an
//! image archive. Each case is a real process; the engine cases use Podman
//! with the shared debian test image under the engine lock.

mod common;

use common::images;
use pgha_image::hash::Sha256Digest;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::cli::pgha;

/// Every entry directly in `dir` with its content ("<dir>" for directories).
fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let content = if e.file_type().unwrap().is_dir() {
                b"<dir>".to_vec()
            } else {
                std::fs::read(e.path()).unwrap_or_default()
            };
            (e.file_name().to_string_lossy().into_owned(), content)
        })
        .collect()
}

fn listing_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// No engine on PATH: anything that reached the engine would be exit 4.
fn export_without_engine(dir: &Path, args: &[&str]) -> std::process::Output {
    pgha()
        .env("PATH", dir.join("no-engine"))
        .current_dir(dir)
        .args(["export", "--engine", "podman"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn existing_targets_are_refused_before_the_engine_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("x.tar.zst"), b"the user's file").unwrap();
    let before = listing(d);
    let o = export_without_engine(d, &["--tag", "localhost/x:1", "-o", "x.tar.zst"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("x.tar.zst already exists"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(listing(d), before);

    // Only the checksum file, or only the manifest, of an earlier export.
    for side in ["y.tar.zst.sha256", "y.tar.zst.manifest.json"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(side), b"keep").unwrap();
        let before = listing(dir.path());
        let o = export_without_engine(dir.path(), &["--tag", "localhost/x:1", "-o", "y.tar.zst"]);
        assert_eq!(o.status.code(), Some(2), "{side}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("{side} already exists")),
            "{}",
            stderr(&o)
        );
        assert_eq!(listing(dir.path()), before, "{side}");
    }

    // The default name derived from the tag is checked the same way.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db_16.tar.zst"), b"keep").unwrap();
    let o = export_without_engine(dir.path(), &["--tag", "ghcr.io/acme/db:16"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read(dir.path().join("db_16.tar.zst")).unwrap(), b"keep");

    // A symlink at the target is an existing target too; what it points to is untouched.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("real"), b"keep").unwrap();
    std::os::unix::fs::symlink("real", dir.path().join("link.tar")).unwrap();
    let o = export_without_engine(dir.path(), &["--tag", "localhost/x:1", "-o", "link.tar"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read(dir.path().join("real")).unwrap(), b"keep");
}

#[test]
fn impossible_targets_are_refused_even_with_force_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("exports")).unwrap();
    std::fs::create_dir(d.join("z.tar.sha256")).unwrap();
    std::fs::write(d.join("z.tar"), b"keep").unwrap();
    let before = listing(d);
    for (args, says) in [
        (vec!["-o", "exports"], "exports: it is a directory"),
        (vec!["-o", "exports/"], "it names a directory"),
        (vec!["-o", "z.tar"], "z.tar.sha256: it is a directory"),
        (
            vec!["-o", "missing/x.tar"],
            "the directory missing does not exist",
        ),
        (vec!["-o", "/dev/null"], "it is not a regular file"),
    ] {
        let mut a = vec!["--tag", "localhost/x:1", "--force"];
        a.extend(args.iter().copied());
        let o = export_without_engine(d, &a);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("hint: give -o a file name"), "{}", stderr(&o));
        assert_eq!(listing(d), before, "{args:?}");
        assert!(listing(&d.join("exports")).is_empty());
    }
}

#[test]
fn a_malformed_tag_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    for tag in ["Supabase:v1", "supabase patroni:v1", "x:", "x@sha256:123", "a//b"] {
        let o = export_without_engine(dir.path(), &["--tag", tag]);
        assert_eq!(o.status.code(), Some(2), "{tag}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("is not a valid image reference"),
            "{}",
            stderr(&o)
        );
        assert!(
            stderr(&o).contains("hint: an image reference is"),
            "{}",
            stderr(&o)
        );
        assert!(listing(dir.path()).is_empty(), "{tag}");
    }
}

fn load(file: &Path) -> std::process::Output {
    pgha()
        .args(["load", "--engine", "podman"])
        .arg(file)
        .output()
        .unwrap()
}

fn with_checksum(file: &Path, bytes: &[u8]) {
    std::fs::write(file, bytes).unwrap();
    let name = file.file_name().unwrap().to_string_lossy();
    std::fs::write(
        format!("{}.sha256", file.display()),
        format!("{}  {name}\n", Sha256Digest::of(bytes)),
    )
    .unwrap();
}

fn a_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    // Incompressible, so that a cut stream still yields the first tar header.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..2_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "manifest.json", &data[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn load_refuses_what_is_not_an_image_archive_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // gzip of something that is not a tar.
    let f = d.join("notes.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&b"just some text, not a tar\n".repeat(100)).unwrap();
    with_checksum(&f, &gz.finish().unwrap());
    let o = load(&f);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("gzip data is not a tar archive"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("hint: load takes a file written by `pgha-image export`"),
        "{}",
        stderr(&o)
    );

    // A zstd stream cut short (its checksum made from the cut file).
    let f = d.join("cut.tar.zst");
    let full = zstd::encode_all(&a_tar()[..], 1).unwrap();
    with_checksum(&f, &full[..full.len() / 2]);
    let o = load(&f);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("ends early or is damaged"), "{}", stderr(&o));

    // Random bytes.
    let f = d.join("random.bin");
    with_checksum(&f, &[0x42u8; 4096]);
    let o = load(&f);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not an image archive"), "{}", stderr(&o));
}

#[test]
fn load_refuses_sidecars_that_are_not_the_tools_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = d.join("x.tar");
    with_checksum(&f, &a_tar());

    // A manifest.json of another tool.
    std::fs::write(
        d.join("x.tar.manifest.json"),
        br#"[{"Config":"abc.json","RepoTags":["x:1"]}]"#,
    )
    .unwrap();
    let o = load(&f);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not a pgha-image export manifest"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("nothing was loaded"), "{}", stderr(&o));
    std::fs::remove_file(d.join("x.tar.manifest.json")).unwrap();

    // FILE.sha256 that is a directory.
    std::fs::remove_file(d.join("x.tar.sha256")).unwrap();
    std::fs::create_dir(d.join("x.tar.sha256")).unwrap();
    let o = load(&f);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("it is a directory"), "{}", stderr(&o));

    // Loading a directory.
    let o = load(d);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// A tmpfs of `size` mounted at `dir/name`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, name: &str, size: &str) -> Self {
        common::prereq::require_root();
        let p = dir.join(name);
        std::fs::create_dir(&p).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs failed (the test needs root)");
        Tmpfs(p)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "slow tier: needs root (mounts a tmpfs)"]
fn a_full_disk_or_read_only_target_leaves_nothing_behind_and_force_replaces() {
    let _engine = images::engine_lock();
    let image = images::debian_base();
    let dir = tempfile::tempdir().unwrap();
    let var_tmp_before = listing_names(Path::new("/var/tmp"));

    // 20 MB for an image of ~200 MB: the engine's scratch copy or the export fills it.
    let small = Tmpfs::mount(dir.path(), "small", "20m");
    let o = pgha()
        .args(["export", "--engine", "podman", "--tag", &image, "-o"])
        .arg(small.0.join("x.tar.zst"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).to_lowercase().contains("no space left on device"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("hint:"), "{}", stderr(&o));
    assert!(
        listing(&small.0).is_empty(),
        "left behind: {:?}",
        listing(&small.0).keys()
    );

    // Read-only: refused before the engine saves anything.
    let ro = Tmpfs::mount(dir.path(), "ro", "1m");
    std::fs::write(ro.0.join("keep"), b"keep").unwrap();
    let st = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&ro.0)
        .status()
        .unwrap();
    assert!(st.success());
    let o = pgha()
        .args(["export", "--engine", "podman", "--tag", &image, "-o"])
        .arg(ro.0.join("x.tar.zst"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("Read-only file system"), "{}", stderr(&o));
    assert!(stderr(&o).contains("hint: give -o a file name"), "{}", stderr(&o));
    assert_eq!(listing(&ro.0).keys().collect::<Vec<_>>(), ["keep"]);

    // --force replaces an earlier export and its sidecars; the result checks out.
    let d = dir.path();
    for f in ["x.tar.zst", "x.tar.zst.sha256", "x.tar.zst.manifest.json"] {
        std::fs::write(d.join(f), b"old").unwrap();
    }
    let o = pgha()
        .args(["export", "--engine", "podman", "--force", "--tag", &image, "-o"])
        .arg(d.join("x.tar.zst"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let check = std::process::Command::new("sha256sum")
        .args(["-c", "x.tar.zst.sha256"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let names: Vec<String> = listing(d).into_keys().filter(|n| n.starts_with('.')).collect();
    assert!(names.is_empty(), "left behind: {names:?}");

    // No copy of Podman's in /var/tmp (what other users of the shared engine
    // create and remove again within seconds is not counted).
    let podmans = || -> Vec<String> {
        listing_names(Path::new("/var/tmp"))
            .into_iter()
            .filter(|n| !var_tmp_before.contains(n))
            .filter(|n| n.starts_with("podman") || n.chars().all(|c| c.is_ascii_digit()))
            .collect()
    };
    let start = std::time::Instant::now();
    while !podmans().is_empty() && start.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(podmans().is_empty(), "new in /var/tmp: {:?}", podmans());
}

//! The promise of `generate --out DIR` and `build --out DIR`: a directory is
//! replaced only when the tool can prove it is its own earlier output, file
//! by file; anything else is refused with exit 2, a hint, and nothing
//! touched. Mistakes in the request (a malformed tag) are refused before any
//! work. Real processes; no engine is needed (pg_cron is base-provided, so
//! nothing is fetched or built).

mod common;

use assert_cmd::Command;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_pgha-bootstrap");

fn generate(out: &Path, cache: &Path) -> std::process::Output {
    Command::cargo_bin("pgha-image")
        .unwrap()
        .args(["--progress", "plain", "generate", "--no-probe", "--out"])
        .arg(out)
        .args([
            "--base-preload",
            "pg_stat_statements",
            "--base-image",
            "localhost/pgha-test/spilo-standin:15",
            "--pg",
            "15",
            "--extensions",
            "pg_cron",
            "--bootstrap-bin",
            BOOTSTRAP,
            "--cache-dir",
        ])
        .arg(cache)
        .output()
        .unwrap()
}

/// Every file and symlink under `dir` (relative path → content or link target).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(root.join(rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.insert(r.clone(), b"<dir>".to_vec());
                walk(root, &r, out);
            } else if ft.is_symlink() {
                let t = std::fs::read_link(e.path()).unwrap();
                out.insert(r, format!("-> {}", t.display()).into_bytes());
            } else {
                out.insert(r, std::fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, Path::new(""), &mut out);
    out
}

/// Exit 2, the message names the directory and the offending file, the hint
/// says what to do, and nothing under `parent` changed.
fn assert_refused(o: &std::process::Output, parent: &Path, before: &BTreeMap<PathBuf, Vec<u8>>, names: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be replaced"), "{stderr}");
    assert!(stderr.contains(names), "{stderr}");
    assert!(
        stderr.contains("hint: choose a new or empty --out directory"),
        "{stderr}"
    );
    let after = tree(parent);
    assert!(
        &after == before,
        "files changed: {:?}",
        after
            .keys()
            .filter(|k| before.get(*k) != after.get(*k))
            .collect::<Vec<_>>()
    );
}

#[test]
fn generate_replaces_only_an_unchanged_earlier_output() {
    let dir = tempfile::tempdir().unwrap();
    let (out, cache) = (dir.path().join("out"), dir.path().join("cache"));
    let first = generate(&out, &cache);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(out.join(".pgha-output.json").is_file());

    // Unchanged: replaced (exit 0), no temporary sibling left.
    let again = generate(&out, &cache);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let siblings: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!siblings.iter().any(|n| n.starts_with('.')), "{siblings:?}");

    // A file the user added to the output.
    std::fs::write(out.join("context/notes.txt"), b"my notes").unwrap();
    let before = tree(dir.path());
    assert_refused(
        &generate(&out, &cache),
        dir.path(),
        &before,
        "context/notes.txt is not a file generate wrote",
    );
    std::fs::remove_file(out.join("context/notes.txt")).unwrap();

    // A file of the output the user edited.
    let dockerfile = out.join("context/Dockerfile");
    let mut text = std::fs::read(&dockerfile).unwrap();
    text.extend_from_slice(b"# my change\n");
    std::fs::write(&dockerfile, &text).unwrap();
    let before = tree(dir.path());
    assert_refused(
        &generate(&out, &cache),
        dir.path(),
        &before,
        "context/Dockerfile was changed",
    );
}

#[test]
fn a_directory_that_only_looks_like_an_output_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (real, cache) = (dir.path().join("real"), dir.path().join("cache"));
    assert!(generate(&real, &cache).status.success());

    // The user's directory with a manifest.json copied from an output.
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::copy(real.join("manifest.json"), mine.join("manifest.json")).unwrap();
    std::fs::write(mine.join("thesis.tex"), b"\\section{keep}").unwrap();
    let before = tree(dir.path());
    assert_refused(
        &generate(&mine, &cache),
        dir.path(),
        &before,
        "has no .pgha-output.json",
    );

    // Even with the record copied too: its other files are not listed.
    std::fs::copy(real.join(".pgha-output.json"), mine.join(".pgha-output.json")).unwrap();
    let before = tree(dir.path());
    assert_refused(
        &generate(&mine, &cache),
        dir.path(),
        &before,
        "is not a file generate wrote",
    );
}

#[test]
fn symlinks_files_and_dot_are_refused_as_output() {
    let dir = tempfile::tempdir().unwrap();
    let (real, cache) = (dir.path().join("real"), dir.path().join("cache"));
    assert!(generate(&real, &cache).status.success());

    // A symlink to an output: the link would be replaced, not what it points to.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let before = tree(dir.path());
    assert_refused(&generate(&link, &cache), dir.path(), &before, "symbolic link");

    // A symlink inside an output, to a user file.
    std::fs::write(dir.path().join("precious"), b"keep").unwrap();
    std::os::unix::fs::symlink(dir.path().join("precious"), real.join("context/extra")).unwrap();
    let before = tree(dir.path());
    assert_refused(
        &generate(&real, &cache),
        dir.path(),
        &before,
        "context/extra is not a regular file",
    );
    std::fs::remove_file(real.join("context/extra")).unwrap();

    // A file as --out.
    let file = dir.path().join("file.txt");
    std::fs::write(&file, b"keep").unwrap();
    let before = tree(dir.path());
    assert_refused(&generate(&file, &cache), dir.path(), &before, "not a directory");

    // `.` (the working directory holds the user's files).
    let o = Command::cargo_bin("pgha-image")
        .unwrap()
        .current_dir(dir.path())
        .args([
            "generate",
            "--no-probe",
            "--out",
            ".",
            "--extensions",
            "pg_cron",
            "--bootstrap-bin",
            BOOTSTRAP,
        ])
        .output()
        .unwrap();
    assert_refused(&o, dir.path(), &before, "must end in a directory name");
}

#[test]
#[ignore = "slow tier: needs root (mounts a tmpfs)"]
fn a_read_only_place_is_an_error_that_leaves_the_old_output() {
    common::prereq::require_root();
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("ro");
    std::fs::create_dir(&mnt).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=400m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs failed (needs root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let cache = dir.path().join("cache");
    let out = mnt.join("out");
    assert!(generate(&out, &cache).status.success());
    let st = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    let before = tree(&mnt);
    let o = generate(&out, &cache);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert!(
        stderr.contains("hint: check that the output directory is writable"),
        "{stderr}"
    );
    assert!(tree(&mnt) == before, "the read-only output changed");
}

#[test]
fn build_with_a_malformed_tag_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for tag in [
        "Supabase-Patroni:v1",
        "supabase patroni:v1",
        "supabase:",
        "ghcr.io/acme/x:-1",
    ] {
        // No engine on PATH: reaching the engine would be exit 4, not 2.
        let o = Command::cargo_bin("pgha-image")
            .unwrap()
            .env("PATH", dir.path())
            .args(["build", "--tag", tag, "--out"])
            .arg(&out)
            .args(["--extensions", "pg_cron", "--bootstrap-bin", BOOTSTRAP])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{tag}: {stderr}");
        assert!(
            stderr.contains("is not a valid image reference"),
            "{tag}: {stderr}"
        );
        assert!(stderr.contains("hint: an image reference is"), "{tag}: {stderr}");
        assert!(!out.exists(), "{tag}: work was done");
    }
}

#[test]
fn build_with_a_malformed_network_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for (network, says) in [
        ("--network=host none", "it contains ' '"),
        ("--network=-x", "it starts with '-'"),
        ("--network=", "it is empty"),
        ("--network=host;reboot", "it contains ';'"),
    ] {
        // No engine on PATH: reaching the engine would be exit 4, not 2.
        let o = Command::cargo_bin("pgha-image")
            .unwrap()
            .env("PATH", dir.path())
            .args(["build", "--tag", "supabase-patroni:v1", network, "--out"])
            .arg(&out)
            .args(["--extensions", "pg_cron", "--bootstrap-bin", BOOTSTRAP])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{network}: {stderr}");
        assert!(
            stderr.contains("is not a network mode or name") && stderr.contains(says),
            "{network}: {stderr}"
        );
        assert!(stderr.contains("hint: give a mode"), "{network}: {stderr}");
        assert!(!out.exists(), "{network}: work was done");
    }
}

//! An interrupted export leaves nothing that looks finished: neither when the
//! process is killed, nor when the engine's save fails half-way. Stopped by
//! SIGINT/SIGTERM or by the engine's failure, it leaves nothing at all: not
//! its temporary file, not the engine's temporary copy of the image (Podman
//! writes ~the image's size to its image_copy_tmp_dir, /var/tmp by default).

mod common;

use common::images;
use common::wait::{process_running_with, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn entries(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().map(|m| m.len()).unwrap_or(0),
            )
        })
        .collect();
    v.sort();
    v
}

/// Wait until the export's temporary file holds `min` bytes; panic if the
/// export ends first or nothing happens within the timeout.
fn wait_for_partial(dir: &Path, child: &mut std::process::Child, min: u64) {
    wait_until(
        "a partial file",
        Duration::from_secs(120),
        Duration::from_millis(50),
        || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "export ended ({status}) before it could be interrupted: {:?}",
                    entries(dir)
                );
            }
            entries(dir)
                .iter()
                .any(|(n, len)| n.ends_with(".partial") && *len >= min)
                .then_some(())
        },
        || format!("{:?}", entries(dir)),
    )
}

fn assert_nothing_final(dir: &Path, name: &str) {
    for f in [
        name.to_string(),
        format!("{name}.sha256"),
        format!("{name}.manifest.json"),
    ] {
        assert!(
            !dir.join(&f).exists(),
            "{f} exists after an interrupted export: {:?}",
            entries(dir)
        );
    }
    // Whatever is left is a hidden temporary name (the file, or the engine's scratch directory).
    for (n, _) in entries(dir) {
        assert!(
            n.starts_with(&format!(".{name}.")) && (n.ends_with(".partial") || n.contains(".pgha-save-")),
            "unexpected {n}"
        );
    }
}

/// Entries of /var/tmp (where Podman puts its temporary image copy by default).
fn var_tmp() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/var/tmp")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// No temporary image copy of Podman's (`podmanNNN`, or a bare number as
/// Podman 4.3 names them) stays in /var/tmp. Podman storage is shared with
/// other users of the machine, so entries that a concurrent process removes
/// again within a few seconds are not counted.
fn assert_no_new_in_var_tmp(before: &[String], what: &str) {
    let podmans = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| !before.contains(n))
            .filter(|n| n.starts_with("podman") || n.chars().all(|c| c.is_ascii_digit()))
            .collect()
    };
    let start = Instant::now();
    let mut new = podmans(var_tmp());
    while !new.is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(500));
        new = podmans(var_tmp());
    }
    assert!(new.is_empty(), "{what}: new in /var/tmp: {new:?}");
}

/// While the export runs, the engine's temporary copy grows in the export's
/// private directory (next to the output), not in /var/tmp.
fn assert_engine_copy_is_private(dir: &Path, what: &str) {
    let start = Instant::now();
    loop {
        let scratch: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".pgha-save-"))
            .collect();
        assert!(scratch.len() <= 1, "{what}: {:?}", entries(dir));
        // Anything of the engine's but our containers.conf (Podman 4.3 writes
        // `<number>` and `pipeDir<number>` there).
        let copy = scratch
            .first()
            .and_then(|s| std::fs::read_dir(s).ok())
            .is_some_and(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .any(|n| n != "containers.conf" && n != "engine-tmp")
            });
        if copy {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: the engine's copy never appeared in a private directory: {:?}",
            entries(dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn killing_the_export_leaves_no_final_file() {
    let _engine = images::engine_lock();
    // The stand-in is large (~800 MB uncompressed): the export takes seconds.
    let image = images::spilo_standin();
    let var_tmp_before = var_tmp();
    let dir = tempfile::tempdir().unwrap();
    let name = "killed.tar.zst";
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgha-image"))
        .args([
            "--progress",
            "quiet",
            "export",
            "--engine",
            "podman",
            "--tag",
            &image,
            "-o",
        ])
        .arg(dir.path().join(name))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_partial(dir.path(), &mut child, 1 << 20);
    child.kill().unwrap();
    child.wait().unwrap();
    // The orphaned `podman save` (its CONTAINERS_CONF is in the export's
    // scratch directory) notices its closed pipe and ends.
    let scratch = format!("{}/.{name}.pgha-save-", dir.path().display());
    wait_until(
        "the orphaned engine's save ends",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || (!process_running_with(&scratch)).then_some(()),
        || format!("{:?}", entries(dir.path())),
    );
    assert_nothing_final(dir.path(), name);
    // Even killed outright, the engine's copy is not in /var/tmp (it may be in
    // the hidden scratch directory next to the file, which the user can see).
    assert_no_new_in_var_tmp(&var_tmp_before, "SIGKILL");

    // The next export to the same file removes what the killed one left (even
    // one that fails at once: the image here does not exist).
    let out = Command::new(env!("CARGO_BIN_EXE_pgha-image"))
        .args([
            "--progress",
            "quiet",
            "export",
            "--engine",
            "podman",
            "--tag",
            "localhost/pgha-test/no-such-image:0",
            "-o",
        ])
        .arg(dir.path().join(name))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        entries(dir.path()),
        Vec::<(String, u64)>::new(),
        "left after the next export"
    );
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn an_engine_failure_mid_save_leaves_no_file_at_all() {
    let _engine = images::engine_lock();
    let image = images::spilo_standin();
    let var_tmp_before = var_tmp();
    let mut api = images::docker_via_podman();
    let dir = tempfile::tempdir().unwrap();
    let name = "failed.tar.zst";
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgha-image"))
        .args([
            "--progress",
            "quiet",
            "export",
            "--engine",
            "docker",
            "--tag",
            &image,
            "-o",
        ])
        .arg(dir.path().join(name))
        .env("DOCKER_HOST", api.docker_host())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_partial(dir.path(), &mut child, 1 << 20);
    // The engine goes away in the middle of the save.
    api.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("docker save"), "{stderr}");
    assert_nothing_final(dir.path(), name);
    // The process survived, so it removed its temporary file too.
    assert_eq!(entries(dir.path()), Vec::<(String, u64)>::new());
    // Podman's API service keeps a docker save in /var/tmp/api.tarNNN (the
    // daemon's side, out of the client's reach) and leaves it when killed:
    // this test killed it, so it removes that copy.
    for n in var_tmp() {
        if n.starts_with("api.tar") && !var_tmp_before.contains(&n) {
            let _ = std::fs::remove_file(Path::new("/var/tmp").join(n));
        }
    }
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn sigterm_or_ctrl_c_stops_the_export_and_removes_its_temporary_file() {
    let _engine = images::engine_lock();
    let image = images::spilo_standin();
    for signal in ["TERM", "INT"] {
        let var_tmp_before = var_tmp();
        let dir = tempfile::tempdir().unwrap();
        let own_tmp = tempfile::tempdir().unwrap();
        let name = "stopped.tar.zst";
        let mut child = Command::new(env!("CARGO_BIN_EXE_pgha-image"))
            .args([
                "--progress",
                "quiet",
                "export",
                "--engine",
                "podman",
                "--tag",
                &image,
                "-o",
            ])
            .arg(dir.path().join(name))
            .env("TMPDIR", own_tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert_engine_copy_is_private(dir.path(), &format!("SIG{signal}"));
        wait_for_partial(dir.path(), &mut child, 1 << 20);
        // Only our process gets the signal (a terminal's Ctrl-C would reach podman too).
        let st = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "SIG{signal}: {stderr}");
        assert!(stderr.contains("stopped by a signal"), "SIG{signal}: {stderr}");
        assert_eq!(entries(dir.path()), Vec::<(String, u64)>::new(), "SIG{signal}");
        assert_eq!(
            std::fs::read_dir(own_tmp.path()).unwrap().count(),
            0,
            "SIG{signal}: $TMPDIR"
        );
        assert_no_new_in_var_tmp(&var_tmp_before, &format!("SIG{signal}"));
    }
}

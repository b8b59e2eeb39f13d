//! Eight real `pgha-image fetch` processes meeting one corrupted cache
//! entry at the same time: all must succeed, and the entry ends up repaired.
//! (Before the cache tolerated concurrent repair, about one run in 80 failed
//! with "cannot remove corrupted cache entry … No such file or directory".)

mod common;

use common::http::{Entry, Reply, Server, files_under, filler, sha256_hex, write_catalog};
use common::tarball::tar_gz;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PROCESSES: usize = 8;
/// Rounds of eight; bounded in time too (see below).
const ROUNDS: usize = 25;

#[test]
fn eight_fetches_repair_one_corrupted_entry_together() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start();
    // Big enough that hashing the entry takes a while, so that the
    // processes overlap on the corrupted file (the race window).
    let body = tar_gz("a-1.0", &[("blob", &filler(2 << 20, 1))]);
    server.route("/a.tar.gz", Reply::Bytes(body.clone()));
    let sha = sha256_hex(&body);
    let catalog = write_catalog(
        &tmp.path().join("catalog"),
        &[Entry {
            name: "a",
            version: "1.0",
            url: server.url("/a.tar.gz"),
            sha256: sha.clone(),
        }],
    );
    let cache = tmp.path().join("cache");
    let entry = cache.join("sha256").join(&sha);
    let bin = assert_cmd::cargo::cargo_bin("pgha-image");
    let run = || {
        Command::new(&bin)
            .env_remove("PGHA_CATALOG")
            .env_remove("PGHA_CACHE_DIR")
            .env_remove("PGHA_MIRROR")
            .arg("--catalog")
            .arg(&catalog)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--progress", "plain", "fetch", "--allow-http", "--retries", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    assert!(run().wait_with_output().unwrap().status.success());
    assert!(entry.is_file());

    let started = Instant::now();
    let mut overlapped = 0;
    let mut rounds = 0;
    for round in 0..ROUNDS {
        // Same size, other bytes.
        let mut bad = body.clone();
        bad[body.len() / 2] ^= 0xff;
        std::fs::write(&entry, &bad).unwrap();
        let children: Vec<_> = (0..PROCESSES).map(|_| run()).collect();
        let mut saw_corrupt = 0;
        for c in children {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "round {round}: a fetch failed (exit {:?}):\n{err}",
                out.status.code()
            );
            if err.contains("was corrupted") {
                saw_corrupt += 1;
            }
        }
        assert!(saw_corrupt >= 1, "round {round}: nobody saw the corruption");
        if saw_corrupt > 1 {
            overlapped += 1;
        }
        assert_eq!(
            sha256_hex(&std::fs::read(&entry).unwrap()),
            sha,
            "round {round}: entry not repaired"
        );
        let left = files_under(&cache.join("tmp"));
        assert!(left.is_empty(), "round {round}: left behind {left:?}");
        rounds += 1;
        // Bounded: a slow machine runs fewer rounds, never much more than 45 s.
        if started.elapsed() > Duration::from_secs(45) {
            break;
        }
    }
    eprintln!(
        "{rounds} rounds in {:?}; {overlapped} had several processes repairing at once",
        started.elapsed()
    );
    // The race was really exercised.
    assert!(
        overlapped >= 1,
        "no round of {rounds} overlapped: the race was not exercised"
    );
}

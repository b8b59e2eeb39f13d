//! `pgha-image verify` against hostile images (issue 19): images derived
//! from the full-set image (tests/common/images.rs) under real Podman, the
//! real CLI, asserting the exit code, the check or message naming the
//! problem, that the run ends (a hang fails the test by its process time
//! limit), and that nothing is left behind.
//!
//! - a build manifest that is a link to /dev/zero: exit 2 at once, naming
//!   the file (it used to read until the kernel killed verify);
//! - a smoke test of `SELECT pg_sleep(3600)` in the manifest: that
//!   extension's check fails on the statement timeout, the run ends;
//! - a PEM key 17 MB into a 17.5 MB file: found (the scan used to skip
//!   files over 16 MiB);
//! - decision: a `NAME=value` assignment inside a layer file is not a
//!   finding (the scan looks for secrets with a recognisable shape in files,
//!   and for assignments only in the environment, labels and history, where
//!   they are set on purpose); the same assignment in ENV is;
//! - decision: a YAML alias bomb in SPILO_CONFIGURATION is refused by the
//!   image's merge script (at most 100 000 values expanded, 1 MiB of text).

mod common;

use common::images::{self, ImageLock, engine_lock, image_exists, podman_cmd, run};
use std::process::Output;
use std::time::{Duration, Instant};

const TOOL: &str = env!("CARGO_BIN_EXE_pgha-image");

/// An image derived from `from` by a few Containerfile lines, cached by them.
fn derived(_engine: &ImageLock, from: &str, name: &str, lines: &str) -> String {
    let mut h = pgha_image::hash::Hasher::new();
    h.update(images::image_id(from).as_bytes());
    h.update(lines.as_bytes());
    let tag = format!(
        "localhost/pgha-test/fault-verify-{name}:{}",
        &h.finish().to_hex()[..12]
    );
    if !image_exists(&tag) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Containerfile"), format!("FROM {from}\n{lines}")).unwrap();
        run(podman_cmd().args(["build", "-q", "-t", &tag]).arg(dir.path()));
    }
    tag
}

fn verify(image: &str) -> Output {
    assert_cmd::Command::new(TOOL)
        .args([
            "--progress",
            "plain",
            "verify",
            "--engine",
            "podman",
            "--json",
            image,
        ])
        // Far above a healthy run (and the 120 s bound of one SQL call); a
        // hang is what this limit catches.
        .timeout(Duration::from_secs(900))
        .output()
        .unwrap()
}

fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report}"))
}

/// No container, network or volume of the run remains.
fn nothing_left(run_name: &str) {
    let label = format!("label=io.pgha.verify.run={run_name}");
    for args in [
        vec!["ps", "-a", "-q", "--filter", &label],
        vec!["network", "ls", "-q", "--filter", &label],
        vec!["volume", "ls", "-q", "--filter", &label],
    ] {
        let left = run(podman_cmd().args(&args));
        assert!(left.trim().is_empty(), "{args:?} of {run_name}: {left}");
    }
}

const PEM_LINES: &str = "'-----BEGIN OPENSSH PRIVATE KEY-----' \
    'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW' \
    'QyNTUxOQAAACDd1hJ3DkN7Z1bV2m8m0s0pKfV3r2p6bFhQ2kq0x7q8lwAAAJg3w4a9N8OG' \
    'vQAAAAtzc2gtZWQyNTUxOQAAACDd1hJ3DkN7Z1bV2m8m0s0pKfV3r2p6bFhQ2kq0x7q8lw' \
    '-----END OPENSSH PRIVATE KEY-----'";

#[test]
#[ignore = "slow tier: needs root and Podman (builds the full-set image)"]
fn hostile_manifests_and_big_files_are_bounded_and_found() {
    let lock = engine_lock();
    let full = images::full_set_image(&lock);

    // 1. The manifest is a link to /dev/zero.
    let zero = derived(
        &lock,
        &full,
        "manifest-zero",
        "RUN ln -sf /dev/zero /etc/pgha/build-manifest.json\n",
    );
    let o = verify(&zero);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains(
            "has no readable /etc/pgha/build-manifest.json (the file is missing or not a regular file)"
        ),
        "{e}"
    );
    assert!(e.contains("hint:"), "{e}");
    assert!(o.stdout.is_empty(), "exit 2 writes no report");

    // 2. + 3. + the decision, in one run.
    let lines = format!(
        "RUN python3 -c \"import json; p = '/etc/pgha/build-manifest.json'; m = json.load(open(p)); \
         e = [x for x in m['extensions'] if x['name'] == 'vector'][0]; \
         e['smoke'] = {{'sql': 'SELECT pg_sleep(3600);', 'expect': ''}}; json.dump(m, open(p, 'w'))\"\n\
         RUN mkdir -p /opt/i19 && (head -c 17000000 /dev/zero | tr '\\0' '.'; printf '%s\\n' {PEM_LINES}; \
         head -c 500000 /dev/zero | tr '\\0' '.') > /opt/i19/big.bin\n\
         RUN printf 'DB_PASSWORD=i19-plain-assignment-in-a-file\\n' > /opt/i19/app.env\n"
    );
    let hostile = derived(&lock, &full, "sleep-bigkey", &lines);
    let o = verify(&hostile);
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(3), "{e}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let vector = check(&report, "extension.vector");
    assert_eq!(vector["outcome"], "failed", "{vector}");
    let text = format!("{} {}", vector["message"], vector["details"]);
    assert!(text.contains("statement timeout"), "{text}");
    let secrets = check(&report, "hygiene.secrets");
    assert_eq!(secrets["outcome"], "failed", "{secrets}");
    let text = format!("{} {}", secrets["message"], secrets["details"]);
    assert!(text.contains("/opt/i19/big.bin: a private key (PEM)"), "{text}");
    assert!(
        !text.contains("app.env"),
        "decision: assignments in files are not findings: {text}"
    );
    assert!(!text.contains("i19-plain-assignment") && !e.contains("i19-plain-assignment"));
    // The other extensions were checked as usual.
    assert_eq!(check(&report, "extension.pgsodium")["outcome"], "passed");
    nothing_left(report["run"].as_str().unwrap());
}

/// Decision: the image's merge script (run by /launch.sh before Spilo)
/// bounds SPILO_CONFIGURATION: a YAML alias bomb of a few hundred bytes
/// (10^9 values expanded), or a structure that holds itself, is refused
/// before it is merged or printed. The container stops at once with exit
/// status 1 and says why and what to do; it does not grow for ever.
#[test]
#[ignore = "slow tier: needs root and Podman (builds the full-set image)"]
fn a_yaml_alias_bomb_in_spilo_configuration_is_refused_by_the_image() {
    let lock = engine_lock();
    let full = images::full_set_image(&lock);
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (i, n) in ('b'..='i').enumerate() {
        let prev = (b'a' + i as u8) as char;
        bomb.push_str(&format!(
            "{n}: &{n} [{}]\n",
            vec![format!("*{prev}"); 10].join(", ")
        ));
    }
    for (case, conf) in [
        ("an alias bomb", bomb.as_str()),
        ("a list holding itself", "x: &x [*x]\n"),
    ] {
        let started = Instant::now();
        let o = podman_cmd()
            .args(["run", "--rm", "--memory", "512m", "-e"])
            .arg(format!("SPILO_CONFIGURATION={conf}"))
            .arg(&full)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{case}: {e}");
        assert!(
            e.contains(
                "SPILO_CONFIGURATION holds more than 100000 values once its YAML aliases are expanded"
            ),
            "{case}: {e}"
        );
        assert!(
            e.contains("write the configuration out without aliases"),
            "{case}: {e}"
        );
        assert!(e.contains("not starting"), "{case}: {e}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{case}: {:?}",
            started.elapsed()
        );
    }
}

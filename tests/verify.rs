//! `pgha-image verify` against real images under real Podman.
//!
//! The image: the full-set image of `tests/common/images.rs` (Supabase's
//! default C/SQL set plus supabase_vault and pgtap, from the real upstream
//! archives, on the Spilo stand-in), shared with the other tests by its
//! context digest. The broken images derive from it with small `podman
//! build`s (cached by their inputs). Every verify run here is one engine run
//! of the real CLI with many assertions:
//! - the full-set image passes with one member (every extension's smoke from
//!   its manifest; JUnit validated by xmllint against
//!   tests/support/junit/junit.xsd; JSON; nothing left behind) and with three
//!   (replicas, failover within the TTL, vault secret, rejoin);
//! - broken images fail with the right check named: a missing extension
//!   library, a compiler left in and a secret planted in a layer (one image,
//!   three faults, three checks), a pgha-bootstrap that exits 1 (with
//!   --keep: the printed removal commands remove everything), a member
//!   without its key file;
//! - SIGTERM, SIGINT and SIGKILL mid-run leave no container, network or volume;
//! - bad input (the bare stand-in, a missing image, --members 2) exits 2, a
//!   missing engine 4.
//!
//! The tests take the engine lock for as long as they use the image (as
//! `images::full_set_image` asks), which also runs them one at a time.

mod common;

use common::images::{self, ImageLock, image_exists, podman_cmd, run};
use common::prereq::require_program;
use common::wait::{process_running_with, wait_until};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOOL: &str = env!("CARGO_BIN_EXE_pgha-image");
/// The planted secret: shaped like an AWS access key id (not AWS's EXAMPLE one).
const PLANTED: &str = "AKIAQ3EGRXVMPLANTED7";

fn digest_of(parts: &[&[u8]]) -> String {
    let mut h = pgha_image::hash::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finish().to_hex()[..12].to_string()
}

/// An image derived from `from` by a few Containerfile lines, cached by them.
fn derived(_engine: &ImageLock, from: &str, name: &str, lines: &str) -> String {
    let tag = format!(
        "localhost/pgha-test/verify-{name}:{}",
        digest_of(&[images::image_id(from).as_bytes(), lines.as_bytes()])
    );
    if !image_exists(&tag) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Containerfile"), format!("FROM {from}\n{lines}")).unwrap();
        run(podman_cmd().args(["build", "-q", "-t", &tag]).arg(dir.path()));
    }
    tag
}

struct Outcome {
    code: Option<i32>,
    report: serde_json::Value,
    stderr: String,
}

impl Outcome {
    fn check(&self, id: &str) -> &serde_json::Value {
        self.report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id} in the report:\n{}", self.stderr))
    }

    fn outcome(&self, id: &str) -> String {
        self.check(id)["outcome"].as_str().unwrap().to_string()
    }

    /// The ids of the checks with this outcome.
    fn with(&self, outcome: &str) -> Vec<String> {
        self.report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["outcome"] == outcome)
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn text(&self, id: &str) -> String {
        let c = self.check(id);
        format!("{} {}", c["message"], c["details"])
    }
}

fn verify(image: &str, extra: &[&str]) -> Outcome {
    let o = verify_raw(image, extra);
    assert_nothing_left(o.report["run"].as_str().unwrap());
    o
}

fn verify_raw(image: &str, extra: &[&str]) -> Outcome {
    let out = Command::new(TOOL)
        .args([
            "--progress",
            "plain",
            "verify",
            "--engine",
            "podman",
            "--json",
            image,
        ])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{stderr}"));
    Outcome {
        code: out.status.code(),
        report,
        stderr,
    }
}

/// No container, network or volume of the run remains.
fn assert_nothing_left(run_name: &str) {
    let label = format!("label=io.pgha.verify.run={run_name}");
    for (what, args) in [
        ("containers", vec!["ps", "-a", "-q", "--filter", &label]),
        ("networks", vec!["network", "ls", "-q", "--filter", &label]),
        ("volumes", vec!["volume", "ls", "-q", "--filter", &label]),
    ] {
        let left = run(podman_cmd().args(&args));
        assert!(left.trim().is_empty(), "{what} of {run_name} left behind: {left}");
    }
    let names = run(podman_cmd().args(["ps", "-a", "--format", "{{.Names}}"]));
    assert!(
        !names.contains(run_name),
        "containers of {run_name} left: {names}"
    );
    let vols = run(podman_cmd().args(["volume", "ls", "--format", "{{.Name}}"]));
    assert!(!vols.contains(run_name), "volumes of {run_name} left: {vols}");
}

fn ids(o: &Outcome) -> Vec<String> {
    o.report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// The checks every one-member run of the full-set image reports.
fn one_member_ids() -> Vec<String> {
    let mut v: Vec<String> = [
        "image.labels",
        "image.left-out",
        "hygiene.build-tools",
        "hygiene.apt",
        "hygiene.secrets",
        "bootstrap.binary",
        "cluster.leader",
        "bootstrap.once",
        "bootstrap.check",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(images::FULL_SET.split(',').map(|e| format!("extension.{e}")));
    v.extend(["server.preloads", "server.settings", "pgsodium.key"].map(String::from));
    v
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn full_set_one_member_passes_with_junit_and_json() {
    let engine = images::engine_lock();
    let image = images::full_set_image(&engine);
    let t = Instant::now();
    let xmllint = require_program("xmllint", "libxml2-utils", &[]);
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("reports/verify.xml");
    std::fs::create_dir_all(junit.parent().unwrap()).unwrap();
    let o = verify(&image, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(
        o.with("failed").is_empty() && o.with("skipped").is_empty(),
        "{}",
        o.stderr
    );
    let mut want = one_member_ids();
    let mut got = ids(&o);
    want.sort();
    got.sort();
    assert_eq!(got, want, "one result per check, every extension of the manifest");
    // Every extension's smoke from the manifest ran and matched.
    for e in images::FULL_SET.split(',') {
        let text = o.text(&format!("extension.{e}"));
        assert!(text.contains("smoke test passed"), "{e}: {text}");
    }
    assert!(
        o.text("bootstrap.once").contains("migrations applied once"),
        "{}",
        o.text("bootstrap.once")
    );
    assert!(o.text("pgsodium.key").contains("matches the mounted root key"));
    assert!(
        o.text("server.preloads").contains("pgsodium"),
        "{}",
        o.text("server.preloads")
    );
    // The settings came from the image itself (its launch wrapper), not from verify.
    assert!(
        o.stderr.contains("server settings: the image's own defaults"),
        "{}",
        o.stderr
    );
    assert_eq!(o.report["members"], 1);
    assert!(o.report["image_id"].as_str().unwrap().starts_with("sha256:"));
    // A progress line per check on stderr.
    for id in ids(&o) {
        assert!(
            o.stderr.contains(&format!(" {id} (")),
            "no progress line for {id}:\n{}",
            o.stderr
        );
    }
    // No secret of the run is printed.
    assert!(!o.stderr.contains("PGPASSWORD_SUPERUSER="), "{}", o.stderr);

    // The JUnit file validates and lists every check with its time.
    let x = Command::new(&xmllint)
        .args(["--noout", "--schema"])
        .arg(images::support_dir().join("junit/junit.xsd"))
        .arg(&junit)
        .output()
        .unwrap();
    assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
    let xml = std::fs::read_to_string(&junit).unwrap();
    for id in ids(&o) {
        assert!(
            xml.contains(&format!("<testcase name=\"{id}: ")),
            "{id} not in {xml}"
        );
    }
    assert!(
        xml.contains(&format!("tests=\"{}\" failures=\"0\"", ids(&o).len())),
        "{xml}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(junit.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "only the report, no temporary file");
    eprintln!("verify, one member: {:.1}s", t.elapsed().as_secs_f64());
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn full_set_three_members_pass_with_a_failover() {
    let engine = images::engine_lock();
    let image = images::full_set_image(&engine);
    let t = Instant::now();
    let o = verify(&image, &["--members", "3", "--timeout", "180"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(
        o.with("failed").is_empty() && o.with("skipped").is_empty(),
        "{}",
        o.stderr
    );
    let mut want = one_member_ids();
    want.extend(
        [
            "cluster.replicas",
            "failover.leader",
            "failover.on-role-change",
            "failover.data",
            "failover.rejoin",
        ]
        .map(String::from),
    );
    let mut got = ids(&o);
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(
        o.text("failover.data").contains("vault secret read back"),
        "{}",
        o.text("failover.data")
    );
    assert!(o.text("failover.on-role-change").contains("ledger unchanged"));
    assert!(
        o.text("failover.leader").contains("TTL 30s"),
        "{}",
        o.text("failover.leader")
    );
    assert!(
        o.text("cluster.replicas").contains("2 replicas streaming"),
        "{}",
        o.text("cluster.replicas")
    );
    assert_eq!(o.report["members"], 3);
    eprintln!("verify, three members: {:.1}s", t.elapsed().as_secs_f64());
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn broken_images_fail_the_right_check() {
    let engine = images::engine_lock();
    let good = images::full_set_image(&engine);
    let t = Instant::now();

    // Three independent faults in one image; each names its own check, the rest pass.
    let faults = derived(
        &engine,
        &good,
        "broken-faults",
        &format!(
            "RUN rm /usr/lib/postgresql/15/lib/vector.so\n\
             RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tcc \
                 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin\n\
             RUN mkdir -p /root/.config/deploy && printf 'aws_access_key_id = {PLANTED}\\n' > /root/.config/deploy/env\n\
             RUN rm -rf /root/.config/deploy\n"
        ),
    );
    let o = verify(&faults, &[]);
    assert_eq!(o.code, Some(3), "{}", o.stderr);
    let mut failed = o.with("failed");
    failed.sort();
    assert_eq!(
        failed,
        ["extension.vector", "hygiene.build-tools", "hygiene.secrets"],
        "{}",
        o.stderr
    );
    assert!(
        o.text("extension.vector").contains("vector.so is missing"),
        "{}",
        o.text("extension.vector")
    );
    let tools = o.text("hygiene.build-tools");
    assert!(
        tools.contains("package tcc") && tools.contains("compiler /usr/bin/tcc"),
        "{tools}"
    );
    let secrets = o.text("hygiene.secrets");
    assert!(
        secrets.contains("/root/.config/deploy/env: an AWS access key id"),
        "{secrets}"
    );
    assert!(
        !secrets.contains(PLANTED) && !o.stderr.contains(PLANTED),
        "the secret is printed"
    );
    assert_eq!(o.outcome("cluster.leader"), "passed");
    assert_eq!(o.outcome("extension.pgsodium"), "passed");
    let t1 = t.elapsed();

    // pgha-bootstrap replaced by a program that exits 1; with --keep, the
    // printed commands remove what the run left.
    let exits = derived(
        &engine,
        &good,
        "broken-bootstrap",
        "RUN printf '#!/bin/sh\\nexit 1\\n' > /usr/local/bin/pgha-bootstrap && chmod 0755 /usr/local/bin/pgha-bootstrap\n",
    );
    let o = verify_kept(&exits, &["--timeout", "120"]);
    assert_eq!(o.code, Some(3), "{}", o.stderr);
    assert_eq!(o.outcome("bootstrap.binary"), "failed", "{}", o.stderr);
    assert!(
        o.text("bootstrap.binary").contains("exited with status 1"),
        "{}",
        o.text("bootstrap.binary")
    );
    assert_eq!(o.outcome("cluster.leader"), "failed");
    assert!(
        o.text("cluster.leader").contains("bootstrap failed"),
        "{}",
        o.text("cluster.leader")
    );
    assert_eq!(o.outcome("hygiene.secrets"), "passed");
    assert_eq!(o.outcome("bootstrap.once"), "skipped");
    let t2 = t.elapsed();

    // The key file not mounted: the getkey script says so, the server does not start.
    let o = verify(
        &good,
        &["--timeout", "120", "--without-secret", "pgsodium_root_key"],
    );
    assert_eq!(o.code, Some(3), "{}", o.stderr);
    assert_eq!(o.outcome("pgsodium.key"), "failed", "{}", o.stderr);
    assert!(
        o.text("pgsodium.key").contains("does not exist"),
        "{}",
        o.text("pgsodium.key")
    );
    assert_eq!(o.outcome("cluster.leader"), "failed");
    assert_eq!(o.outcome("bootstrap.binary"), "passed");
    eprintln!(
        "verify, broken images: faults {:.1}s, bootstrap {:.1}s, key {:.1}s",
        t1.as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t.elapsed() - t2).as_secs_f64()
    );
}

/// `verify --keep`: the run's objects stay and stderr says how to remove
/// them; running those commands leaves nothing.
fn verify_kept(image: &str, extra: &[&str]) -> Outcome {
    let mut args = vec!["--keep"];
    args.extend_from_slice(extra);
    let o = verify_raw(image, &args);
    let run_name = o.report["run"].as_str().unwrap().to_string();
    let names = run(podman_cmd().args(["ps", "-a", "--format", "{{.Names}}"]));
    assert!(
        names.contains(&format!("{run_name}-m1")),
        "--keep removed the member: {names}"
    );
    let kept: Vec<String> = o.report["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert!(!kept.is_empty(), "{}", o.stderr);
    let said = o
        .stderr
        .split("remove with:")
        .nth(1)
        .unwrap_or_else(|| panic!("no removal commands:\n{}", o.stderr));
    for cmd in &kept {
        assert!(said.contains(cmd.as_str()), "{cmd} not printed:\n{}", o.stderr);
        assert!(cmd.starts_with("podman "), "{cmd}");
        run(Command::new("sh").args(["-c", cmd]));
    }
    assert_nothing_left(&run_name);
    o
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn a_signal_mid_run_leaves_nothing_behind() {
    let engine = images::engine_lock();
    let image = images::full_set_image(&engine);
    let t = Instant::now();
    for (signal, name) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGKILL, "SIGKILL"),
    ] {
        // The run's files (secrets, the engine's copy of the image for the
        // layer scan) go under TMPDIR; nothing of them may outlive the run.
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new(TOOL)
            .args([
                "--progress",
                "plain",
                "verify",
                "--engine",
                "podman",
                "--members",
                "3",
                &image,
            ])
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let prefix = format!("pgha-verify-{}-", child.id());
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let lines = std::thread::spawn(move || stderr.lines().map_while(Result::ok).collect::<Vec<_>>());
        // Wait until the run has a member container, the DCS and the network.
        let start = Instant::now();
        loop {
            let names = run(podman_cmd().args(["ps", "-a", "--format", "{{.Names}}"]));
            if names
                .lines()
                .any(|n| n.starts_with(&prefix) && n.ends_with("-m2"))
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "no member of {prefix} appeared"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "verify ended before it was signalled"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        let lines = lines.join().unwrap().join("\n");
        if signal == libc::SIGKILL {
            // Nothing runs in verify any more: its watcher removes the run's objects.
            let gone = Instant::now();
            loop {
                let names = run(podman_cmd().args(["ps", "-a", "--format", "{{.Names}}"]));
                let nets = run(podman_cmd().args(["network", "ls", "--format", "{{.Name}}"]));
                let vols = run(podman_cmd().args(["volume", "ls", "--format", "{{.Name}}"]));
                if !names.contains(&prefix) && !nets.contains(&prefix) && !vols.contains(&prefix) {
                    break;
                }
                assert!(
                    gone.elapsed() < Duration::from_secs(90),
                    "{name}: left behind: {names} {nets} {vols}"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
            eprintln!(
                "{name}: everything removed {:.1}s after the kill",
                gone.elapsed().as_secs_f64()
            );
            // The watcher keeps removing for a while (a create in flight); then
            // it ends (its command line names the run's directory).
            wait_until(
                &format!("{name}: the watcher ends"),
                Duration::from_secs(90),
                Duration::from_millis(500),
                || (!process_running_with(&prefix)).then_some(()),
                String::new,
            );
            assert_nothing_left(prefix.trim_end_matches('-'));
            let gone = Instant::now();
            while !tmp_is_empty(tmp.path()) {
                assert!(
                    gone.elapsed() < Duration::from_secs(60),
                    "{name}: the run's files are left in TMPDIR: {:?}",
                    tmp_entries(tmp.path())
                );
                std::thread::sleep(Duration::from_millis(500));
            }
            continue;
        }
        assert_eq!(status.code(), Some(1), "{name}: {lines}");
        assert!(
            lines.contains(&format!("interrupted by {name}")) && lines.contains("removed"),
            "{lines}"
        );
        let run_name = prefix.trim_end_matches('-').to_string();
        let containers = run(podman_cmd().args(["ps", "-a", "--format", "{{.Names}}"]));
        assert!(
            !containers.contains(&prefix),
            "{name}: containers left: {containers}"
        );
        let nets = run(podman_cmd().args(["network", "ls", "--format", "{{.Name}}"]));
        assert!(!nets.contains(&prefix), "{name}: networks left: {nets}");
        let vols = run(podman_cmd().args(["volume", "ls", "--format", "{{.Name}}"]));
        assert!(!vols.contains(&prefix), "{name}: volumes left: {vols}");
        assert!(lines.contains(&run_name), "{lines}");
        assert!(
            tmp_is_empty(tmp.path()),
            "{name}: the run's files are left in TMPDIR: {:?}",
            tmp_entries(tmp.path())
        );
    }
    eprintln!("verify, signals: {:.1}s", t.elapsed().as_secs_f64());
}

fn tmp_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

fn tmp_is_empty(dir: &std::path::Path) -> bool {
    tmp_entries(dir).is_empty()
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn bad_input_exits_2_and_a_missing_engine_4() {
    images::podman();
    let out = Command::new(TOOL)
        .args([
            "verify",
            "--engine",
            "podman",
            "localhost/pgha-test/verify-no-such-image:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("verify-no-such-image") && err.contains("hint:"),
        "{err}"
    );

    let out = Command::new(TOOL)
        .args(["verify", "--members", "2", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // The Spilo stand-in itself: an image not made by pgha-image build.
    let standin = images::spilo_standin();
    let out = Command::new(TOOL)
        .args(["verify", "--engine", "podman", &standin])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a pgha-image build"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(TOOL)
        .args(["verify", "--engine", "docker", "x"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint:"));
}

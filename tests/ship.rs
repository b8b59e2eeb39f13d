//! `pgha-image ship` to three "VMs" (network namespaces with their own sshd
//! and image store: two Podman, one real dockerd), and the offline delta
//! (`export --since`, `load`). Small images on the shared Debian test base:
//! an upgrade changes one top layer.

mod common;

use assert_cmd::Command;
use common::images::{self, TestImage, debian_base, engine_lock, podman_cmd, run};
use common::vms::{VmEngine, Vms};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// An image FROM `from` with one layer of `kib` KiB of random bytes.
fn build(name: &str, from: &str, kib: u32) -> TestImage {
    let reference = format!("localhost/pgha-h5-ship/{name}:{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Containerfile"),
        format!(
            "FROM {from}\nRUN head -c {} /dev/urandom > /{name}.bin\nLABEL io.pgha.extensions='{{\"{name}\":\"1\"}}'\n",
            kib * 1024
        ),
    )
    .unwrap();
    let image = TestImage { reference };
    run(podman_cmd()
        .args(["build", "-q", "-t", &image.reference])
        .arg(dir.path()));
    image
}

fn pgha() -> Command {
    let mut c = common::cli::pgha();
    c.env_remove("PGHA_SSH").env("PGHA_ENGINE", "podman");
    c
}

fn ship(vms: &Vms, cache: &Path, tag: &str, hosts: &[usize], env: &[(&str, &str)]) -> Shipped {
    let t = Instant::now();
    let s = ship_(vms, cache, tag, hosts, env);
    eprintln!("ship {tag} to {hosts:?}: {:.1}s", t.elapsed().as_secs_f64());
    s
}

struct Shipped {
    code: i32,
    json: Value,
    stderr: String,
}

fn ship_(vms: &Vms, cache: &Path, tag: &str, hosts: &[usize], env: &[(&str, &str)]) -> Shipped {
    let to: Vec<String> = hosts.iter().map(|&i| vms.vms[i].target()).collect();
    let mut c = pgha();
    c.arg("--cache-dir")
        .arg(cache)
        .args(["ship", tag, "--json", "--to", &to.join(",")]);
    c.args(vms.ssh_args());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.timeout(Duration::from_secs(300)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ship --json printed no JSON ({e}); stderr:\n{stderr}"));
    Shipped {
        code: out.status.code().unwrap_or(-1),
        json,
        stderr,
    }
}

fn host<'a>(s: &'a Shipped, vms: &Vms, i: usize) -> &'a Value {
    let name = vms.vms[i].target();
    s.json["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not in {}", s.json))
}

/// An ssh wrapper ($PGHA_SSH) that, for layer transfers only, slows the
/// stream (and records the ssh pid, to kill it) or flips one byte in flight.
fn ssh_wrapper(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("ssh-wrapper");
    std::fs::write(
        &p,
        r#"#!/bin/sh
case "$*" in *"'receive'"*) ;; *) exec ssh "$@" ;; esac
exec 3<&0
case "${H5_SSH_MODE:-}" in
  slow)
    perl -e '$|=1; while (read(STDIN, $b, 131072)) { print $b; select(undef, undef, undef, 0.1) }' <&3 | ssh "$@" &
    echo $! >> "$H5_SSH_PIDS"
    wait $!
    exit $? ;;
  corrupt)
    perl -e '$|=1; my $n = 0; while (my $r = read(STDIN, $b, 65536)) { if ($n <= 300000 && $n + $r > 300000) { my $i = 300000 - $n; substr($b, $i, 1) = chr(ord(substr($b, $i, 1)) ^ 0xff) } $n += $r; print $b }' <&3 | ssh "$@"
    exit $? ;;
esac
exec ssh "$@" <&3
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn no_leftovers(vms: &Vms, i: usize, tag: &str) {
    let vm = &vms.vms[i];
    assert_eq!(vm.image_id(tag), None, "{}: {tag} must not be there", vm.ns);
    let tags = vm.tags();
    assert!(
        !tags.iter().any(|t| t.contains("pgha-ship-incoming")),
        "{}: a temporary tag was left: {tags:?}",
        vm.ns
    );
}

static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

#[test]
#[ignore = "slow tier: needs root, Podman, sshd and network namespaces"]
fn ship_to_three_vms() {
    T0.get_or_init(Instant::now);
    let (common, v1, v2, v3a, v3, v4, side, pg5, pg6);
    {
        let _lock = engine_lock();
        let base = debian_base();
        common = build("ext-a", &base, 1024);
        v1 = build("ext-b1", &common.reference, 1024);
        v2 = build("ext-b2", &common.reference, 1024);
        v3a = build("ext-r1", &v2.reference, 4096);
        v3 = build("ext-r2", &v3a.reference, 4096);
        v4 = build("ext-c", &v2.reference, 1024);
        // A deployment's images (`ship --spec`): PostgreSQL's, and one side
        // image (etcd and HAProxy) on the same base; pg6 upgrades pg5.
        side = build("ext-side", &common.reference, 512);
        pg5 = build("ext-pg5", &v2.reference, 1024);
        pg6 = build("ext-pg6", &v2.reference, 1024);
    }
    eprintln!("images built: {:?}", T0.get_or_init(Instant::now).elapsed());
    let mut vms = Vms::start(&[VmEngine::Podman, VmEngine::Podman, VmEngine::Docker]);
    eprintln!("vms up: {:?}", T0.get().unwrap().elapsed());
    let cache = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let wrapper = ssh_wrapper(tmp.path());
    let all = [0, 1, 2];

    // First ship: every layer goes to every host.
    let s = ship(&vms, cache.path(), &v1.reference, &all, &[]);
    assert_eq!(s.code, 0, "{}\n{}", s.json, s.stderr);
    let v1_id = local_id(&v1.reference);
    for i in all {
        let h = host(&s, &vms, i);
        assert_eq!(h["ok"], true, "{h}");
        assert_eq!(h["layers_held"], 0, "{h}");
        assert_eq!(h["layers_sent"], 3, "{h}");
        assert_eq!(
            vms.vms[i].image_id(&v1.reference).as_deref(),
            Some(v1_id.as_str()),
            "{}",
            vms.vms[i].ns
        );
        no_leftovers_tmp(&vms, i);
    }
    assert_eq!(host(&s, &vms, 2)["engine"], "docker");
    assert_eq!(host(&s, &vms, 0)["engine"], "podman");
    let full_bytes = s.json["hosts"][0]["bytes_sent"].as_u64().unwrap();

    // Upgrade: one extension layer changed, only it travels.
    let s = ship(&vms, cache.path(), &v2.reference, &all, &[]);
    assert_eq!(s.code, 0, "{}\n{}", s.json, s.stderr);
    let v2_id = local_id(&v2.reference);
    for i in all {
        let h = host(&s, &vms, i);
        assert_eq!(
            (h["layers_held"].as_u64(), h["layers_sent"].as_u64()),
            (Some(2), Some(1)),
            "{h}"
        );
        let sent = h["bytes_sent"].as_u64().unwrap();
        assert!(
            sent * 20 < full_bytes,
            "upgrade sent {sent} bytes of a {full_bytes}-byte image"
        );
        assert_eq!(
            vms.vms[i].image_id(&v2.reference).as_deref(),
            Some(v2_id.as_str())
        );
        assert_eq!(
            vms.vms[i].image_id(&v1.reference).as_deref(),
            Some(v1_id.as_str())
        );
    }
    // Again: nothing to send, the image is checked and tagged.
    let s = ship(&vms, cache.path(), &v2.reference, &[0], &[]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert_eq!(host(&s, &vms, 0)["already_there"], true);
    assert_eq!(host(&s, &vms, 0)["bytes_sent"], 0);

    // Interrupted: the ssh carrying the second new layer is killed half-way.
    let pids = tmp.path().join("pids");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_pgha-image"))
        .arg("--cache-dir")
        .arg(cache.path())
        .args([
            "--progress",
            "plain",
            "ship",
            &v3.reference,
            "--to",
            &vms.vms[0].target(),
        ])
        .args(vms.ssh_args())
        .env("PGHA_ENGINE", "podman")
        .env("PGHA_SSH", &wrapper)
        .env("H5_SSH_MODE", "slow")
        .env("H5_SSH_PIDS", &pids)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stage = vms.vms[0].stage_dir();
    let start = Instant::now();
    loop {
        let names: Vec<String> = std::fs::read_dir(&stage)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let done = names.iter().filter(|n| n.ends_with(".tar")).count();
        let partial = names.iter().any(|n| n.ends_with(".partial"));
        if done == 1 && partial {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no second layer in flight: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = std::fs::read_to_string(&pids).unwrap();
    let pid = pid.lines().last().unwrap().trim();
    run(std::process::Command::new("kill").args(["-KILL", pid]));
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0), "an interrupted ship must fail");
    no_leftovers(&vms, 0, &v3.reference);
    // Re-run: only the remainder travels.
    let s = ship(&vms, cache.path(), &v3.reference, &[0], &[]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    let h = host(&s, &vms, 0);
    assert_eq!(
        (h["layers_staged"].as_u64(), h["layers_sent"].as_u64()),
        (Some(1), Some(1)),
        "{h}"
    );
    assert_eq!(vms.vms[0].image_id(&v3.reference), Some(local_id(&v3.reference)));
    no_leftovers_tmp(&vms, 0);

    // The same upgrade as a delta file, loaded by the Docker VM's daemon.
    let delta = tmp.path().join("v3.delta.tar");
    let out = pgha()
        .arg("--cache-dir")
        .arg(cache.path())
        .args(["export", "--tag", &v3.reference, "--since", &v2.reference, "-o"])
        .arg(&delta)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = pgha()
        .args(["load", "--engine", "docker"])
        .arg(&delta)
        .env("DOCKER_HOST", vms.vms[2].docker_host())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(vms.vms[2].image_id(&v3.reference), Some(local_id(&v3.reference)));
    no_leftovers_tmp(&vms, 2);

    // A layer corrupted in flight is refused; nothing is loaded or kept.
    let s = ship(
        &vms,
        cache.path(),
        &v4.reference,
        &[2],
        &[
            ("PGHA_SSH", wrapper.to_str().unwrap()),
            ("H5_SSH_MODE", "corrupt"),
        ],
    );
    assert_eq!(s.code, 3, "{}\n{}", s.json, s.stderr);
    let h = host(&s, &vms, 2);
    assert!(h["error"].as_str().unwrap().contains("corrupt"), "{h}");
    assert!(s.stderr.contains(&vms.vms[2].addr), "{}", s.stderr);
    no_leftovers(&vms, 2, &v4.reference);
    let staged = std::fs::read_dir(vms.vms[2].stage_dir())
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(staged, 0, "nothing may stay staged after a refused layer");

    ship_a_deployment(&vms, cache.path(), &pg5, &pg6, &side, full_bytes);

    // One host unreachable: the other two get the image, the failure is named.
    vms.vms[1].stop_sshd();
    let s = ship(&vms, cache.path(), &v4.reference, &all, &[]);
    assert_eq!(s.code, 1, "{}\n{}", s.json, s.stderr);
    let v4_id = local_id(&v4.reference);
    for i in [0, 2] {
        assert_eq!(host(&s, &vms, i)["ok"], true);
        assert_eq!(
            vms.vms[i].image_id(&v4.reference).as_deref(),
            Some(v4_id.as_str())
        );
    }
    let h = host(&s, &vms, 1);
    assert_eq!(h["ok"], false);
    assert!(h["error"].as_str().unwrap().contains("ssh failed"), "{h}");
    assert!(
        s.stderr
            .contains(&format!("1 of 3 host(s) failed: {}", vms.vms[1].target())),
        "{}",
        s.stderr
    );
    let t = Instant::now();
    drop(vms);
    eprintln!("vms down: {:?}", t.elapsed());
    let _lock = engine_lock();
    drop((pg6, pg5, side, v4, v3, v3a, v2, v1, common));
}

/// `ship --spec`: every image of the deployment to every member (the VMs'
/// addresses, no user in the spec: ssh's own), only the layers each lacks,
/// also across the images; then the upgrade: only the new image's changed layer.
fn ship_a_deployment(
    vms: &Vms,
    cache: &Path,
    pg5: &TestImage,
    pg6: &TestImage,
    side: &TestImage,
    full_bytes: u64,
) {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.toml");
    let spec_text = |image: &str| {
        let mut s = format!(
            "scope = \"ship\"\nimage = \"{image}\"\n[images]\netcd = \"{0}\"\nhaproxy = \"{0}\"\n",
            side.reference
        );
        for (i, vm) in vms.vms.iter().enumerate() {
            s.push_str(&format!(
                "[[member]]\nname = \"m{i}\"\naddress = \"{}\"\n",
                vm.addr
            ));
        }
        s
    };
    let run_spec = |image: &str| -> Value {
        std::fs::write(&spec, spec_text(image)).unwrap();
        let t = Instant::now();
        let out = pgha()
            .arg("--cache-dir")
            .arg(cache)
            .args(["ship", "--spec", spec.to_str().unwrap(), "--json"])
            .args(vms.ssh_args())
            .timeout(Duration::from_secs(300))
            .output()
            .unwrap();
        eprintln!("ship --spec ({image}): {:.1}s", t.elapsed().as_secs_f64());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {stderr}"))
    };
    let per_host = |report: &Value, tag: &str| -> Vec<(String, u64, u64, bool)> {
        let image = report["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["tag"] == tag)
            .unwrap_or_else(|| panic!("{tag} not shipped: {report}"));
        image["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                assert_eq!(h["ok"], true, "{h}");
                (
                    h["host"].as_str().unwrap().to_string(),
                    h["layers_held"].as_u64().unwrap(),
                    h["layers_sent"].as_u64().unwrap(),
                    h["already_there"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let addrs: Vec<String> = vms.vms.iter().map(|vm| vm.addr.clone()).collect();

    // First: PostgreSQL's image and the side image (once for etcd and HAProxy).
    let r = run_spec(&pg5.reference);
    assert_eq!(r["images"].as_array().unwrap().len(), 2, "{r}");
    // pg5 = base, ext-a, ext-b2 (there from v2), ext-pg5; side = base, ext-a (there), ext-side.
    for (image, held) in [(&pg5.reference, 3), (&side.reference, 2)] {
        let hosts = per_host(&r, image);
        assert_eq!(hosts.iter().map(|h| h.0.clone()).collect::<Vec<_>>(), addrs);
        for h in hosts {
            assert_eq!((h.1, h.2, h.3), (held, 1, false), "{image} on {}", h.0);
        }
    }
    for vm in &vms.vms {
        for image in [pg5, side] {
            assert_eq!(
                vm.image_id(&image.reference),
                Some(local_id(&image.reference)),
                "{}: {}",
                vm.ns,
                image.reference
            );
        }
    }

    // Without ssh: the same set in one file (`export --spec`), loaded into an
    // empty image store; every image arrives under its tag with its id.
    let t = Instant::now();
    let file = dir.path().join("deployment.tar.zst");
    let out = pgha()
        .args([
            "export",
            "--spec",
            spec.to_str().unwrap(),
            "-o",
            file.to_str().unwrap(),
            "--json",
        ])
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<&str> = exported["manifest"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["tag"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [pg5.reference.as_str(), side.reference.as_str()]);
    let store = Store::new();
    let out = pgha()
        .args(["load", file.to_str().unwrap()])
        .env("CONTAINERS_STORAGE_CONF", store.conf())
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for image in [pg5, side] {
        assert_eq!(
            store.id(&image.reference),
            Some(local_id(&image.reference)),
            "{}",
            image.reference
        );
    }
    drop(store);
    eprintln!("export --spec and load: {:.1}s", t.elapsed().as_secs_f64());

    // The upgrade: the side image is there (nothing sent), pg6 sends its own layer only.
    let r = run_spec(&pg6.reference);
    for h in per_host(&r, &side.reference) {
        assert!(h.3, "{}: the side image must be already there", h.0);
    }
    for h in per_host(&r, &pg6.reference) {
        assert_eq!((h.1, h.2, h.3), (3, 1, false), "{}", h.0);
    }
    let sent = r["bytes_sent"].as_u64().unwrap();
    assert!(
        sent * 20 < full_bytes * 3,
        "the upgrade sent {sent} bytes to three hosts; one full image is {full_bytes}"
    );
    for vm in &vms.vms {
        assert_eq!(
            vm.image_id(&pg6.reference),
            Some(local_id(&pg6.reference)),
            "{}",
            vm.ns
        );
    }
}

fn local_id(reference: &str) -> String {
    format!(
        "sha256:{}",
        images::image_id(reference).trim_start_matches("sha256:")
    )
}

fn no_leftovers_tmp(vms: &Vms, i: usize) {
    let tags = vms.vms[i].tags();
    assert!(!tags.iter().any(|t| t.contains("pgha-ship-incoming")), "{tags:?}");
    let staged = std::fs::read_dir(vms.vms[i].stage_dir())
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        staged, 0,
        "{}: staged layers must be gone after a load",
        vms.vms[i].ns
    );
}

/// A Podman image store of its own (a second "host"), removed on drop.
struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::Builder::new()
            .prefix("pgha-h5-store")
            .tempdir()
            .unwrap();
        std::fs::write(
            dir.path().join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        Store { dir }
    }
    fn conf(&self) -> std::path::PathBuf {
        self.dir.path().join("storage.conf")
    }
    fn podman(&self) -> std::process::Command {
        let mut c = podman_cmd();
        c.env("CONTAINERS_STORAGE_CONF", self.conf());
        c
    }
    fn id(&self, reference: &str) -> Option<String> {
        let out = self
            .podman()
            .args(["image", "inspect", "--format", "{{.Id}}", reference])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| format!("sha256:{}", String::from_utf8_lossy(&out.stdout).trim()))
    }
    fn count(&self) -> usize {
        let out = self.podman().args(["image", "ls", "-a", "-q"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.podman().args(["rmi", "-a", "-f"]).output();
        let prefix = self.dir.path().display().to_string();
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            for p in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
                if p.starts_with(&prefix) {
                    let _ = std::process::Command::new("umount").arg("-l").arg(p).status();
                }
            }
        }
    }
}

#[test]
#[ignore = "slow tier: needs root, Podman, sshd and network namespaces"]
fn delta_file_loads_on_top_of_its_base_only() {
    let (common, v1, v2);
    {
        let _lock = engine_lock();
        let base = debian_base();
        common = build("dext-a", &base, 1024);
        v1 = build("dext-b1", &common.reference, 1024);
        v2 = build("dext-b2", &common.reference, 1024);
    }
    let out_dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let delta = out_dir.path().join("v2.delta.tar");
    let out = pgha()
        .arg("--cache-dir")
        .arg(cache.path())
        .args([
            "export",
            "--tag",
            &v2.reference,
            "--since",
            &v1.reference,
            "--json",
            "-o",
        ])
        .arg(&delta)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["delta"]["base_layers"], 2, "{j}");
    let size = std::fs::metadata(&delta).unwrap().len();
    assert!(
        size < 2 << 20,
        "the delta holds one 1 MiB layer, not {size} bytes"
    );
    assert!(delta.with_extension("tar.sha256").is_file());

    // As for a full export: an existing delta is kept unless --force, a
    // malformed tag is refused before the engine, --compress does not apply.
    let again = |extra: &[&str]| {
        let mut c = pgha();
        c.arg("--cache-dir")
            .arg(cache.path())
            .args(["export", "--tag", &v2.reference, "--since", &v1.reference, "-o"])
            .arg(&delta)
            .args(extra);
        c.output().unwrap()
    };
    let sums = std::fs::read(delta.with_extension("tar.sha256")).unwrap();
    let out = again(&[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(delta.with_extension("tar.sha256")).unwrap(), sums);
    let out = again(&["--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(delta.with_extension("tar.sha256")).unwrap(), sums);
    let out = again(&["--force", "--compress", "gzip"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pgha()
        .args(["export", "--tag", &v2.reference, "--since", "Bad Tag!", "-o"])
        .arg(out_dir.path().join("x.delta.tar"))
        .env("PGHA_ENGINE", "docker")
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let leftovers: Vec<_> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Without its base: refused, naming it; nothing loaded.
    let empty = Store::new();
    let out = pgha()
        .args(["load"])
        .arg(&delta)
        .env("CONTAINERS_STORAGE_CONF", empty.conf())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&v1.reference),
        "the error must name the base: {stderr}"
    );
    assert_eq!(empty.count(), 0);

    // Changed in transit: refused before the engine sees it.
    let bad = out_dir.path().join("bad.delta.tar");
    let mut bytes = std::fs::read(&delta).unwrap();
    let n = bytes.len() / 2;
    bytes[n] ^= 0xff;
    std::fs::write(&bad, bytes).unwrap();
    std::fs::copy(
        delta.with_extension("tar.sha256"),
        bad.with_extension("tar.sha256"),
    )
    .unwrap();
    let with_base = Store::new();
    let save = podman_cmd()
        .args(["save", "--format", "docker-archive", "-o"])
        .arg(out_dir.path().join("v1.tar"))
        .arg(&v1.reference)
        .output()
        .unwrap();
    assert!(save.status.success());
    let f = std::fs::File::open(out_dir.path().join("v1.tar")).unwrap();
    let st = with_base.podman().arg("load").stdin(f).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let out = pgha()
        .args(["load"])
        .arg(&bad)
        .env("CONTAINERS_STORAGE_CONF", with_base.conf())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(with_base.id(&v2.reference), None);

    // With its base: the full image is rebuilt, verified and loaded.
    let out = pgha()
        .args(["load", "--json"])
        .arg(&delta)
        .env("CONTAINERS_STORAGE_CONF", with_base.conf())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(with_base.id(&v2.reference), Some(local_id(&v2.reference)));
    assert_eq!(with_base.id(&v1.reference), Some(local_id(&v1.reference)));
    let tags = String::from_utf8_lossy(&with_base.podman().args(["image", "ls"]).output().unwrap().stdout)
        .into_owned();
    assert!(!tags.contains("incoming"), "{tags}");
    drop((empty, with_base));
    let _lock = engine_lock();
    drop((v2, v1, common));
}

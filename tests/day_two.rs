//! Day two, run for real on the rendered deployment: three "VMs" (one Podman
//! pod each, on a Podman network this test creates) running every service
//! of their rendered `compose.yaml` — etcd, PostgreSQL/Patroni (the full-set
//! image), HAProxy, the PostgreSQL exporter (Debian's package, in a local
//! image) and, on pg1, the backup service. One cluster serves every
//! assertion, under the engine lock:
//!
//! 1. `pgha-image status` shows one leader and two streaming replicas, the
//!    image each runs and the bootstrap's ledger (exit 0);
//! 2. Patroni's /metrics, each exporter's and each HAProxy's answer with
//!    leader/replica and lag metrics; the exporter logs in as pgha_monitor,
//!    which is not a superuser;
//! 3. the scheduled backup is taken from a replica, with its checksum;
//! 4. a backup interrupted midway (its container killed while pg_dump waits
//!    for a lock) leaves no file under a final name, and the next one succeeds;
//! 5. a member's PostgreSQL is stopped: `status` exits 3 naming it within 15 s.

mod common;

use common::cli::pgha_ok;
use common::cluster::{self, Network, Vm};
use common::images;
use common::wait::wait_until;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCOPE: &str = "i17day2";
const PG: u16 = 5432;
const REST: u16 = 8008;
const STATS: u16 = 7000;
const EXPORTER: u16 = 9187;
const BACKUP: u16 = 9188;
/// The backup schedule of the test's spec.
const EVERY: u64 = 20;

fn describe(vms: &[Vm]) -> String {
    let mut s = String::new();
    for vm in vms {
        for svc in &vm.services {
            let tail: Vec<String> = vm
                .pod
                .logs(&svc.name, 200)
                .lines()
                .filter(|l| !l.contains("Exception happened during processing"))
                .map(str::to_string)
                .collect();
            let n = tail.len().saturating_sub(12);
            s.push_str(&format!(
                "--- {} {}:\n{}\n",
                vm.name,
                svc.name,
                tail[n..].join("\n")
            ));
        }
    }
    s
}

/// `pgha-image status --spec SPEC --json`: (exit code, report, stderr).
fn status(spec: &Path) -> (i32, serde_json::Value, String) {
    let o = assert_cmd::Command::cargo_bin("pgha-image")
        .unwrap()
        .args(["status", "--json", "--timeout", "3", "--spec"])
        .arg(spec)
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let report = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code().unwrap_or(-1),
        report,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `pgha-image secrets` then `pgha-image manifests` for `spec`, as the
/// README's first steps.
fn secrets_and_manifests(spec: &Path, secrets: &Path, out: &Path) {
    let spec = spec.to_str().unwrap();
    pgha_ok(&[
        "secrets",
        "--engine",
        "podman",
        "--spec",
        spec,
        "--out",
        secrets.to_str().unwrap(),
    ]);
    pgha_ok(&[
        "manifests",
        "--engine",
        "podman",
        "--spec",
        spec,
        "--out",
        out.to_str().unwrap(),
    ]);
}

fn get(host: &str, port: u16, path: &str) -> Option<String> {
    cluster::http_get(host, port, path)
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
}

use pgha_image::status::probe::metric as sample;

fn backup_status(addr: &str) -> Option<serde_json::Value> {
    get(addr, BACKUP, "/status").and_then(|b| serde_json::from_str(&b).ok())
}

fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// The final-named dumps in the backup directory, sorted.
fn dumps(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".dump"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn partials(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "slow tier: needs root, Podman, the full-set image and a three-pod Patroni cluster"]
fn status_metrics_and_backups_on_three_vms() {
    let started = Instant::now();
    let tmp = tempfile::Builder::new().prefix("i17-day2").tempdir().unwrap();
    let dir = tmp.path();
    cluster::psql_program();

    // The whole cluster runs under the engine lock (heavy: one at a time).
    let lock = images::engine_lock();
    let v1 = images::full_set_image(&lock);
    // What the members run: the image pinned by its id (compose names no tag).
    let v1_id = format!("sha256:{}", images::image_id(&v1));
    let tools = cluster::tools_image();
    let exporter = cluster::exporter_image();
    let t_images = started.elapsed();

    let net = Network::create("i17-day2");
    let names = ["pg1", "pg2", "pg3"];
    let addrs: Vec<String> = (11..14).map(|n| net.host(n)).collect();

    let secrets = dir.join("secrets");
    let backups = dir.join("backups");
    let mut spec_text = format!(
        "scope = \"{SCOPE}\"\nimage = \"{v1}\"\ndcs = \"etcd\"\nhaproxy = \"members\"\n\
         secrets_dir = \"{}\"\n[images]\netcd = \"{tools}\"\nhaproxy = \"{tools}\"\nexporter = \"{exporter}\"\n\
         [monitoring]\n[backup]\nmember = \"pg1\"\nevery = \"{EVERY}s\"\nkeep = 2\ndir = \"{}\"\n",
        secrets.display(),
        backups.display()
    );
    for (n, a) in names.iter().zip(&addrs) {
        spec_text.push_str(&format!(
            "[[member]]\nname = \"{n}\"\naddress = \"{a}\"\ndata_dir = \"{}\"\n",
            dir.join("data").join(n).display()
        ));
    }
    let spec = dir.join("cluster.toml");
    let out = dir.join("deploy");
    std::fs::write(&spec, spec_text).unwrap();
    secrets_and_manifests(&spec, &secrets, &out);
    let password = cluster::read_env_file(&secrets.join("patroni.env"))["PGPASSWORD_SUPERUSER"].clone();
    let tls = format!(
        "sslmode=verify-full sslrootcert={}",
        secrets.join("ca.crt").display()
    );
    // SQL over TLS, the server's certificate checked against the cluster CA.
    let psql = |host: &str, port: u16, user: &str, password: &str, sql: &str| {
        cluster::psql_ssl(host, port, user, password, &tls, sql)
    };

    let vms: Vec<Vm> = names
        .iter()
        .zip(&addrs)
        .map(|(n, a)| Vm::create(&net, "i17-day2", n, a, &out))
        .collect();
    for vm in &vms {
        let names: Vec<&str> = vm.services.iter().map(|s| s.name.as_str()).collect();
        let want: &[&str] = if vm.name == "pg1" {
            &["etcd", "postgres", "haproxy", "exporter", "backup"]
        } else {
            &["etcd", "postgres", "haproxy", "exporter"]
        };
        assert_eq!(names, want, "{}", vm.name);
    }
    for vm in &vms {
        vm.pod.run_service(vm.service("etcd"));
    }
    for vm in &vms {
        for svc in vm.services.iter().filter(|s| s.name != "etcd") {
            vm.pod.run_service(svc);
        }
    }
    let hosts: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let leader = cluster::wait_for_leader(&hosts, REST, 2, Duration::from_secs(300));
    let t_form = started.elapsed();
    let vm_of = |name: &str| vms.iter().find(|v| v.name == name).unwrap();
    let leader_addr = vm_of(&leader).pod.address.clone();
    let replicas: Vec<&Vm> = vms.iter().filter(|v| v.name != leader).collect();

    // 1. status: healthy, one leader, two streaming replicas, image and ledger.
    let last = std::cell::RefCell::new(String::new());
    let report = wait_until(
        "pgha-image status exits 0",
        Duration::from_secs(120),
        Duration::from_secs(2),
        || {
            let (code, report, stderr) = status(&spec);
            *last.borrow_mut() = format!("exit {code}: {report:#}\n{stderr}");
            (code == 0).then_some(report)
        },
        || format!("{}\n{}", last.borrow(), describe(&vms)),
    );
    assert_eq!(report["healthy"], true);
    assert_eq!(report["leader"].as_str(), Some(leader.as_str()), "{report:#}");
    let members = report["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for m in members {
        let name = m["name"].as_str().unwrap();
        if name == leader {
            assert_eq!(m["role"], "leader", "{m}");
        } else {
            assert_eq!(m["role"], "replica", "{m}");
            assert_eq!(m["state"], "streaming", "{m}");
            assert!(m["lag"].as_u64().is_some(), "{m}");
        }
        assert_eq!(m["image"].as_str(), Some(v1_id.as_str()), "{m}");
        let exporter_says = || {
            let body = get(m["address"].as_str().unwrap(), EXPORTER, "/metrics").unwrap_or_default();
            let lines: Vec<&str> = body
                .lines()
                .filter(|l| l.contains("pgha") || l.starts_with("pg_up"))
                .collect();
            format!(
                "{m}\nthe exporter says:\n{}\n{}",
                lines.join("\n"),
                describe(&vms)
            )
        };
        assert!(
            m["ledger_migrations"].as_u64().is_some_and(|n| n >= 12),
            "{}",
            exporter_says()
        );
        assert_eq!(m["ledger_last_version"].as_u64(), Some(12), "{m}");
        assert_eq!(m["routed_by"], serde_json::json!([3, 3]), "{m}");
    }
    let text = assert_cmd::Command::cargo_bin("pgha-image")
        .unwrap()
        .args(["status", "--spec"])
        .arg(&spec)
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&text.stdout);
    assert!(table.starts_with(&format!("cluster {SCOPE}: healthy")), "{table}");
    assert!(table.contains("streaming") && table.contains(&v1_id), "{table}");

    // 2. Metrics: Patroni, the exporters (as pgha_monitor), HAProxy.
    for vm in &vms {
        let a = &vm.pod.address;
        let is_leader = vm.name == leader;
        let patroni = get(a, REST, "/metrics").unwrap_or_else(|| panic!("{}: Patroni /metrics", vm.name));
        let primary = sample(&patroni, "patroni_primary").or_else(|| sample(&patroni, "patroni_master"));
        assert_eq!(
            primary,
            Some(if is_leader { 1.0 } else { 0.0 }),
            "{}:\n{patroni}",
            vm.name
        );
        assert_eq!(
            sample(&patroni, "patroni_replica"),
            Some(if is_leader { 0.0 } else { 1.0 }),
            "{}:\n{patroni}",
            vm.name
        );
        assert!(
            patroni.contains("patroni_xlog_replayed_location") || is_leader,
            "{patroni}"
        );

        let exported = wait_until(
            &format!("{}: the exporter's replication metrics", vm.name),
            Duration::from_secs(60),
            Duration::from_secs(2),
            || get(a, EXPORTER, "/metrics").filter(|b| b.contains("pgha_replication_is_replica")),
            || describe(&vms),
        );
        assert_eq!(sample(&exported, "pg_up"), Some(1.0), "{exported}");
        assert!(
            exported
                .lines()
                .any(|l| l.starts_with("pgha_replication_is_replica")
                    && l.ends_with(if is_leader { " 0" } else { " 1" })),
            "{}: {}",
            vm.name,
            exported
                .lines()
                .filter(|l| l.starts_with("pgha_"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            exported.contains("pgha_replication_replay_lag_bytes"),
            "{exported}"
        );

        let haproxy = get(a, STATS, "/metrics").unwrap_or_else(|| panic!("{}: HAProxy /metrics", vm.name));
        let up = |proxy: &str, server: &str| {
            haproxy.lines().any(|l| {
                l.starts_with("haproxy_server_status{")
                    && l.contains(&format!("proxy=\"{proxy}\""))
                    && l.contains(&format!("server=\"{server}\""))
                    && l.contains("state=\"UP\"")
                    && l.ends_with(" 1")
            })
        };
        assert!(up("primary", &leader), "{}: HAProxy metrics:\n{haproxy}", vm.name);
        for r in &replicas {
            assert!(up("replicas", &r.name), "{}", vm.name);
            assert!(!up("primary", &r.name), "{}", vm.name);
        }
    }
    // The rendered scrape file: every target it names answers with metrics,
    // scraped as Prometheus would (scheme http, its metrics_path).
    let scrape: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(out.join("prometheus.yml")).unwrap()).unwrap();
    let mut scraped = Vec::new();
    for job in scrape["scrape_configs"].as_sequence().unwrap() {
        let path = job["metrics_path"].as_str().unwrap_or("/metrics");
        for sc in job["static_configs"].as_sequence().unwrap() {
            for t in sc["targets"].as_sequence().unwrap() {
                let (host, port) = t.as_str().unwrap().rsplit_once(':').unwrap();
                let body = wait_until(
                    &format!("{} target {host}:{port}{path}", job["job_name"].as_str().unwrap()),
                    Duration::from_secs(30),
                    Duration::from_secs(1),
                    || get(host, port.parse().unwrap(), path).filter(|b| b.contains("# TYPE")),
                    String::new,
                );
                assert!(!body.is_empty());
                scraped.push(format!("{}:{host}", job["job_name"].as_str().unwrap()));
            }
        }
    }
    // Patroni, HAProxy and the exporter on each of three members, the backup service once.
    assert_eq!(scraped.len(), 3 * 3 + 1, "{scraped:?}");

    let monitor = psql(
        &leader_addr,
        PG,
        "postgres",
        &password,
        "SELECT r.rolsuper::text || ',' || pg_has_role('pgha_monitor', 'pg_monitor', 'MEMBER')::text \
         || ',' || (SELECT count(*) FROM pg_stat_activity WHERE usename = 'pgha_monitor')::text \
         FROM pg_roles r WHERE r.rolname = 'pgha_monitor'",
    )
    .unwrap();
    let parts: Vec<&str> = monitor.split(',').collect();
    assert_eq!(&parts[..2], ["false", "true"], "pgha_monitor: {monitor}");
    assert!(
        parts[2].parse::<u32>().unwrap() >= 1,
        "the leader's exporter logs in as pgha_monitor: {monitor}"
    );

    // 3. The scheduled backup, from a replica, with its checksum, of data
    //    written first: a row, a vault secret, a pgsodium-encrypted column.
    psql(
        &leader_addr,
        PG,
        "postgres",
        &password,
        "CREATE TABLE public.i17_data (id int PRIMARY KEY, v text, sealed bytea);\
         INSERT INTO public.i17_data VALUES (1, 'a row before the backup', pgsodium.crypto_aead_det_encrypt(\
             convert_to('sealed before the backup', 'utf8'), convert_to('i17', 'utf8'), 1::bigint));\
         SELECT vault.create_secret('vault before the backup', 'i17_secret');",
    )
    .unwrap_or_else(|e| panic!("writing the data to back up: {e}"));
    let written = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let pg1 = vm_of("pg1");
    let first = wait_until(
        "a scheduled backup",
        Duration::from_secs(3 * EVERY + 60),
        Duration::from_secs(2),
        || {
            backup_status(&pg1.pod.address)
                .filter(|s| s["last_success"].as_f64().is_some_and(|t| t > written + 1.0))
        },
        || format!("{:?}\n{}", backup_status(&pg1.pod.address), describe(&vms)),
    );
    let last_run = &first["last"][0];
    assert_eq!(last_run["source_in_recovery"], true, "{first:#}");
    let source = last_run["source"].as_str().unwrap();
    assert!(
        replicas.iter().any(|r| r.pod.address == source),
        "the backup must come from a replica, not {source} ({first:#})"
    );
    let file = last_run["file"].as_str().unwrap().to_string();
    let sum = std::fs::read_to_string(backups.join(format!("{file}.sha256"))).unwrap();
    assert_eq!(sum, format!("{}  {file}\n", sha256_file(&backups.join(&file))));
    // Kept aside for the restore (retention prunes the directory's own).
    let kept = backups.join("kept");
    std::fs::create_dir_all(&kept).unwrap();
    for f in [file.clone(), format!("{file}.sha256")] {
        std::fs::copy(backups.join(&f), kept.join(&f)).unwrap();
    }
    let status_file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backups.join("status.json")).unwrap()).unwrap();
    assert_eq!(status_file["last"][0]["file"].as_str(), Some(file.as_str()));
    let backup_metrics = get(&pg1.pod.address, BACKUP, "/metrics").unwrap();
    assert!(
        sample(&backup_metrics, "pgha_backup_last_success_timestamp_seconds").unwrap() > 0.0,
        "{backup_metrics}"
    );
    let (code, report, _) = status(&spec);
    assert!(report["backup"]["age_seconds"].as_u64().is_some(), "{report:#}");
    assert_eq!(code, 0, "{report:#}");

    // 4. Interrupted midway: pg_dump on the replica waits for a lock the
    //    leader holds; the service is killed while the dump is partial.
    psql(
        &leader_addr,
        PG,
        "postgres",
        &password,
        "CREATE TABLE i17_rows AS SELECT g AS n FROM generate_series(1, 1000) g",
    )
    .unwrap();
    let mut holder = Command::new(cluster::psql_program())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .arg(format!(
            "host={leader_addr} port={PG} user=postgres dbname=postgres {tls}"
        ))
        .env("PGPASSWORD", &password)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    holder
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"BEGIN;\nLOCK TABLE i17_rows IN ACCESS EXCLUSIVE MODE;\nSELECT pg_current_wal_lsn();\n")
        .unwrap();
    let before = dumps(&backups);
    let successes = first["successes"].as_u64().unwrap();
    wait_until(
        "a backup blocked midway, its dump partial",
        Duration::from_secs(3 * EVERY + 60),
        Duration::from_secs(1),
        || {
            let s = backup_status(&pg1.pod.address)?;
            (s["running"] == true && !partials(&backups).is_empty()).then_some(())
        },
        || format!("{:?} {:?}", backup_status(&pg1.pod.address), partials(&backups)),
    );
    images::run(images::podman_cmd().args(["kill", &pg1.pod.container("backup")]));
    assert_eq!(
        dumps(&backups),
        before,
        "an interrupted backup left a file under a final name"
    );
    assert!(!partials(&backups).is_empty());
    drop(holder.stdin.take());
    let _ = holder.wait();
    pg1.pod.run_service(pg1.service("backup"));
    let next = wait_until(
        "the next backup after the interrupted one",
        Duration::from_secs(3 * EVERY + 60),
        Duration::from_secs(2),
        || backup_status(&pg1.pod.address).filter(|s| s["successes"].as_u64() > Some(successes)),
        || format!("{:?}\n{}", backup_status(&pg1.pod.address), describe(&vms)),
    );
    assert!(partials(&backups).is_empty(), "{:?}", partials(&backups));
    let after = dumps(&backups);
    assert!(after.len() <= 2, "keep = 2: {after:?}");
    assert!(after.contains(&next["last"][0]["file"].as_str().unwrap().to_string()));

    // 6. A fresh cluster from the same image and secrets (one member, its own
    //    etcd), restored from the first backup with the README's command.
    let fresh_spec = dir.join("fresh.toml");
    let fresh_secrets = dir.join("fresh-secrets");
    let fresh_addr = net.host(21);
    std::fs::write(
        &fresh_spec,
        format!(
            "scope = \"i17fresh\"\nimage = \"{v1}\"\ndcs = \"etcd\"\nhaproxy = \"members\"\n\
             secrets_dir = \"{}\"\n[images]\netcd = \"{tools}\"\nhaproxy = \"{tools}\"\n\
             [backup]\nmember = \"pg9\"\ndir = \"{}\"\n\
             [[member]]\nname = \"pg9\"\naddress = \"{fresh_addr}\"\ndata_dir = \"{}\"\n",
            fresh_secrets.display(),
            backups.display(),
            dir.join("data/pg9").display()
        ),
    )
    .unwrap();
    // The new cluster's own certificates (its own address), with the first
    // cluster's shared secrets: the Supabase password, jwt_secret and, above
    // all, pgsodium's root key.
    let fresh_out = dir.join("fresh");
    secrets_and_manifests(&fresh_spec, &fresh_secrets, &fresh_out);
    for f in ["password", "jwt_secret", "pgsodium_root_key"] {
        std::fs::copy(secrets.join(f), fresh_secrets.join(f)).unwrap();
    }
    let fresh = Vm::create(&net, "i17-day2", "pg9", &fresh_addr, &fresh_out);
    let fresh_password =
        cluster::read_env_file(&fresh_secrets.join("patroni.env"))["PGPASSWORD_SUPERUSER"].clone();
    let fresh_tls = format!(
        "sslmode=verify-full sslrootcert={}",
        fresh_secrets.join("ca.crt").display()
    );
    for svc in ["etcd", "postgres", "haproxy"] {
        fresh.pod.run_service(fresh.service(svc));
    }
    cluster::wait_for_leader(&[fresh_addr.as_str()], REST, 0, Duration::from_secs(300));
    let rw = |sql: &str| cluster::psql_ssl(&fresh_addr, 5000, "postgres", &fresh_password, &fresh_tls, sql);
    wait_until(
        "the fresh cluster bootstrapped, its leader behind HAProxy's rw port",
        Duration::from_secs(120),
        Duration::from_secs(2),
        || {
            rw("SELECT count(*) FROM pgha_bootstrap.migrations")
                .ok()
                .filter(|n| n.parse::<u32>().unwrap_or(0) >= 12)
        },
        || describe(std::slice::from_ref(&fresh)),
    );
    // `docker compose run --rm -e PGPORT=5000 backup python3 /etc/pgha/pgha-backup.py restore /backups/FILE`
    let mut restore = fresh.service("backup").clone();
    for (k, v) in restore.environment.iter_mut() {
        if k == "PGPORT" {
            *v = "5000".into();
        }
    }
    restore.command = [
        "python3",
        "/etc/pgha/pgha-backup.py",
        "restore",
        &format!("/backups/kept/{file}"),
    ]
    .map(str::to_string)
    .to_vec();
    let o = images::podman_cmd()
        .args([
            "run",
            "--rm",
            "--pod",
            &fresh.pod.name,
            "--name",
            &fresh.pod.container("restore"),
        ])
        .args(restore.podman_run_args())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "restore failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        rw("SELECT v FROM public.i17_data WHERE id = 1").unwrap(),
        "a row before the backup"
    );
    assert_eq!(
        rw("SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'i17_secret'").unwrap(),
        "vault before the backup"
    );
    assert_eq!(
        rw("SELECT convert_from(pgsodium.crypto_aead_det_decrypt(sealed, convert_to('i17', 'utf8'), 1::bigint), 'utf8') \
            FROM public.i17_data WHERE id = 1")
        .unwrap(),
        "sealed before the backup"
    );
    // The bootstrap's ledger is the fresh cluster's own, restored over by nothing.
    assert_eq!(
        rw("SELECT count(*) FROM pgha_bootstrap.migrations WHERE version = 12").unwrap(),
        "1"
    );
    drop(fresh);

    // 5. A member stops: status exits 3 naming it within 15 s.
    let victim = replicas[replicas.len() - 1];
    let stopped_at = Instant::now();
    images::run(images::podman_cmd().args(["kill", &victim.pod.container("postgres")]));
    let last = std::cell::RefCell::new(String::new());
    let problems = wait_until(
        "status reports the stopped member",
        Duration::from_secs(15),
        Duration::from_millis(500),
        || {
            let (code, report, stderr) = status(&spec);
            *last.borrow_mut() = format!("exit {code}: {report:#}\n{stderr}");
            let named = report["problems"]
                .as_array()?
                .iter()
                .any(|p| p["member"].as_str() == Some(victim.name.as_str()));
            (code == 3 && named).then_some(report["problems"].clone())
        },
        || last.borrow().clone(),
    );
    let detected = stopped_at.elapsed();
    assert!(detected <= Duration::from_secs(15), "{detected:?}");

    eprintln!(
        "day-two test: images {t_images:?}, formation {t_form:?}, member stop detected after {detected:?} ({problems}), total {:?}",
        started.elapsed()
    );
    drop(vms);
    drop(lock);
}

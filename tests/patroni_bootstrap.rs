//! A real three-member Patroni cluster (Debian's patroni 3.0.2) with one
//! etcd, all on 127.0.0.1 with separate ports, whose
//! `bootstrap.post_bootstrap` is pgha-bootstrap and whose `on_role_change`
//! callback is pgha-bootstrap too:
//! - the bootstrap ran once, on the first leader;
//! - the replicas have the schema;
//! - after the leader is killed, the new leader's on_role_change runs the
//!   callback form and finds nothing to do.

mod common;

use common::pg::{PG_BIN, PgDir, pg_bin};
use common::prereq::{free_port, require_program};
use common::wait::wait_until;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_pgha-bootstrap");
const SUPERUSER_PW: &str = "su:per'pw\\x";

/// A child process killed (and reaped) on drop.
struct Proc {
    child: Option<Child>,
}

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Member {
    name: String,
    pg_port: u16,
    api_port: u16,
    dir: PathBuf,
    log: PathBuf,
    proc: Proc,
}

impl Member {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// psql over the member's socket; Err when the server does not answer.
    fn psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(Path::new(PG_BIN).join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.pg_port.to_string(), "-c", sql])
            .env("PGCONNECT_TIMEOUT", "3")
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    /// Stop the member hard: Patroni killed, then its PostgreSQL stopped immediately.
    fn kill(&mut self) {
        self.proc.kill();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(PG_BIN).join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// HTTP status of GET path on 127.0.0.1:port (None when nothing answers).
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace().nth(1)?.parse().ok()
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| {
        let o = Command::new("id").args([flag, "postgres"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().unwrap()
    };
    (id("-u"), id("-g"))
}

fn member_config(
    root: &Path,
    scope: &str,
    name: &str,
    pg_port: u16,
    api_port: u16,
    etcd_port: u16,
) -> String {
    let dir = root.join(name);
    format!(
        r#"scope: {scope}
namespace: /service/
name: {name}
log:
  level: INFO
restapi:
  listen: 127.0.0.1:{api_port}
  connect_address: 127.0.0.1:{api_port}
etcd:
  host: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    maximum_lag_on_failover: 104857600
    postgresql:
      use_pg_rewind: false
      parameters:
        wal_level: logical
        max_wal_senders: 8
        max_replication_slots: 8
        hot_standby: "on"
        fsync: "off"
        shared_buffers: 16MB
  initdb:
  - encoding: UTF8
  - locale: C
  pg_hba:
  - local all all trust
  - host replication replicator 127.0.0.1/32 scram-sha-256
  - host all all 127.0.0.1/32 scram-sha-256
  post_bootstrap: {BIN}
postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  data_dir: {data}
  bin_dir: {PG_BIN}
  pgpass: {pgpass}
  # Replicas clone with pg_basebackup; a fast checkpoint keeps that from
  # waiting minutes for a spread one on the leader after the bootstrap.
  basebackup:
  - checkpoint: fast
  authentication:
    superuser:
      username: postgres
      password: {su_pw:?}
    replication:
      username: replicator
      password: "rep-pw"
  parameters:
    unix_socket_directories: {sock}
    password_encryption: scram-sha-256
  callbacks:
    on_role_change: {BIN}
"#,
        data = dir.join("data").display(),
        pgpass = dir.join("pgpass").display(),
        sock = dir.display(),
        su_pw = SUPERUSER_PW,
    )
}

#[test]
#[ignore = "slow tier: needs PostgreSQL, Patroni and etcd (root)"]
fn patroni_runs_the_bootstrap_once_on_the_first_leader_and_the_new_leader_finds_nothing_to_do() {
    pg_bin();
    let patroni = require_program("patroni", "patroni", &[]);
    require_program("etcd", "etcd-server", &[]);
    let root = PgDir::new("pgha-patroni-");
    let (uid, gid) = postgres_ids();
    let scope = format!("pgha-test-{}", std::process::id());

    // etcd (v2 API, which Debian's python3-etcd speaks).
    let etcd_port = free_port();
    let peer_port = free_port();
    let etcd_log = root.path.join("etcd.log");
    let mut etcd = Proc {
        child: Some(
            Command::new("etcd")
                .args(["--name", "pgha-test", "--enable-v2=true"])
                .arg("--data-dir")
                .arg(root.path.join("etcd"))
                .args(["--listen-client-urls", &format!("http://127.0.0.1:{etcd_port}")])
                .args([
                    "--advertise-client-urls",
                    &format!("http://127.0.0.1:{etcd_port}"),
                ])
                .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer_port}")])
                .args([
                    "--initial-advertise-peer-urls",
                    &format!("http://127.0.0.1:{peer_port}"),
                ])
                .args([
                    "--initial-cluster",
                    &format!("pgha-test=http://127.0.0.1:{peer_port}"),
                ])
                .stdout(Stdio::from(std::fs::File::create(&etcd_log).unwrap()))
                .stderr(Stdio::from(
                    std::fs::File::create(root.path.join("etcd.err")).unwrap(),
                ))
                .spawn()
                .expect("start etcd"),
        ),
    };
    wait_until(
        "etcd",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || (http_status(etcd_port, "/version") == Some(200)).then_some(()),
        || std::fs::read_to_string(root.path.join("etcd.err")).unwrap_or_default(),
    );

    // Three members, started together: they race for the initialize key.
    let mut members: Vec<Member> = Vec::new();
    for i in 1..=3 {
        let name = format!("m{i}");
        let (pg_port, api_port) = (free_port(), free_port());
        let dir = root.path.join(&name);
        std::fs::create_dir(&dir).unwrap();
        let cfg_path = dir.join("patroni.yml");
        std::fs::write(
            &cfg_path,
            member_config(&root.path, &scope, &name, pg_port, api_port, etcd_port),
        )
        .unwrap();
        let bootstrap_cfg = dir.join("bootstrap.toml");
        std::fs::write(
            &bootstrap_cfg,
            format!(
                "[connection]\nsocket_dir = {:?}\nport = {pg_port}\npromotion_wait_seconds = 20\n\
                 [secrets]\ndir = {:?}\n\
                 [extensions]\ncreate = [\"uuid-ossp\", \"pgcrypto\", \"pg_stat_statements\", \"pgtap\", \"pgha_no_such_ext\"]\n\
                 required = [\"uuid-ossp\", \"pgcrypto\", \"pg_stat_statements\"]\n",
                dir.display().to_string(),
                dir.join("no-secrets").display().to_string()
            ),
        )
        .unwrap();
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        let log = dir.join("patroni.log");
        let child = Command::new(&patroni)
            .arg(&cfg_path)
            .env("PGHA_BOOTSTRAP_CONFIG", &bootstrap_cfg)
            .env("HOME", &dir)
            .env_remove("PGPASSFILE")
            .env_remove("PGOPTIONS")
            .current_dir(&dir)
            .uid(uid)
            .gid(gid)
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .expect("start patroni");
        members.push(Member {
            name,
            pg_port,
            api_port,
            dir,
            log,
            proc: Proc { child: Some(child) },
        });
    }
    let logs = |members: &[Member]| {
        members
            .iter()
            .map(|m| format!("===== {} =====\n{}", m.name, m.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    };

    // One leader; two streaming replicas that have the schema.
    let leader = wait_until(
        "a leader",
        Duration::from_secs(120),
        Duration::from_millis(300),
        || {
            members
                .iter()
                .position(|m| http_status(m.api_port, "/primary") == Some(200))
        },
        || logs(&members),
    );
    let n_migrations = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("sql"))
        .unwrap()
        .count();
    for (i, m) in members.iter().enumerate() {
        if i == leader {
            continue;
        }
        wait_until(
            &format!("replica {} with the schema", m.name),
            Duration::from_secs(120),
            Duration::from_millis(300),
            || {
                (http_status(m.api_port, "/replica") == Some(200)
                    && m.psql("SELECT count(*) FROM pgha_bootstrap.migrations").ok()?
                        == n_migrations.to_string())
                .then_some(())
            },
            || logs(&members),
        );
        assert_eq!(m.psql("SELECT pg_is_in_recovery()").unwrap(), "t");
        assert_eq!(
            m.psql(
                "SELECT to_regclass('auth.users') IS NOT NULL AND to_regprocedure('auth.uid()') IS NOT NULL \
                    AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator')"
            )
            .unwrap(),
            "t"
        );
    }

    // The bootstrap ran once, on the first leader (the only log with applied migrations).
    let applied: Vec<(String, usize)> = members
        .iter()
        .map(|m| {
            (
                m.name.clone(),
                m.log_text()
                    .lines()
                    .filter(|l| l.starts_with("applied 0001_roles"))
                    .count(),
            )
        })
        .collect();
    assert_eq!(
        applied.iter().map(|a| a.1).sum::<usize>(),
        1,
        "{applied:?}\n{}",
        logs(&members)
    );
    assert_eq!(applied[leader].1, 1, "not on the leader: {applied:?}");
    let ledger_before = members[leader]
        .psql("SELECT string_agg(name || '@' || applied_at, ',' ORDER BY version) FROM pgha_bootstrap.migrations")
        .unwrap();
    assert_eq!(
        members[leader]
            .psql("SELECT count(*) FROM pg_database WHERE datname = '_supabase'")
            .unwrap(),
        "1"
    );

    // Kill the leader; a replica takes over and its on_role_change finds nothing to do.
    let old_leader_name = members[leader].name.clone();
    members[leader].kill();
    let new_leader = wait_until(
        "a new leader",
        Duration::from_secs(120),
        Duration::from_millis(300),
        || {
            members
                .iter()
                .position(|m| m.name != old_leader_name && http_status(m.api_port, "/primary") == Some(200))
        },
        || logs(&members),
    );
    let nl = &members[new_leader];
    wait_until(
        "the new leader's on_role_change callback",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || {
            let log = nl.log_text();
            let start = log.find(&format!("pgha-bootstrap: on_role_change master {scope}"))?;
            log[start..]
                .contains("pgha-bootstrap: nothing to do, the database is up to date")
                .then_some(())
        },
        || logs(&members),
    );
    assert!(
        !nl.log_text().lines().any(|l| l.starts_with("applied ")),
        "{}",
        nl.log_text()
    );
    assert_eq!(nl.psql("SELECT pg_is_in_recovery()").unwrap(), "f");
    assert_eq!(
        nl.psql("SELECT string_agg(name || '@' || applied_at, ',' ORDER BY version) FROM pgha_bootstrap.migrations")
            .unwrap(),
        ledger_before,
        "the ledger changed after the failover"
    );
    // And the contract holds on the new leader.
    let check = Command::new(BIN)
        .args([
            "check",
            "--dsn",
            &format!(
                "host={} port={} user=postgres dbname=postgres",
                nl.dir.display(),
                nl.pg_port
            ),
        ])
        .env("PGHA_BOOTSTRAP_CONFIG", nl.dir.join("bootstrap.toml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    drop(members);
    etcd.kill();
}

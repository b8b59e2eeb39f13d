//! Throwaway PostgreSQL clusters for tests: initdb/pg_ctl from
//! /usr/lib/postgresql/15/bin run as the `postgres` user, in a temporary
//! directory owned by it, on a free port, with the Unix socket in that
//! directory. Dropping a [`PgCluster`] stops the server and removes
//! everything, also when the test panicked. PostgreSQL 17, which the host
//! lacks, runs the same way inside a container of the PostgreSQL 17 Spilo
//! stand-in ([`PgCluster::start_major`]): the host's network, the data
//! directory and socket in the same host directory, so the psql/DSN API is
//! the same.

use super::prereq::{free_port, require_program, require_root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The directory of PostgreSQL 15's server programs; panics with an install hint when absent.
pub fn pg_bin() -> PathBuf {
    require_root();
    require_program("initdb", "postgresql-15", &[PG_BIN]);
    require_program("pg_ctl", "postgresql-15", &[PG_BIN]);
    require_program("psql", "postgresql-client-15", &[PG_BIN]);
    PathBuf::from(PG_BIN)
}

/// Run a program as the postgres user; panics with its output when it fails.
pub fn as_postgres(program: &Path, args: &[&str]) -> Output {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("run runuser");
    assert!(
        out.status.success(),
        "{} {:?} failed:\n{}{}",
        program.display(),
        args,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A temporary directory the postgres user owns; removed on drop.
pub struct PgDir {
    pub path: PathBuf,
}

impl PgDir {
    pub fn new(prefix: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .expect("temp dir")
            .keep();
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(status.success());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { path: dir }
    }
}

impl Drop for PgDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub struct PgCluster {
    pub port: u16,
    pub data: PathBuf,
    pub socket_dir: PathBuf,
    pub log_file: PathBuf,
    bin: PathBuf,
    running: bool,
    /// The container the server runs in (PostgreSQL 17), if any.
    container: Option<String>,
    // Last: removed after the server stopped.
    dir: PgDir,
}

/// Settings every test cluster gets: fast, quiet, deterministic.
const BASE_CONF: &str = "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nautovacuum = off\n\
    max_wal_senders = 4\nwal_level = logical\nmax_replication_slots = 4\nshared_buffers = 16MB\n\
    listen_addresses = '127.0.0.1'\nlog_line_prefix = '%m [%p] %q%u@%d '\n";

impl PgCluster {
    /// A fresh, running cluster (superuser `postgres`, trust on the socket,
    /// SCRAM over TCP on 127.0.0.1).
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// Like [`start`](Self::start), with extra postgresql.conf lines.
    pub fn start_with(extra_conf: &str) -> Self {
        let bin = pg_bin();
        let dir = PgDir::new("pgha-pg-");
        let data = dir.path.join("data");
        let data_s = data.to_str().unwrap();
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data_s,
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let port = free_port();
        let conf = format!(
            "{BASE_CONF}port = {port}\nunix_socket_directories = '{}'\n{extra_conf}\n",
            dir.path.display()
        );
        append(&data.join("postgresql.conf"), &conf);
        let mut c = Self {
            port,
            socket_dir: dir.path.clone(),
            log_file: dir.path.join("server.log"),
            data,
            bin,
            running: false,
            container: None,
            dir,
        };
        c.pg_start();
        c
    }

    /// A fresh, running cluster of PostgreSQL `major`, set up as
    /// [`start`](Self::start)'s: 15 from the host's packages, 17 in a
    /// container of the PostgreSQL 17 Spilo stand-in with what the host's 15
    /// has besides (pgtap; [`super::images::pg_server_image`]), its server
    /// Debian's postgresql-17, run as a `postgres` user with the host's uid, on the
    /// host's network (127.0.0.1 and the socket in the shared directory).
    pub fn start_major(major: u32) -> Self {
        if major == 15 {
            return Self::start();
        }
        let bin = pg_bin();
        let image = super::images::pg_server_image(major);
        let dir = PgDir::new("pgha-pg-");
        let data = dir.path.join("data");
        let port = free_port();
        let conf = format!(
            "{BASE_CONF}port = {port}\nunix_socket_directories = '{}'\n",
            dir.path.display()
        );
        let (uid, gid) = {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(&dir.path).unwrap();
            (m.uid(), m.gid())
        };
        let d = dir.path.display();
        let script = format!(
            "set -e; usermod -o -u {uid} postgres; groupmod -o -g {gid} postgres; \
             runuser -u postgres -- initdb -D {d}/data -U postgres --auth-local=trust \
                 --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync >{d}/initdb.log 2>&1; \
             printf '%s' \"$PGHA_CONF\" >> {d}/data/postgresql.conf; \
             exec runuser -u postgres -- /usr/lib/postgresql/{major}/bin/postgres -D {d}/data >>{d}/server.log 2>&1"
        );
        let name = format!("pgha-test-pg{major}-{}-{port}", std::process::id());
        {
            let _engine = super::images::engine_lock();
            super::images::run(
                super::images::podman_cmd()
                    .args(["run", "-d", "--name", &name, "--network", "host", "-e"])
                    .arg(format!("PGHA_CONF={conf}"))
                    .arg("-v")
                    .arg(format!("{d}:{d}"))
                    .args([&image, "sh", "-c", &script]),
            );
        }
        let c = Self {
            port,
            socket_dir: dir.path.clone(),
            log_file: dir.path.join("server.log"),
            data,
            bin,
            running: true,
            container: Some(name),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match c.try_psql_as(
                "postgres",
                "postgres",
                "SELECT current_setting('server_version_num')::int / 10000",
            ) {
                Ok(v) if v == major.to_string() => break,
                Ok(v) => panic!("the server in the container is PostgreSQL {v}, not {major}"),
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "PostgreSQL {major} in a container did not start within 90 s: {e}\n{}\n{}",
                    std::fs::read_to_string(c.dir.path.join("initdb.log")).unwrap_or_default(),
                    c.log()
                ),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    }

    fn pg_start(&mut self) {
        as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                self.log_file.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        self.running = true;
    }

    /// A streaming replica of this cluster, made with pg_basebackup -R.
    pub fn replica(&self) -> PgCluster {
        assert!(
            self.container.is_none(),
            "replica() runs the host's PostgreSQL 15 only"
        );
        let dir = PgDir::new("pgha-pg-replica-");
        let data = dir.path.join("data");
        let primary_dsn = format!(
            "host={} port={} user=postgres",
            self.socket_dir.display(),
            self.port
        );
        as_postgres(
            &self.bin.join("pg_basebackup"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-d",
                &primary_dsn,
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        let port = free_port();
        append(
            &data.join("postgresql.conf"),
            &format!(
                "port = {port}\nunix_socket_directories = '{}'\n",
                dir.path.display()
            ),
        );
        let mut c = Self {
            port,
            socket_dir: dir.path.clone(),
            log_file: dir.path.join("server.log"),
            data,
            bin: self.bin.clone(),
            running: false,
            container: None,
            dir,
        };
        c.pg_start();
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.psql("SELECT pg_is_in_recovery()") != "t" {
            assert!(Instant::now() < deadline, "replica did not come up in recovery");
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    /// key=value DSN over the Unix socket, as Patroni passes it.
    pub fn dsn(&self) -> String {
        self.dsn_db("postgres")
    }

    pub fn dsn_db(&self, db: &str) -> String {
        format!(
            "dbname={db} user=postgres host={} port={}",
            self.socket_dir.display(),
            self.port
        )
    }

    /// psql as `user` on database `db`; Ok(stdout) or Err(stderr).
    pub fn try_psql_as(&self, user: &str, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", user, "-d", db, "-c", sql])
            .output()
            .expect("run psql");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    /// psql as postgres on database postgres; panics on error.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql_as("postgres", "postgres", sql)
            .unwrap_or_else(|e| panic!("psql {sql:?} on port {} failed: {e}", self.port))
    }

    pub fn psql_db(&self, db: &str, sql: &str) -> String {
        self.try_psql_as("postgres", db, sql)
            .unwrap_or_else(|e| panic!("psql {sql:?} on {db} failed: {e}"))
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    pub fn stop(&mut self) {
        if let Some(name) = &self.container {
            if self.running {
                let _ = Command::new("podman")
                    .args(["rm", "-f", "-t", "0", name])
                    .output();
                self.running = false;
            }
            return;
        }
        if self.running {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "-w", "stop"])
                .output();
            self.running = false;
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open postgresql.conf");
    f.write_all(text.as_bytes()).unwrap();
}

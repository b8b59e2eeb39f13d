//! Helpers shared by the bootstrap tests: run the real binary, write a
//! configuration, take a catalog snapshot.
#![allow(dead_code)]

use crate::common::pg::PgCluster;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_pgha-bootstrap");

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success:\n{}", self.all());
        self
    }
}

pub fn run(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("PGHA_BOOTSTRAP_CONFIG")
        .env_remove("PGPASSWORD")
        .env_remove("PGOPTIONS")
        .env_remove("PGPASSFILE")
        .envs(envs.iter().copied())
        .output()
        .expect("run pgha-bootstrap");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// A configuration for `pg` whose secrets directory is `secrets` (which may not exist).
pub fn write_config(
    dir: &Path,
    pg: &PgCluster,
    secrets: &Path,
    create: &[&str],
    required: &[&str],
) -> PathBuf {
    let list = |v: &[&str]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    let text = format!(
        "[connection]\nsocket_dir = {:?}\nport = {}\nuser = \"postgres\"\ndbname = \"postgres\"\n\
         promotion_wait_seconds = 1\n\
         [secrets]\ndir = {:?}\nshared_password_file = \"password\"\njwt_secret_file = \"jwt_secret\"\n\
         [extensions]\ncreate = [{}]\nrequired = [{}]\n",
        pg.socket_dir.display().to_string(),
        pg.port,
        secrets.display().to_string(),
        list(create),
        list(required)
    );
    let path = dir.join("bootstrap.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The extensions tests use: three contrib ones (required), pgtap (optional
/// and installed), and a name no image has (optional, pending).
pub const CREATE: &[&str] = &[
    "uuid-ossp",
    "pgcrypto",
    "pg_stat_statements",
    "pgtap",
    "pgha_no_such_ext",
];
pub const REQUIRED: &[&str] = &["uuid-ossp", "pgcrypto", "pg_stat_statements"];

/// A text dump of what the bootstrap can change, with row versions (xmin),
/// so that even an identical rewrite shows.
pub fn snapshot(pg: &PgCluster) -> String {
    let queries = [
        "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, \
         rolbypassrls, rolpassword, xmin FROM pg_authid ORDER BY rolname",
        "SELECT roleid::regrole, member::regrole, admin_option, xmin FROM pg_auth_members ORDER BY 1, 2",
        "SELECT setdatabase, setrole, setconfig, xmin FROM pg_db_role_setting ORDER BY 1, 2",
        "SELECT nspname, nspowner::regrole, nspacl, xmin FROM pg_namespace ORDER BY 1",
        "SELECT n.nspname, c.relname, c.relkind, c.relowner::regrole, c.relacl, c.relrowsecurity, c.xmin \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 1, 2",
        "SELECT oid::regprocedure, proowner::regrole, proacl, md5(prosrc), prosecdef, xmin FROM pg_proc \
         ORDER BY 1::text",
        "SELECT defaclrole::regrole, defaclnamespace, defaclobjtype, defaclacl, xmin FROM pg_default_acl ORDER BY 1, 2, 3",
        "SELECT extname, extnamespace::regnamespace, extversion, xmin FROM pg_extension ORDER BY 1",
        "SELECT evtname, evtevent, evtfoid::regproc, evtenabled, evttags, xmin FROM pg_event_trigger ORDER BY 1",
        "SELECT pubname, pubowner::regrole, xmin FROM pg_publication ORDER BY 1",
        "SELECT datname, datdba::regrole, datacl FROM pg_database ORDER BY 1",
        "SELECT *, xmin FROM pgha_bootstrap.migrations ORDER BY version",
        "SELECT *, xmin FROM pgha_bootstrap.extensions ORDER BY name",
        "SELECT *, xmin FROM pgha_bootstrap.secrets ORDER BY name",
    ];
    queries
        .iter()
        .map(|q| format!("-- {q}\n{}\n", pg.psql(q)))
        .collect()
}

/// The SHA-256 of each file of sql/, by migration name.
pub fn sql_checksums() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_str().unwrap().to_string();
            let digest = pgha_image::hash::Sha256Digest::of(&std::fs::read(&p).unwrap());
            (name, digest.to_hex())
        })
        .collect();
    v.sort();
    v
}

//! Safety of the runner: concurrent runs, a migration failing halfway,
//! drift, replicas, required and pending extensions.

mod bootstrap_support;
mod common;

use bootstrap_support::{BIN, CREATE, REQUIRED, run, sql_checksums, write_config};
use common::pg::PgCluster;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
#[ignore = "slow tier: needs PostgreSQL (root, to run it as postgres)"]
fn eight_concurrent_runs_apply_each_migration_once() {
    let pg = PgCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &pg, &tmp.path().join("none"), CREATE, REQUIRED);
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(BIN)
                .args(["--config", cfg.to_str().unwrap(), "apply", "--dsn", &pg.dsn()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let mut applied_lines = 0;
    let mut created_lines = 0;
    for o in &outputs {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "a concurrent run failed:\n{text}");
        applied_lines += text.lines().filter(|l| l.starts_with("applied ")).count();
        created_lines += text
            .lines()
            .filter(|l| l.starts_with("extension uuid-ossp: created"))
            .count();
    }
    assert_eq!(
        created_lines, 1,
        "the extension must be created by exactly one run"
    );
    let n = sql_checksums().len();
    assert_eq!(
        applied_lines, n,
        "each migration must be applied by exactly one run"
    );
    assert_eq!(
        pg.psql("SELECT count(*), count(DISTINCT version) FROM pgha_bootstrap.migrations"),
        format!("{n}|{n}")
    );
    assert_eq!(pg.psql("SELECT count(*) FROM auth.schema_migrations"), "7");
    assert_eq!(
        pg.psql("SELECT count(*) FROM pgha_bootstrap.extensions WHERE status = 'created'"),
        "4"
    );
}

#[test]
#[ignore = "slow tier: needs PostgreSQL (root, to run it as postgres)"]
fn a_migration_failing_halfway_leaves_no_trace_and_the_next_run_completes() {
    let pg = PgCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &pg, &tmp.path().join("none"), CREATE, REQUIRED);
    let cfg = cfg.to_str().unwrap();
    let extra = tmp.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    let file = extra.join("9001_half.sql");
    std::fs::write(
        &file,
        "-- 9001_half: a site migration that breaks after doing some work\n\
         CREATE TABLE public.half_done (x int);\nINSERT INTO public.half_done VALUES (1);\nSELECT 1/0;\n",
    )
    .unwrap();
    let extra_s = extra.to_str().unwrap();
    let r = run(
        &[
            "--config",
            cfg,
            "--extra-migrations",
            extra_s,
            "apply",
            "--dsn",
            &pg.dsn(),
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("migration 9001_half failed: ERROR: division by zero"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("division by zero"), "{}", r.stderr);
    assert!(r.stderr.contains("rolled back completely"), "{}", r.stderr);
    // No trace of it; the migrations before it are committed and recorded.
    assert_eq!(pg.psql("SELECT to_regclass('public.half_done') IS NULL"), "t");
    assert_eq!(
        pg.psql("SELECT count(*) FROM pgha_bootstrap.migrations WHERE version = 9001"),
        "0"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM pgha_bootstrap.migrations")
            .parse::<usize>()
            .unwrap(),
        sql_checksums().len()
    );

    // Fixed, the next run completes it (and only it).
    std::fs::write(
        &file,
        "-- 9001_half: a site migration\nCREATE TABLE public.half_done (x int);\nINSERT INTO public.half_done VALUES (1);\n",
    )
    .unwrap();
    let r = run(
        &[
            "--config",
            cfg,
            "--extra-migrations",
            extra_s,
            "apply",
            "--dsn",
            &pg.dsn(),
        ],
        &[],
    )
    .ok();
    let applied: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("applied ")).collect();
    assert_eq!(applied.len(), 1, "{}", r.stdout);
    assert!(applied[0].starts_with("applied 9001_half"));
    assert_eq!(pg.psql("SELECT count(*) FROM public.half_done"), "1");

    // Drift: the applied migration's text changes → refused, exit 3, nothing run.
    std::fs::write(
        &file,
        "-- 9001_half: a site migration, edited\nCREATE TABLE public.half_done (x int);\nINSERT INTO public.half_done VALUES (2);\n",
    )
    .unwrap();
    let r = run(
        &[
            "--config",
            cfg,
            "--extra-migrations",
            extra_s,
            "apply",
            "--dsn",
            &pg.dsn(),
        ],
        &[],
    );
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("drift") && r.stderr.contains("9001_half"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("new migration with a higher number"),
        "{}",
        r.stderr
    );
    assert_eq!(pg.psql("SELECT count(*) FROM public.half_done"), "1");
    let s = run(
        &[
            "--config",
            cfg,
            "--extra-migrations",
            extra_s,
            "status",
            "--dsn",
            &pg.dsn(),
        ],
        &[],
    )
    .ok();
    assert!(s.stdout.contains("PROBLEM: drift"), "{}", s.stdout);

    // Without --extra-migrations, the directory the ledger recorded is used:
    // the drift is refused all the same.
    let r = run(&["--config", cfg, "apply", "--dsn", &pg.dsn()], &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("9001_half"), "{}", r.stderr);
    // A ledger row neither this binary nor the recorded selection knows.
    pg.psql("DELETE FROM pgha_bootstrap.selection WHERE key = 'extra_migrations'");
    let r = run(&["--config", cfg, "apply", "--dsn", &pg.dsn()], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("does not know: 9001_half"), "{}", r.stderr);

    // Drift of a built-in migration (as if the binary's SQL had been edited after applying).
    pg.psql("DELETE FROM pgha_bootstrap.migrations WHERE version = 9001; DROP TABLE public.half_done");
    pg.psql("UPDATE pgha_bootstrap.migrations SET checksum = repeat('0', 64) WHERE version = 4");
    let r = run(&["--config", cfg, "apply", "--dsn", &pg.dsn()], &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("0004_auth (applied sha256 000000000000"),
        "{}",
        r.stderr
    );
    let c = run(&["--config", cfg, "check", "--dsn", &pg.dsn()], &[]);
    assert_eq!(c.code, 3, "{}", c.all());
    assert!(
        c.stdout
            .contains("the ledger records no changed or unknown migration"),
        "{}",
        c.stdout
    );
}

#[test]
#[ignore = "slow tier: needs PostgreSQL (root, to run it as postgres)"]
fn a_streaming_replica_is_left_alone() {
    let primary = PgCluster::start();
    let replica = primary.replica();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &replica, &tmp.path().join("none"), CREATE, REQUIRED);
    let cfg = cfg.to_str().unwrap();
    let lsn_before = replica.psql("SELECT pg_last_wal_replay_lsn()");

    for args in [
        vec!["--config", cfg, "apply", "--dsn", &replica.dsn()],
        vec!["--config", cfg, &replica.dsn()],
        vec!["--config", cfg, "hook", "admin", "postgres"],
        vec!["--config", cfg, "on_role_change", "master", "batman"],
    ] {
        let started = Instant::now();
        let r = run(&args, &[]).ok();
        assert!(
            r.stdout
                .contains("the server is a replica (in recovery): nothing to do"),
            "{args:?}: {}",
            r.all()
        );
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    let r = run(&["--config", cfg, "on_role_change", "replica", "batman"], &[]).ok();
    assert!(r.stdout.contains("nothing to do (not a primary)"), "{}", r.stdout);
    let s = run(&["--config", cfg, "status", "--dsn", &replica.dsn()], &[]).ok();
    assert!(s.stdout.contains("server: replica"), "{}", s.stdout);

    // Nothing was written, on the primary or through it.
    assert_eq!(
        primary.psql("SELECT to_regnamespace('pgha_bootstrap') IS NULL AND to_regrole('anon') IS NULL"),
        "t"
    );
    assert_eq!(replica.psql("SELECT pg_last_wal_replay_lsn()"), lsn_before);
    assert_eq!(
        primary.psql("SELECT count(*) FROM pg_database WHERE datname = '_supabase'"),
        "0"
    );
}

#[test]
#[ignore = "slow tier: needs PostgreSQL (root, to run it as postgres)"]
fn a_missing_required_extension_fails_before_anything_is_written() {
    let pg = PgCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        &pg,
        &tmp.path().join("none"),
        &["uuid-ossp", "pgha_no_such_ext", "pgha_nor_this"],
        &["uuid-ossp", "pgha_no_such_ext", "pgha_nor_this"],
    );
    let r = run(
        &["--config", cfg.to_str().unwrap(), "apply", "--dsn", &pg.dsn()],
        &[],
    );
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(
        r.stderr
            .contains("required extension(s) not installed in this image: pgha_no_such_ext, pgha_nor_this"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: install the extension in the image"),
        "{}",
        r.stderr
    );
    assert_eq!(
        pg.psql("SELECT to_regnamespace('pgha_bootstrap') IS NULL AND to_regrole('anon') IS NULL"),
        "t"
    );
}

/// A tiny extension written into PostgreSQL's extension directory for one
/// test (a unique name), removed on drop.
struct FakeExtension {
    files: Vec<std::path::PathBuf>,
}

impl FakeExtension {
    fn install(name: &str) -> Self {
        let out = Command::new(Path::new(common::pg::PG_BIN).join("pg_config"))
            .arg("--sharedir")
            .output();
        let share = match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
            _ => "/usr/share/postgresql/15".into(),
        };
        let dir = Path::new(&share).join("extension");
        let control = dir.join(format!("{name}.control"));
        let script = dir.join(format!("{name}--1.0.sql"));
        let guard = Self {
            files: vec![control.clone(), script.clone()],
        };
        std::fs::write(
            &control,
            "default_version = '1.0'\nrelocatable = true\ncomment = 'pgha test'\n",
        )
        .unwrap();
        std::fs::write(
            &script,
            "CREATE FUNCTION pgha_test_answer() RETURNS int LANGUAGE sql AS 'SELECT 42';\n",
        )
        .unwrap();
        guard
    }
}

impl Drop for FakeExtension {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[test]
#[ignore = "slow tier: needs PostgreSQL (root, to run it as postgres)"]
fn an_optional_extension_missing_now_is_pending_and_created_by_a_later_run() {
    let pg = PgCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("pgha_test_ext_{}", std::process::id());
    let create = [
        "uuid-ossp",
        "pgcrypto",
        "pg_stat_statements",
        "pgtap",
        name.as_str(),
    ];
    let cfg = write_config(tmp.path(), &pg, &tmp.path().join("none"), &create, REQUIRED);
    let cfg = cfg.to_str().unwrap();

    let r = run(&["--config", cfg, "apply", "--dsn", &pg.dsn()], &[]).ok();
    assert!(r.stdout.contains(&format!(
        "extension {name}: not installed in this image; recorded as pending"
    )));
    assert!(r.stdout.contains("extension pgtap: created"), "{}", r.stdout);
    assert_eq!(
        pg.psql(&format!(
            "SELECT status FROM pgha_bootstrap.extensions WHERE name = '{name}'"
        )),
        "pending"
    );
    // Still missing: the next run has nothing to do.
    let r = run(&["--config", cfg, "apply", "--dsn", &pg.dsn()], &[]).ok();
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);

    // The image gains it (e.g. after an upgrade); the next run (here the promotion callback) creates it.
    let _ext = FakeExtension::install(&name);
    let r = run(&["--config", cfg, "on_role_change", "primary", "batman"], &[]).ok();
    assert!(
        r.stdout.contains(&format!("extension {name}: created")),
        "{}",
        r.all()
    );
    assert_eq!(
        pg.psql(&format!(
            "SELECT e.extnamespace::regnamespace || ' ' || l.status FROM pg_extension e \
             JOIN pgha_bootstrap.extensions l ON l.name = e.extname WHERE e.extname = '{name}'"
        )),
        "extensions created"
    );
    assert_eq!(pg.psql("SELECT extensions.pgha_test_answer()"), "42");
    // An extension that was there already (created by the base image) is recorded as present.
    pg.psql("CREATE EXTENSION pg_trgm");
    let r = run(
        &[
            "--config",
            cfg,
            "apply",
            "--extensions",
            "pg_trgm",
            "--dsn",
            &pg.dsn(),
        ],
        &[],
    )
    .ok();
    assert!(
        r.stdout.contains("extension pg_trgm: already present (version"),
        "{}",
        r.stdout
    );
    assert_eq!(
        pg.psql("SELECT status FROM pgha_bootstrap.extensions WHERE name = 'pg_trgm'"),
        "present"
    );
}

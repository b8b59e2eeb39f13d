//! The Spilo stand-in that the image tests build on behaves as the parts of
//! the Spilo contract they rely on: Patroni becomes leader, post_init.sh ran
//! with the human role and a DSN under a stripped environment, the promotion
//! callback ran it again with `postgres`, pg_cron and pg_stat_statements are
//! preloaded and created. The same body runs on both stand-ins: PostgreSQL
//! 15 (bookworm, Patroni 3.0) and 17 (trixie, Patroni 4.0).

mod common;

use common::images::{self, Container};
use std::time::Duration;

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn standin_runs_patroni_and_post_init_like_spilo() {
    standin_honours_the_contract(15);
}

#[test]
#[ignore = "slow tier: needs root, Podman and the Debian mirror (the trixie stand-in)"]
fn standin_17_runs_patroni_and_post_init_like_spilo() {
    standin_honours_the_contract(17);
}

fn standin_honours_the_contract(major: u32) {
    let _engine = images::engine_lock();
    let image = images::spilo_standin_of(major);
    // The contract's fixed points, from the image config.
    let cmd = images::run(images::podman_cmd().args([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Cmd}}",
        &image,
    ]));
    assert_eq!(cmd.trim(), r#"["/bin/sh","/launch.sh","init"]"#);
    let user =
        images::run(images::podman_cmd().args(["image", "inspect", "--format", "{{.Config.User}}", &image]));
    assert!(
        user.trim().is_empty() || user.trim() == "root",
        "starts as root: {user}"
    );

    let c = Container::run(
        &format!("standin-{major}"),
        &image,
        &["-e", "HUMAN_ROLE=humans", "-e", "SECRET_FROM_ENV=leak"],
    );
    c.wait_for(
        "Patroni reports a leader on 8008",
        Duration::from_secs(120),
        |c| c.exec(&["curl", "-fsS", "http://127.0.0.1:8008/leader"]).0,
    );
    c.wait_for("post_init.sh finished", Duration::from_secs(60), |c| {
        c.exec(&["grep", "-q", "post_init.sh ok", "/run/postgresql/post_init.calls"])
            .0
    });
    let (_, calls) = c.exec(&["cat", "/run/postgresql/post_init.calls"]);
    let first = calls.lines().next().unwrap();
    assert!(
        first.contains("post_init.sh humans dbname=postgres user=postgres"),
        "{calls}"
    );

    // The hook's environment: Patroni's PGPASSFILE and PGOPTIONS, none of the container's.
    let (_, env) = c.exec(&["cat", "/run/postgresql/post_init.env"]);
    assert!(env.contains("PGPASSFILE=/run/postgresql/pgpass"), "{env}");
    // Patroni 3.0.2 (Debian) gives `-c synchronous_commit=local`; 3.2+ (Spilo) adds `-c statement_timeout=0`.
    assert!(env.contains("PGOPTIONS=-c synchronous_commit=local"), "{env}");
    assert!(env.contains("HOME=/home/postgres"), "{env}");
    assert!(
        !env.contains("SECRET_FROM_ENV") && !env.contains("HUMAN_ROLE"),
        "{env}"
    );

    let (ok, yml) = c.exec(&["cat", "/run/postgres.yml"]);
    assert!(ok, "{yml}");
    assert!(
        yml.contains(r#"post_init: /scripts/post_init.sh "humans""#),
        "{yml}"
    );
    assert!(
        yml.contains("data_dir: /home/postgres/pgdata/pgroot/data"),
        "{yml}"
    );

    let psql = |sql: &str| {
        let (ok, out) = c.exec(&[
            "psql",
            "-U",
            "postgres",
            "-h",
            "/run/postgresql",
            "-XAtc",
            sql,
            "postgres",
        ]);
        assert!(ok, "{sql}: {out}");
        out.trim().to_string()
    };
    assert_eq!(
        psql("SHOW shared_preload_libraries"),
        "pg_stat_statements,pg_cron"
    );
    assert_eq!(psql("SHOW cron.database_name"), "postgres");
    assert_eq!(
        psql(
            "SELECT string_agg(extname || ':' || extnamespace::regnamespace, ',' ORDER BY extname) FROM pg_extension"
        ),
        "pg_cron:pg_catalog,pg_stat_statements:public,plpgsql:pg_catalog"
    );
    assert_eq!(
        psql("SELECT count(*) FROM pg_roles WHERE rolname IN ('admin','cron_admin','humans')"),
        "3"
    );
    assert_eq!(
        psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'metric_helpers'"),
        "1"
    );
    assert_eq!(
        psql("SELECT pg_catalog.current_setting('server_version_num')::int / 10000"),
        major.to_string()
    );
    // Spilo's paths for the major.
    for p in [
        format!("/usr/lib/postgresql/{major}/bin/postgres"),
        format!("/usr/lib/postgresql/{major}/lib/pg_cron.so"),
        format!("/usr/share/postgresql/{major}/extension/pg_cron.control"),
        // Bundled as in Spilo: the catalog's base-provided hypopg and wal2json.
        format!("/usr/lib/postgresql/{major}/lib/hypopg.so"),
        format!("/usr/share/postgresql/{major}/extension/hypopg.control"),
        format!("/usr/lib/postgresql/{major}/lib/wal2json.so"),
    ] {
        assert!(c.exec(&["test", "-f", &p]).0, "{p} missing");
    }
    // No build tools in the final image.
    for probe in [
        &format!("dpkg -s postgresql-server-dev-{major}"),
        "command -v gcc",
        "command -v cc",
        "command -v make",
    ] {
        assert!(
            !c.exec(&["sh", "-c", probe]).0,
            "{probe} succeeded: build tools in the stand-in"
        );
    }

    // A promotion callback (as Patroni calls it) runs post_init.sh with `postgres`, and it is re-runnable.
    let (ok, out) = c.exec(&[
        "runuser",
        "-u",
        "postgres",
        "--",
        "/scripts/on_role_change.sh",
        "humans",
        "true",
        "on_role_change",
        "master",
        "standin",
    ]);
    assert!(ok, "{out}");
    let (_, calls) = c.exec(&["cat", "/run/postgresql/post_init.calls"]);
    assert!(
        calls.lines().any(|l| l.ends_with("post_init.sh humans postgres")),
        "{calls}"
    );
    assert_eq!(calls.matches("post_init.sh ok").count(), 2, "{calls}");

    // post_init.sh fails on an SQL error (as Spilo's does).
    let (ok, out) = c.exec(&[
        "runuser",
        "-u",
        "postgres",
        "--",
        "/scripts/post_init.sh",
        "humans",
        "dbname=does_not_exist host=/run/postgresql",
    ]);
    assert!(!ok, "post_init.sh must fail when it cannot run its SQL: {out}");
}

//! The command line without a database: configuration and DSN mistakes are
//! exit 2 with a hint, callbacks that mean nothing exit 0, an unreachable
//! server is exit 1 naming it.

mod bootstrap_support;
mod common;

use bootstrap_support::run;

#[test]
fn configuration_and_dsn_mistakes_are_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.toml");
    let r = run(&["--config", missing.to_str().unwrap(), "status"], &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("cannot read the bootstrap configuration"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);

    // The environment variable names the file too.
    let r = run(
        &["status"],
        &[("PGHA_BOOTSTRAP_CONFIG", missing.to_str().unwrap())],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("nope.toml"), "{}", r.stderr);

    let typo = tmp.path().join("typo.toml");
    std::fs::write(&typo, "[extensions]\ncreat = [\"x\"]\n").unwrap();
    let r = run(&["--config", typo.to_str().unwrap(), "status"], &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("creat"), "{}", r.stderr);

    let ok = tmp.path().join("ok.toml");
    std::fs::write(
        &ok,
        "[connection]\nsocket_dir = \"/nonexistent-pgha\"\nport = 1\n",
    )
    .unwrap();
    let cfg = ok.to_str().unwrap();
    for (dsn, needle) in [
        ("host=x sslmode=require", "sslmode=require needs TLS"),
        ("host=x bogus=1", "unknown option `bogus`"),
        (
            "host='unterminated",
            "unterminated quoted connection parameter value",
        ),
    ] {
        let r = run(&["--config", cfg, "apply", "--dsn", dsn], &[]);
        assert_eq!(r.code, 2, "{dsn}: {}", r.all());
        assert!(r.stderr.contains(needle), "{dsn}: {}", r.stderr);
    }

    // The word `postgres` is the configured socket: nothing listens there.
    let r = run(&["--config", cfg, "hook", "admin", "postgres"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("cannot connect to PostgreSQL at dbname=postgres host=/nonexistent-pgha port=1")
    );
    assert!(
        r.stderr.contains("hint: check that PostgreSQL is running"),
        "{}",
        r.stderr
    );

    // Callbacks that mean nothing for the bootstrap.
    for args in [
        ["on_start", "master", "s"],
        ["on_stop", "replica", "s"],
        ["on_reload", "master", "s"],
    ] {
        let r = run(&["--config", cfg, args[0], args[1], args[2]], &[]);
        assert_eq!(r.code, 0, "{args:?}: {}", r.all());
    }
    let r = run(&["--config", cfg, "on_role_change", "replica", "s"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());

    // A migrations directory with a bad file name.
    let extra = tmp.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(extra.join("notes.sql"), "select 1").unwrap();
    let r = run(
        &[
            "--config",
            cfg,
            "--extra-migrations",
            extra.to_str().unwrap(),
            "status",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("notes.sql is not named NNNN_name.sql"),
        "{}",
        r.stderr
    );
}

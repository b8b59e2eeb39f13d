//! The scripts shipped in the image, run for real with sh (dash) and bash:
//! the post_init wrapper's order and exit status rules, the pgsodium getkey
//! script, and the base-provided extension check.

mod common;

use common::prereq::require_program;
use pgha_image::catalog::Catalog;
use pgha_image::context::render::{self, RenderedFile};
use pgha_image::context::{BuildPlan, PlanRequest};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rendered() -> Vec<RenderedFile> {
    let plan = BuildPlan::new(&Catalog::embedded().unwrap(), &PlanRequest::default()).unwrap();
    render::render(&plan).unwrap()
}

fn write_rendered(dir: &Path, path: &str) -> PathBuf {
    let files = rendered();
    let f = files.iter().find(|f| f.path == path).unwrap();
    let dest = dir.join(path.rsplit('/').next().unwrap());
    std::fs::write(&dest, &f.contents).unwrap();
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(f.mode)).unwrap();
    assert_eq!(f.mode, 0o755, "{path} must be executable");
    dest
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A fake Spilo post_init and a fake pgha-bootstrap that log their arguments
/// to one file and exit with the status in a file next to them.
struct Hook {
    dir: tempfile::TempDir,
    wrapper: PathBuf,
}

impl Hook {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let wrapper = write_rendered(dir.path(), "hook/post_init.sh");
        let log = dir.path().join("calls.log");
        for name in ["spilo", "bootstrap"] {
            script(
                &dir.path().join(name),
                &format!(
                    "echo \"{name} $*\" >> {log}\nexit $(cat {status} 2>/dev/null || echo 0)",
                    log = log.display(),
                    status = dir.path().join(format!("{name}.status")).display()
                ),
            );
        }
        Hook { dir, wrapper }
    }

    fn fail(&self, name: &str, status: i32) {
        std::fs::write(self.dir.path().join(format!("{name}.status")), status.to_string()).unwrap();
    }

    fn run(&self, shell: &str, args: &[&str]) -> (Option<i32>, Vec<String>, String) {
        let _ = std::fs::remove_file(self.dir.path().join("calls.log"));
        let o = Command::new(shell)
            .arg(&self.wrapper)
            .args(args)
            .env("PGHA_SPILO_POST_INIT", self.dir.path().join("spilo"))
            .env("PGHA_BOOTSTRAP_BIN", self.dir.path().join("bootstrap"))
            .output()
            .unwrap();
        let calls = std::fs::read_to_string(self.dir.path().join("calls.log")).unwrap_or_default();
        (
            o.status.code(),
            calls.lines().map(str::to_string).collect(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

const DSN: &str = "dbname=postgres user=postgres host=/run/postgresql port=5432";

#[test]
fn wrapper_bootstrap_call_runs_spilo_first_and_stops_on_its_failure() {
    for shell in ["sh", "bash"] {
        require_program(shell, if shell == "sh" { "dash" } else { "bash" }, &["/bin"]);
        let h = Hook::new();
        let (code, calls, _) = h.run(shell, &["admin", DSN]);
        assert_eq!(code, Some(0), "{shell}");
        assert_eq!(
            calls,
            [
                format!("spilo admin {DSN}"),
                format!("bootstrap hook admin {DSN}")
            ],
            "{shell}"
        );

        // pgha-bootstrap's failure is the hook's failure.
        h.fail("bootstrap", 5);
        let (code, calls, _) = h.run(shell, &["admin", DSN]);
        assert_eq!(code, Some(5), "{shell}");
        assert_eq!(calls.len(), 2);

        // Spilo's failure: returned at once, pgha-bootstrap never runs.
        h.fail("bootstrap", 0);
        h.fail("spilo", 3);
        let (code, calls, err) = h.run(shell, &["admin", DSN]);
        assert_eq!(code, Some(3), "{shell}");
        assert_eq!(calls, [format!("spilo admin {DSN}")], "{shell}");
        assert!(err.contains("not running pgha-bootstrap"), "{err}");
    }
}

#[test]
fn wrapper_promotion_call_always_runs_both() {
    for shell in ["sh", "bash"] {
        let h = Hook::new();
        let (code, calls, _) = h.run(shell, &["admin", "postgres"]);
        assert_eq!(code, Some(0));
        assert_eq!(
            calls,
            ["spilo admin postgres", "bootstrap hook admin postgres"],
            "{shell}"
        );

        // Spilo's script failed after promotion: pgha-bootstrap still runs; Spilo's status is reported.
        h.fail("spilo", 3);
        let (code, calls, err) = h.run(shell, &["admin", "postgres"]);
        assert_eq!(
            calls,
            ["spilo admin postgres", "bootstrap hook admin postgres"],
            "{shell}"
        );
        assert_eq!(code, Some(3), "{shell}");
        assert!(err.contains("running pgha-bootstrap anyway"), "{err}");

        // Both failed: pgha-bootstrap's status wins.
        h.fail("bootstrap", 7);
        let (code, _, _) = h.run(shell, &["admin", "postgres"]);
        assert_eq!(code, Some(7), "{shell}");
    }
}

#[test]
fn wrapper_refuses_missing_arguments_and_a_missing_original() {
    let h = Hook::new();
    let (code, calls, err) = h.run("sh", &["admin"]);
    assert_eq!(code, Some(2));
    assert!(calls.is_empty());
    assert!(err.contains("expected HUMAN_ROLE and a DSN"), "{err}");

    std::fs::remove_file(h.dir.path().join("spilo")).unwrap();
    let (code, calls, err) = h.run("sh", &["admin", DSN]);
    assert_eq!(code, Some(127));
    assert!(
        calls.is_empty(),
        "pgha-bootstrap must not run without Spilo's script: {calls:?}"
    );
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn wrapper_defaults_to_the_image_paths() {
    let files = rendered();
    let w = std::str::from_utf8(
        &files
            .iter()
            .find(|f| f.path == "hook/post_init.sh")
            .unwrap()
            .contents,
    )
    .unwrap()
    .to_string();
    assert!(
        w.contains("ORIGINAL=\"${PGHA_SPILO_POST_INIT:-/scripts/post_init.spilo.sh}\""),
        "{w}"
    );
    assert!(
        w.contains("BOOTSTRAP=\"${PGHA_BOOTSTRAP_BIN:-/usr/local/bin/pgha-bootstrap}\""),
        "{w}"
    );
    // The marker the Dockerfile looks for, so an image is never wrapped twice.
    assert!(w.contains("pgha-image post_init wrapper"));
    let df = std::str::from_utf8(&files.iter().find(|f| f.path == "Dockerfile").unwrap().contents).unwrap();
    assert!(df.contains("grep -q 'pgha-image post_init wrapper' /scripts/post_init.sh"));
}

fn getkey(key_file: &Path) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let s = write_rendered(dir.path(), "hook/pgsodium_getkey");
    Command::new("sh")
        .arg(&s)
        .env("PGHA_PGSODIUM_KEY_FILE", key_file)
        .output()
        .unwrap()
}

#[test]
fn getkey_prints_the_mounted_key_and_fails_loudly_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = "0123456789abcdef".repeat(4);
    let f = dir.path().join("pgsodium_root_key");
    std::fs::write(&f, format!("{key}\n")).unwrap();
    let o = getkey(&f);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), format!("{key}\n"));
    // Same key, same output: every member prints what the secret holds.
    assert_eq!(getkey(&f).stdout, getkey(&f).stdout);

    let missing = getkey(&dir.path().join("absent"));
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("does not exist") && err.contains("every member"),
        "{err}"
    );

    std::fs::write(&f, "abc\n").unwrap();
    let short = getkey(&f);
    assert_eq!(short.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&short.stderr).contains("3 hex characters, not 64"));

    std::fs::write(&f, "z".repeat(64)).unwrap();
    let bad = getkey(&f);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not hexadecimal"));

    std::fs::write(&f, "").unwrap();
    assert_eq!(getkey(&f).status.code(), Some(1));

    // The default path is the mounted secret's.
    let files = rendered();
    let g = std::str::from_utf8(
        &files
            .iter()
            .find(|f| f.path == "hook/pgsodium_getkey")
            .unwrap()
            .contents,
    )
    .unwrap()
    .to_string();
    assert!(
        g.contains("${PGHA_PGSODIUM_KEY_FILE:-/run/secrets/supabase/pgsodium_root_key}"),
        "{g}"
    );
}

#[test]
fn base_extension_check_names_the_extension() {
    require_program("dpkg", "dpkg", &["/usr/bin"]);
    let files = rendered();
    let f = files
        .iter()
        .find(|f| f.path == "hook/check-base-extension.sh")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("check");
    std::fs::write(&s, &f.contents).unwrap();
    let root = dir.path().join("root");
    let ext = |major: u32| root.join(format!("usr/share/postgresql/{major}/extension"));
    let lib = |major: u32| root.join(format!("usr/lib/postgresql/{major}/lib"));
    for m in [15, 16] {
        std::fs::create_dir_all(ext(m)).unwrap();
        std::fs::create_dir_all(lib(m)).unwrap();
    }
    std::fs::write(
        ext(15).join("pg_cron.control"),
        "comment = 'x'\ndefault_version = '1.6'\n",
    )
    .unwrap();
    std::fs::write(ext(16).join("pg_cron.control"), "default_version = '1.5'\n").unwrap();
    std::fs::write(lib(15).join("wal2json.so"), "").unwrap();
    let run = |args: &[&str]| {
        Command::new("sh")
            .arg(&s)
            .args(args)
            .env("PGHA_ROOT", &root)
            .output()
            .unwrap()
    };

    let ok = run(&["pg_cron", "pg_cron", "1.6", "15"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("pg_cron 1.6 for PostgreSQL 15"));

    let old = run(&["pg_cron", "pg_cron", "1.6", "15", "16"]);
    assert_eq!(old.status.code(), Some(1));
    let err = String::from_utf8_lossy(&old.stderr);
    assert!(
        err.contains("extension pg_cron") && err.contains("1.5") && err.contains("--from-source pg_cron"),
        "{err}"
    );

    // No minimum: any version.
    assert!(run(&["pg_cron", "pg_cron", "-", "15", "16"]).status.success());

    // A module without a control file: its library is enough.
    assert!(run(&["wal2json", "wal2json", "2.4", "15"]).status.success());
    let missing = run(&["wal2json", "wal2json", "2.4", "16"]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("extension wal2json: not provided by the base image for PostgreSQL 16"),
        "{err}"
    );
}

/// The launch wrapper with the real merge script (python3 + PyYAML, as in
/// Spilo), the image's rendered defaults, and a fake Spilo launch.sh that
/// prints what it was given.
fn launch(shell: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    require_program("python3", "python3-yaml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let wrapper = write_rendered(dir.path(), "hook/launch.sh");
    let merge = write_rendered(dir.path(), "hook/spilo_configuration.py");
    let files = rendered();
    let defaults = dir.path().join("spilo-defaults.json");
    std::fs::write(
        &defaults,
        &files
            .iter()
            .find(|f| f.path == "config/spilo-defaults.json")
            .unwrap()
            .contents,
    )
    .unwrap();
    let original = dir.path().join("launch.spilo.sh");
    script(
        &original,
        "echo \"args: $*\"\nprintf '%s\\n' \"$SPILO_CONFIGURATION\"",
    );
    let mut cmd = Command::new(shell);
    cmd.arg(&wrapper)
        .args(args)
        .env_remove("SPILO_CONFIGURATION")
        .env_remove("PATRONI_CONFIGURATION")
        .env("PGHA_SPILO_DEFAULTS", &defaults)
        .env("PGHA_SPILO_MERGE", &merge)
        .env("PGHA_SPILO_LAUNCH", &original);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn launched_config(stdout: &str) -> serde_json::Value {
    let json = stdout.lines().nth(1).unwrap_or_default();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn launch_wrapper_gives_the_image_defaults_when_nothing_is_set() {
    for shell in ["sh", "bash"] {
        let (code, out, err) = launch(shell, &["init"], &[]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.starts_with("args: init\n"), "{out}");
        let c = launched_config(&out);
        let p = &c["postgresql"]["parameters"];
        assert_eq!(
            p["shared_preload_libraries"],
            "bg_mon,pg_stat_statements,pgextwlist,pg_auth_mon,set_user,timescaledb,pg_cron,pg_stat_kcache,pg_net,pgsodium"
        );
        assert_eq!(p["pgsodium.getkey_script"], "/usr/local/lib/pgha/pgsodium_getkey");
        assert_eq!(p["cron.database_name"], "postgres");
        assert_eq!(
            c["bootstrap"]["dcs"]["postgresql"]["parameters"]["wal_level"],
            "logical"
        );
    }
}

#[test]
fn launch_wrapper_lets_the_deployment_win_and_keeps_the_rest() {
    // What the postgres-operator sets (its own keys, a preload list of the
    // user's) and what a compose file sets (addresses, a DCS).
    let operator = r#"
postgresql:
  parameters:
    shared_preload_libraries: bg_mon,pg_stat_statements,pg_cron
    max_connections: "200"
  pg_hba: [local all all trust]
bootstrap:
  dcs:
    ttl: 20
    postgresql:
      parameters:
        max_wal_senders: "20"
restapi:
  connect_address: 192.0.2.11:8008
"#;
    let (code, out, err) = launch("sh", &[], &[("SPILO_CONFIGURATION", operator)]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().next(), Some("args: "), "{out}");
    let c = launched_config(&out);
    let p = &c["postgresql"]["parameters"];
    // The deployment's scalars win, the image's other settings stay.
    assert_eq!(p["shared_preload_libraries"], "bg_mon,pg_stat_statements,pg_cron");
    assert_eq!(p["max_connections"], "200");
    assert_eq!(p["pgsodium.getkey_script"], "/usr/local/lib/pgha/pgsodium_getkey");
    assert_eq!(p["password_encryption"], "scram-sha-256");
    let dcs = &c["bootstrap"]["dcs"];
    assert_eq!(dcs["ttl"], 20);
    assert_eq!(dcs["postgresql"]["parameters"]["max_wal_senders"], "20");
    assert_eq!(dcs["postgresql"]["parameters"]["wal_level"], "logical");
    // The deployment's list and its other keys are kept as given.
    assert_eq!(
        c["postgresql"]["pg_hba"],
        serde_json::json!(["local all all trust"])
    );
    assert_eq!(c["restapi"]["connect_address"], "192.0.2.11:8008");

    // Idempotent: Spilo's launch.sh runs /launch.sh (the wrapper) a second
    // time with the merged value; merging again changes nothing.
    let merged = out.lines().nth(1).unwrap().to_string();
    let (code, again, err) = launch("sh", &[], &[("SPILO_CONFIGURATION", &merged)]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(launched_config(&again), c);

    // PATRONI_CONFIGURATION is read when SPILO_CONFIGURATION is unset, as Spilo reads it.
    let (code, out, err) = launch(
        "sh",
        &[],
        &[(
            "PATRONI_CONFIGURATION",
            "postgresql: {parameters: {shared_preload_libraries: x}}",
        )],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        launched_config(&out)["postgresql"]["parameters"]["shared_preload_libraries"],
        "x"
    );
}

#[test]
fn launch_wrapper_refuses_a_configuration_that_is_not_a_mapping() {
    for (value, what) in [
        ("[a, b]", "must be a YAML mapping"),
        ("a: [b", "is not valid YAML"),
    ] {
        let (code, out, err) = launch("sh", &["init"], &[("SPILO_CONFIGURATION", value)]);
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(
            err.contains("SPILO_CONFIGURATION") && err.contains(what) && err.contains("not starting"),
            "{err}"
        );
        assert!(!out.contains("args:"), "Spilo's launch.sh must not run: {out}");
    }
}

#[test]
fn launch_wrapper_turns_the_rest_api_login_into_patronis_authentication() {
    let login = [
        ("PGHA_RESTAPI_USERNAME", "patroni"),
        ("PGHA_RESTAPI_PASSWORD", "r3st-pw"),
    ];
    // From the env file alone; the deployment's other restapi keys stay.
    let compose = "restapi:\n  connect_address: 192.0.2.11:8008\n";
    let mut env = login.to_vec();
    env.push(("SPILO_CONFIGURATION", compose));
    let (code, out, err) = launch("sh", &[], &env);
    assert_eq!(code, Some(0), "{err}");
    let c = launched_config(&out);
    assert_eq!(
        c["restapi"]["authentication"],
        serde_json::json!({"username": "patroni", "password": "r3st-pw"})
    );
    assert_eq!(c["restapi"]["connect_address"], "192.0.2.11:8008");
    // Without SPILO_CONFIGURATION at all.
    let (code, out, err) = launch("sh", &[], &login);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        launched_config(&out)["restapi"]["authentication"]["username"],
        "patroni"
    );
    // A login the deployment's configuration sets itself wins.
    let own = "restapi:\n  authentication: {username: ops, password: own-pw}\n";
    let mut env = login.to_vec();
    env.push(("SPILO_CONFIGURATION", own));
    let (_, out, _) = launch("sh", &[], &env);
    assert_eq!(
        launched_config(&out)["restapi"]["authentication"]["username"],
        "ops"
    );
    // Neither: no authentication (nothing invented).
    let (_, out, _) = launch("sh", &[], &[]);
    assert!(launched_config(&out)["restapi"].get("authentication").is_none());
}

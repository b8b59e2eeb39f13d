//! `pgha-image manifests`, run as a real process: the rendered files
//! (snapshots), HAProxy accepting each rendered configuration, the server
//! settings of the image's manifest landing where Spilo reads them, Spilo's
//! DCS variables for etcd and Consul, and bad specs refused with the field
//! and the line named and nothing written.

mod common;

use pgha_image::catalog::Catalog;
use pgha_image::context::plan::{BuildPlan, PlanRequest};
use serde_norway::Value as Yaml;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A fixed image manifest, so that the snapshots do not move with the catalog.
const FIXTURE_MANIFEST: &str = r#"{
  "tool_version": "0.1.0",
  "pg_majors": [15, 16],
  "shared_preload_libraries": ["bg_mon", "pg_stat_statements", "pg_cron", "pg_net", "pgsodium"],
  "parameters": {
    "cron.database_name": "postgres",
    "max_slot_wal_keep_size": "4GB",
    "pgsodium.getkey_script": "/usr/local/lib/pgha/pgsodium_getkey",
    "shared_preload_libraries": "bg_mon,pg_stat_statements,pg_cron,pg_net,pgsodium"
  },
  "dcs_parameters": {"max_replication_slots": "10", "max_wal_senders": "10", "wal_level": "logical"}
}"#;

const SPEC: &str = r#"scope = "supabase"
image = "supabase-patroni:v1.0"
dcs = "etcd"                    # etcd on the members
haproxy = "members"
[[member]]
name = "pg1"
address = "192.0.2.11"
[[member]]
name = "pg2"
address = "192.0.2.12"
[[member]]
name = "pg3"
address = "192.0.2.13"
"#;

struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new(spec: &str, manifest: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("cluster.toml"), spec).unwrap();
        std::fs::write(tmp.path().join("image-manifest.json"), manifest).unwrap();
        Dir { tmp }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
    fn render(&self, extra: &[&str]) -> Output {
        pgha_image(
            &[
                "manifests",
                "--spec",
                self.path("cluster.toml").to_str().unwrap(),
                "--out",
                self.path("out").to_str().unwrap(),
                "--image-manifest",
                self.path("image-manifest.json").to_str().unwrap(),
            ]
            .iter()
            .chain(extra)
            .copied()
            .collect::<Vec<_>>(),
        )
    }
    /// Render with the image's own manifest, read through Podman.
    fn render_from_image(&self) -> Output {
        pgha_image(&[
            "manifests",
            "--engine",
            "podman",
            "--spec",
            self.path("cluster.toml").to_str().unwrap(),
            "--out",
            self.path("out").to_str().unwrap(),
        ])
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path("out").join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

fn pgha_image(args: &[&str]) -> Output {
    assert_cmd::Command::cargo_bin("pgha-image")
        .unwrap()
        .args(args)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "pgha-image failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn yaml(text: &str) -> Yaml {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

/// The postgres service's environment, and its SPILO_CONFIGURATION parsed.
fn postgres_env(compose: &str) -> (Yaml, Yaml) {
    let c = yaml(compose);
    let env = c["services"]["postgres"]["environment"].clone();
    let spilo = yaml(env["SPILO_CONFIGURATION"].as_str().expect("SPILO_CONFIGURATION"));
    (env, spilo)
}

fn s(v: &Yaml) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

#[test]
fn renders_the_issue_spec_snapshots() {
    let d = Dir::new(SPEC, FIXTURE_MANIFEST);
    let out = d.render(&[]);
    ok(&out);
    insta::assert_snapshot!("pg1_compose", d.read("pg1/compose.yaml"));
    insta::assert_snapshot!("pg1_haproxy_cfg", d.read("pg1/haproxy.cfg"));
    insta::assert_snapshot!("pg1_readme", d.read("pg1/README.md"));
    insta::assert_snapshot!("readme", d.read("README.md"));
    insta::assert_snapshot!("operator_postgresql", d.read("kubernetes/postgresql.yaml"));
    insta::assert_snapshot!("operator_secret", d.read("kubernetes/secret.yaml"));
    // .env: the passwords are random, the same on every member, the file private.
    let env1 = d.read("pg1/.env");
    let passwords = |e: &str| {
        e.lines()
            .filter(|l| l.starts_with("PGPASSWORD_"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for m in ["pg2", "pg3"] {
        assert_eq!(passwords(&d.read(&format!("{m}/.env"))), passwords(&env1));
    }
    let redacted: String = env1
        .lines()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if k.starts_with("PGPASSWORD_") => {
                assert!(v.len() == 48 && v.chars().all(|c| c.is_ascii_hexdigit()), "{l}");
                format!("{k}=<random>\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    insta::assert_snapshot!("pg1_env", redacted);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.path("out/pg1/.env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // No password on stdout.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pw = env1
        .lines()
        .find_map(|l| l.strip_prefix("PGPASSWORD_SUPERUSER="))
        .unwrap();
    assert!(!stdout.contains(pw));
}

#[test]
fn each_member_advertises_its_own_address_and_the_images_settings() {
    let d = Dir::new(SPEC, FIXTURE_MANIFEST);
    ok(&d.render(&[]));
    let manifest = pgha_image::contract::BuildManifest::from_json(FIXTURE_MANIFEST.as_bytes()).unwrap();
    for (name, addr) in [
        ("pg1", "192.0.2.11"),
        ("pg2", "192.0.2.12"),
        ("pg3", "192.0.2.13"),
    ] {
        let compose = d.read(&format!("{name}/compose.yaml"));
        let (env, spilo) = postgres_env(&compose);
        assert_eq!(s(&spilo["name"]), name);
        assert_eq!(s(&spilo["postgresql"]["connect_address"]), format!("{addr}:5432"));
        assert_eq!(s(&spilo["restapi"]["connect_address"]), format!("{addr}:8008"));
        for (k, v) in &manifest.parameters {
            assert_eq!(
                s(&spilo["postgresql"]["parameters"][k.as_str()]),
                v,
                "{name}: {k}"
            );
        }
        for (k, v) in &manifest.dcs_parameters {
            assert_eq!(
                s(&spilo["bootstrap"]["dcs"]["postgresql"]["parameters"][k.as_str()]),
                v,
                "{name}: {k}"
            );
        }
        assert_eq!(
            s(&env["ETCD3_HOSTS"]),
            "192.0.2.11:2379,192.0.2.12:2379,192.0.2.13:2379"
        );
        assert_eq!(s(&env["SCOPE"]), "supabase");
        assert_eq!(s(&env["PGVERSION"]), "16", "the newest major of the image");
        // POD_IP is read by Spilo only under Kubernetes: it must not be relied on.
        assert!(env.get("POD_IP").is_none());
        // This VM's etcd member advertises its own address.
        let c = yaml(&compose);
        let cmd: Vec<&str> = c["services"]["etcd"]["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(s)
            .collect();
        assert!(cmd.contains(&format!("--name={name}").as_str()));
        assert!(cmd.contains(&format!("--advertise-client-urls=http://{addr}:2379").as_str()));
        assert!(cmd.contains(
            &"--initial-cluster=pg1=http://192.0.2.11:2380,pg2=http://192.0.2.12:2380,pg3=http://192.0.2.13:2380"
        ));
    }
}

#[test]
fn the_default_images_plan_lands_where_spilo_and_the_operator_read_it() {
    let plan = BuildPlan::new(&Catalog::embedded().unwrap(), &PlanRequest::default()).unwrap();
    let manifest = serde_json::json!({
        "tool_version": plan.tool_version,
        "pg_majors": plan.pg_majors,
        "shared_preload_libraries": plan.preload,
        "parameters": plan.local_parameters,
        "dcs_parameters": plan.dcs_parameters,
    });
    let d = Dir::new(SPEC, &manifest.to_string());
    ok(&d.render(&[]));
    let (_, spilo) = postgres_env(&d.read("pg2/compose.yaml"));
    for (k, v) in &plan.local_parameters {
        assert_eq!(s(&spilo["postgresql"]["parameters"][k.as_str()]), v, "{k}");
    }
    for (k, v) in &plan.dcs_parameters {
        assert_eq!(
            s(&spilo["bootstrap"]["dcs"]["postgresql"]["parameters"][k.as_str()]),
            v,
            "{k}"
        );
    }
    let op = yaml(&d.read("kubernetes/postgresql.yaml"));
    for (k, v) in plan.local_parameters.iter().chain(&plan.dcs_parameters) {
        assert_eq!(
            s(&op["spec"]["postgresql"]["parameters"][k.as_str()]),
            v,
            "operator: {k}"
        );
    }
    assert_eq!(
        s(&op["spec"]["additionalVolumes"][0]["mountPath"]),
        pgha_image::manifests::render::SECRETS_MOUNT
    );
    assert_eq!(op["spec"]["numberOfInstances"].as_u64(), Some(3));
}

#[test]
fn haproxy_accepts_every_rendered_configuration() {
    let haproxy = common::prereq::require_program("haproxy", "haproxy", &["/usr/sbin"]);
    let own_host = SPEC.replace("haproxy = \"members\"", "haproxy = \"192.0.2.20\"")
        + "[ports]\nrw = 6000\nro = 6001\nany = 6002\nstats = 6003\n";
    for (spec, cfgs) in [
        (
            SPEC.to_string(),
            vec!["pg1/haproxy.cfg", "pg2/haproxy.cfg", "pg3/haproxy.cfg"],
        ),
        (own_host, vec!["haproxy/haproxy.cfg"]),
    ] {
        let d = Dir::new(&spec, FIXTURE_MANIFEST);
        ok(&d.render(&[]));
        for cfg in cfgs {
            let text = d.read(cfg);
            for addr in ["192.0.2.11", "192.0.2.12", "192.0.2.13"] {
                assert_eq!(
                    text.matches(&format!(" {addr}:5432 ")).count(),
                    3,
                    "{cfg}: {addr}"
                );
            }
            let out = Command::new(&haproxy)
                .arg("-c")
                .arg("-f")
                .arg(d.path("out").join(cfg))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "haproxy -c rejected {cfg}:\n{}{}\n{text}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn consul_renders_spilos_consul_variables() {
    // Untested against a live Consul (none is installable here): this checks
    // the variables against Spilo's contract (configure_spilo.py maps
    // CONSUL_HOST to consul.host, and prefers consul over etcd3 when both
    // are set, so ETCD3_HOSTS must be absent).
    let d = Dir::new(
        &SPEC.replace("dcs = \"etcd\"", "dcs = \"consul\""),
        FIXTURE_MANIFEST,
    );
    ok(&d.render(&[]));
    let compose = d.read("pg2/compose.yaml");
    let (env, spilo) = postgres_env(&compose);
    assert_eq!(s(&env["CONSUL_HOST"]), "127.0.0.1:8500");
    let dcs_vars: Vec<String> = env
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| s(k).to_string())
        .filter(|k| {
            ["ZOOKEEPER_", "EXHIBITOR_", "CONSUL_", "ETCD3_", "ETCD_"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .collect();
    assert_eq!(dcs_vars, ["CONSUL_HOST"]);
    assert_eq!(s(&spilo["postgresql"]["connect_address"]), "192.0.2.12:5432");
    let c = yaml(&compose);
    assert!(c["services"].get("etcd").is_none());
    let cmd: Vec<&str> = c["services"]["consul"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    for want in [
        "-server",
        "-bootstrap-expect=3",
        "-node=pg2",
        "-bind=192.0.2.12",
        "-client=127.0.0.1",
        "-retry-join=192.0.2.11",
        "-retry-join=192.0.2.13",
    ] {
        assert!(cmd.contains(&want), "{want} in {cmd:?}");
    }
    assert!(!cmd.contains(&"-retry-join=192.0.2.12"));
    // An existing Consul: no agent rendered, its address passed.
    let d = Dir::new(
        &SPEC.replace("dcs = \"etcd\"", "dcs = { consul = \"192.0.2.30:8500\" }"),
        FIXTURE_MANIFEST,
    );
    ok(&d.render(&[]));
    let c = yaml(&d.read("pg1/compose.yaml"));
    assert_eq!(
        s(&c["services"]["postgres"]["environment"]["CONSUL_HOST"]),
        "192.0.2.30:8500"
    );
    assert!(c["services"].get("consul").is_none());
}

#[test]
fn an_external_etcd_is_used_as_given() {
    let d = Dir::new(
        &SPEC.replace(
            "dcs = \"etcd\"",
            "dcs = { etcd = [\"192.0.2.21:2379\", \"192.0.2.22:2379\", \"192.0.2.23:2379\"] }",
        ),
        FIXTURE_MANIFEST,
    );
    ok(&d.render(&[]));
    let c = yaml(&d.read("pg3/compose.yaml"));
    assert!(c["services"].get("etcd").is_none());
    assert_eq!(
        s(&c["services"]["postgres"]["environment"]["ETCD3_HOSTS"]),
        "192.0.2.21:2379,192.0.2.22:2379,192.0.2.23:2379"
    );
}

/// A bad spec: exit 2, an error naming `file:line: field`, a hint, nothing written.
fn refused(spec: &str, line: usize, field: &str) {
    let d = Dir::new(spec, FIXTURE_MANIFEST);
    let out = d.render(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{field}: {stderr}");
    let want = format!("cluster.toml:{line}: {field}: ");
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    assert!(stderr.contains("hint: "), "{stderr}");
    assert!(!d.path("out").exists(), "nothing may be written for a bad spec");
}

#[test]
fn bad_specs_name_the_field_and_the_line() {
    refused(&SPEC.replace("192.0.2.13", "192.0.2.11"), 13, "member[2].address");
    refused(
        &SPEC.replace("name = \"pg2\"", "name = \"pg1\""),
        9,
        "member[1].name",
    );
    refused(
        &(SPEC.to_string() + "[[member]]\nname = \"pg4\"\naddress = \"192.0.2.14\"\n"),
        3,
        "dcs",
    );
    refused(
        &SPEC.replace(
            "dcs = \"etcd\"                    # etcd on the members",
            "dcs = { etcd = [\"a:2379\", \"b:2379\"] }",
        ),
        3,
        "dcs.etcd",
    );
    refused(
        &(SPEC.to_string() + "[ports]\nrw = 5000\nany = 5000\n"),
        16,
        "ports.any",
    );
    refused(&(SPEC.to_string() + "[ports]\nstats = 8008\n"), 15, "ports.stats");
    refused(
        &SPEC.replace("192.0.2.12", "not-an-address"),
        10,
        "member[1].address",
    );
    refused(
        &SPEC.replace("haproxy = \"members\"", "haproxy = \"members\"\nhaproxi = \"x\""),
        5,
        "haproxi",
    );
    refused(
        &SPEC.replace("haproxy = \"members\"", "haproxy = \"members\"\npg_version = 14"),
        5,
        "pg_version",
    );
    refused(
        &SPEC.replace("scope = \"supabase\"", "scope = \"Supa base\""),
        1,
        "scope",
    );
}

#[test]
fn a_foreign_directory_is_refused_and_an_earlier_output_replaced_keeping_passwords() {
    let d = Dir::new(SPEC, FIXTURE_MANIFEST);
    std::fs::create_dir(d.path("out")).unwrap();
    std::fs::write(d.path("out/notes.txt"), "mine").unwrap();
    let out = d.render(&[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("was not written by `pgha-image manifests`") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(d.path("out/notes.txt")).unwrap(), "mine");

    // A file where the directory should be: refused, untouched, even with --force.
    std::fs::write(d.path("file-out"), "mine").unwrap();
    let o = pgha_image(&[
        "manifests",
        "--spec",
        d.path("cluster.toml").to_str().unwrap(),
        "--out",
        d.path("file-out").to_str().unwrap(),
        "--image-manifest",
        d.path("image-manifest.json").to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(d.path("file-out")).unwrap(), "mine");
    std::fs::remove_file(d.path("file-out")).unwrap();

    ok(&d.render(&["--force"]));
    assert!(!d.path("out/notes.txt").exists());
    let env1 = d.read("pg1/.env");
    // Re-render with a new image: the directory is ours, replaced, passwords kept.
    std::fs::write(d.path("cluster.toml"), SPEC.replace("v1.0", "v1.1")).unwrap();
    let out = d.render(&["--json"]);
    ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kept_passwords"], true);
    let env2 = d.read("pg1/.env");
    assert!(env2.contains("PGHA_IMAGE=supabase-patroni:v1.1"));
    let pw = |e: &str| {
        e.lines()
            .filter(|l| l.starts_with("PGPASSWORD_"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(pw(&env1), pw(&env2));
    // No temporary or old directories left next to it.
    let leftovers: Vec<_> = std::fs::read_dir(d.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_image_without_a_manifest_is_refused_at_the_image_line() {
    let _lock = common::images::engine_lock();
    let plain = common::images::unique_image("h6-no-manifest");
    let d = Dir::new(
        &SPEC.replace("supabase-patroni:v1.0", &plain.reference),
        FIXTURE_MANIFEST,
    );
    let out = d.render_from_image();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cluster.toml:2: image: "), "{stderr}");
    assert!(stderr.contains("/etc/pgha/build-manifest.json"), "{stderr}");
    assert!(stderr.contains("--image-manifest"), "{stderr}");
    assert!(!d.path("out").exists());
    // An image that is not there at all: a missing prerequisite (4), same line.
    let d = Dir::new(
        &SPEC.replace(
            "supabase-patroni:v1.0",
            &format!("localhost/pgha-test/h6-absent:{}", std::process::id()),
        ),
        FIXTURE_MANIFEST,
    );
    let out = d.render_from_image();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("cluster.toml:2: image: ") && stderr.contains("pgha-image load"),
        "{stderr}"
    );
    // No container left behind by the manifest read.
    let ps = common::images::run(common::images::podman_cmd().args(["ps", "-a", "--format", "{{.Names}}"]));
    assert!(!ps.contains("pgha-manifests-read-"), "{ps}");
}

#[test]
fn the_image_manifest_is_read_from_the_image_through_the_engine() {
    let _lock = common::images::engine_lock();
    let base = common::images::debian_base();
    let reference = format!("localhost/pgha-test/h6-with-manifest:{}", std::process::id());
    let image = common::images::TestImage { reference };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("m.json"), FIXTURE_MANIFEST).unwrap();
    std::fs::write(
        ctx.path().join("Containerfile"),
        format!("FROM {base}\nCOPY m.json /etc/pgha/build-manifest.json\n"),
    )
    .unwrap();
    common::images::run(
        common::images::podman_cmd()
            .args(["build", "-q", "-t", &image.reference])
            .arg(ctx.path()),
    );
    let d = Dir::new(
        &SPEC.replace("supabase-patroni:v1.0", &image.reference),
        "not used",
    );
    let out = d.render_from_image();
    ok(&out);
    let (_, spilo) = postgres_env(&d.read("pg1/compose.yaml"));
    assert_eq!(
        s(&spilo["postgresql"]["parameters"]["pgsodium.getkey_script"]),
        "/usr/local/lib/pgha/pgsodium_getkey"
    );
}

/// The README's "From build to a running cluster" spec renders as it says.
#[test]
fn the_readme_spec_renders_what_the_readme_says() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let spec: String = readme
        .lines()
        .skip_while(|l| !l.starts_with("cat > cluster.toml <<'TOML'"))
        .skip(1)
        .take_while(|l| *l != "TOML")
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(spec.contains("[[member]]"), "no spec in README.md");
    assert!(readme.contains("pgha-image manifests --spec cluster.toml --out deploy"));
    let d = Dir::new(&spec, FIXTURE_MANIFEST);
    ok(&d.render(&[]));
    for f in [
        "pg1/compose.yaml",
        "pg2/.env",
        "pg3/haproxy.cfg",
        "kubernetes/postgresql.yaml",
    ] {
        assert!(d.path("out").join(f).is_file(), "{f}");
    }
    // The README's check commands are the ones each member's README gives.
    let member = d.read("pg1/README.md");
    for cmd in [
        "docker compose up -d etcd",
        "docker compose exec postgres patronictl -c /run/postgres.yml list",
    ] {
        assert!(readme.contains(cmd) && member.contains(cmd), "{cmd}");
    }
}

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
    /// Render offline (`--image-manifest`): every image pinned in the spec
    /// first (offline, nothing can resolve a tag), as [`pin_images`] does.
    fn render(&self, extra: &[&str]) -> Output {
        let spec = self.path("cluster.toml");
        let text = std::fs::read_to_string(&spec).unwrap();
        std::fs::write(&spec, pin_images(&text)).unwrap();
        self.render_as_is(extra)
    }
    fn render_as_is(&self, extra: &[&str]) -> Output {
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

/// Fixed image ids for offline rendering (the snapshots show them).
const PG_ID: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const TOOLS_DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// The spec with its image given by id and the side services' images by
/// digest (an `[images]` table appended: no line moves), unless it pins them.
fn pin_images(spec: &str) -> String {
    let mut out: String = spec
        .lines()
        .map(|l| {
            if l.starts_with("image = \"") && !l.contains("sha256:") {
                format!("image = \"localhost/supabase-patroni@{PG_ID}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    if !spec.contains("[images]") {
        out.push_str(&format!(
            "[images]\netcd = \"localhost/etcd@{TOOLS_DIGEST}\"\nconsul = \"localhost/consul@{TOOLS_DIGEST}\"\n\
             haproxy = \"localhost/haproxy@{TOOLS_DIGEST}\"\nexporter = \"localhost/exporter@{TOOLS_DIGEST}\"\n"
        ));
    }
    out
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
    insta::assert_snapshot!("pg1_env", d.read("pg1/.env"));
    // No secret in any rendered file: they name the files of `pgha-image secrets`.
    for f in [
        "pg1/compose.yaml",
        "pg1/.env",
        "pg1/haproxy.cfg",
        "kubernetes/secret.yaml",
    ] {
        let text = d.read(f);
        assert!(!text.contains("PGPASSWORD_SUPERUSER="), "{f}");
        assert!(!text.contains("PGHA_STATS_PASSWORD="), "{f}");
    }
    let c = yaml(&d.read("pg1/compose.yaml"));
    assert_eq!(
        s(&c["services"]["postgres"]["env_file"][0]),
        "/etc/pgha/secrets/patroni.env"
    );
    assert_eq!(
        s(&c["services"]["haproxy"]["env_file"][0]),
        "/etc/pgha/secrets/haproxy.env"
    );
}

#[test]
fn tls_by_default_and_allow_nossl_only_when_the_spec_asks() {
    let d = Dir::new(SPEC, FIXTURE_MANIFEST);
    ok(&d.render(&[]));
    for name in ["pg1", "pg2", "pg3"] {
        let (env, spilo) = postgres_env(&d.read(&format!("{name}/compose.yaml")));
        assert!(env.get("ALLOW_NOSSL").is_none(), "{name}");
        assert_eq!(
            s(&env["SSL_CERTIFICATE_FILE"]),
            format!("/run/secrets/supabase/tls/{name}.crt")
        );
        assert_eq!(
            s(&env["SSL_PRIVATE_KEY_FILE"]),
            format!("/run/secrets/supabase/tls/{name}.key")
        );
        assert_eq!(s(&env["SSL_CA_FILE"]), "/run/secrets/supabase/ca.crt");
        let repl = &spilo["postgresql"]["authentication"]["replication"];
        assert_eq!(s(&repl["sslmode"]), "verify-full");
        assert_eq!(s(&repl["sslrootcert"]), "/run/secrets/supabase/ca.crt");
        // Patroni's passwords are not in the rendered configuration.
        assert!(repl.get("password").is_none());
    }
    let cfg = d.read("pg1/haproxy.cfg");
    assert!(
        cfg.contains("stats auth \"${PGHA_STATS_USER}:${PGHA_STATS_PASSWORD}\""),
        "{cfg}"
    );

    let d = Dir::new(
        &SPEC.replace(
            "haproxy = \"members\"",
            "haproxy = \"members\"\nallow_nossl = true",
        ),
        FIXTURE_MANIFEST,
    );
    ok(&d.render(&[]));
    let (env, _) = postgres_env(&d.read("pg2/compose.yaml"));
    assert_eq!(s(&env["ALLOW_NOSSL"]), "true");
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
            // As compose's env_file gives them.
            let out = Command::new(&haproxy)
                .env("PGHA_STATS_USER", "haproxy")
                .env("PGHA_STATS_PASSWORD", "s3cret")
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
fn a_foreign_directory_is_refused_and_an_earlier_output_replaced() {
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
    // Re-render with a new image: the directory is ours, replaced.
    let v11 = PG_ID.replace('1', "3");
    std::fs::write(
        d.path("cluster.toml"),
        SPEC.replace("supabase-patroni:v1.0", &format!("supabase-patroni@{v11}")),
    )
    .unwrap();
    let out = d.render(&["--json"]);
    ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["image"], format!("supabase-patroni@{v11}"));
    assert!(
        d.read("pg1/.env")
            .contains(&format!("PGHA_IMAGE=supabase-patroni@{v11}"))
    );
    // No temporary or old directories left next to it.
    let leftovers: Vec<_> = std::fs::read_dir(d.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
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
#[ignore = "slow tier: needs root and Podman"]
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
    // The side services' images: the same local image (etcd, HAProxy), by tag.
    let images = format!("[images]\netcd = \"{0}\"\nhaproxy = \"{0}\"\n", image.reference);
    std::fs::write(
        d.path("cluster.toml"),
        format!(
            "{}{images}",
            SPEC.replace("supabase-patroni:v1.0", &image.reference)
        ),
    )
    .unwrap();
    let out = d.render_from_image();
    ok(&out);
    let compose = d.read("pg1/compose.yaml");
    let (_, spilo) = postgres_env(&compose);
    assert_eq!(
        s(&spilo["postgresql"]["parameters"]["pgsodium.getkey_script"]),
        "/usr/local/lib/pgha/pgsodium_getkey"
    );
    // Every image by the id the engine holds, none by its tag.
    let id = common::images::run(common::images::podman_cmd().args([
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        &image.reference,
    ]));
    let id = format!("sha256:{}", id.trim().trim_start_matches("sha256:"));
    let c = yaml(&compose);
    for svc in ["etcd", "haproxy"] {
        assert_eq!(s(&c["services"][svc]["image"]), id, "{svc}");
    }
    assert_eq!(
        s(&c["services"]["postgres"]["image"]),
        "${PGHA_IMAGE:?set PGHA_IMAGE in .env}"
    );
    let env = d.read("pg1/.env");
    assert!(env.lines().any(|l| l == format!("PGHA_IMAGE={id}")), "{env}");
    for f in ["pg1/compose.yaml", "pg1/.env"] {
        let text = d.read(f);
        let uses: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && l.contains(&image.reference))
            .collect();
        assert!(uses.is_empty(), "{f} uses the tag: {uses:?}");
    }

    // An image of the deployment that is not in the store: exit 4, its field named.
    let absent = format!("localhost/pgha-test/h16-absent-haproxy:{}", std::process::id());
    std::fs::write(
        d.path("cluster.toml"),
        format!(
            "{}[images]\netcd = \"{}\"\nhaproxy = \"{absent}\"\n",
            SPEC.replace("supabase-patroni:v1.0", &image.reference),
            image.reference
        ),
    )
    .unwrap();
    let out = d.render_from_image();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("images.haproxy") && stderr.contains(&absent) && stderr.contains("pgha-image load"),
        "{stderr}"
    );
}

/// Offline there is no engine to resolve a tag: a tag is refused, naming its field.
#[test]
fn offline_rendering_refuses_a_tag_naming_its_field() {
    let d = Dir::new(SPEC, FIXTURE_MANIFEST);
    let out = d.render_as_is(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("image: supabase-patroni:v1.0 is a tag") && stderr.contains("sha256:"),
        "{stderr}"
    );
    assert!(!d.path("out").exists());
    // The PostgreSQL image pinned, etcd's still a (public registry's) tag.
    std::fs::write(
        d.path("cluster.toml"),
        SPEC.replace("supabase-patroni:v1.0", PG_ID),
    )
    .unwrap();
    let out = d.render_as_is(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("images.etcd: quay.io/coreos/etcd:v3.5.17 is a tag"),
        "{stderr}"
    );
    // Pinned throughout: rendered, and the compose files name no tag.
    ok(&d.render(&[]));
    for m in ["pg1", "pg2", "pg3"] {
        let c = yaml(&d.read(&format!("{m}/compose.yaml")));
        for (name, svc) in c["services"].as_mapping().unwrap() {
            let image = s(&svc["image"]);
            assert!(
                image.contains("@sha256:") || image.starts_with("${PGHA_IMAGE"),
                "{m}: {name:?}: {image}"
            );
        }
        assert!(
            d.read(&format!("{m}/.env"))
                .contains(&format!("PGHA_IMAGE={PG_ID}\n"))
        );
    }
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

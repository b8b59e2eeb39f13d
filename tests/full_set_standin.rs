//! The Spilo stand-in's configuration generation, run for real in the
//! stand-in image (`python3 /scripts/configure_spilo.py --print` in a
//! container with a fixed hostname and address), against Spilo's rules
//! (tests/support/spilo-standin/configure_spilo.py says them): the member
//! address from getaddrinfo(gethostname()) and POD_IP only under Kubernetes;
//! the DCS from ETCD3_HOSTS / ETCD_HOST / CONSUL_HOST (a local etcd when
//! none); SCOPE, PGUSER_*/PGPASSWORD_*, ALLOW_NOSSL; SPILO_CONFIGURATION
//! deep-merged over the generated configuration (user scalars win, user lists
//! replace, mappings merge); Spilo's preload list appended only when the user
//! does not set shared_preload_libraries. The snapshots hold the whole
//! merged configurations; the assertions name the rule each case is about.

mod common;

use common::images;

/// The stand-in's configuration for this environment, as YAML (and parsed).
fn configure(env: &[(&str, &str)]) -> (String, serde_json::Value) {
    let image = images::spilo_standin();
    let mut cmd = images::podman_cmd();
    cmd.args([
        "run",
        "--rm",
        "--network",
        "none",
        "--hostname",
        "pg1",
        "--add-host",
        "pg1:192.0.2.11",
    ]);
    for (k, v) in env {
        cmd.arg("-e").arg(format!("{k}={v}"));
    }
    cmd.args([
        &image,
        "sh",
        "-c",
        "python3 /scripts/configure_spilo.py --print && echo '#--- json' && \
         python3 /scripts/configure_spilo.py --print-json",
    ]);
    let out = images::run(&mut cmd);
    let (yaml, json) = out.split_once("#--- json\n").unwrap_or_else(|| panic!("{out}"));
    let value = serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}):\n{json}"));
    (yaml.to_string(), value)
}

fn at<'a>(v: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    path.split('.').fold(v, |v, k| &v[k])
}

fn s(v: &serde_json::Value, path: &str) -> String {
    match at(v, path) {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn plain_run_local_etcd_hostname_address_spilo_preload() {
    let (yaml, c) = configure(&[]);
    // No DCS variable and none in SPILO_CONFIGURATION: the local etcd.
    assert_eq!(s(&c, "etcd.host"), "127.0.0.1:2379");
    // The member: the hostname and what it resolves to.
    assert_eq!(s(&c, "postgresql.name"), "pg1");
    assert_eq!(s(&c, "postgresql.connect_address"), "192.0.2.11:5432");
    assert_eq!(s(&c, "restapi.connect_address"), "192.0.2.11:8008");
    assert_eq!(s(&c, "scope"), "dummy");
    // Spilo's preload list, with its table's libraries appended.
    assert_eq!(
        s(&c, "postgresql.parameters.shared_preload_libraries"),
        "pg_stat_statements,pg_cron"
    );
    assert_eq!(s(&c, "bootstrap.post_init"), "/scripts/post_init.sh \"zalandos\"");
    // Without ALLOW_NOSSL, connections without TLS are rejected.
    let hba = yaml.contains("hostnossl all           all                all                reject");
    assert!(hba, "{yaml}");
    insta::assert_snapshot!("standin_plain", yaml);
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn a_compose_member_merged_as_spilo_merges() {
    let spilo_configuration = r#"
bootstrap:
  dcs:
    ttl: 20
    postgresql:
      parameters:
        wal_level: logical
postgresql:
  connect_address: 192.0.2.21:5432
  parameters:
    shared_preload_libraries: pg_stat_statements,pg_cron,pg_net
    cron.database_name: postgres
  pg_hba:
  - local all all trust
  - host all all 0.0.0.0/0 scram-sha-256
restapi:
  connect_address: 192.0.2.21:8008
"#;
    let (yaml, c) = configure(&[
        ("SCOPE", "supabase"),
        ("ETCD3_HOSTS", "192.0.2.21:2379,192.0.2.22:2379,192.0.2.23:2379"),
        ("PGPASSWORD_SUPERUSER", "su-pw"),
        ("PGUSER_STANDBY", "replicator"),
        ("PGPASSWORD_STANDBY", "rep-pw"),
        ("PGPASSWORD_ADMIN", "admin-pw"),
        ("HUMAN_ROLE", "humans"),
        ("ALLOW_NOSSL", "true"),
        ("POD_IP", "198.51.100.9"),
        ("SPILO_CONFIGURATION", spilo_configuration),
    ]);
    assert_eq!(s(&c, "scope"), "supabase");
    // DCS from ETCD3_HOSTS, a YAML list; no local etcd.
    assert_eq!(
        c["etcd3"]["hosts"],
        serde_json::json!(["192.0.2.21:2379", "192.0.2.22:2379", "192.0.2.23:2379"])
    );
    assert!(c.get("etcd").is_none(), "{yaml}");
    // User scalars win; generated keys the user did not touch stay.
    assert_eq!(s(&c, "bootstrap.dcs.ttl"), "20");
    assert_eq!(s(&c, "bootstrap.dcs.loop_wait"), "10");
    assert_eq!(s(&c, "bootstrap.dcs.postgresql.parameters.wal_level"), "logical");
    assert_eq!(s(&c, "bootstrap.dcs.postgresql.parameters.max_wal_senders"), "10");
    assert_eq!(s(&c, "postgresql.connect_address"), "192.0.2.21:5432");
    assert_eq!(s(&c, "restapi.connect_address"), "192.0.2.21:8008");
    // POD_IP without KUBERNETES_SERVICE_HOST is ignored (it did not replace
    // the hostname's address anywhere).
    assert!(!yaml.contains("198.51.100.9"), "{yaml}");
    // The user's preload list is used as given: nothing appended.
    assert_eq!(
        s(&c, "postgresql.parameters.shared_preload_libraries"),
        "pg_stat_statements,pg_cron,pg_net"
    );
    assert_eq!(c["postgresql"]["parameters"]["cron.database_name"], "postgres");
    assert_eq!(s(&c, "postgresql.parameters.ssl"), "on");
    // A user list replaces the generated one.
    assert_eq!(
        c["postgresql"]["pg_hba"],
        serde_json::json!(["local all all trust", "host all all 0.0.0.0/0 scram-sha-256"])
    );
    // Credentials and roles from the environment.
    assert_eq!(s(&c, "postgresql.authentication.superuser.password"), "su-pw");
    assert_eq!(
        s(&c, "postgresql.authentication.replication.username"),
        "replicator"
    );
    assert_eq!(s(&c, "bootstrap.users.admin.password"), "admin-pw");
    assert_eq!(s(&c, "bootstrap.post_init"), "/scripts/post_init.sh \"humans\"");
    assert_eq!(
        s(&c, "postgresql.callbacks.on_role_change"),
        "/scripts/on_role_change.sh humans true"
    );
    insta::assert_snapshot!("standin_compose_member", yaml);
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn kubernetes_pod_ip_consul_precedence_and_a_bad_configuration() {
    // Under Kubernetes, POD_IP is the address; CONSUL_HOST wins over ETCD_HOST.
    let (yaml, c) = configure(&[
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("POD_IP", "10.244.1.7"),
        ("CONSUL_HOST", "consul.local:8500"),
        ("ETCD_HOST", "etcd.local:2379"),
        ("PGVERSION", "15"),
        (
            "SPILO_CONFIGURATION",
            "{postgresql: {parameters: {max_worker_processes: ~}}}",
        ),
    ]);
    assert_eq!(s(&c, "postgresql.connect_address"), "10.244.1.7:5432");
    assert_eq!(s(&c, "restapi.connect_address"), "10.244.1.7:8008");
    assert_eq!(s(&c, "consul.host"), "consul.local:8500");
    assert!(c.get("etcd").is_none() && c.get("etcd3").is_none(), "{yaml}");
    assert_eq!(s(&c, "postgresql.bin_dir"), "/usr/lib/postgresql/15/bin");
    insta::assert_snapshot!("standin_kubernetes_consul", yaml);

    // ETCD_HOST alone: etcd (v2) with that host.
    let (_, c) = configure(&[("ETCD_HOST", "etcd.local:2379")]);
    assert_eq!(s(&c, "etcd.host"), "etcd.local:2379");
    // A DCS given only in SPILO_CONFIGURATION also means no local etcd.
    let (_, c) = configure(&[("SPILO_CONFIGURATION", "etcd3: {hosts: [e1:2379]}")]);
    assert_eq!(c["etcd3"]["hosts"], serde_json::json!(["e1:2379"]));
    assert!(c.get("etcd").is_none());

    // SPILO_CONFIGURATION that is not a mapping stops the container, naming it.
    let image = images::spilo_standin();
    let out = images::podman_cmd()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "-e",
            "SPILO_CONFIGURATION=[1, 2]",
        ])
        .args([&image, "python3", "/scripts/configure_spilo.py", "--print"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SPILO_CONFIGURATION should contain a mapping"),
        "{err}"
    );
}

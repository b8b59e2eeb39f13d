//! The WAL-G settings `pgha-image manifests` renders from `[walg]` are the
//! names Spilo reads. Each is stated below with where Spilo's own code
//! (zalando/spilo, postgres-appliance/scripts/configure_spilo.py, read at
//! commit 7cb50bd) takes it from; Spilo itself cannot be run here, nor an
//! S3 server or WAL-G (docs/deploy.md says so), so this test holds the
//! rendered compose file to that list: no other name, none missing.

use std::collections::BTreeMap;

/// (name, where configure_spilo.py reads it)
const SPILO_NAMES: &[(&str, &str)] = &[
    (
        "USE_WALG_BACKUP",
        "set_walg_placeholders(): `for name in ('USE_WALG_BACKUP', 'USE_WALG_RESTORE')`, kept only \
         when a WALG_*_PREFIX is set; also in write_wale_environment()'s walg_names",
    ),
    (
        "USE_WALG_RESTORE",
        "set_walg_placeholders(), as USE_WALG_BACKUP; walg_names",
    ),
    (
        "WALG_S3_PREFIX",
        "AUTO_ENABLE_WALG_RESTORE = ('WAL_S3_BUCKET', 'WALE_S3_PREFIX', 'WALG_S3_PREFIX', …); \
         write_wale_environment()'s s3_names",
    ),
    (
        "AWS_ENDPOINT",
        "write_wale_environment()'s s3_names; popped as aws_endpoint and written for WAL-G",
    ),
    (
        "AWS_REGION",
        "write_wale_environment()'s s3_names; popped as aws_region, kept when USE_WALG_BACKUP is 'true'",
    ),
    ("AWS_S3_FORCE_PATH_STYLE", "write_wale_environment()'s s3_names"),
    (
        "BACKUP_SCHEDULE",
        "get_placeholders(): placeholders.setdefault('BACKUP_SCHEDULE', '0 1 * * *') (the crontab of base backups)",
    ),
    (
        "BACKUP_NUM_TO_RETAIN",
        "get_placeholders(): placeholders.setdefault('BACKUP_NUM_TO_RETAIN', '5'); write_wale_environment()",
    ),
];

/// Read from the environment by Spilo's WAL-G (write_wale_environment()'s
/// s3_names): the credentials, which the rendered compose takes from a file
/// in the secrets directory (`env_file`), never as values.
const CREDENTIALS: &[&str] = &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];

const MANIFEST: &str = r#"{
  "tool_version": "0.1.0",
  "pg_majors": [15],
  "shared_preload_libraries": ["pg_stat_statements"],
  "parameters": {"shared_preload_libraries": "pg_stat_statements"},
  "dcs_parameters": {"wal_level": "logical"}
}"#;

/// Offline rendering (--image-manifest) takes only pinned images.
const PINNED: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn render(extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("cluster.toml");
    std::fs::write(
        &spec,
        format!(
            "scope = \"walg\"\nimage = \"localhost/supabase-patroni@{PINNED}\"\n\
             [[member]]\nname = \"pg1\"\naddress = \"192.0.2.11\"\n\
             [images]\netcd = \"localhost/etcd@{PINNED}\"\nhaproxy = \"localhost/haproxy@{PINNED}\"\n{extra}"
        ),
    )
    .unwrap();
    std::fs::write(tmp.path().join("m.json"), MANIFEST).unwrap();
    let out = tmp.path().join("out");
    let o = assert_cmd::Command::cargo_bin("pgha-image")
        .unwrap()
        .args(["manifests", "--spec"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .arg("--image-manifest")
        .arg(tmp.path().join("m.json"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (tmp, out)
}

fn postgres_env(out: &std::path::Path) -> (BTreeMap<String, String>, String) {
    let text = std::fs::read_to_string(out.join("pg1/compose.yaml")).unwrap();
    // The test translation refuses keys it does not model: read env_file from the YAML itself.
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let env = doc["services"]["postgres"]["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                v.as_str().map(str::to_string).unwrap_or_default(),
            )
        })
        .collect();
    (env, text)
}

#[test]
fn rendered_walg_settings_are_the_names_spilo_reads() {
    let (_tmp, out) = render(
        "[walg]\ns3_prefix = \"s3://pgha-backups/walg\"\nendpoint = \"https://s3.example:9000\"\n\
         region = \"eu-central-1\"\nforce_path_style = true\nschedule = \"30 2 * * *\"\nretain = 9\n",
    );
    let (env, text) = postgres_env(&out);
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let spilo: Vec<&str> = SPILO_NAMES.iter().map(|(n, _)| *n).collect();
    let rendered: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|k| {
            k.starts_with("WALG") || k.contains("WALG") || k.starts_with("AWS_") || k.starts_with("BACKUP_")
        })
        .collect();
    let mut want = spilo.clone();
    want.sort();
    assert_eq!(
        rendered, want,
        "every rendered WAL-G name is one Spilo reads, and all are rendered"
    );
    assert_eq!(env["WALG_S3_PREFIX"], "s3://pgha-backups/walg");
    assert_eq!(env["AWS_ENDPOINT"], "https://s3.example:9000");
    assert_eq!(env["AWS_REGION"], "eu-central-1");
    assert_eq!(env["AWS_S3_FORCE_PATH_STYLE"], "true");
    assert_eq!(env["BACKUP_SCHEDULE"], "30 2 * * *");
    assert_eq!(env["BACKUP_NUM_TO_RETAIN"], "9");
    assert_eq!(env["USE_WALG_BACKUP"], "true");
    assert_eq!(env["USE_WALG_RESTORE"], "true");
    // The credentials: only through the secrets directory, never in the file.
    for c in CREDENTIALS {
        assert!(!env.contains_key(*c), "{c} must not be rendered as a value");
    }
    let env_files: Vec<&str> = doc["services"]["postgres"]["env_file"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(env_files.contains(&"/etc/pgha/secrets/walg.env"), "{env_files:?}");
}

#[test]
fn without_walg_nothing_is_rendered_and_the_services_stay_as_they_were() {
    let (_tmp, out) = render("");
    let (env, text) = postgres_env(&out);
    assert!(
        env.keys()
            .all(|k| !k.contains("WALG") && !k.starts_with("AWS_") && !k.starts_with("BACKUP_"))
    );
    assert!(!text.contains("walg.env"));
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let names: Vec<&str> = doc["services"]
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(|k| k.as_str())
        .collect();
    assert_eq!(names, ["etcd", "postgres", "haproxy"]);
}

#[test]
fn a_wrong_walg_table_is_refused_naming_the_field() {
    for (extra, field) in [
        ("[walg]\ns3_prefix = \"bucket/path\"\n", "walg.s3_prefix"),
        (
            "[walg]\ns3_prefix = \"s3://b/p\"\nendpoint = \"s3.example\"\n",
            "walg.endpoint",
        ),
        (
            "[walg]\ns3_prefix = \"s3://b/p\"\nschedule = \"daily\"\n",
            "walg.schedule",
        ),
        ("[backup]\nevery = \"1w\"\n", "backup.every"),
        ("[backup]\nmember = \"pg9\"\n", "backup.member"),
        ("[backup]\nkeep = 0\n", "backup.keep"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let spec = tmp.path().join("cluster.toml");
        std::fs::write(
            &spec,
            format!(
                "scope = \"walg\"\nimage = \"x:1\"\n[[member]]\nname = \"pg1\"\naddress = \"192.0.2.11\"\n{extra}"
            ),
        )
        .unwrap();
        std::fs::write(tmp.path().join("m.json"), MANIFEST).unwrap();
        let o = assert_cmd::Command::cargo_bin("pgha-image")
            .unwrap()
            .args(["manifests", "--spec"])
            .arg(&spec)
            .arg("--out")
            .arg(tmp.path().join("out"))
            .arg("--image-manifest")
            .arg(tmp.path().join("m.json"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra}: {stderr}");
        assert!(
            stderr.contains(field) && stderr.contains("hint:"),
            "{extra}: {stderr}"
        );
        assert!(!tmp.path().join("out").exists(), "nothing written for a bad spec");
    }
}

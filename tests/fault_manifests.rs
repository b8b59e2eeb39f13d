//! `pgha-image manifests` under hostile specs and outputs (issue 19), run as
//! a real process: a user's files in an earlier output are never lost,
//! reserved member names and fields that would inject YAML are refused
//! (exit 2, naming the field, the line and the fix, nothing written), and
//! what is rendered parses as the YAML it claims to be.

use serde_norway::Value as Yaml;
use std::path::{Path, PathBuf};
use std::process::Output;

const MANIFEST: &str = r#"{
  "tool_version": "0.1.0",
  "pg_majors": [15],
  "shared_preload_libraries": ["pg_stat_statements"],
  "parameters": {"shared_preload_libraries": "pg_stat_statements"},
  "dcs_parameters": {"wal_level": "logical"}
}"#;

/// Offline rendering (--image-manifest) takes only pinned images: [`Dir::new`]
/// adds the side services' when the spec names none.
const PINNED: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

const SPEC: &str = r#"scope = "supabase"
image = "localhost/supabase-patroni@sha256:1111111111111111111111111111111111111111111111111111111111111111"
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
        let spec = if spec.contains("[images]") {
            spec.to_string()
        } else {
            format!(
                "{spec}\n[images]\netcd = \"localhost/etcd@{PINNED}\"\nhaproxy = \"localhost/haproxy@{PINNED}\"\n"
            )
        };
        std::fs::write(tmp.path().join("cluster.toml"), spec).unwrap();
        std::fs::write(tmp.path().join("image-manifest.json"), manifest).unwrap();
        Dir { tmp }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }
    fn out(&self) -> PathBuf {
        self.path("deploy")
    }
    fn render(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "manifests".to_string(),
            "--spec".into(),
            self.path("cluster.toml").display().to_string(),
            "--out".into(),
            self.out().display().to_string(),
            "--image-manifest".into(),
            self.path("image-manifest.json").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        assert_cmd::Command::cargo_bin("pgha-image")
            .unwrap()
            .args(&args)
            .timeout(std::time::Duration::from_secs(120))
            .output()
            .unwrap()
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.out().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
}

/// Every file under `dir` with its content (the proof nothing changed).
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = pgha_image::fsutil::walk_tree(dir)
        .unwrap()
        .into_iter()
        .filter(|(_, t)| t.is_file())
        .map(|(p, _)| (p.clone(), std::fs::read(dir.join(&p)).unwrap()))
        .collect();
    v.sort();
    v
}

/// An earlier output the user added to (`.git`, a secret, notes) or edited
/// by hand is not replaced: exit 2 naming the file and the fix, every file
/// as it was. Without those, it is replaced as before (passwords kept).
#[test]
fn an_earlier_output_with_user_files_or_edits_is_refused_and_kept() {
    let d = Dir::new(SPEC, MANIFEST);
    ok(&d.render(&[]));
    let env = d.read("pg1/.env");
    let out = d.out();
    let cases: [(&str, &str, &str); 4] = [
        (
            ".git/HEAD",
            "ref: refs/heads/main\n",
            ".git/HEAD is not a file manifests wrote",
        ),
        (
            "secrets/password",
            "hunter2-user-secret\n",
            "secrets/password is not a file manifests wrote",
        ),
        (
            "pg1/notes.txt",
            "my notes\n",
            "pg1/notes.txt is not a file manifests wrote",
        ),
        (
            "pg1/compose.yaml",
            "# tuned by hand\n",
            "pg1/compose.yaml was changed since manifests wrote it",
        ),
    ];
    for (rel, content, reason) in cases {
        let path = out.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let original = std::fs::read(&path).ok();
        if original.is_some() {
            let mut edited = original.clone().unwrap();
            edited.extend_from_slice(content.as_bytes());
            std::fs::write(&path, edited).unwrap();
        } else {
            std::fs::write(&path, content).unwrap();
        }
        let before = tree(&out);
        let o = d.render(&[]);
        assert_eq!(o.status.code(), Some(2), "{rel}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(reason), "{e}");
        assert!(e.contains("hint:") && e.contains("--force"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert_eq!(tree(&out), before, "{rel}: nothing may change");
        // Undo, so the next case starts from a clean earlier output.
        match original {
            Some(bytes) => std::fs::write(&path, bytes).unwrap(),
            None => std::fs::remove_file(&path).unwrap(),
        }
    }
    std::fs::remove_dir_all(out.join(".git")).unwrap();
    std::fs::remove_dir_all(out.join("secrets")).unwrap();
    ok(&d.render(&[]));
    assert_eq!(d.read("pg1/.env"), env, "passwords kept");
    // The leftovers of the run are gone: no temporary or old directory.
    let siblings: Vec<String> = std::fs::read_dir(d.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(siblings.is_empty(), "{siblings:?}");
}

/// Spec fields that name the load balancer's or the operator's directory,
/// that are not what the target accepts, or that would inject YAML or
/// command-line options: exit 2 at the field's line, with the fix, and no
/// output directory.
#[test]
fn reserved_names_and_injecting_fields_are_refused() {
    let with_kubernetes = |extra: &str| format!("{SPEC}[kubernetes]\n{extra}\n");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            SPEC.replace(
                "name = \"pg3\"\naddress = \"192.0.2.13\"",
                "name = \"haproxy\"\naddress = \"192.0.2.13\"",
            )
            .replace(
                "scope = \"supabase\"",
                "scope = \"supabase\"\nhaproxy = \"192.0.2.20\"",
            ),
            "member[2].name",
            "\"haproxy\" is reserved",
        ),
        (
            SPEC.replace("name = \"pg2\"", "name = \"kubernetes\""),
            "member[1].name",
            "\"kubernetes\" is reserved",
        ),
        (
            with_kubernetes("namespace = \"db\\nkind: Secret\""),
            "kubernetes.namespace",
            "is not a Kubernetes namespace name",
        ),
        (
            with_kubernetes("namespace = \"Prod_DB\""),
            "kubernetes.namespace",
            "is not a Kubernetes namespace name",
        ),
        (
            with_kubernetes("users = { \"app\\nkind: Secret\" = [\"login\"] }"),
            "kubernetes.users",
            "is not a role name the postgres-operator accepts",
        ),
        (
            with_kubernetes("users = { app = [\"login\\n  evil: 1\"] }"),
            "kubernetes.users",
            "is not a role flag",
        ),
        (
            with_kubernetes("databases = { \"app\\n  x: y\" = \"app\" }"),
            "kubernetes.databases",
            "is not a database name and an owner role name",
        ),
        (
            with_kubernetes("volume_size = \"20Gi\\nkind: Secret\""),
            "kubernetes.volume_size",
            "is not a Kubernetes quantity",
        ),
        (
            SPEC.replace("192.0.2.12", "255.255.255.255"),
            "member[1].address",
            "it is the broadcast address",
        ),
        (
            SPEC.replace("192.0.2.12", "224.0.0.1"),
            "member[1].address",
            "it is a multicast address",
        ),
        (
            format!("{SPEC}[images]\netcd = \"etcd:v3.5.17 --evil\"\n"),
            "images.etcd",
            "is not an image reference",
        ),
        (
            format!("{SPEC}[images]\nhaproxy = \"haproxy:2.8\\n    privileged: true\"\n"),
            "images.haproxy",
            "is not an image reference",
        ),
        (
            SPEC.replace(PINNED, &format!("{PINNED} --privileged")),
            "image",
            "is not an image reference",
        ),
    ];
    for (spec, field, message) in cases {
        let d = Dir::new(&spec, MANIFEST);
        let o = d.render(&[]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{field}: {e}");
        assert!(e.contains(&format!(": {field}: ")), "{field}: {e}");
        assert!(e.contains(message), "{field}: {e}");
        assert!(e.contains("hint:"), "{field}: {e}");
        assert!(!d.out().exists(), "{field}: nothing may be written");
    }
}

/// What comes from the image (a parameter name with a newline) or from the
/// spec (users, databases, namespace) lands in postgresql.yaml as data: the
/// file parses as one `postgresql` resource holding exactly those strings.
/// The secret volume is mode 0440, and the member README asks for 0400/0440,
/// never a world-readable file.
#[test]
fn rendered_yaml_holds_values_as_data_and_secrets_are_not_world_readable() {
    let manifest = MANIFEST.replace(
        "\"shared_preload_libraries\": \"pg_stat_statements\"",
        "\"shared_preload_libraries\": \"pg_stat_statements\", \"x\\nkind: Secret\": \"a: b\\n- c\"",
    );
    let spec = format!(
        "{SPEC}[kubernetes]\nnamespace = \"prod-db\"\nusers = {{ app_user = [\"login\", \"CREATEDB\"] }}\n\
         databases = {{ app = \"app_user\" }}\nrequests = {{ cpu = \"500m\", memory = \"1Gi\" }}\n"
    );
    let d = Dir::new(&spec, &manifest);
    ok(&d.render(&[]));
    let text = d.read("kubernetes/postgresql.yaml");
    let docs: Vec<Yaml> = serde_norway::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect();
    assert_eq!(docs.len(), 1, "{text}");
    let op = &docs[0];
    assert_eq!(op["kind"], Yaml::from("postgresql"), "{text}");
    assert_eq!(op["metadata"]["namespace"], Yaml::from("prod-db"));
    assert_eq!(
        op["spec"]["postgresql"]["parameters"]["x\nkind: Secret"],
        Yaml::from("a: b\n- c"),
        "{text}"
    );
    assert_eq!(
        op["spec"]["users"]["app_user"],
        serde_norway::from_str::<Yaml>("[login, CREATEDB]").unwrap()
    );
    assert_eq!(op["spec"]["databases"]["app"], Yaml::from("app_user"));
    assert_eq!(op["spec"]["resources"]["requests"]["cpu"], Yaml::from("500m"));
    assert_eq!(
        op["spec"]["additionalVolumes"][0]["volumeSource"]["secret"]["defaultMode"],
        Yaml::from(0o440)
    );
    let secret: Yaml = serde_norway::from_str(&d.read("kubernetes/secret.yaml")).unwrap();
    assert_eq!(secret["kind"], Yaml::from("Secret"));
    assert_eq!(secret["metadata"]["namespace"], Yaml::from("prod-db"));

    let readme = d.read("pg1/README.md");
    assert!(!readme.contains("0444"), "{readme}");
    let words = readme
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    assert!(
        words.contains("mode 0440") && words.contains("never world-readable"),
        "{readme}"
    );
}

/// A spec or an image manifest that is a device, or too big, is refused
/// (exit 2, naming the file and the limit) instead of being read for ever.
#[test]
fn hostile_input_files_are_read_bounded() {
    let d = Dir::new(SPEC, MANIFEST);
    std::fs::File::create(d.path("big.json"))
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    for (spec, manifest, why) in [
        (
            "/dev/zero".to_string(),
            d.path("image-manifest.json"),
            "not a regular file",
        ),
        (
            d.path("cluster.toml").display().to_string(),
            PathBuf::from("/dev/zero"),
            "not a regular file",
        ),
        (
            d.path("cluster.toml").display().to_string(),
            d.path("big.json"),
            "larger than the limit of 1048576 bytes",
        ),
    ] {
        let o = assert_cmd::Command::cargo_bin("pgha-image")
            .unwrap()
            .args(["manifests", "--spec", &spec, "--out"])
            .arg(d.out())
            .arg("--image-manifest")
            .arg(&manifest)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert!(e.contains(why), "{e}");
        assert!(!d.out().exists());
    }
}

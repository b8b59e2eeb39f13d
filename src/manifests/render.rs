//! Render the checked spec and the image's manifest through the minijinja
//! templates of `manifests/templates/` (embedded in the binary, strict
//! mode) into the files of each deployment directory. Everything the
//! templates print is decided here.

use super::ManifestsError;
use super::spec::{Dcs, HaproxyPlacement, Member, Spec};
use crate::contract::BuildManifest;
use include_dir::{Dir, include_dir};
use minijinja::Environment;
use serde::Serialize;
use std::collections::BTreeMap;

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/manifests/templates");

/// Where the secret files are mounted in the PostgreSQL container (the
/// image's bootstrap configuration reads them there).
pub const SECRETS_MOUNT: &str = "/run/secrets/supabase";
/// Where HAProxy reads its configuration (the official image's path).
pub const HAPROXY_CFG: &str = "/usr/local/etc/haproxy/haproxy.cfg";
/// The superuser and replication user Spilo creates.
pub const SUPERUSER: &str = "postgres";
pub const STANDBY_USER: &str = "standby";

/// One rendered file, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub path: String,
    pub contents: String,
    /// 0o644: rendered files hold no secret (those are `pgha-image secrets`' files).
    pub mode: u32,
}

/// The backup service's script (`manifests/files/`), beside compose.yaml on its VM.
pub const BACKUP_SCRIPT: &str = "pgha-backup.py";
const BACKUP_SCRIPT_TEXT: &str = include_str!("../../manifests/files/pgha-backup.py");
/// The exporter's extra queries (replication lag, the bootstrap's ledger).
pub const EXPORTER_QUERIES: &str = "exporter-queries.yaml";
const EXPORTER_QUERIES_TEXT: &str = include_str!("../../manifests/files/exporter-queries.yaml");
/// WAL-G's S3 credentials, a file in the secrets directory of each VM
/// (`AWS_ACCESS_KEY_ID=…`, `AWS_SECRET_ACCESS_KEY=…`): the rendered files hold no secret.
pub const WALG_CREDENTIALS: &str = "walg.env";

#[derive(Serialize)]
struct ClusterCtx<'a> {
    scope: &'a str,
    /// The spec's image (as the operator names it; the Kubernetes manifests use it).
    image: &'a str,
    /// The same image pinned (compose's `PGHA_IMAGE`): its id or `NAME@sha256:…`.
    image_pinned: &'a str,
    pg_version: u32,
    members: &'a [Member],
    ports: super::spec::Ports,
    /// etcd | consul | external-etcd | external-consul
    dcs: &'static str,
    /// `ETCD3_HOSTS` (etcd) or `CONSUL_HOST` (Consul), as Spilo reads them.
    dcs_env: (&'static str, String),
    etcd_initial_cluster: String,
    etcd_image: &'a str,
    consul_image: &'a str,
    haproxy_image: &'a str,
    /// Every image of the deployment: spec field, the spec's reference, pinned.
    pinned_images: Vec<(&'static str, &'a str, &'a str)>,
    /// The exporter's image, pinned (`[monitoring]`).
    exporter_image: Option<&'a str>,
    haproxy_on_members: bool,
    haproxy_host: Option<&'a str>,
    secrets_dir: &'a str,
    secrets_mount: &'static str,
    /// Host paths of the compose `env_file`s `pgha-image secrets` makes.
    patroni_env: String,
    haproxy_env: String,
    /// The cluster CA, where the members see it.
    ca_file: String,
    allow_nossl: bool,
    stats_user_var: &'static str,
    stats_password_var: &'static str,
    haproxy_cfg: &'static str,
    superuser: &'static str,
    standby_user: &'static str,
    tool_version: &'static str,
    image_tool_version: &'a str,
    spec_file: String,
    preload: String,
    parameters: BTreeMap<String, String>,
    k8s: &'a super::spec::Kubernetes,
    backup: Option<&'a super::operations::Backup>,
    monitoring: Option<&'a super::operations::Monitoring>,
    /// Spilo's WAL-G variables (`[walg]`), name and value.
    walg_env: Vec<(&'static str, String)>,
    /// The file of WAL-G's S3 credentials on each VM (compose `env_file`).
    walg_credentials: String,
    /// The postgres-operator's `postgresql` resource, as YAML from the serializer.
    operator_postgresql: String,
}

/// The postgres-operator's `postgresql` resource. Serialized, never pasted
/// together: a value from the spec or the image cannot add YAML structure.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OperatorCluster<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: OperatorMeta<'a>,
    spec: OperatorSpec<'a>,
}

#[derive(Serialize)]
struct OperatorMeta<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OperatorSpec<'a> {
    team_id: &'a str,
    docker_image: &'a str,
    number_of_instances: usize,
    volume: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<serde_json::Value>,
    users: &'a BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    databases: &'a BTreeMap<String, String>,
    postgresql: serde_json::Value,
    /// Patroni's REST API login, from the cluster's secret (the image's
    /// launch wrapper makes it restapi.authentication).
    env: serde_json::Value,
    additional_volumes: serde_json::Value,
}

/// `kubernetes/postgresql.yaml` less its comment header.
fn operator_postgresql(
    spec: &Spec,
    parameters: &BTreeMap<String, String>,
    pg_version: u32,
) -> Result<String, ManifestsError> {
    let k = &spec.kubernetes;
    let mut resources = serde_json::Map::new();
    for (key, r) in [("requests", &k.requests), ("limits", &k.limits)] {
        if let Some(r) = r {
            resources.insert(
                key.into(),
                serde_json::json!({ "cpu": r.cpu, "memory": r.memory }),
            );
        }
    }
    let secrets = format!("{}-secrets", k.name);
    let doc = OperatorCluster {
        api_version: "acid.zalan.do/v1",
        kind: "postgresql",
        metadata: OperatorMeta {
            name: &k.name,
            namespace: k.namespace.as_deref(),
        },
        spec: OperatorSpec {
            team_id: &k.team,
            docker_image: &spec.image,
            number_of_instances: spec.members.len(),
            volume: serde_json::json!({ "size": k.volume_size }),
            resources: (!resources.is_empty()).then_some(serde_json::Value::Object(resources)),
            users: &k.users,
            databases: &k.databases,
            postgresql: serde_json::json!({ "version": pg_version.to_string(), "parameters": parameters }),
            env: serde_json::json!([
                { "name": "PGHA_RESTAPI_USERNAME",
                  "valueFrom": { "secretKeyRef": { "name": secrets, "key": "restapi_username" } } },
                { "name": "PGHA_RESTAPI_PASSWORD",
                  "valueFrom": { "secretKeyRef": { "name": secrets, "key": "restapi_password" } } },
            ]),
            additional_volumes: serde_json::json!([{
                "name": secrets,
                "mountPath": SECRETS_MOUNT,
                "targetContainers": ["postgres"],
                // 0440: readable by the container's postgres group, not by everyone.
                "volumeSource": { "secret": { "secretName": secrets, "defaultMode": 0o440 } },
            }]),
        },
    };
    serde_norway::to_string(&doc).map_err(|e| ManifestsError::Render {
        template: "kubernetes/postgresql.yaml".into(),
        detail: e.to_string(),
    })
}

#[derive(Serialize)]
struct MemberCtx<'a> {
    #[serde(flatten)]
    cluster: &'a ClusterCtx<'a>,
    member: &'a Member,
    others: Vec<&'a Member>,
    spilo_configuration: String,
    /// This member's certificate and key, where it sees them.
    ssl_cert: String,
    ssl_key: String,
    /// This VM runs the backup service.
    runs_backup: bool,
}

/// The PostgreSQL major the members run: the spec's, or the newest in the image.
pub fn pg_version(spec: &Spec, manifest: &BuildManifest) -> Result<u32, ManifestsError> {
    match spec.pg_version {
        Some(v) if manifest.pg_majors.contains(&v) => Ok(v),
        Some(v) => Err(ManifestsError::Spec {
            path: spec.path.clone(),
            line: spec.pg_version_line,
            field: "pg_version".into(),
            message: format!(
                "the image {} has no PostgreSQL {v} (it has {:?})",
                spec.image, manifest.pg_majors
            ),
            hint: "give one of the image's majors, or rebuild the image with `--pg`".into(),
            code: crate::error::ExitCode::Usage,
        }),
        None => Ok(*manifest.pg_majors.iter().max().expect("checked non-empty")),
    }
}

/// What goes into a member's `SPILO_CONFIGURATION`: its name and advertised
/// addresses (Spilo would guess them from the hostname, wrongly on a VM),
/// and the image's server settings. Spilo merges it over its own generated
/// configuration, these values winning.
pub fn spilo_configuration(spec: &Spec, manifest: &BuildManifest, member: &Member) -> serde_json::Value {
    let mut cfg = serde_json::json!({
        "name": member.name,
        "restapi": { "connect_address": format!("{}:{}", member.address, spec.ports.restapi) },
        "postgresql": {
            "connect_address": format!("{}:{}", member.address, spec.ports.postgres),
            "parameters": manifest.parameters,
            // Replicas stream over TLS and check the leader's certificate
            // (it names the address they dial); Patroni adds the user and
            // password from the environment.
            "authentication": {
                "replication": {
                    "sslmode": "verify-full",
                    "sslrootcert": crate::secrets::mounted(crate::secrets::CA_CERT),
                },
            },
        },
    });
    if !manifest.dcs_parameters.is_empty() {
        cfg["bootstrap"] = serde_json::json!({
            "dcs": { "postgresql": { "parameters": manifest.dcs_parameters } }
        });
    }
    cfg
}

/// The DCS variables Spilo reads (`configure_spilo.py`: `ETCD3_HOSTS` is a
/// comma-separated `host:port` list, `CONSUL_HOST` one `host:port`).
pub fn dcs_env(spec: &Spec) -> (&'static str, String) {
    match &spec.dcs {
        Dcs::EtcdOnMembers => (
            "ETCD3_HOSTS",
            spec.members
                .iter()
                .map(|m| format!("{}:2379", m.address))
                .collect::<Vec<_>>()
                .join(","),
        ),
        Dcs::ExternalEtcd(hosts) => ("ETCD3_HOSTS", hosts.join(",")),
        // The Consul agent on the member itself (it listens on 127.0.0.1).
        Dcs::ConsulOnMembers => ("CONSUL_HOST", "127.0.0.1:8500".into()),
        Dcs::ExternalConsul(h) => ("CONSUL_HOST", h.clone()),
    }
}

/// The environment Spilo's `configure_spilo.py` turns into WAL-G's
/// configuration (`write_wale_environment`: its `s3_names` and `walg_names`
/// lists, and the placeholders `BACKUP_SCHEDULE` / `BACKUP_NUM_TO_RETAIN`
/// of its crontab); names checked against Spilo's code by tests/walg_names.rs.
/// Empty without `[walg]`. Credentials are not here: see [`WALG_CREDENTIALS`].
pub fn walg_env(spec: &Spec) -> Vec<(&'static str, String)> {
    let Some(w) = &spec.walg else {
        return Vec::new();
    };
    let mut env = vec![
        ("USE_WALG_BACKUP", "true".to_string()),
        ("USE_WALG_RESTORE", "true".to_string()),
        ("WALG_S3_PREFIX", w.s3_prefix.clone()),
    ];
    if let Some(e) = &w.endpoint {
        env.push(("AWS_ENDPOINT", e.clone()));
    }
    if let Some(r) = &w.region {
        env.push(("AWS_REGION", r.clone()));
    }
    if w.force_path_style {
        env.push(("AWS_S3_FORCE_PATH_STYLE", "true".to_string()));
    }
    env.push(("BACKUP_SCHEDULE", w.schedule.clone()));
    env.push(("BACKUP_NUM_TO_RETAIN", w.retain.to_string()));
    env
}

/// Render every file of the output; the compose files name each image by
/// its pinned reference.
pub fn render(
    spec: &Spec,
    manifest: &BuildManifest,
    pinned: &super::pin::Pinned,
) -> Result<Vec<RenderedFile>, ManifestsError> {
    let env = environment()?;
    let pg_version = pg_version(spec, manifest)?;
    let haproxy_host = match &spec.haproxy {
        HaproxyPlacement::Host(h) => Some(h.as_str()),
        HaproxyPlacement::Members => None,
    };
    let cluster = ClusterCtx {
        scope: &spec.scope,
        image: &spec.image,
        image_pinned: pinned.of(&spec.image),
        pg_version,
        members: &spec.members,
        ports: spec.ports,
        dcs: match spec.dcs {
            Dcs::EtcdOnMembers => "etcd",
            Dcs::ConsulOnMembers => "consul",
            Dcs::ExternalEtcd(_) => "external-etcd",
            Dcs::ExternalConsul(_) => "external-consul",
        },
        dcs_env: dcs_env(spec),
        etcd_initial_cluster: spec
            .members
            .iter()
            .map(|m| format!("{}=http://{}:2380", m.name, m.address))
            .collect::<Vec<_>>()
            .join(","),
        etcd_image: pinned.of(&spec.etcd_image),
        consul_image: pinned.of(&spec.consul_image),
        haproxy_image: pinned.of(&spec.haproxy_image),
        exporter_image: spec.monitoring.as_ref().map(|m| pinned.of(&m.exporter_image)),
        pinned_images: pinned
            .images
            .iter()
            .map(|(i, p)| (i.field, i.reference.as_str(), p.as_str()))
            .collect(),
        haproxy_on_members: haproxy_host.is_none(),
        haproxy_host,
        secrets_dir: &spec.secrets_dir,
        secrets_mount: SECRETS_MOUNT,
        patroni_env: format!("{}/{}", spec.secrets_dir, crate::secrets::PATRONI_ENV),
        haproxy_env: format!("{}/{}", spec.secrets_dir, crate::secrets::HAPROXY_ENV),
        ca_file: crate::secrets::mounted(crate::secrets::CA_CERT),
        allow_nossl: spec.allow_nossl,
        stats_user_var: crate::secrets::STATS_USER_VAR,
        stats_password_var: crate::secrets::STATS_PASSWORD_VAR,
        haproxy_cfg: HAPROXY_CFG,
        superuser: SUPERUSER,
        standby_user: STANDBY_USER,
        tool_version: crate::TOOL_VERSION,
        image_tool_version: &manifest.tool_version,
        // Printed in comments: no control character may end the comment.
        spec_file: spec
            .path
            .file_name()
            .map(|n| n.to_string_lossy().replace(|c: char| c.is_control(), "?"))
            .unwrap_or_else(|| "cluster.toml".into()),
        preload: manifest.shared_preload_libraries.join(","),
        parameters: manifest.all_parameters(),
        k8s: &spec.kubernetes,
        backup: spec.backup.as_ref(),
        monitoring: spec.monitoring.as_ref(),
        walg_env: walg_env(spec),
        walg_credentials: format!("{}/{WALG_CREDENTIALS}", spec.secrets_dir),
        operator_postgresql: operator_postgresql(spec, &manifest.all_parameters(), pg_version)?,
    };

    let mut files = Vec::new();
    for member in &spec.members {
        let yaml = serde_norway::to_string(&spilo_configuration(spec, manifest, member)).map_err(|e| {
            ManifestsError::Render {
                template: "SPILO_CONFIGURATION".into(),
                detail: e.to_string(),
            }
        })?;
        let ctx = MemberCtx {
            cluster: &cluster,
            member,
            others: spec.members.iter().filter(|m| m.name != member.name).collect(),
            spilo_configuration: yaml,
            ssl_cert: crate::secrets::mounted(&crate::secrets::member_cert(&member.name).0),
            ssl_key: crate::secrets::mounted(&crate::secrets::member_cert(&member.name).1),
            runs_backup: spec.backup.as_ref().is_some_and(|b| b.member == member.name),
        };
        let dir = &member.name;
        files.push(file(
            &env,
            "compose.yaml.j2",
            &ctx,
            format!("{dir}/compose.yaml"),
            0o644,
        )?);
        files.push(file(&env, "env.j2", &ctx, format!("{dir}/.env"), 0o644)?);
        files.push(file(
            &env,
            "member-README.md.j2",
            &ctx,
            format!("{dir}/README.md"),
            0o644,
        )?);
        if cluster.haproxy_on_members {
            files.push(file(
                &env,
                "haproxy.cfg.j2",
                &ctx,
                format!("{dir}/haproxy.cfg"),
                0o644,
            )?);
        }
        if spec.monitoring.is_some() {
            files.push(RenderedFile {
                path: format!("{dir}/{EXPORTER_QUERIES}"),
                contents: EXPORTER_QUERIES_TEXT.to_string(),
                mode: 0o644,
            });
        }
        if ctx.runs_backup {
            files.push(RenderedFile {
                path: format!("{dir}/{BACKUP_SCRIPT}"),
                contents: BACKUP_SCRIPT_TEXT.to_string(),
                mode: 0o755,
            });
        }
    }
    files.push(file(
        &env,
        "prometheus.yml.j2",
        &cluster,
        "prometheus.yml".into(),
        0o644,
    )?);
    if cluster.haproxy_host.is_some() {
        files.push(file(
            &env,
            "haproxy-compose.yaml.j2",
            &cluster,
            "haproxy/compose.yaml".into(),
            0o644,
        )?);
        files.push(file(
            &env,
            "haproxy.cfg.j2",
            &cluster,
            "haproxy/haproxy.cfg".into(),
            0o644,
        )?);
        files.push(file(
            &env,
            "haproxy-README.md.j2",
            &cluster,
            "haproxy/README.md".into(),
            0o644,
        )?);
    }
    files.push(file(
        &env,
        "postgresql.yaml.j2",
        &cluster,
        "kubernetes/postgresql.yaml".into(),
        0o644,
    )?);
    files.push(file(
        &env,
        "secret.yaml.j2",
        &cluster,
        "kubernetes/secret.yaml".into(),
        0o644,
    )?);
    files.push(file(&env, "README.md.j2", &cluster, "README.md".into(), 0o644)?);
    Ok(files)
}

fn file(
    env: &Environment<'_>,
    template: &str,
    ctx: &impl Serialize,
    path: String,
    mode: u32,
) -> Result<RenderedFile, ManifestsError> {
    let contents = env
        .get_template(template)
        .and_then(|t| t.render(minijinja::value::Serde(ctx)))
        .map_err(|e| ManifestsError::Render {
            template: template.to_string(),
            detail: format!("{e:#}"),
        })?;
    Ok(RenderedFile { path, contents, mode })
}

fn environment() -> Result<Environment<'static>, ManifestsError> {
    let mut env = crate::templates::environment(&TEMPLATES).map_err(|e| ManifestsError::Render {
        template: e.template,
        detail: e.detail,
    })?;
    // A YAML double-quoted scalar (JSON's string syntax is one), with `$`
    // doubled: compose would otherwise interpolate it.
    env.add_filter("composestr", |s: String| {
        serde_json::to_string(&s).unwrap_or_default().replace('$', "$$")
    });
    // A YAML double-quoted scalar, for Kubernetes manifests.
    env.add_filter("yamlstr", |s: String| {
        serde_json::to_string(&s).unwrap_or_default()
    });
    // Text indented by n spaces, line by line, `$` doubled (a literal block in a compose file).
    env.add_filter("compose_block", |s: String, n: usize| {
        let pad = " ".repeat(n);
        s.lines()
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("{pad}{}", l.replace('$', "$$"))
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(env)
}

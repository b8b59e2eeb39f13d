//! The cluster spec (`cluster.toml`): what the user writes, checked field by
//! field. Every error names the field and its line (toml's spans), so a
//! wrong spec is fixed where it is wrong.
//!
//! ```toml
//! scope = "supabase"
//! image = "supabase-patroni:v1.0"
//! dcs = "etcd"          # etcd on the members | "consul" | { etcd = ["host:2379", …] } | { consul = "host:8500" }
//! haproxy = "members"   # on every member | "ADDRESS" of its own host
//! allow_nossl = false   # true: clients may connect without TLS (Spilo's ALLOW_NOSSL)
//! [[member]]
//! name = "pg1"
//! address = "192.0.2.11"
//! ```

use super::ManifestsError;
use crate::error::ExitCode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Default host directory for each member's data (PostgreSQL, etcd or Consul).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/pgha";
/// Default host directory of the secret files the image's hooks read
/// (mounted at /run/secrets/supabase; the same on every member).
pub const DEFAULT_SECRETS_DIR: &str = "/etc/pgha/secrets";
pub const DEFAULT_ETCD_IMAGE: &str = "quay.io/coreos/etcd:v3.5.17";
pub const DEFAULT_CONSUL_IMAGE: &str = "docker.io/hashicorp/consul:1.20";
pub const DEFAULT_HAPROXY_IMAGE: &str = "docker.io/library/haproxy:2.8";

/// The ports the rendered services listen on, on each host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Ports {
    /// HAProxy: the leader (read-write).
    pub rw: u16,
    /// HAProxy: the replicas (read-only).
    pub ro: u16,
    /// HAProxy: any healthy member.
    pub any: u16,
    /// HAProxy's stats page.
    pub stats: u16,
    /// PostgreSQL on each member (Spilo's PGPORT).
    pub postgres: u16,
    /// Patroni's REST API on each member (Spilo's APIPORT).
    pub restapi: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            rw: 5000,
            ro: 5001,
            any: 5002,
            stats: 7000,
            postgres: 5432,
            restapi: 8008,
        }
    }
}

/// Ports the DCS services take on a member (fixed: the clients' defaults).
pub const ETCD_PORTS: [(u16, &str); 2] = [(2379, "etcd client"), (2380, "etcd peer")];
pub const CONSUL_PORTS: [(u16, &str); 4] = [
    (8500, "consul http"),
    (8300, "consul server rpc"),
    (8301, "consul serf lan"),
    (8600, "consul dns"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dcs {
    /// One etcd member on each cluster member.
    EtcdOnMembers,
    /// One Consul server agent on each cluster member.
    ConsulOnMembers,
    /// An etcd cluster that exists already (`host:port` each).
    ExternalEtcd(Vec<String>),
    /// A Consul agent that exists already (`host:port`).
    ExternalConsul(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaproxyPlacement {
    /// On every member, next to PostgreSQL.
    Members,
    /// On a host of its own.
    Host(String),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub name: String,
    pub address: String,
    /// Host directory for this member's data.
    pub data_dir: String,
}

/// The postgres-operator rendering.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Kubernetes {
    pub name: String,
    pub namespace: Option<String>,
    pub team: String,
    pub volume_size: String,
    pub requests: Option<Resources>,
    pub limits: Option<Resources>,
    /// `users:` of the postgresql resource: role → flags.
    pub users: BTreeMap<String, Vec<String>>,
    pub databases: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
}

/// A spec that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub path: PathBuf,
    pub scope: String,
    pub image: String,
    /// The line of `image` (errors about the image point there).
    pub image_line: usize,
    pub pg_version: Option<u32>,
    pub pg_version_line: usize,
    pub dcs: Dcs,
    pub haproxy: HaproxyPlacement,
    pub secrets_dir: String,
    /// Accept client connections without TLS (Spilo's `ALLOW_NOSSL`);
    /// replication stays on TLS.
    pub allow_nossl: bool,
    pub ports: Ports,
    pub etcd_image: String,
    pub consul_image: String,
    pub haproxy_image: String,
    pub members: Vec<Member>,
    pub kubernetes: Kubernetes,
    /// `[backup]`: the pg_dump service (see [`super::operations`]).
    pub backup: Option<super::operations::Backup>,
    /// `[monitoring]`: the PostgreSQL exporter per member.
    pub monitoring: Option<super::operations::Monitoring>,
    /// `[walg]`: Spilo's continuous archiving.
    pub walg: Option<super::operations::Walg>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    scope: Spanned<String>,
    image: Spanned<String>,
    pg_version: Option<Spanned<u32>>,
    dcs: Option<Spanned<RawDcs>>,
    haproxy: Option<Spanned<String>>,
    secrets_dir: Option<Spanned<String>>,
    #[serde(default)]
    allow_nossl: bool,
    data_dir: Option<Spanned<String>>,
    #[serde(default)]
    ports: RawPorts,
    #[serde(default)]
    images: RawImages,
    #[serde(default)]
    kubernetes: RawKubernetes,
    #[serde(default)]
    member: Vec<RawMember>,
    backup: Option<super::operations::RawBackup>,
    monitoring: Option<super::operations::RawMonitoring>,
    walg: Option<super::operations::RawWalg>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDcs {
    Kind(String),
    External(RawExternalDcs),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExternalDcs {
    etcd: Option<Vec<String>>,
    consul: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPorts {
    rw: Option<Spanned<u16>>,
    ro: Option<Spanned<u16>>,
    any: Option<Spanned<u16>>,
    stats: Option<Spanned<u16>>,
    postgres: Option<Spanned<u16>>,
    restapi: Option<Spanned<u16>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawImages {
    etcd: Option<Spanned<String>>,
    consul: Option<Spanned<String>>,
    haproxy: Option<Spanned<String>>,
    exporter: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKubernetes {
    name: Option<Spanned<String>>,
    namespace: Option<Spanned<String>>,
    team: Option<Spanned<String>>,
    volume_size: Option<Spanned<String>>,
    requests: Option<Spanned<Resources>>,
    limits: Option<Spanned<Resources>>,
    users: Option<Spanned<BTreeMap<String, Vec<String>>>>,
    databases: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    name: Spanned<String>,
    address: Spanned<String>,
    data_dir: Option<Spanned<String>>,
}

/// Line numbers from byte offsets of one file.
struct Lines<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Lines<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|b| *b == b'\n').count() + 1
    }

    fn err(
        &self,
        span: &Range<usize>,
        field: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ManifestsError {
        ManifestsError::Spec {
            path: self.path.to_path_buf(),
            line: self.line(span),
            field: field.to_string(),
            message: message.into(),
            hint: hint.into(),
            code: ExitCode::Usage,
        }
    }
}

/// Read and check a spec file.
pub fn load(path: &Path) -> Result<Spec, ManifestsError> {
    let bytes =
        crate::fsutil::read_regular_bounded(path, SPEC_MAX_BYTES).map_err(|e| ManifestsError::Read {
            path: path.to_path_buf(),
            source: match e {
                crate::fsutil::BoundedReadError::Io(e) => e,
                other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
            },
        })?;
    let text = String::from_utf8(bytes).map_err(|_| ManifestsError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })?;
    parse(path, &text)
}

/// The largest spec file read (a cluster spec is a few hundred bytes).
pub const SPEC_MAX_BYTES: u64 = 1024 * 1024;

/// Top-level directories of the output that are not a member's.
pub const RESERVED_NAMES: &[&str] = &["haproxy", "kubernetes"];

/// Check a spec's text (`path` only names it in errors).
pub fn parse(path: &Path, text: &str) -> Result<Spec, ManifestsError> {
    let lines = Lines { path, text };
    let raw: RawSpec = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().to_string();
        // serde names the field in backticks: "unknown field `x`", "missing field `y`".
        let field = message
            .split('`')
            .nth(1)
            .map(str::to_string)
            .unwrap_or_else(|| "(syntax)".into());
        lines.err(
            &span,
            &field,
            message,
            "see the spec format in docs/deploy.md (`pgha-image manifests --help` lists the fields)",
        )
    })?;

    let scope = raw.scope.get_ref().clone();
    if !is_name(&scope) {
        return Err(lines.err(
            &raw.scope.span(),
            "scope",
            format!("{scope:?} is not a valid cluster name"),
            "use lowercase letters, digits and '-' (it names the cluster in the DCS and in Kubernetes)",
        ));
    }
    let image = raw.image.get_ref().trim().to_string();
    if let Err(why) = crate::engine::check_reference(&image) {
        return Err(lines.err(
            &raw.image.span(),
            "image",
            format!("{image:?} is not an image reference: {why}"),
            "give the tag `pgha-image build --tag` produced, e.g. supabase-patroni:v1.0",
        ));
    }

    // Members: names and addresses unique and valid.
    if raw.member.is_empty() {
        return Err(lines.err(
            &(text.len()..text.len()),
            "member",
            "the spec has no [[member]]",
            "add one [[member]] table (name, address) per VM; three for failover",
        ));
    }
    let default_data = raw
        .data_dir
        .as_ref()
        .map(|d| absolute(&lines, d, "data_dir"))
        .transpose()?
        .unwrap_or_else(|| DEFAULT_DATA_DIR.to_string());
    let mut members: Vec<Member> = Vec::new();
    let mut seen_names: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen_addrs: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for (i, m) in raw.member.iter().enumerate() {
        let field = |f: &str| format!("member[{i}].{f}");
        let name = m.name.get_ref().clone();
        if !is_name(&name) {
            return Err(lines.err(
                &m.name.span(),
                &field("name"),
                format!("{name:?} is not a valid member name"),
                "use lowercase letters, digits and '-' (it names the directory and the Patroni member)",
            ));
        }
        if RESERVED_NAMES.contains(&name.as_str()) {
            return Err(lines.err(
                &m.name.span(),
                &field("name"),
                format!("{name:?} is reserved: the output's {name}/ directory is not a member's"),
                "name the member otherwise (e.g. pg1); the names haproxy and kubernetes are taken",
            ));
        }
        if let Some(first) = seen_names.insert(name.clone(), lines.line(&m.name.span())) {
            return Err(lines.err(
                &m.name.span(),
                &field("name"),
                format!("duplicate member name {name:?} (first on line {first})"),
                "give every member its own name",
            ));
        }
        let addr: IpAddr = m.address.get_ref().parse().map_err(|_| {
            lines.err(
                &m.address.span(),
                &field("address"),
                format!("{:?} is not an IP address", m.address.get_ref()),
                "give the VM's own address on the network the members share, e.g. 192.0.2.11",
            )
        })?;
        if let Some(why) = not_a_host(&addr) {
            return Err(lines.err(
                &m.address.span(),
                &field("address"),
                format!("{addr} cannot be a member address: {why}"),
                "give the VM's own address on the network the members share",
            ));
        }
        if let Some(first) = seen_addrs.insert(addr, lines.line(&m.address.span())) {
            return Err(lines.err(
                &m.address.span(),
                &field("address"),
                format!("duplicate member address {addr} (first on line {first})"),
                "every member runs on its own VM, with its own address",
            ));
        }
        let data_dir = match &m.data_dir {
            Some(d) => absolute(&lines, d, &field("data_dir"))?,
            None => format!("{}/{}", default_data.trim_end_matches('/'), scope),
        };
        members.push(Member {
            name,
            address: addr.to_string(),
            data_dir,
        });
    }

    // The DCS.
    let dcs = match &raw.dcs {
        None => Dcs::EtcdOnMembers,
        Some(d) => match d.get_ref() {
            RawDcs::Kind(k) if k == "etcd" => Dcs::EtcdOnMembers,
            RawDcs::Kind(k) if k == "consul" => Dcs::ConsulOnMembers,
            RawDcs::Kind(k) => {
                return Err(lines.err(
                    &d.span(),
                    "dcs",
                    format!("unknown DCS {k:?}"),
                    "use \"etcd\" (on the members), \"consul\" (on the members), \
                     { etcd = [\"host:2379\", …] } or { consul = \"host:8500\" } for an existing one",
                ));
            }
            RawDcs::External(RawExternalDcs {
                etcd: Some(hosts),
                consul: None,
            }) => {
                for h in hosts {
                    if !is_host_port(h) {
                        return Err(lines.err(
                            &d.span(),
                            "dcs.etcd",
                            format!("{h:?} is not host:port"),
                            "write each etcd endpoint as host:port, e.g. 192.0.2.21:2379",
                        ));
                    }
                }
                if hosts.is_empty() || hosts.len().is_multiple_of(2) {
                    return Err(lines.err(
                        &d.span(),
                        "dcs.etcd",
                        format!("{} etcd endpoints: an etcd cluster needs an odd number", hosts.len()),
                        "etcd keeps a majority: 1, 3 or 5 members (an even count tolerates no more failures than one fewer)",
                    ));
                }
                Dcs::ExternalEtcd(hosts.clone())
            }
            RawDcs::External(RawExternalDcs {
                etcd: None,
                consul: Some(host),
            }) => {
                if !is_host_port(host) {
                    return Err(lines.err(
                        &d.span(),
                        "dcs.consul",
                        format!("{host:?} is not host:port"),
                        "write the Consul agent as host:port, e.g. 127.0.0.1:8500",
                    ));
                }
                Dcs::ExternalConsul(host.clone())
            }
            RawDcs::External(_) => {
                return Err(lines.err(
                    &d.span(),
                    "dcs",
                    "give exactly one of etcd = [...] or consul = \"...\"",
                    "e.g. dcs = { etcd = [\"192.0.2.21:2379\", \"192.0.2.22:2379\", \"192.0.2.23:2379\"] }",
                ));
            }
        },
    };
    if matches!(dcs, Dcs::EtcdOnMembers | Dcs::ConsulOnMembers) && members.len().is_multiple_of(2) {
        let what = if dcs == Dcs::EtcdOnMembers {
            "etcd"
        } else {
            "Consul"
        };
        let span = raw
            .dcs
            .as_ref()
            .map(|d| d.span())
            .unwrap_or_else(|| raw.member[members.len() - 1].name.span());
        return Err(lines.err(
            &span,
            if raw.dcs.is_some() { "dcs" } else { "member" },
            format!(
                "{} members would make an even {what} count ({what} runs on every member)",
                members.len()
            ),
            "use an odd number of members (3 or 5), or an existing DCS: dcs = { etcd = [\"host:2379\", …] }",
        ));
    }

    let haproxy = match &raw.haproxy {
        None => HaproxyPlacement::Members,
        Some(h) if h.get_ref() == "members" => HaproxyPlacement::Members,
        Some(h) => {
            let addr: IpAddr = h.get_ref().parse().map_err(|_| {
                lines.err(
                    &h.span(),
                    "haproxy",
                    format!("{:?} is neither \"members\" nor an IP address", h.get_ref()),
                    "use \"members\" (HAProxy on every member) or the address of HAProxy's own host",
                )
            })?;
            if let Some(why) = not_a_host(&addr) {
                return Err(lines.err(
                    &h.span(),
                    "haproxy",
                    format!("{addr} cannot be HAProxy's host: {why}"),
                    "give the address of HAProxy's own host on the members' network",
                ));
            }
            if let Some(line) = seen_addrs.get(&addr) {
                return Err(lines.err(
                    &h.span(),
                    "haproxy",
                    format!("{addr} is member's address (line {line})"),
                    "use \"members\" to run HAProxy on every member, or give a host of its own",
                ));
            }
            HaproxyPlacement::Host(addr.to_string())
        }
    };

    // Ports: every service on one host needs its own.
    let d = Ports::default();
    let port = |p: &Option<Spanned<u16>>, default: u16| p.as_ref().map(|s| *s.get_ref()).unwrap_or(default);
    let ports = Ports {
        rw: port(&raw.ports.rw, d.rw),
        ro: port(&raw.ports.ro, d.ro),
        any: port(&raw.ports.any, d.any),
        stats: port(&raw.ports.stats, d.stats),
        postgres: port(&raw.ports.postgres, d.postgres),
        restapi: port(&raw.ports.restapi, d.restapi),
    };
    let mut taken: Vec<(u16, String)> = Vec::new();
    let mut fixed: Vec<(u16, &str)> = Vec::new();
    match dcs {
        Dcs::EtcdOnMembers => fixed.extend(ETCD_PORTS),
        Dcs::ConsulOnMembers => fixed.extend(CONSUL_PORTS),
        _ => {}
    }
    for (p, what) in fixed {
        taken.push((p, what.to_string()));
    }
    let haproxy_here = haproxy == HaproxyPlacement::Members;
    let named = [
        ("postgres", &raw.ports.postgres, ports.postgres, true),
        ("restapi", &raw.ports.restapi, ports.restapi, true),
        ("rw", &raw.ports.rw, ports.rw, haproxy_here),
        ("ro", &raw.ports.ro, ports.ro, haproxy_here),
        ("any", &raw.ports.any, ports.any, haproxy_here),
        ("stats", &raw.ports.stats, ports.stats, haproxy_here),
    ];
    // HAProxy on its own host: its four ports must differ among themselves.
    let mut haproxy_taken: Vec<(u16, String)> = Vec::new();
    for (name, spanned, value, on_members) in named {
        let list = if on_members {
            &mut taken
        } else {
            &mut haproxy_taken
        };
        if let Some((_, other)) = list.iter().find(|(p, _)| *p == value) {
            let span = spanned
                .as_ref()
                .map(|s| s.span())
                .unwrap_or_else(|| named_span(&named_spans(&raw.ports), other).unwrap_or(0..0));
            return Err(lines.err(
                &span,
                &format!("ports.{name}"),
                format!("port {value} is also {other} on the same host"),
                "give every service on a host its own port",
            ));
        }
        if value == 0 {
            return Err(lines.err(
                &spanned.as_ref().map(|s| s.span()).unwrap_or(0..0),
                &format!("ports.{name}"),
                "port 0 cannot be listened on",
                "give a port between 1 and 65535",
            ));
        }
        list.push((value, format!("ports.{name}")));
    }

    let secrets_dir = raw
        .secrets_dir
        .as_ref()
        .map(|d| absolute(&lines, d, "secrets_dir"))
        .transpose()?
        .unwrap_or_else(|| DEFAULT_SECRETS_DIR.to_string());

    let team = raw
        .kubernetes
        .team
        .as_ref()
        .map(|t| t.get_ref().clone())
        .unwrap_or_else(|| scope.clone());
    let k8s_name = raw
        .kubernetes
        .name
        .as_ref()
        .map(|t| t.get_ref().clone())
        .unwrap_or_else(|| format!("{team}-db"));
    if !k8s_name.starts_with(&format!("{team}-")) || !is_name(&k8s_name) {
        let span = raw
            .kubernetes
            .name
            .as_ref()
            .or(raw.kubernetes.team.as_ref())
            .map(|s| s.span())
            .unwrap_or_else(|| raw.scope.span());
        return Err(lines.err(
            &span,
            "kubernetes.name",
            format!("the postgres-operator cluster name {k8s_name:?} must start with the team {team:?} and '-'"),
            "set kubernetes.name = \"<team>-<something>\" (lowercase letters, digits, '-'), or kubernetes.team",
        ));
    }

    let k = raw.kubernetes;
    let namespace = match &k.namespace {
        Some(ns) if !is_name(ns.get_ref()) => {
            return Err(lines.err(
                &ns.span(),
                "kubernetes.namespace",
                format!("{:?} is not a Kubernetes namespace name", ns.get_ref()),
                "use lowercase letters, digits and '-', starting with a letter, at most 63 characters",
            ));
        }
        ns => ns.as_ref().map(|n| n.get_ref().clone()),
    };
    let quantity = |q: &Spanned<String>, field: &str, what: &str| -> Result<String, ManifestsError> {
        if is_quantity(q.get_ref()) {
            Ok(q.get_ref().clone())
        } else {
            Err(lines.err(
                &q.span(),
                field,
                format!("{:?} is not a Kubernetes quantity", q.get_ref()),
                format!("give {what}, e.g. 20Gi, 500m, 2"),
            ))
        }
    };
    let volume_size = match &k.volume_size {
        Some(v) => quantity(v, "kubernetes.volume_size", "a size")?,
        None => "20Gi".into(),
    };
    let mut resources = Vec::new();
    for (r, field) in [
        (&k.requests, "kubernetes.requests"),
        (&k.limits, "kubernetes.limits"),
    ] {
        resources.push(match r {
            None => None,
            Some(r) => {
                let res = r.get_ref();
                for v in [&res.cpu, &res.memory] {
                    if !is_quantity(v) {
                        return Err(lines.err(
                            &r.span(),
                            field,
                            format!("{v:?} is not a Kubernetes quantity"),
                            "give cpu and memory as quantities, e.g. cpu = \"500m\", memory = \"1Gi\"",
                        ));
                    }
                }
                Some(res.clone())
            }
        });
    }
    let users = k.users.map(|u| (u.span(), u.into_inner())).unwrap_or_default();
    for (user, flags) in &users.1 {
        if !is_role_name(user) {
            return Err(lines.err(
                &users.0,
                "kubernetes.users",
                format!("{user:?} is not a role name the postgres-operator accepts"),
                "use lowercase letters, digits and '_', starting with a letter or '_', at most 63 characters",
            ));
        }
        if let Some(f) = flags
            .iter()
            .find(|f| !USER_FLAGS.contains(&f.to_ascii_lowercase().as_str()))
        {
            return Err(lines.err(
                &users.0,
                "kubernetes.users",
                format!("{f:?} (of {user}) is not a role flag"),
                format!("use the postgres-operator's flags: {}", USER_FLAGS.join(", ")),
            ));
        }
    }
    let databases = k
        .databases
        .map(|d| (d.span(), d.into_inner()))
        .unwrap_or_default();
    for (db, owner) in &databases.1 {
        if !is_role_name(db) || !is_role_name(owner) {
            return Err(lines.err(
                &databases.0,
                "kubernetes.databases",
                format!("{db:?} = {owner:?} is not a database name and an owner role name"),
                "use lowercase letters, digits and '_', starting with a letter or '_', at most 63 characters",
            ));
        }
    }
    let image_field =
        |v: Option<Spanned<String>>, field: &str, default: &str| -> Result<String, ManifestsError> {
            let Some(v) = v else {
                return Ok(default.to_string());
            };
            crate::engine::check_reference(v.get_ref()).map_err(|why| {
                lines.err(
                    &v.span(),
                    field,
                    format!("{:?} is not an image reference: {why}", v.get_ref()),
                    format!("give an image reference, e.g. {default}"),
                )
            })?;
            Ok(v.into_inner())
        };
    let etcd_image = image_field(raw.images.etcd, "images.etcd", DEFAULT_ETCD_IMAGE)?;
    let consul_image = image_field(raw.images.consul, "images.consul", DEFAULT_CONSUL_IMAGE)?;
    let haproxy_image = image_field(raw.images.haproxy, "images.haproxy", DEFAULT_HAPROXY_IMAGE)?;
    let exporter_image = match raw.images.exporter {
        Some(v) => Some(image_field(
            Some(v),
            "images.exporter",
            super::operations::DEFAULT_EXPORTER_IMAGE,
        )?),
        None => None,
    };
    let [requests, limits]: [Option<Resources>; 2] = resources.try_into().expect("two entries");

    // Day two: backups, monitoring, WAL-G (each optional).
    let field_err =
        |span: &Range<usize>, field: &str, message: String, hint: &str| lines.err(span, field, message, hint);
    let backup = raw
        .backup
        .as_ref()
        .map(|b| super::operations::backup(b, &members, &field_err))
        .transpose()?;
    let monitoring = raw
        .monitoring
        .as_ref()
        .map(|m| super::operations::monitoring(m, exporter_image.clone(), &field_err))
        .transpose()?;
    let walg = raw
        .walg
        .as_ref()
        .map(|w| super::operations::walg(w, &field_err))
        .transpose()?;
    for (value, field) in super::operations::ports_of(backup.as_ref(), monitoring.as_ref()) {
        if let Some((_, other)) = taken.iter().find(|(p, _)| *p == value) {
            return Err(lines.err(
                &(text.len()..text.len()),
                field,
                format!("port {value} is also {other} on the same host"),
                "give every service on a host its own port",
            ));
        }
        taken.push((value, field.to_string()));
    }

    Ok(Spec {
        path: path.to_path_buf(),
        scope,
        image,
        image_line: lines.line(&raw.image.span()),
        pg_version: raw.pg_version.as_ref().map(|v| *v.get_ref()),
        pg_version_line: raw
            .pg_version
            .as_ref()
            .map(|v| lines.line(&v.span()))
            .unwrap_or(0),
        dcs,
        haproxy,
        secrets_dir,
        allow_nossl: raw.allow_nossl,
        ports,
        etcd_image,
        consul_image,
        haproxy_image,
        members,
        kubernetes: Kubernetes {
            name: k8s_name,
            namespace,
            team,
            volume_size,
            requests,
            limits,
            users: users.1,
            databases: databases.1,
        },
        backup,
        monitoring,
        walg,
    })
}

fn named_spans(p: &RawPorts) -> Vec<(String, Range<usize>)> {
    [
        ("ports.rw", &p.rw),
        ("ports.ro", &p.ro),
        ("ports.any", &p.any),
        ("ports.stats", &p.stats),
        ("ports.postgres", &p.postgres),
        ("ports.restapi", &p.restapi),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.as_ref().map(|s| (n.to_string(), s.span())))
    .collect()
}

fn named_span(spans: &[(String, Range<usize>)], name: &str) -> Option<Range<usize>> {
    spans.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone())
}

fn absolute(lines: &Lines<'_>, d: &Spanned<String>, field: &str) -> Result<String, ManifestsError> {
    let v = d.get_ref();
    if !v.starts_with('/') || v.contains(char::is_whitespace) || v.contains(':') {
        return Err(lines.err(
            &d.span(),
            field,
            format!("{v:?} is not an absolute host path"),
            "give an absolute directory on the VM, without spaces or ':' (compose mounts it)",
        ));
    }
    Ok(v.trim_end_matches('/').to_string())
}

/// Lowercase letters, digits and '-', starting with a letter: valid as a
/// DNS label, a Kubernetes name, a directory and a Patroni member name.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Why `addr` cannot be a host the members reach (loopback, unspecified,
/// broadcast, multicast), or `None`.
fn not_a_host(addr: &IpAddr) -> Option<&'static str> {
    if addr.is_loopback() || addr.is_unspecified() {
        return Some("the other members could not reach it");
    }
    if addr.is_multicast() {
        return Some("it is a multicast address, not a host's");
    }
    if matches!(addr, IpAddr::V4(v4) if v4.is_broadcast()) {
        return Some("it is the broadcast address, not a host's");
    }
    None
}

/// The role flags the postgres-operator's `users:` accepts.
const USER_FLAGS: &[&str] = &[
    "superuser",
    "inherit",
    "login",
    "nologin",
    "createrole",
    "createdb",
    "replication",
    "bypassrls",
];

/// A role or database name the postgres-operator accepts (and that needs
/// no quoting anywhere): lowercase letters, digits and '_'.
fn is_role_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A Kubernetes resource quantity: a decimal number with an optional
/// binary (Ki…Ei) or decimal (m, k, M…E) suffix.
fn is_quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    let number_ok = !digits.is_empty()
        && digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
        && !digits.ends_with('.');
    number_ok
        && [
            "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
        ]
        .contains(&suffix)
}

fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(char::is_whitespace)
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"scope = "supabase"
image = "supabase-patroni:v1.0"
dcs = "etcd"
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

    fn err(text: &str) -> (usize, String, String) {
        match parse(Path::new("c.toml"), text).unwrap_err() {
            ManifestsError::Spec {
                line, field, message, ..
            } => (line, field, message),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn the_issue_example_parses_with_defaults() {
        let s = parse(Path::new("c.toml"), GOOD).unwrap();
        assert_eq!(s.ports, Ports::default());
        assert_eq!(s.dcs, Dcs::EtcdOnMembers);
        assert_eq!(s.members[1].data_dir, "/var/lib/pgha/supabase");
        assert_eq!(s.secrets_dir, DEFAULT_SECRETS_DIR);
        assert_eq!(s.kubernetes.name, "supabase-db");
        assert_eq!(s.image_line, 2);
    }

    #[test]
    fn errors_name_field_and_line() {
        let (line, field, msg) = err(&GOOD.replace("192.0.2.13", "192.0.2.12"));
        assert_eq!((line, field.as_str()), (13, "member[2].address"), "{msg}");
        let (line, field, _) = err(&GOOD.replace("name = \"pg3\"", "name = \"pg1\""));
        assert_eq!((line, field.as_str()), (12, "member[2].name"));
        let (line, field, _) = err(&format!("{GOOD}[ports]\nro = 5000\n"));
        assert_eq!((line, field.as_str()), (15, "ports.ro"));
        let (line, field, _) = err(&format!("{GOOD}[ports]\nrw = 2379\n"));
        assert_eq!((line, field.as_str()), (15, "ports.rw"));
        let (line, field, _) =
            err(&GOOD.replace("dcs = \"etcd\"", "dcs = { etcd = [\"a:2379\", \"b:2379\"] }"));
        assert_eq!((line, field.as_str()), (3, "dcs.etcd"));
        let (line, field, _) =
            err(&GOOD.replace("haproxy = \"members\"", "haproxy = \"members\"\nhaproxx = 1"));
        assert_eq!((line, field.as_str()), (5, "haproxx"));
        let four = format!("{GOOD}[[member]]\nname = \"pg4\"\naddress = \"192.0.2.14\"\n");
        let (line, field, msg) = err(&four);
        assert_eq!((line, field.as_str()), (3, "dcs"), "{msg}");
    }

    #[test]
    fn haproxy_on_its_own_host_frees_the_member_ports() {
        let s = parse(
            Path::new("c.toml"),
            &GOOD.replace(
                "haproxy = \"members\"",
                "haproxy = \"192.0.2.20\"\n[ports]\nrw = 5432\nro = 5433\n",
            ),
        );
        // rw = 5432 on HAProxy's own host does not clash with PostgreSQL on the members.
        assert!(s.is_ok(), "{:?}", s.err());
    }
}

//! `pgha-image status`: one view of a running cluster from its spec.
//!
//! ```text
//! cluster.toml ──► every member:  Patroni /patroni (role, state, timeline, image tag)
//!                  any member:    Patroni /cluster (the DCS's view: leader, lag)
//!                  every HAProxy: stats CSV (is each member routed where it belongs?)
//!                  [monitoring]:  each exporter's /metrics (pg_up, the bootstrap's ledger)
//!                  [backup]:      the backup service's /status (the last success's age)
//!            ──► table or JSON; exit 0 healthy, 3 degraded (each problem names its member)
//! ```
//!
//! Every request is bounded: a connection gets [`CONNECT_LIMIT`], a whole
//! request `timeout` (default [`DEFAULT_TIMEOUT`]); all requests run at
//! once, so the command answers within about one `timeout` however many
//! members are down. Nothing is retried: a member that does not answer in
//! time is reported as down.
//!
//! Healthy means: every member answers and runs, one leader, every other
//! member a replica streaming (or running) with replay lag at most
//! `max_lag` bytes, each HAProxy routes the leader on its read-write port
//! and the replicas on its read-only port, each exporter answers, and the
//! last backup is at most twice its schedule old.

mod error;
pub mod probe;

pub use error::StatusError;

use crate::manifests::spec::{self, HaproxyPlacement, Spec};
use futures_util::future::join_all;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

pub const CONNECT_LIMIT: Duration = Duration::from_secs(2);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Request<'a> {
    pub spec: &'a Path,
    /// Where `haproxy.env` (HAProxy's stats login, from `pgha-image
    /// secrets`) is read; default: the spec's `secrets_dir`.
    pub secrets_dir: Option<&'a Path>,
    /// The limit of each request.
    pub timeout: Duration,
    /// Overrides `[monitoring] max_lag`.
    pub max_lag: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scope: String,
    pub healthy: bool,
    pub leader: Option<String>,
    pub max_lag: u64,
    pub members: Vec<Member>,
    pub backup: Option<Backup>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub name: String,
    pub address: String,
    /// Patroni's REST API answered.
    pub reachable: bool,
    pub role: Option<String>,
    pub state: Option<String>,
    pub timeline: Option<u64>,
    /// Replay lag in bytes, as `/cluster` reports it.
    pub lag: Option<u64>,
    /// The image the member runs (its Patroni tag `pgha_image`).
    pub image: Option<String>,
    /// Migrations in the bootstrap's ledger, as its exporter reads them.
    pub ledger_migrations: Option<u64>,
    pub ledger_last_version: Option<u64>,
    /// HAProxies that route this member where its role belongs, of those asked.
    pub routed_by: Option<(usize, usize)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub member: String,
    pub every_seconds: u64,
    /// Seconds since the last complete backup started; None: none yet, or no answer.
    pub age_seconds: Option<u64>,
    pub last_error: Option<String>,
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The member concerned, when there is one.
    pub member: Option<String>,
    pub message: String,
}

impl Report {
    /// The report as a table (what a terminal shows).
    pub fn table(&self) -> String {
        let mut rows = vec![
            [
                "MEMBER", "ADDRESS", "ROLE", "STATE", "TL", "LAG", "HAPROXY", "LEDGER", "IMAGE",
            ]
            .map(str::to_string),
        ];
        for m in &self.members {
            let dash = || "-".to_string();
            rows.push([
                m.name.clone(),
                m.address.clone(),
                m.role.clone().unwrap_or_else(dash),
                m.state.clone().unwrap_or_else(|| "unreachable".into()),
                m.timeline.map(|t| t.to_string()).unwrap_or_else(dash),
                m.lag.map(|l| format!("{l} B")).unwrap_or_else(dash),
                m.routed_by.map(|(a, b)| format!("{a}/{b}")).unwrap_or_else(dash),
                match (m.ledger_migrations, m.ledger_last_version) {
                    (Some(n), Some(v)) => format!("{n} (last {v})"),
                    _ => dash(),
                },
                m.image.clone().unwrap_or_else(dash),
            ]);
        }
        let widths: Vec<usize> = (0..9)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = format!(
            "cluster {}: {}\n",
            self.scope,
            if self.healthy { "healthy" } else { "DEGRADED" }
        );
        for r in &rows {
            let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        if let Some(b) = &self.backup {
            out.push_str(&format!(
                "backup (on {}, every {}s): {}\n",
                b.member,
                b.every_seconds,
                match b.age_seconds {
                    Some(a) => format!(
                        "last success {a}s ago{}",
                        b.source
                            .as_ref()
                            .map(|s| format!(", from {s}"))
                            .unwrap_or_default()
                    ),
                    None => "no successful backup".into(),
                }
            ));
        }
        for p in &self.problems {
            match &p.member {
                Some(m) => out.push_str(&format!("problem: {m}: {}\n", p.message)),
                None => out.push_str(&format!("problem: {}\n", p.message)),
            }
        }
        out
    }
}

/// Load the spec and look at the cluster.
pub fn run(req: &Request<'_>) -> Result<Report, StatusError> {
    let spec = spec::load(req.spec)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StatusError::Runtime(e.to_string()))?;
    let secrets_dir = req
        .secrets_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from(&spec.secrets_dir));
    let login = stats_login(&secrets_dir);
    rt.block_on(collect(&spec, req.timeout, req.max_lag, login.as_ref()))
}

/// HAProxy's stats login from `DIR/haproxy.env`, when it can be read.
pub fn stats_login(secrets_dir: &Path) -> Option<probe::Login> {
    let text = std::fs::read_to_string(secrets_dir.join(crate::secrets::HAPROXY_ENV)).ok()?;
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().to_string())
    };
    Some(probe::Login {
        user: get(crate::secrets::STATS_USER_VAR)?,
        password: get(crate::secrets::STATS_PASSWORD_VAR)?,
    })
}

/// Ask every endpoint at once, then judge.
pub async fn collect(
    spec: &Spec,
    limit: Duration,
    max_lag: Option<u64>,
    stats_login: Option<&probe::Login>,
) -> Result<Report, StatusError> {
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_LIMIT)
        .timeout(limit)
        .no_proxy()
        .user_agent(concat!("pgha-image/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| StatusError::Runtime(e.to_string()))?;
    let rest = spec.ports.restapi;
    let max_lag = max_lag
        .or(spec.monitoring.as_ref().map(|m| m.max_lag))
        .unwrap_or(crate::manifests::operations::DEFAULT_MAX_LAG);

    let own_urls: Vec<String> = spec
        .members
        .iter()
        .map(|m| format!("http://{}:{rest}/patroni", m.address))
        .collect();
    let cluster_urls: Vec<String> = spec
        .members
        .iter()
        .map(|m| format!("http://{}:{rest}/cluster", m.address))
        .collect();
    let haproxies: Vec<(Option<String>, String)> = match &spec.haproxy {
        HaproxyPlacement::Members => spec
            .members
            .iter()
            .map(|m| (Some(m.name.clone()), m.address.clone()))
            .collect(),
        HaproxyPlacement::Host(h) => vec![(None, h.clone())],
    };
    let stats_urls: Vec<String> = haproxies
        .iter()
        .map(|(_, a)| format!("http://{a}:{}/;csv", spec.ports.stats))
        .collect();
    let exporter_urls: Vec<String> = match &spec.monitoring {
        Some(m) => spec
            .members
            .iter()
            .map(|x| format!("http://{}:{}/metrics", x.address, m.exporter_port))
            .collect(),
        None => Vec::new(),
    };
    let backup_url = spec.backup.as_ref().map(|b| {
        let addr = &spec
            .members
            .iter()
            .find(|m| m.name == b.member)
            .expect("the spec checked backup.member")
            .address;
        format!("http://{addr}:{}/status", b.port)
    });

    let fetch_all = |urls: Vec<String>, login: Option<&probe::Login>| {
        let client = client.clone();
        let login = login.cloned();
        async move {
            join_all(
                urls.iter()
                    .map(|u| probe::get(&client, u, login.as_ref(), limit + CONNECT_LIMIT)),
            )
            .await
        }
    };
    let (own, clusters, stats, exporters, backup) = tokio::join!(
        fetch_all(own_urls.clone(), None),
        fetch_all(cluster_urls, None),
        fetch_all(stats_urls.clone(), stats_login),
        fetch_all(exporter_urls.clone(), None),
        fetch_all(backup_url.iter().cloned().collect(), None),
    );

    let mut problems = Vec::new();
    let problem = |problems: &mut Vec<Problem>, member: Option<&str>, message: String| {
        problems.push(Problem {
            member: member.map(str::to_string),
            message,
        })
    };

    // The DCS's view, from the first member that gives it.
    let listed = clusters
        .iter()
        .find_map(|c| c.as_ref().ok().and_then(|b| probe::parse_cluster(b).ok()));
    if listed.is_none() {
        problem(
            &mut problems,
            None,
            "no member answered /cluster: the cluster's state is unknown".into(),
        );
    }
    let listed = listed.unwrap_or_default();
    let leader = listed
        .iter()
        .find(|(_, l)| l.role == "leader")
        .map(|(n, _)| n.clone());
    if leader.is_none() && !listed.is_empty() {
        problem(&mut problems, None, "no leader: writes fail".into());
    }

    let routes: Vec<Result<_, String>> = stats
        .iter()
        .map(|r| {
            r.as_ref()
                .map_err(Clone::clone)
                .and_then(|b| probe::parse_haproxy_csv(b))
        })
        .collect();
    for ((owner, addr), r) in haproxies.iter().zip(&routes) {
        if let Err(e) = r {
            problem(
                &mut problems,
                owner.as_deref(),
                if e.contains("401") {
                    format!(
                        "HAProxy's stats on {addr}:{} refuse the login{}",
                        spec.ports.stats,
                        if stats_login.is_some() {
                            ""
                        } else {
                            " (no haproxy.env read: give --secrets-dir)"
                        }
                    )
                } else {
                    format!(
                        "HAProxy's stats on {addr}:{} do not answer: {e}",
                        spec.ports.stats
                    )
                },
            );
        }
    }

    // Who the leader streams to (Patroni 3 lists replicas as "running";
    // the leader's pg_stat_replication tells whether each one streams).
    let leader_index = leader
        .as_ref()
        .and_then(|l| spec.members.iter().position(|m| &m.name == l));
    let streaming_to: Vec<String> = leader_index
        .and_then(|i| own[i].as_ref().ok())
        .and_then(|b| probe::parse_patroni(b).ok())
        .map(|o| {
            o.replication
                .into_iter()
                .filter(|(_, st)| st == "streaming")
                .map(|(app, _)| app)
                .collect()
        })
        .unwrap_or_default();

    let mut members = Vec::new();
    for (i, m) in spec.members.iter().enumerate() {
        let name = m.name.as_str();
        let own = match &own[i] {
            Ok(body) => match probe::parse_patroni(body) {
                Ok(o) => Some(o),
                Err(e) => {
                    problem(&mut problems, Some(name), format!("{}: {e}", own_urls[i]));
                    None
                }
            },
            Err(e) => {
                problem(
                    &mut problems,
                    Some(name),
                    format!("down: Patroni's REST API {} does not answer: {e}", own_urls[i]),
                );
                None
            }
        };
        let l = listed.get(name);
        if own.is_some() && l.is_none() && !listed.is_empty() {
            problem(
                &mut problems,
                Some(name),
                "not in the cluster's member list (its Patroni does not reach the DCS)".into(),
            );
        }
        let role = l.map(|l| l.role.clone()).or(own.as_ref().map(|o| o.role.clone()));
        if let Some(o) = &own
            && o.state != "running"
        {
            problem(&mut problems, Some(name), format!("PostgreSQL is {}", o.state));
        }
        let streams = l.is_some_and(|l| l.state == "streaming") || streaming_to.iter().any(|a| a == name);
        let state = own.as_ref().map(|o| match &role {
            Some(r) if r != "leader" && streams => "streaming".to_string(),
            _ => l.map(|l| l.state.clone()).unwrap_or_else(|| o.state.clone()),
        });
        if own.is_some()
            && let Some(l) = l
            && l.role != "leader"
        {
            if !streams {
                problem(
                    &mut problems,
                    Some(name),
                    format!(
                        "a replica that does not stream from the leader (state {})",
                        l.state
                    ),
                );
            }
            match l.lag {
                Some(lag) if lag > max_lag => problem(
                    &mut problems,
                    Some(name),
                    format!("replication lag {lag} bytes is over the limit {max_lag}"),
                ),
                None => problem(&mut problems, Some(name), "replication lag unknown".into()),
                _ => {}
            }
        }
        // Where HAProxy should route it: primary for the leader, replicas for the others.
        let routed_by = role.as_ref().filter(|_| own.is_some()).map(|role| {
            let backend = if role == "leader" { "primary" } else { "replicas" };
            let answered: Vec<(&Option<String>, &std::collections::BTreeMap<_, _>)> = haproxies
                .iter()
                .map(|(o, _)| o)
                .zip(&routes)
                .filter_map(|(o, r)| r.as_ref().ok().map(|r| (o, r)))
                .collect();
            let up = answered
                .iter()
                .filter(|(_, r)| {
                    r.get(&(backend.to_string(), m.name.clone())).map(String::as_str) == Some("UP")
                })
                .count();
            if up < answered.len() {
                problem(
                    &mut problems,
                    Some(name),
                    format!(
                        "routed by {up} of {} HAProxies on its {backend} port (the others mark it down)",
                        answered.len()
                    ),
                );
            }
            (up, answered.len())
        });
        let (ledger_migrations, ledger_last_version) = match exporters.get(i) {
            None => (None, None),
            Some(Ok(body)) => {
                if probe::metric(body, "pg_up") != Some(1.0) && own.is_some() {
                    problem(
                        &mut problems,
                        Some(name),
                        format!(
                            "the exporter {} cannot reach PostgreSQL (pg_up is not 1)",
                            exporter_urls[i]
                        ),
                    );
                }
                (
                    probe::metric(body, "pgha_bootstrap_migrations").map(|v| v as u64),
                    probe::metric(body, "pgha_bootstrap_last_version").map(|v| v as u64),
                )
            }
            Some(Err(e)) => {
                problem(
                    &mut problems,
                    Some(name),
                    format!("the exporter {} does not answer: {e}", exporter_urls[i]),
                );
                (None, None)
            }
        };
        members.push(Member {
            name: m.name.clone(),
            address: m.address.clone(),
            reachable: own.is_some(),
            role,
            state,
            timeline: own
                .as_ref()
                .and_then(|o| o.timeline)
                .or(l.and_then(|l| l.timeline)),
            lag: l.and_then(|l| l.lag),
            image: own.as_ref().and_then(|o| o.image.clone()),
            ledger_migrations,
            ledger_last_version,
            routed_by,
        });
    }

    let backup = spec.backup.as_ref().map(|b| {
        let url = backup_url.as_deref().unwrap_or_default();
        let mut out = Backup {
            member: b.member.clone(),
            every_seconds: b.every,
            age_seconds: None,
            last_error: None,
            source: None,
        };
        match &backup[0] {
            Err(e) => problem(
                &mut problems,
                Some(&b.member),
                format!("the backup service {url} does not answer: {e}"),
            ),
            Ok(body) => {
                let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                let now = v["now"].as_f64().unwrap_or(0.0);
                out.age_seconds = v["last_success"].as_f64().map(|t| (now - t).max(0.0) as u64);
                out.last_error = v["last_error"].as_str().map(str::to_string);
                out.source = v["last"][0]["source"].as_str().map(str::to_string);
                match out.age_seconds {
                    None => problem(
                        &mut problems,
                        Some(&b.member),
                        format!(
                            "no successful backup yet{}",
                            out.last_error
                                .as_ref()
                                .map(|e| format!(" (last error: {e})"))
                                .unwrap_or_default()
                        ),
                    ),
                    Some(age) if age > 2 * b.every => problem(
                        &mut problems,
                        Some(&b.member),
                        format!(
                            "the last backup is {age}s old, over twice its schedule ({}s){}",
                            b.every,
                            out.last_error
                                .as_ref()
                                .map(|e| format!("; last error: {e}"))
                                .unwrap_or_default()
                        ),
                    ),
                    _ => {}
                }
            }
        }
        out
    });

    Ok(Report {
        scope: spec.scope.clone(),
        healthy: problems.is_empty(),
        leader,
        max_lag,
        members,
        backup,
        problems,
    })
}

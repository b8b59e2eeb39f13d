//! A Patroni cluster of the image under the engine, run as a deployment runs
//! it: the image's own CMD, the secrets mounted read-only, the server
//! settings from the image itself (its launch wrapper merges its defaults;
//! for an image without one, its manifest's in `SPILO_CONFIGURATION`), one
//! data volume per member. One member uses the image's local etcd (Spilo's single-node
//! mode); three members share an etcd (the image's own etcd binary, in a
//! container of the image) on a network of the run, found by `ETCD_HOST`.
//!
//! Everything is reached through the engine (`exec`): SQL with the image's
//! psql over the local socket, Patroni's REST API with curl on 8008. No
//! port is published on the host.

use super::error::VerifyError;
use super::runtime::{Resources, last_line, text};
use super::secrets::Secrets;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The `statement_timeout` of every SQL check of a verify run.
pub const SQL_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest one psql call of a verify run may take (a smoke script may
/// hold several statements, or lift its statement_timeout).
pub const SQL_CALL_TIME_LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
}

pub struct Cluster<'r> {
    res: &'r Resources,
    pub members: Vec<Member>,
    socket_dir: String,
    port: u16,
    user: String,
}

/// What the image needs from the run to start.
pub struct StartSpec<'a> {
    pub image: &'a str,
    pub members: u8,
    pub secrets: &'a Secrets,
    /// Where the image reads its secrets (bootstrap.toml's `secrets.dir`).
    pub secrets_target: &'a str,
    /// `SPILO_CONFIGURATION` to set, if any (`None`: the image's launch
    /// wrapper applies its own defaults, as under a deployment that sets none).
    pub spilo_configuration: Option<String>,
    pub socket_dir: String,
    pub port: u16,
    pub user: String,
}

/// A member's state in Patroni's `/cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub name: String,
    pub role: String,
    pub state: String,
}

impl MemberState {
    pub fn is_leader(&self) -> bool {
        self.role == "leader" && self.state == "running"
    }
    pub fn is_streaming_replica(&self) -> bool {
        (self.role == "replica" || self.role == "sync_standby")
            && (self.state == "streaming" || self.state == "running")
    }

    /// The members of Patroni's `/cluster` document (none when it has no list).
    pub fn from_cluster(doc: &Value) -> Vec<MemberState> {
        let field = |m: &Value, k: &str| m[k].as_str().unwrap_or("").to_string();
        doc["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| MemberState {
                        name: field(m, "name"),
                        role: field(m, "role"),
                        state: field(m, "state"),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Patroni's message when a bootstrap failed (the hook, initdb, or the
/// server's first start): no leader will come from this attempt.
pub const BOOTSTRAP_FAILED: &str = "removing initialize key after failed attempt to bootstrap";

impl<'r> Cluster<'r> {
    pub fn start(res: &'r Resources, spec: &StartSpec<'_>) -> Result<Self, VerifyError> {
        let mut etcd_host = None;
        let mut dcs_host = None;
        let mut network = None;
        if spec.members > 1 {
            let net = res.name("net");
            res.create(&[
                "network".into(),
                "create".into(),
                "--label".into(),
                res.label_arg(),
                net.clone(),
            ])?;
            let dcs = res.name("dcs");
            res.create(&[
                "run".into(),
                "-d".into(),
                "--name".into(),
                dcs.clone(),
                "--hostname".into(),
                dcs.clone(),
                "--label".into(),
                res.label_arg(),
                "--network".into(),
                net.clone(),
                "--entrypoint".into(),
                "etcd".into(),
                spec.image.into(),
                "--name".into(),
                dcs.clone(),
                "--data-dir".into(),
                "/tmp/etcd".into(),
                "--listen-client-urls".into(),
                "http://0.0.0.0:2379".into(),
                "--advertise-client-urls".into(),
                format!("http://{dcs}:2379"),
                "--enable-v2=true".into(),
            ])?;
            let ip = address(res, &dcs, &net)?;
            // etcd hands out its advertised URL (its name): members resolve it through /etc/hosts.
            dcs_host = Some(format!("{dcs}:{ip}"));
            etcd_host = Some(format!("{ip}:2379"));
            network = Some(net);
        }
        let env_file = spec.secrets.env_file()?.display().to_string();
        let mut members = Vec::new();
        for i in 1..=spec.members {
            let name = res.name(&format!("m{i}"));
            let volume = res.name(&format!("m{i}-data"));
            res.create(&[
                "volume".into(),
                "create".into(),
                "--label".into(),
                res.label_arg(),
                volume.clone(),
            ])?;
            let mut a: Vec<String> = vec![
                "run".into(),
                "-d".into(),
                "--name".into(),
                name.clone(),
                "--hostname".into(),
                name.clone(),
                "--label".into(),
                res.label_arg(),
                "-v".into(),
                format!(
                    "{}:{}:ro",
                    spec.secrets.mount_dir().display(),
                    spec.secrets_target
                ),
                "-v".into(),
                format!("{volume}:/home/postgres/pgdata"),
                "-e".into(),
                format!("SCOPE={}", res.run()),
                "--env-file".into(),
                env_file.clone(),
            ];
            if let Some(c) = &spec.spilo_configuration {
                a.extend(["-e".into(), format!("SPILO_CONFIGURATION={c}")]);
            }
            if let (Some(net), Some(etcd), Some(host)) = (&network, &etcd_host, &dcs_host) {
                a.extend([
                    "--network".into(),
                    net.clone(),
                    "--add-host".into(),
                    host.clone(),
                    "-e".into(),
                    format!("ETCD_HOST={etcd}"),
                ]);
            }
            a.push(spec.image.into());
            res.create(&a)?;
            members.push(Member { name });
        }
        Ok(Cluster {
            res,
            members,
            socket_dir: spec.socket_dir.clone(),
            port: spec.port,
            user: spec.user.clone(),
        })
    }

    pub fn exec(&self, member: &str, args: &[&str]) -> Result<std::process::Output, VerifyError> {
        let mut a: Vec<String> = vec!["exec".into(), member.into()];
        a.extend(args.iter().map(|s| s.to_string()));
        self.res.output(&a)
    }

    /// SQL through the member's psql on the local socket; Ok(tuples only,
    /// unaligned, `|`-separated), Err(the error text).
    pub fn psql(&self, member: &str, db: &str, sql: &str) -> Result<String, String> {
        let args = ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql];
        self.psql_script(member, db, &args, "")
            .map(|out| out.trim_end().to_string())
    }

    /// A script through the member's psql on the local socket (stdin), with
    /// `args` (e.g. [`crate::catalog::SMOKE_PSQL_ARGS`]); Ok(stdout), Err(stdout and stderr).
    pub fn psql_script(&self, member: &str, db: &str, args: &[&str], script: &str) -> Result<String, String> {
        let port = self.port.to_string();
        // Every statement is bounded by the server (statement_timeout), and
        // the whole call by the clock: a smoke test of an image's manifest
        // may SET statement_timeout = 0 itself.
        let pgoptions = format!(
            "PGOPTIONS=-c statement_timeout={}s",
            SQL_STATEMENT_TIMEOUT.as_secs()
        );
        let mut a: Vec<String> = [
            "exec",
            "-i",
            "-e",
            &pgoptions,
            member,
            "psql",
            "-h",
            &self.socket_dir,
            "-p",
            &port,
            "-U",
            &self.user,
            "-d",
            db,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(args.iter().map(|s| s.to_string()));
        let out = self
            .res
            .output_with_input(&a, script.as_bytes(), SQL_CALL_TIME_LIMIT)
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(text(&out).trim().to_string())
        }
    }

    pub fn logs(&self, member: &str) -> String {
        match self.res.output(&["logs".into(), member.into()]) {
            Ok(o) => text(&o),
            Err(e) => e.to_string(),
        }
    }

    /// `running`, `exited`, … (empty when the container is gone).
    pub fn container_state(&self, member: &str) -> String {
        match self.res.output(&[
            "inspect".into(),
            "--format".into(),
            "{{.State.Status}}".into(),
            member.into(),
        ]) {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
            _ => String::new(),
        }
    }

    /// Patroni's REST API of a member, `GET path`.
    pub fn rest(&self, member: &str, path: &str) -> Option<Value> {
        let url = format!("http://localhost:8008{path}");
        let out = self.exec(member, &["curl", "-s", "-m", "3", &url]).ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The cluster as any running member of `among` sees it.
    pub fn view(&self, among: &[&str]) -> Vec<MemberState> {
        for m in among {
            if let Some(v) = self.rest(m, "/cluster") {
                return MemberState::from_cluster(&v);
            }
        }
        Vec::new()
    }

    pub fn member_names(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.name.as_str()).collect()
    }

    /// Poll until `done` holds for the view of the members in `among`, or
    /// fail at once when a member's container stopped or its bootstrap failed.
    pub fn wait(
        &self,
        among: &[&str],
        timeout: Duration,
        mut done: impl FnMut(&[MemberState]) -> bool,
    ) -> Result<Vec<MemberState>, String> {
        let start = Instant::now();
        loop {
            let v = self.view(among);
            if done(&v) {
                return Ok(v);
            }
            for m in among {
                let state = self.container_state(m);
                if state != "running" {
                    return Err(format!(
                        "the container {m} is {}",
                        if state.is_empty() { "gone" } else { &state }
                    ));
                }
            }
            if start.elapsed() > timeout {
                return Err(format!("not within {}s", timeout.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Wait for a leader among `among`; fail fast when Patroni reports a failed bootstrap.
    pub fn wait_leader(&self, among: &[&str], timeout: Duration) -> Result<(String, Duration), String> {
        let start = Instant::now();
        let mut last_log_check = Instant::now();
        loop {
            let step = Duration::from_secs(5).min(timeout.saturating_sub(start.elapsed()));
            match self.wait(among, step, |v| v.iter().any(MemberState::is_leader)) {
                Ok(v) => {
                    let leader = v.iter().find(|m| m.is_leader()).expect("checked").name.clone();
                    return Ok((leader, start.elapsed()));
                }
                // A member whose bootstrap failed exits soon after: say why.
                Err(e) if !e.starts_with("not within") => {
                    return Err(self.bootstrap_failure(among).unwrap_or(e));
                }
                Err(_) if start.elapsed() >= timeout => {
                    return Err(format!("no leader within {}s", timeout.as_secs()));
                }
                Err(_) => {}
            }
            if last_log_check.elapsed() >= Duration::from_secs(4) {
                last_log_check = Instant::now();
                if let Some(e) = self.bootstrap_failure(among) {
                    return Err(e);
                }
            }
        }
    }

    /// The first member of `among` whose log says Patroni's bootstrap failed.
    fn bootstrap_failure(&self, among: &[&str]) -> Option<String> {
        among
            .iter()
            .find(|m| self.logs(m).contains(BOOTSTRAP_FAILED))
            .map(|m| format!("the cluster bootstrap failed on {m} (Patroni: \"{BOOTSTRAP_FAILED}\")"))
    }

    pub fn stop(&self, member: &str) -> Result<(), VerifyError> {
        let out = self
            .res
            .output(&["stop".into(), "-t".into(), "20".into(), member.into()])?;
        if out.status.success() {
            Ok(())
        } else {
            Err(VerifyError::Command {
                command: format!("stop {member}"),
                detail: last_line(&out),
            })
        }
    }

    pub fn start_again(&self, member: &str) -> Result<(), VerifyError> {
        // Creates nothing new: the container exists.
        let out = self.res.output(&["start".into(), member.into()])?;
        if out.status.success() {
            Ok(())
        } else {
            Err(VerifyError::Command {
                command: format!("start {member}"),
                detail: last_line(&out),
            })
        }
    }

    /// The log lines that tell why a member did not come up.
    pub fn why(&self, member: &str) -> Vec<String> {
        let logs = self.logs(member);
        let interesting: Vec<String> = logs
            .lines()
            .filter(|l| {
                let u = l.to_ascii_uppercase();
                u.contains("FATAL")
                    || u.contains("ERROR")
                    || l.contains("pgha")
                    || l.contains("getkey")
                    || l.contains(BOOTSTRAP_FAILED)
            })
            .map(|l| l.trim().chars().take(300).collect())
            .collect();
        let mut out: Vec<String> = interesting.iter().rev().take(10).rev().cloned().collect();
        if out.is_empty() {
            out = logs
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .map(String::from)
                .collect();
        }
        out.into_iter().map(|l| format!("{member}: {l}")).collect()
    }
}

/// A container's address on a network of the run.
fn address(res: &Resources, container: &str, network: &str) -> Result<String, VerifyError> {
    let out = res.output(&[
        "inspect".into(),
        "--format".into(),
        format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        container.into(),
    ])?;
    let ip = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !ip.is_empty() {
        Ok(ip)
    } else {
        Err(VerifyError::Command {
            command: format!("inspect {container}"),
            detail: format!("no address on {network}: {}", last_line(&out)),
        })
    }
}

//! The checks, in the order they run: the image's own (labels, hygiene, the
//! bootstrap binary), then the running cluster's (leader, bootstrap,
//! extensions, settings, the pgsodium key), then with three members the
//! replicas and a failover.
//!
//! A check that needs what an earlier one found missing (no leader: no SQL)
//! is skipped with the reason; only the check that names the cause fails.

use super::Request;
use super::cluster::{Cluster, MemberState, StartSpec};
use super::error::VerifyError;
use super::image::{self, ImageConfig, ImageFacts, ImageMeta};
use super::report::{CheckResult, Outcome, Report};
use super::runtime::{Resources, SweepGuard, text};
use super::scan;
use super::secrets::{PGSODIUM_KEY, Secrets};
use crate::catalog::{SMOKE_PSQL_ARGS, Smoke};
use crate::contract::markers::{HOOK_MARKER, NOTHING_TO_DO};
use crate::contract::{BuildManifest, ManifestExtension};
use crate::progress::Progress;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

pub enum Verdict {
    Pass(String),
    Fail(String, Vec<String>),
    Skip(String),
}

use Verdict::{Fail, Pass, Skip};

struct Recorder<'p> {
    progress: &'p Progress,
    results: Vec<CheckResult>,
}

impl Recorder<'_> {
    fn check(&mut self, id: &str, title: &str, f: impl FnOnce() -> Verdict) -> bool {
        let start = Instant::now();
        let v = f();
        let at = self.results.len();
        self.record_at(at, id, title, v, start.elapsed())
    }

    /// Record a verdict reached elsewhere (a check run alongside others) at
    /// its place in the report.
    fn record_at(&mut self, at: usize, id: &str, title: &str, v: Verdict, duration: Duration) -> bool {
        let (outcome, message, details) = match v {
            Pass(m) => (Outcome::Passed, m, vec![]),
            Fail(m, d) => (Outcome::Failed, m, d),
            Skip(m) => (Outcome::Skipped, m, vec![]),
        };
        self.progress.println(format!(
            "{:<7} {id} ({:.1}s){}",
            outcome.word(),
            duration.as_secs_f64(),
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        ));
        self.results.insert(
            at.min(self.results.len()),
            CheckResult {
                id: id.into(),
                title: title.into(),
                outcome,
                message,
                details,
                duration,
            },
        );
        outcome == Outcome::Passed
    }

    fn skip(&mut self, id: &str, title: &str, why: &str) {
        self.check(id, title, || Skip(why.to_string()));
    }
}

/// The whole run; `res` holds everything it creates and sweeps it at the end.
pub fn verify_run(req: &Request, res: &Resources, progress: &Progress) -> Result<Report, VerifyError> {
    let started_at = now_rfc3339();
    let t0 = Instant::now();
    let _guard = SweepGuard(res);
    let image = req.image.as_str();
    progress.println(format!(
        "verifying {image} with {} ({} member{}; run {})",
        res.engine().kind(),
        req.members,
        if req.members == 1 { "" } else { "s" },
        res.run()
    ));
    let meta = image::read_meta(res, image)?;
    let ImageConfig {
        manifest: m,
        bootstrap: bcfg,
        launch_wrapper,
    } = image::read_config(res, image)?;
    let facts = image::read_facts(res, image, &m)?;
    let mut rec = Recorder {
        progress,
        results: Vec::new(),
    };

    // ---------------------------------------------------------------- the image
    rec.check("image.labels", "the labels match the build manifest", || {
        labels(&meta, &m)
    });
    rec.check("hygiene.build-tools", "no compiler or -dev package", || {
        build_tools(&facts)
    });
    rec.check("hygiene.apt", "no apt lists or caches", || apt(&facts));
    let secrets_at = rec.results.len();
    rec.check(
        "bootstrap.binary",
        "pgha-bootstrap runs on the image's glibc",
        || bootstrap_binary(&facts, &m),
    );
    // The layer scan (the image's save: seconds to a minute) runs while the cluster starts.
    let secrets_title = "no secret in the environment, labels, history or any layer's files";
    std::thread::scope(|scope| {
        let scan = scope.spawn(|| {
            let start = Instant::now();
            (secrets_in_image(res, image, &meta), start.elapsed())
        });
        let cluster = cluster_part(req, res, &m, &bcfg, launch_wrapper, &facts, &mut rec);
        let (v, took) = scan
            .join()
            .unwrap_or_else(|_| (Fail("the layer scan panicked".into(), vec![]), Duration::ZERO));
        rec.record_at(secrets_at, "hygiene.secrets", secrets_title, v, took);
        cluster
    })?;
    Ok(finish(req, res, &meta, started_at, t0, rec.results))
}

/// The checks of the running cluster (`Ok` also when checks failed).
fn cluster_part(
    req: &Request,
    res: &Resources,
    m: &BuildManifest,
    bcfg: &crate::bootstrap::config::Config,
    launch_wrapper: bool,
    facts: &ImageFacts,
    rec: &mut Recorder<'_>,
) -> Result<(), VerifyError> {
    let image = req.image.as_str();
    // ---------------------------------------------------------------- the cluster
    let secrets = Secrets::generate(res.dir(), facts.postgres_owner, &req.omit_secrets)?;
    let secrets_target = bcfg.secrets.dir.display().to_string();
    rec.progress.println(format!(
        "starting {} member{} of {image} ({}) …",
        req.members,
        if req.members == 1 { "" } else { "s" },
        if launch_wrapper {
            "server settings: the image's own defaults"
        } else {
            "server settings: the manifest's, in SPILO_CONFIGURATION"
        }
    ));
    // The getkey script runs first, as the server will run it (user
    // postgres, the run's mounts): when it fails, the server cannot start,
    // and waiting for Patroni to give up (about a minute) proves nothing more.
    let pgsodium = m.all_parameters().get("pgsodium.getkey_script").cloned();
    let key_probe = pgsodium
        .as_deref()
        .map(|script| getkey(res, image, &secrets, &secrets_target, Some(script)));
    if let Some(Err((msg, details))) = &key_probe {
        rec.check("cluster.leader", "a leader is elected", || {
            Fail(
                "no member was started: the server cannot start, its pgsodium getkey script fails \
                 with the run's secrets (see pgsodium.key)"
                    .into(),
                vec![msg.clone()],
            )
        });
        no_leader_checks(rec, m, req.members, facts, || Fail(msg.clone(), details.clone()));
        return Ok(());
    }
    let cluster = Cluster::start(
        res,
        &StartSpec {
            image,
            members: req.members,
            secrets: &secrets,
            secrets_target: &secrets_target,
            // The image's launch wrapper merges its defaults by itself: a
            // deployment sets nothing, and neither does verify.
            spilo_configuration: (!launch_wrapper).then(|| m.spilo_configuration()),
            socket_dir: bcfg.connection.socket_dir.display().to_string(),
            port: bcfg.connection.port,
            user: bcfg.connection.user.clone(),
        },
    )?;
    let names: Vec<String> = cluster.member_names().iter().map(|s| s.to_string()).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();

    let mut leader: Option<String> = None;
    rec.check("cluster.leader", "a leader is elected", || {
        match cluster.wait_leader(&all, req.timeout) {
            Ok((l, took)) => {
                let msg = format!("{l} after {:.1}s", took.as_secs_f64());
                leader = Some(l);
                Pass(msg)
            }
            Err(e) => Fail(e, all.iter().flat_map(|m| cluster.why(m)).collect()),
        }
    });

    let Some(leader) = leader else {
        no_leader_checks(rec, m, req.members, facts, || match &key_probe {
            Some(Ok(note)) => Skip(format!("{NO_LEADER} (the getkey script itself {note})")),
            Some(Err((msg, details))) => Fail(msg.clone(), details.clone()),
            None => Skip(NO_LEADER.into()),
        });
        return Ok(());
    };

    rec.check(
        "bootstrap.once",
        "the bootstrap ran exactly once, on the leader, and the ledger matches the image's migrations",
        || bootstrap_once(&cluster, &leader, &all),
    );
    rec.check("bootstrap.check", "`pgha-bootstrap check` passes", || {
        bootstrap_check(&cluster, &leader)
    });
    for e in &m.extensions {
        rec.check(
            &format!("extension.{}", e.name),
            &format!(
                "{} {} is installed for PostgreSQL {} and its smoke test passes",
                e.name,
                e.version,
                majors(m)
            ),
            || extension(&cluster, &leader, m, e, &facts.extension_files[&e.name]),
        );
    }
    rec.check("server.preloads", "the preload libraries are active", || {
        preloads(&cluster, &leader, m)
    });
    rec.check(
        "server.settings",
        "the manifest's server settings are in effect",
        || settings(&cluster, &leader, m),
    );
    rec.check(
        "pgsodium.key",
        "the pgsodium root key comes from the mounted secret file",
        || match &pgsodium {
            None => Skip("the image has no pgsodium".into()),
            Some(_) => match &key_probe {
                Some(Err((msg, details))) => Fail(msg.clone(), details.clone()),
                _ => server_key(&cluster, &leader, &secrets),
            },
        },
    );

    if req.members > 1 {
        three_members(rec, &cluster, &leader, &all, m, &secrets, req.timeout);
    }
    Ok(())
}

const NO_LEADER: &str = "skipped: no leader";

/// The checks of the cluster when there is no leader: skipped, except what
/// is judged without one (an extension's missing files; the key, by `key`).
fn no_leader_checks(
    rec: &mut Recorder<'_>,
    m: &BuildManifest,
    members: u8,
    facts: &ImageFacts,
    key: impl FnOnce() -> Verdict,
) {
    let mut key = Some(key);
    for (id, title) in cluster_checks(m, members) {
        if let Some(name) = id.strip_prefix("extension.") {
            let files = &facts.extension_files[name];
            if !files.is_empty() {
                rec.check(&id, &title, || {
                    Fail(format!("{} file(s) missing", files.len()), files.clone())
                });
                continue;
            }
        }
        if id == "pgsodium.key"
            && let Some(k) = key.take()
        {
            rec.check(&id, &title, k);
            continue;
        }
        rec.skip(&id, &title, NO_LEADER);
    }
}

/// The ids and titles of the checks that need the cluster; verify reports them
/// as `skipped` in its report when no leader was elected.
fn cluster_checks(m: &BuildManifest, members: u8) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        (
            "bootstrap.once".into(),
            "the bootstrap ran exactly once, on the leader, and the ledger matches the image's migrations"
                .into(),
        ),
        ("bootstrap.check".into(), "`pgha-bootstrap check` passes".into()),
    ];
    for e in &m.extensions {
        v.push((
            format!("extension.{}", e.name),
            format!(
                "{} {} is installed for PostgreSQL {} and its smoke test passes",
                e.name,
                e.version,
                majors(m)
            ),
        ));
    }
    v.push((
        "server.preloads".into(),
        "the preload libraries are active".into(),
    ));
    v.push((
        "server.settings".into(),
        "the manifest's server settings are in effect".into(),
    ));
    v.push((
        "pgsodium.key".into(),
        "the pgsodium root key comes from the mounted secret file".into(),
    ));
    if members > 1 {
        for (id, title) in THREE {
            v.push((id.to_string(), title.to_string()));
        }
    }
    v
}

const THREE: [(&str, &str); 5] = [
    (
        "cluster.replicas",
        "the replicas stream and carry the schema; the bootstrap ran on the first leader only",
    ),
    (
        "failover.leader",
        "after the leader stops, a new leader is elected within the TTL",
    ),
    (
        "failover.on-role-change",
        "the new leader's on_role_change finds nothing to do",
    ),
    (
        "failover.data",
        "data written before the failover, a vault secret included, reads back on the new leader",
    ),
    ("failover.rejoin", "the old leader rejoins as a replica"),
];

fn finish(
    req: &Request,
    res: &Resources,
    meta: &ImageMeta,
    started_at: String,
    t0: Instant,
    checks: Vec<CheckResult>,
) -> Report {
    let passed = checks.iter().all(|c| c.outcome != Outcome::Failed);
    Report {
        image: req.image.clone(),
        image_id: meta.id.clone(),
        engine: res.engine().kind().to_string(),
        members: req.members,
        run: res.run().to_string(),
        started_at,
        duration: t0.elapsed(),
        passed,
        checks,
        kept: if res.keep() {
            res.removal_commands()
        } else {
            vec![]
        },
    }
}

fn majors(m: &BuildManifest) -> String {
    m.pg_majors
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------- image checks

/// The labels `pgha-image build` derives from the manifest (context/render.rs).
fn labels(meta: &ImageMeta, m: &BuildManifest) -> Verdict {
    let l = &meta.labels;
    let join = |v: &[String]| v.join(",");
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    expected.insert("io.pgha.tool-version".into(), m.tool_version.clone());
    expected.insert("io.pgha.base-image".into(), m.base_image.clone());
    expected.insert(
        "io.pgha.pg-majors".into(),
        m.pg_majors
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    expected.insert(
        "io.pgha.shared-preload-libraries".into(),
        join(&m.shared_preload_libraries),
    );
    for e in &m.extensions {
        let v = match &e.sha256 {
            Some(s) => format!("{}@sha256:{s}", e.version),
            None => format!("base>={}", e.min_version.as_deref().unwrap_or("any")),
        };
        expected.insert(format!("io.pgha.extension.{}", e.name), v);
    }
    let mut problems = Vec::new();
    for (k, want) in &expected {
        match l.get(k) {
            None => problems.push(format!("label {k} is missing (manifest: {want})")),
            Some(have) if have != want => {
                problems.push(format!("label {k} is {have:?}, the manifest says {want:?}"))
            }
            Some(_) => {}
        }
    }
    for k in l.keys().filter(|k| k.starts_with("io.pgha.extension.")) {
        if !expected.contains_key(k) {
            problems.push(format!("label {k} names an extension the manifest does not have"));
        }
    }
    match l
        .get("io.pgha.extensions")
        .map(|j| serde_json::from_str::<serde_json::Value>(j))
    {
        Some(Ok(serde_json::Value::Object(o))) => {
            let have: BTreeSet<&str> = o.keys().map(String::as_str).collect();
            let want: BTreeSet<&str> = m.extensions.iter().map(|e| e.name.as_str()).collect();
            if have != want {
                problems.push(format!(
                    "label io.pgha.extensions lists {have:?}, the manifest {want:?}"
                ));
            }
        }
        _ => problems.push("label io.pgha.extensions is missing or not a JSON object".into()),
    }
    if !l
        .get("io.pgha.context-digest")
        .is_some_and(|d| d.starts_with("sha256:"))
    {
        problems.push(
            "label io.pgha.context-digest is missing (the image was not built by `pgha-image build`)".into(),
        );
    }
    if problems.is_empty() {
        Pass(format!("{} labels", expected.len() + 2))
    } else {
        Fail(
            format!("{} label(s) differ from the manifest", problems.len()),
            problems,
        )
    }
}

pub fn is_build_tool(package: &str) -> bool {
    let base = package.split(':').next().unwrap_or(package);
    if base.ends_with("-dev") {
        return true;
    }
    let stem = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    matches!(
        stem,
        "gcc" | "g++" | "clang" | "build-essential" | "rustc" | "cargo" | "golang-go" | "tcc"
    ) || base.starts_with("gcc-") && base[4..].chars().all(|c| c.is_ascii_digit() || c == '.')
        || base.starts_with("g++-") && base[4..].chars().all(|c| c.is_ascii_digit() || c == '.')
        || base.starts_with("clang-") && base[6..].chars().all(|c| c.is_ascii_digit() || c == '.')
}

fn build_tools(f: &ImageFacts) -> Verdict {
    let mut found: Vec<String> = f
        .packages
        .iter()
        .filter(|p| is_build_tool(p))
        .map(|p| format!("package {p}"))
        .collect();
    found.extend(f.compilers.iter().map(|c| format!("compiler {c}")));
    if f.packages.is_empty() {
        return Pass("no dpkg database; compilers on PATH: none".into()).or_fail(found);
    }
    if found.is_empty() {
        Pass(format!("{} packages, none a build tool", f.packages.len()))
    } else {
        let head: Vec<&str> = found.iter().take(4).map(String::as_str).collect();
        Fail(
            format!("build tools left in the image: {}", head.join(", ")),
            found,
        )
    }
}

impl Verdict {
    fn or_fail(self, found: Vec<String>) -> Verdict {
        if found.is_empty() {
            self
        } else {
            Fail(
                format!("build tools left in the image: {}", found.join(", ")),
                found,
            )
        }
    }
}

fn apt(f: &ImageFacts) -> Verdict {
    if f.apt_leftovers.is_empty() {
        Pass(String::new())
    } else {
        Fail(
            format!("apt lists or caches remain, e.g. {}", f.apt_leftovers[0]),
            f.apt_leftovers.clone(),
        )
    }
}

fn secrets_in_image(res: &Resources, image: &str, meta: &ImageMeta) -> Verdict {
    let mut found = Vec::new();
    for e in &meta.env {
        found.extend(scan::scan_text("the environment", e));
    }
    for (k, v) in &meta.labels {
        found.extend(scan::scan_text(&format!("label {k}"), &format!("{k}={v}")));
    }
    for (i, h) in meta.history.iter().enumerate() {
        found.extend(scan::scan_text(&format!("history step {}", i + 1), h));
    }
    // The engine's scratch space (the whole image, for Podman) in the run's
    // directory, so a killed run's watcher removes it too.
    let scratch = tempfile::Builder::new().prefix("save-").tempdir_in(res.dir());
    let saved = scratch
        .map_err(|e| crate::engine::EngineError::Io {
            what: "creating a directory for the engine's save".into(),
            source: e,
        })
        .and_then(|scratch| res.engine().save_into(image, scratch));
    let layers = match saved {
        Err(e) => return Fail(format!("cannot save the image to scan its layers: {e}"), vec![]),
        Ok(mut stream) => {
            let scanned = scan::scan_archive(&mut stream);
            // The tar's end (zero blocks, padding) is read too: `finish`
            // closes the pipe, and an engine still writing would die of SIGPIPE.
            let drained = std::io::copy(&mut stream, &mut std::io::sink());
            let finished = stream.finish();
            if let (Ok(_), Err(e)) = (&scanned, drained) {
                return Fail(format!("cannot read the saved image: {e}"), vec![]);
            }
            match (scanned, finished) {
                (Ok((n, f)), Ok(())) => {
                    found.extend(f);
                    n
                }
                (Err(e), _) => return Fail(format!("cannot read the saved image: {e}"), vec![]),
                (_, Err(e)) => return Fail(format!("saving the image failed: {e}"), vec![]),
            }
        }
    };
    if layers == 0 {
        return Fail("the saved image had no layer to scan".into(), vec![]);
    }
    if found.is_empty() {
        Pass(format!(
            "{layers} layers, {} history steps scanned",
            meta.history.len()
        ))
    } else {
        let details: Vec<String> = found.iter().map(|f| f.to_string()).collect();
        Fail(format!("{} secret(s): {}", found.len(), details[0]), details)
    }
}

fn bootstrap_binary(f: &ImageFacts, m: &BuildManifest) -> Verdict {
    let needs = m.bootstrap_bin["max_glibc"].as_str().map(String::from);
    let has = f.glibc.clone();
    let glibc = format!(
        "needs glibc {}, the image has {}",
        needs.as_deref().unwrap_or("?"),
        has.as_deref().unwrap_or("?")
    );
    match f.bootstrap_status {
        Some(0) if f.bootstrap_output.starts_with("pgha-bootstrap") => {
            Pass(format!("{} ({glibc})", f.bootstrap_output))
        }
        Some(s) => Fail(
            format!(
                "{} --version exited with status {s} ({glibc})",
                image::BOOTSTRAP_BIN
            ),
            vec![f.bootstrap_output.clone()],
        ),
        None => Fail(
            format!("{} did not run ({glibc})", image::BOOTSTRAP_BIN),
            vec![f.bootstrap_output.clone()],
        ),
    }
}

// ---------------------------------------------------------------- cluster checks

fn bootstrap_once(c: &Cluster<'_>, leader: &str, all: &[&str]) -> Verdict {
    let counts: Vec<(String, usize)> = all
        .iter()
        .map(|m| (m.to_string(), c.logs(m).matches(HOOK_MARKER).count()))
        .collect();
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let on_leader = counts.iter().find(|(m, _)| m == leader).map_or(0, |(_, n)| *n);
    let runs: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(m, n)| format!("{m}: {n} bootstrap run(s)"))
        .collect();
    if total > 1 || (total == 1 && on_leader != 1) {
        return Fail(
            format!("the bootstrap hook ran {total} time(s), {on_leader} on the leader {leader}"),
            runs,
        );
    }
    let out = match c.exec(leader, &[image::BOOTSTRAP_BIN, "status", "--json"]) {
        Ok(o) => o,
        Err(e) => return Fail(format!("cannot run pgha-bootstrap status: {e}"), vec![]),
    };
    let status: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(_) => return Fail("pgha-bootstrap status gave no report".into(), vec![text(&out)]),
    };
    let pending: Vec<String> = strings(&status["pending_migrations"]);
    let problems: Vec<String> = strings(&status["problems"]);
    let rows = status["ledger"]["migrations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let tools: BTreeSet<&str> = rows.iter().filter_map(|r| r["tool_version"].as_str()).collect();
    let mut bad = Vec::new();
    if !status["ledger"]["exists"].as_bool().unwrap_or(false) || rows.is_empty() {
        bad.push("the ledger is empty: the bootstrap never ran".to_string());
    }
    bad.extend(pending.iter().map(|p| format!("migration {p} is pending")));
    bad.extend(problems.iter().map(|p| format!("ledger: {p}")));
    if tools.len() > 1 {
        bad.push(format!(
            "the migrations were applied by several tool versions: {tools:?}"
        ));
    }
    if !bad.is_empty() {
        return Fail(bad[0].clone(), bad);
    }
    Pass(format!(
        "{} migrations applied once by pgha-bootstrap {} on {leader}{}",
        rows.len(),
        tools.iter().next().unwrap_or(&"?"),
        if total == 0 {
            " (the hook's output is not in the container log; judged by the ledger)"
        } else {
            ""
        }
    ))
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn bootstrap_check(c: &Cluster<'_>, leader: &str) -> Verdict {
    let out = match c.exec(leader, &[image::BOOTSTRAP_BIN, "check", "--json"]) {
        Ok(o) => o,
        Err(e) => return Fail(format!("cannot run pgha-bootstrap check: {e}"), vec![]),
    };
    let report: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
    let Some(report) = report else {
        return Fail(
            format!("pgha-bootstrap check exited with {} and no report", out.status),
            text(&out).lines().rev().take(8).map(String::from).collect(),
        );
    };
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    let failed: Vec<String> = findings
        .iter()
        .filter(|f| !f["ok"].as_bool().unwrap_or(false))
        .map(|f| f["what"].as_str().unwrap_or("?").to_string())
        .collect();
    if failed.is_empty() && out.status.success() {
        Pass(format!("{} contract checks", findings.len()))
    } else {
        Fail(
            format!(
                "{} of {} contract checks failed, e.g. {}",
                failed.len(),
                findings.len(),
                failed.first().map_or("?", |s| s)
            ),
            failed,
        )
    }
}

fn extension(
    c: &Cluster<'_>,
    leader: &str,
    m: &BuildManifest,
    e: &ManifestExtension,
    missing_files: &[String],
) -> Verdict {
    if !missing_files.is_empty() {
        return Fail(
            format!("{} for {}", missing_files[0], e.name),
            missing_files.to_vec(),
        );
    }
    let lit = escape_literal(&e.name);
    let available = c.psql(
        leader,
        "postgres",
        &format!("SELECT count(*) FROM pg_available_extensions WHERE name = {lit}"),
    );
    let has_control = match available.as_deref() {
        Err(err) => return Fail(format!("cannot ask the server: {err}"), vec![]),
        Ok(n) => n != "0",
    };
    // The catalog's smoke, as the manifest carries it: run as the catalog
    // runs it (crate::catalog::Smoke: superuser, database postgres, on the
    // primary; CREATE EXTENSION … CASCADE first unless `create = false`).
    if let Some(raw) = &e.smoke {
        let smoke: Smoke = match serde_json::from_value(raw.clone()) {
            Ok(s) => s,
            Err(err) => {
                return Fail(
                    format!("the manifest's smoke test of {} cannot be read: {err}", e.name),
                    vec![raw.to_string()],
                );
            }
        };
        if smoke.create && !has_control {
            return Fail(
                format!(
                    "{} is not an available extension (no control file on the server)",
                    e.name
                ),
                vec![],
            );
        }
        let script = smoke.script(&e.name);
        return match c.psql_script(leader, "postgres", SMOKE_PSQL_ARGS, &script) {
            Err(err) => Fail(
                format!("the smoke test failed: {}", error_line(&err)),
                vec![script, err],
            ),
            Ok(out) => match smoke.check(&out) {
                Ok(()) => Pass(format!(
                    "smoke test passed ({} line(s) as expected)",
                    smoke.expect.trim().lines().count()
                )),
                Err(diff) => Fail(
                    "the smoke test's output differs from the expected".to_string(),
                    diff.lines().map(String::from).collect(),
                ),
            },
        };
    }
    // An image of an older tool (no smoke in its manifest): create it and
    // compare the version.
    if !has_control {
        // A module without a control file (e.g. supautils): it works by being loaded.
        return if m.shared_preload_libraries.iter().any(|p| p == &e.name) {
            Pass("a module without a control file, preloaded".into())
        } else {
            Pass("a module without a control file; its library is present for every major".into())
        };
    }
    if let Err(err) = c.psql(
        leader,
        "postgres",
        &format!(
            "CREATE EXTENSION IF NOT EXISTS {} CASCADE",
            escape_identifier(&e.name)
        ),
    ) {
        return Fail(
            format!("CREATE EXTENSION {} failed: {}", e.name, first_line(&err)),
            vec![err],
        );
    }
    let v = c.psql(
        leader,
        "postgres",
        &format!("SELECT extversion FROM pg_extension WHERE extname = {lit}"),
    );
    match v {
        Err(err) => Fail(format!("cannot read its version: {err}"), vec![]),
        Ok(v) if e.recipe == "base" => Pass(format!(
            "version {v} (from the base; no smoke test in the manifest)"
        )),
        Ok(v) if v.trim() == e.version => Pass(format!("version {v} (no smoke test in the manifest)")),
        Ok(v) => Fail(
            format!("the installed version is {v:?}, the manifest says {}", e.version),
            vec![],
        ),
    }
}

/// The line of psql's output that says what went wrong (its ERROR line).
fn error_line(s: &str) -> String {
    s.lines()
        .find(|l| l.contains("ERROR") || l.contains("FATAL"))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| first_line(s))
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

fn preloads(c: &Cluster<'_>, leader: &str, m: &BuildManifest) -> Verdict {
    match c.psql(leader, "postgres", "SHOW shared_preload_libraries") {
        Err(e) => Fail(format!("cannot ask the server: {e}"), vec![]),
        Ok(v) => {
            let active: BTreeSet<String> = v
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .collect();
            let missing: Vec<String> = m
                .shared_preload_libraries
                .iter()
                .filter(|p| !active.contains(*p))
                .cloned()
                .collect();
            if missing.is_empty() {
                Pass(v)
            } else {
                Fail(
                    format!("not loaded: {} (active: {v})", missing.join(", ")),
                    missing,
                )
            }
        }
    }
}

fn settings(c: &Cluster<'_>, leader: &str, m: &BuildManifest) -> Verdict {
    let wanted: Vec<(String, String)> = m
        .all_parameters()
        .into_iter()
        .filter(|(k, _)| k != "shared_preload_libraries")
        .collect();
    if wanted.is_empty() {
        return Pass("the manifest sets nothing else".into());
    }
    let list = wanted
        .iter()
        .map(|(k, _)| escape_literal(k))
        .collect::<Vec<_>>()
        .join(",");
    let out = match c.psql(
        leader,
        "postgres",
        &format!("SELECT k, coalesce(current_setting(k, true), '<unset>') FROM unnest(ARRAY[{list}]) k"),
    ) {
        Ok(o) => o,
        Err(e) => return Fail(format!("cannot ask the server: {e}"), vec![]),
    };
    let have: BTreeMap<&str, &str> = out.lines().filter_map(|l| l.split_once('|')).collect();
    let norm = |s: &str| s.trim().trim_matches('\'').to_ascii_lowercase();
    let differ: Vec<String> = wanted
        .iter()
        .filter(|(k, v)| have.get(k.as_str()).map(|h| norm(h)) != Some(norm(v)))
        .map(|(k, v)| {
            format!(
                "{k} is {:?}, the manifest says {v:?}",
                have.get(k.as_str()).unwrap_or(&"?")
            )
        })
        .collect();
    if differ.is_empty() {
        Pass(format!("{} settings", wanted.len()))
    } else {
        Fail(differ[0].clone(), differ)
    }
}

/// The getkey script, run as postgres in a container of the image with the
/// run's mounts, must print the mounted key. Ok(note) / Err(message, details).
fn getkey(
    res: &Resources,
    image: &str,
    secrets: &Secrets,
    target: &str,
    script: Option<&str>,
) -> Result<String, (String, Vec<String>)> {
    let Some(script) = script else {
        return Ok("is not configured".into());
    };
    let out = res
        .create_output(&[
            "run".into(),
            "--rm".into(),
            "--name".into(),
            res.name("getkey"),
            "--label".into(),
            res.label_arg(),
            "--network".into(),
            "none".into(),
            "--user".into(),
            "postgres".into(),
            "-v".into(),
            format!("{}:{target}:ro", secrets.mount_dir().display()),
            "--entrypoint".into(),
            script.into(),
            image.into(),
        ])
        .map_err(|e| {
            (
                format!("the getkey script {script} could not be run: {e}"),
                vec![],
            )
        })?;
    if !out.status.success() {
        let said: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        return Err((
            format!(
                "the getkey script {script} failed ({}): {}",
                out.status,
                said.first().map_or("no output", String::as_str)
            ),
            said,
        ));
    }
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_ascii_lowercase();
    if printed == hex::encode(secrets.pgsodium_root_key) {
        Ok(format!("prints the key mounted at {target}/{PGSODIUM_KEY}"))
    } else {
        Err((
            format!("the getkey script {script} does not print the key mounted at {target}/{PGSODIUM_KEY}"),
            vec![],
        ))
    }
}

/// The server's root key is the mounted one: pgsodium's derived key equals
/// the one computed here from the file's key.
fn server_key(c: &Cluster<'_>, leader: &str, secrets: &Secrets) -> Verdict {
    let sql = "CREATE EXTENSION IF NOT EXISTS pgsodium; \
               SELECT encode(pgsodium.derive_key(1, 32, 'pgsodium'::bytea), 'hex')";
    match c.psql(leader, "postgres", sql) {
        Err(e) => Fail(format!("pgsodium.derive_key failed: {}", first_line(&e)), vec![e]),
        Ok(v) if v.trim() == secrets.pgsodium_derived_key(1, b"pgsodium") => {
            Pass("the server's derived key matches the mounted root key".into())
        }
        Ok(_) => Fail(
            "the server's pgsodium root key is not the mounted one (derived keys differ)".into(),
            vec![],
        ),
    }
}

// ---------------------------------------------------------------- three members

fn ledger_snapshot(c: &Cluster<'_>, member: &str) -> Result<String, String> {
    c.psql(
        member,
        "postgres",
        "SELECT string_agg(version || ':' || checksum || ':' || applied_at, ',' ORDER BY version) FROM pgha_bootstrap.migrations",
    )
}

fn three_members(
    rec: &mut Recorder<'_>,
    c: &Cluster<'_>,
    leader: &str,
    all: &[&str],
    m: &BuildManifest,
    secrets: &Secrets,
    timeout: Duration,
) {
    let (id, title) = THREE[0];
    let ok = rec.check(id, title, || replicas(c, leader, all, timeout));
    if !ok {
        for (id, title) in &THREE[1..] {
            rec.skip(id, title, "skipped: the replicas are not streaming");
        }
        return;
    }
    // Data to read back after the failover.
    let token = hex::encode(secrets.pgsodium_derived_key(7, b"pghatest"))[..24].to_string();
    let vault = m.has_extension("supabase_vault");
    let mut write = format!(
        "CREATE TABLE IF NOT EXISTS public.pgha_verify (token text); INSERT INTO public.pgha_verify VALUES ({});",
        escape_literal(&token)
    );
    if vault {
        write.push_str(&format!(
            "CREATE EXTENSION IF NOT EXISTS supabase_vault CASCADE; SELECT vault.create_secret({}, 'pgha_verify');",
            escape_literal(&token)
        ));
    }
    let written = c.psql(leader, "postgres", &write);
    let before = ledger_snapshot(c, leader);
    let replicas: Vec<&str> = all.iter().copied().filter(|m| *m != leader).collect();
    let caught_up = written.is_ok() && wait_replay(c, leader, &replicas, timeout);
    let ttl = c
        .rest(leader, "/config")
        .and_then(|v| v["ttl"].as_u64())
        .unwrap_or(30);

    let mut new_leader: Option<String> = None;
    let (id, title) = THREE[1];
    rec.check(id, title, || {
        if let Err(e) = &written {
            return Fail(
                format!("cannot write the data to read back: {}", first_line(e)),
                vec![e.clone()],
            );
        }
        if !caught_up {
            return Fail(
                "the replicas did not replay the leader's WAL before the failover".into(),
                vec![],
            );
        }
        let start = Instant::now();
        if let Err(e) = c.stop(leader) {
            return Fail(e.to_string(), vec![]);
        }
        match c.wait_leader(&replicas, Duration::from_secs(ttl) + Duration::from_secs(5)) {
            Ok((l, _)) => {
                let took = start.elapsed();
                new_leader = Some(l.clone());
                if took <= Duration::from_secs(ttl) {
                    Pass(format!("{l} after {:.1}s (TTL {ttl}s)", took.as_secs_f64()))
                } else {
                    Fail(
                        format!("{l} took {:.1}s, more than the TTL of {ttl}s", took.as_secs_f64()),
                        vec![],
                    )
                }
            }
            Err(e) => Fail(e, replicas.iter().flat_map(|m| c.why(m)).collect()),
        }
    });
    let Some(nl) = new_leader else {
        for (id, title) in &THREE[2..] {
            rec.skip(id, title, "skipped: no new leader");
        }
        return;
    };
    let (id, title) = THREE[2];
    rec.check(id, title, || on_role_change(c, &nl, before.as_ref().ok()));
    let (id, title) = THREE[3];
    rec.check(id, title, || {
        let row = c.psql(
            &nl,
            "postgres",
            &format!(
                "SELECT count(*) FROM public.pgha_verify WHERE token = {}",
                escape_literal(&token)
            ),
        );
        if row.as_deref() != Ok("1") {
            return Fail(
                format!("the row written before the failover is not there: {row:?}"),
                vec![],
            );
        }
        if !vault {
            return Pass("the row reads back (the image has no supabase_vault)".into());
        }
        match c.psql(
            &nl,
            "postgres",
            "SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'pgha_verify'",
        ) {
            Ok(s) if s.trim() == token => Pass("the row and the vault secret read back".into()),
            Ok(_) => Fail(
                "the vault secret does not decrypt to what was stored (a different root key?)".into(),
                vec![],
            ),
            Err(e) => Fail(
                format!("cannot read the vault secret: {}", first_line(&e)),
                vec![e],
            ),
        }
    });
    let (id, title) = THREE[4];
    rec.check(id, title, || {
        if let Err(e) = c.start_again(leader) {
            return Fail(e.to_string(), vec![]);
        }
        let among: Vec<&str> = all.to_vec();
        match c.wait(&among, timeout, |v| {
            v.iter().any(|s| s.name == leader && s.is_streaming_replica())
        }) {
            Ok(v) => {
                let s = v.iter().find(|s| s.name == leader).expect("checked");
                Pass(format!("{leader} is a {} ({})", s.role, s.state))
            }
            Err(e) => Fail(
                format!("{leader} did not rejoin as a replica: {e}"),
                c.why(leader),
            ),
        }
    });
}

fn replicas(c: &Cluster<'_>, leader: &str, all: &[&str], timeout: Duration) -> Verdict {
    let want = all.len() - 1;
    let view = match c.wait(all, timeout, |v| {
        v.iter()
            .filter(|s| s.name != leader && s.is_streaming_replica())
            .count()
            == want
    }) {
        Ok(v) => v,
        Err(e) => {
            let v = c.view(all);
            return Fail(
                format!("{want} streaming replicas expected: {e}"),
                v.iter()
                    .map(|s| format!("{} {} {}", s.name, s.role, s.state))
                    .collect::<Vec<_>>(),
            );
        }
    };
    let lead = ledger_snapshot(c, leader);
    let mut bad = Vec::new();
    for r in view
        .iter()
        .filter(|s| s.name != leader)
        .map(|s: &MemberState| s.name.as_str())
    {
        match c.psql(r, "postgres", "SELECT pg_is_in_recovery()") {
            Ok(v) if v == "t" => {}
            other => bad.push(format!("{r} is not in recovery: {other:?}")),
        }
        let l = ledger_snapshot(c, r);
        if l != lead || l.is_err() {
            bad.push(format!("{r} does not carry the leader's ledger"));
        }
        let hooks = c.logs(r).matches(HOOK_MARKER).count();
        if hooks > 0 {
            bad.push(format!(
                "the bootstrap hook ran on the replica {r} ({hooks} time(s))"
            ));
        }
    }
    if bad.is_empty() {
        Pass(format!("{want} replicas streaming with the schema"))
    } else {
        Fail(bad[0].clone(), bad)
    }
}

fn wait_replay(c: &Cluster<'_>, leader: &str, replicas: &[&str], timeout: Duration) -> bool {
    let Ok(lsn) = c.psql(leader, "postgres", "SELECT pg_current_wal_lsn()") else {
        return false;
    };
    let start = Instant::now();
    while start.elapsed() < timeout {
        let done = replicas.iter().all(|r| {
            c.psql(
                r,
                "postgres",
                &format!(
                    "SELECT pg_last_wal_replay_lsn() >= {}::pg_lsn",
                    escape_literal(&lsn)
                ),
            )
            .as_deref()
                == Ok("t")
        });
        if done {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

fn on_role_change(c: &Cluster<'_>, nl: &str, before: Option<&String>) -> Verdict {
    // The callback runs asynchronously after the promotion: give it time to say so.
    let start = Instant::now();
    let mut said = None;
    while start.elapsed() < Duration::from_secs(30) {
        let mut log = c.logs(nl);
        if let Ok(o) = c.exec(nl, &["cat", "/run/postgresql/on_role_change.log"]) {
            log.push_str(&String::from_utf8_lossy(&o.stdout));
        }
        if let Some(l) = log.lines().rfind(|l| l.contains("pgha-bootstrap")) {
            said = Some(l.trim().to_string());
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let after = ledger_snapshot(c, nl);
    match (before, after) {
        (Some(b), Ok(a)) if *b == a => {}
        (None, _) => return Fail("the ledger could not be read before the failover".into(), vec![]),
        (_, Err(e)) => return Fail(format!("cannot read the new leader's ledger: {e}"), vec![]),
        _ => {
            return Fail(
                "the ledger changed after the promotion: migrations ran again".into(),
                vec![],
            );
        }
    }
    match said {
        Some(l) if l.contains(NOTHING_TO_DO) => Pass(format!("ledger unchanged; the callback said: {l}")),
        Some(l) if l.contains("pgha-bootstrap: done") || l.contains("applied ") => Fail(
            format!("the callback applied something after the promotion: {l}"),
            vec![l],
        ),
        Some(l) => Pass(format!("ledger unchanged; the callback's last line: {l}")),
        None => Pass("ledger unchanged (the callback's output is not in the container log)".into()),
    }
}

/// Now as RFC 3339 UTC, without a date crate.
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_tools_are_recognised() {
        for p in [
            "gcc",
            "gcc-12",
            "g++-12",
            "clang-16",
            "build-essential",
            "libsodium-dev",
            "libc6-dev:amd64",
            "rustc",
        ] {
            assert!(is_build_tool(p), "{p}");
        }
        for p in [
            "libgcc-s1",
            "gcc-12-base",
            "libsodium23",
            "cpp-12",
            "postgresql-15",
            "devscripts-el",
            "libdevmapper1.02.1",
        ] {
            assert!(!is_build_tool(p), "{p}");
        }
    }

    #[test]
    fn rfc3339_has_the_shape() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'), "{s}");
    }
}

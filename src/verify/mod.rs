//! `pgha-image verify`: run a built image under the engine as a deployment
//! would, and report one result per check (docs/verify.md).
//!
//! ```text
//! image (labels, packages, apt, layers of `save`, pgha-bootstrap --version)
//!   ─► secrets (fresh, private dir, mounted read-only)
//!   ─► cluster (1 member with its local etcd, or 3 members + etcd on a network)
//!   ─► checks (leader, bootstrap ledger, `pgha-bootstrap check`, extensions,
//!              preloads, settings, pgsodium key; 3 members: replicas, failover)
//!   ─► report (table, JSON, JUnit)
//! ```
//!
//! Modules: [`runtime`] (what the run creates, and its removal, also on a
//! signal), [`image`] (what the image says about itself), [`scan`] (secrets
//! in layers), [`secrets`], [`cluster`] (members under the engine),
//! [`checks`], [`report`].

pub mod checks;
pub mod cluster;
mod error;
pub mod image;
pub mod report;
pub mod runtime;
pub mod scan;
pub mod secrets;

pub use error::VerifyError;
pub use report::{CheckResult, Outcome, Report};

use crate::engine::{Engine, EngineChoice};
use crate::progress::Progress;
use runtime::Resources;
use std::sync::Arc;
use std::time::Duration;

/// What to verify, and how.
#[derive(Debug, Clone)]
pub struct Request {
    pub image: String,
    pub engine: EngineChoice,
    /// 1 or 3.
    pub members: u8,
    /// Leave the containers, networks and volumes (and say how to remove them).
    pub keep: bool,
    /// How long a member may take to start and elect a leader (and replicas to follow).
    pub timeout: Duration,
    /// Secret files not to mount (tests: a member without its pgsodium key).
    pub omit_secrets: Vec<String>,
}

impl Request {
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            engine: EngineChoice::Auto,
            members: 1,
            keep: false,
            timeout: Duration::from_secs(300),
            omit_secrets: Vec::new(),
        }
    }
}

/// Check that the report can be written to `path` (e.g. `--junit FILE`),
/// before the run: a wrong place fails at once, not after every check.
pub fn check_output(path: &std::path::Path) -> Result<(), VerifyError> {
    match crate::fsutil::output_file_problem(path) {
        Some(reason) => Err(VerifyError::Output {
            path: path.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A run name unique on this host: `pgha-verify-<pid>-<random>`.
fn run_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("pgha-verify-{}-{:05x}", std::process::id(), nanos & 0xfffff)
}

/// Verify the image. The report comes back whether checks passed or not;
/// an error means the run itself could not be made (no engine, no such
/// image, not a pgha image, an engine command failed, a signal).
///
/// Ctrl-C and SIGTERM are handled here: what the run created is removed
/// (unless `keep`) before the error returns.
pub fn run(req: Request, progress: Progress) -> Result<Report, VerifyError> {
    if req.members != 1 && req.members != 3 {
        return Err(VerifyError::Usage(format!(
            "--members must be 1 or 3, not {}",
            req.members
        )));
    }
    // A malformed name (or an option: `verify -- --rm`) never reaches the engine.
    crate::engine::EngineError::check_reference(&req.image)?;
    let engine = Engine::detect(req.engine)?;
    if !engine.exists(&req.image)? {
        return Err(crate::engine::EngineError::ImageNotFound {
            kind: engine.kind(),
            reference: req.image.clone(),
        }
        .into());
    }
    // A run whose watcher died with it (its process group killed) left its
    // directory: the next run removes those whose process is gone.
    crate::fsutil::remove_stale(&std::env::temp_dir(), "pgha-verify-");
    let res = Arc::new(Resources::new(engine, run_name(), req.keep)?);
    res.start_watcher()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| VerifyError::Io {
            what: "starting the signal handler".into(),
            source,
        })?;
    let worker = res.clone();
    let files = res.clone();
    let result = rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|source| VerifyError::Io {
            what: "installing the SIGTERM handler".into(),
            source,
        })?;
        let mut int = signal(SignalKind::interrupt()).map_err(|source| VerifyError::Io {
            what: "installing the SIGINT handler".into(),
            source,
        })?;
        let work = tokio::task::spawn_blocking(move || checks::verify_run(&req, &worker, &progress));
        tokio::select! {
            r = work => match r {
                Ok(r) => r,
                // The worker's guard swept while unwinding; pass the panic on.
                Err(join) => std::panic::resume_unwind(join.into_panic()),
            },
            _ = int.recv() => Err(VerifyError::Interrupted { signal: "SIGINT (Ctrl-C)".into(), cleanup: res.abort() }),
            _ = term.recv() => Err(VerifyError::Interrupted { signal: "SIGTERM".into(), cleanup: res.abort() }),
        }
    });
    // The worker may still be in an engine command; it is not waited for,
    // and the files it may still be writing go now (they would outlive it).
    rt.shutdown_background();
    files.remove_dir();
    result
}

//! What `status` reports as an error: a bad spec (2), a degraded cluster (3).

use crate::error::{Diagnostic, ExitCode};
use crate::manifests::ManifestsError;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Spec(#[from] ManifestsError),

    /// The cluster answered, and something is wrong: each problem names its member.
    #[error("the cluster {scope} is degraded: {} problem(s), the first: {}", .problems.len(), .problems[0])]
    Degraded { scope: String, problems: Vec<String> },

    #[error("cannot set up the HTTP client: {0}")]
    Runtime(String),
}

impl Diagnostic for StatusError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Spec(e) => e.hint(),
            Self::Degraded { .. } => Some(
                "look at the members named (`docker compose ps` and `docker compose logs postgres` on \
                 their VMs, `patronictl list`); see the per-VM README's troubleshooting"
                    .into(),
            ),
            Self::Runtime(_) => None,
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Spec(e) => e.exit_code(),
            Self::Degraded { .. } => ExitCode::Verification,
            Self::Runtime(_) => ExitCode::Failure,
        }
    }
}

impl crate::status::Report {
    /// Err(Degraded) when the report found problems.
    pub fn check(&self) -> Result<(), StatusError> {
        if self.healthy {
            return Ok(());
        }
        Err(StatusError::Degraded {
            scope: self.scope.clone(),
            problems: self
                .problems
                .iter()
                .map(|p| match &p.member {
                    Some(m) => format!("{m}: {}", p.message),
                    None => p.message.clone(),
                })
                .collect(),
        })
    }
}

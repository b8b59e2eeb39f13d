//! What `pgha-bootstrap` reports: `apply`, `plan`, `status` and `check`, as
//! the typed values the runner and `check` return, with the human lines
//! each prints (`--json` prints the values themselves). `verify` reads them
//! back from the image's output.

use super::extensions::{self, ExtensionAction};
use super::ledger::{self, Ledger};
use super::roles;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The server is a replica (in recovery): nothing was done.
    Replica,
    /// Everything was already in place: nothing was written.
    NothingToDo,
    /// Something was applied.
    Applied,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppliedStep {
    pub name: String,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SecretsReport {
    /// Roles whose password was set now, with the file it came from.
    pub set: Vec<(String, String)>,
    pub unchanged: Vec<String>,
    /// LOGIN roles that have no password in the database and no secret file.
    pub without_password: Vec<String>,
    /// Absent when no JWT secret file exists.
    pub jwt: Option<JwtStatus>,
}

/// What `apply` did with the JWT settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JwtStatus {
    Set,
    Unchanged,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub outcome: Outcome,
    pub applied: Vec<AppliedStep>,
    /// What was changed to hold the contract's roles to it.
    pub roles: Vec<roles::RoleDrift>,
    /// Contract functions whose changed definition was accepted.
    pub functions_accepted: Vec<String>,
    /// The extension selection (and extra migrations) was recorded anew.
    pub selection_recorded: bool,
    pub extensions: Vec<ExtensionAction>,
    pub secrets: SecretsReport,
}

impl ApplyReport {
    pub(super) fn replica() -> Self {
        Self {
            outcome: Outcome::Replica,
            applied: vec![],
            roles: vec![],
            functions_accepted: vec![],
            selection_recorded: false,
            extensions: vec![],
            secrets: SecretsReport::default(),
        }
    }

    /// The human summary, one line each.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.outcome == Outcome::Replica {
            out.push("pgha-bootstrap: the server is a replica (in recovery): nothing to do".into());
            return out;
        }
        for a in &self.applied {
            out.push(format!("applied {} ({} ms)", a.name, a.duration_ms));
        }
        for r in &self.roles {
            out.push(r.fixed());
        }
        for f in &self.functions_accepted {
            out.push(format!(
                "warning: function {f}: its current definition is accepted and recorded"
            ));
        }
        for e in &self.extensions {
            match e {
                ExtensionAction::Create { name, .. } => out.push(format!("extension {name}: created")),
                ExtensionAction::RecordPresent { name, schema, version } => {
                    out.push(format!("extension {name}: already present (version {version} in schema {schema})"))
                }
                ExtensionAction::Pending { name, .. } => out.push(format!(
                    "extension {name}: not installed in this image; recorded as pending, a later run creates it"
                )),
                ExtensionAction::NeedsPreload { name, library, .. } => out.push(format!(
                    "warning: extension {name}: installed, but {}; recorded as pending, the next promotion \
                     or apply creates it once the setting is fixed",
                    extensions::preload_reason(library)
                )),
                ExtensionAction::DroppedSinceCreated { name } => out.push(format!(
                    "extension {name}: was created by an earlier run and dropped since; not re-created"
                )),
                ExtensionAction::Done { .. } => {}
            }
        }
        for (role, source) in &self.secrets.set {
            out.push(format!("role {role}: password set from {source}"));
        }
        for role in &self.secrets.without_password {
            out.push(format!(
                "role {role}: LOGIN role without a password (no secret file for it and no shared password file)"
            ));
        }
        if self.secrets.jwt == Some(JwtStatus::Set) {
            out.push("database setting app.settings.jwt_secret / jwt_exp: set".into());
        }
        if self.selection_recorded {
            out.push(
                "recorded the extension selection for later runs (check, status, the promotion hook)".into(),
            );
        }
        if self.outcome == Outcome::NothingToDo {
            out.push(format!(
                "{}, the database is up to date",
                crate::contract::markers::NOTHING_TO_DO
            ));
        } else {
            out.push("pgha-bootstrap: done".into());
        }
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub replica: bool,
    pub migrations: Vec<String>,
    /// How the contract's roles differ (apply establishes them).
    pub role_changes: Vec<String>,
    pub extensions: Vec<ExtensionAction>,
    /// Required extensions not installed: apply would fail on these.
    pub missing_required: Vec<String>,
    pub passwords_to_set: Vec<(String, String)>,
    pub without_password: Vec<String>,
    pub jwt_to_set: bool,
}

impl PlanReport {
    pub fn lines(&self) -> Vec<String> {
        if self.replica {
            return vec!["the server is a replica (in recovery): apply would do nothing".into()];
        }
        let mut out = Vec::new();
        for m in &self.migrations {
            out.push(format!("would apply migration {m}"));
        }
        for r in &self.role_changes {
            out.push(format!("would establish the contract: {r}"));
        }
        for e in &self.extensions {
            match e {
                ExtensionAction::Create { name, schema } => out.push(format!(
                    "would create extension {name}{}",
                    schema
                        .as_ref()
                        .map(|s| format!(" in schema {s}"))
                        .unwrap_or_default()
                )),
                ExtensionAction::RecordPresent { name, .. } => {
                    out.push(format!("would record extension {name} as already present"))
                }
                ExtensionAction::Pending { name, .. } => out.push(format!(
                    "extension {name} is not installed: would record it as pending"
                )),
                ExtensionAction::NeedsPreload { name, library, .. } => out.push(format!(
                    "extension {name} is installed but {}: would record it as pending",
                    extensions::preload_reason(library)
                )),
                ExtensionAction::DroppedSinceCreated { name } => out.push(format!(
                    "extension {name} was dropped since created: would leave it"
                )),
                ExtensionAction::Done { .. } => {}
            }
        }
        for n in &self.missing_required {
            out.push(format!(
                "required extension {n} is not installed: apply would fail"
            ));
        }
        for (r, src) in &self.passwords_to_set {
            out.push(format!("would set the password of {r} from {src}"));
        }
        for r in &self.without_password {
            out.push(format!("role {r} would stay without a password (no secret file)"));
        }
        if self.jwt_to_set {
            out.push("would set app.settings.jwt_secret / jwt_exp".into());
        }
        if out.is_empty() {
            out.push("nothing to do: the database is up to date".into());
        }
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub in_recovery: bool,
    pub ledger: Ledger,
    pub pending_migrations: Vec<String>,
    pub pending_extensions: Vec<String>,
    /// Pending extensions that wait for a server setting, with the setting.
    pub warnings: Vec<String>,
    /// Drift or unknown migrations, changed contract functions, roles that
    /// differ from the contract: what apply would refuse or establish.
    pub problems: Vec<String>,
    pub tool_version: String,
}

impl StatusReport {
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "server: {}",
            if self.in_recovery {
                "replica (in recovery)"
            } else {
                "primary"
            }
        )];
        if !self.ledger.exists {
            out.push("ledger: none (the database was never bootstrapped)".into());
        }
        for m in &self.ledger.migrations {
            out.push(format!(
                "applied  {}  {}  sha256 {}  by {}  in {} ms",
                m.name,
                m.applied_at,
                &m.checksum[..12.min(m.checksum.len())],
                m.tool_version,
                m.duration_ms
            ));
        }
        for m in &self.pending_migrations {
            out.push(format!("pending  {m}"));
        }
        for e in &self.ledger.extensions {
            out.push(format!(
                "extension {}: {}{}{}",
                e.name,
                e.status,
                e.version.as_ref().map(|v| format!(" ({v})")).unwrap_or_default(),
                e.reason
                    .as_ref()
                    .filter(|_| e.status == ledger::ExtensionStatus::Pending)
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
        }
        for e in &self.ledger.events {
            out.push(format!("event {}: {}", e.at, e.detail));
        }
        for w in &self.warnings {
            out.push(format!("warning: {w}"));
        }
        for s in &self.ledger.secrets {
            out.push(format!(
                "secret {}: from {} at {}",
                s.name, s.source, s.updated_at
            ));
        }
        for p in &self.problems {
            out.push(format!("PROBLEM: {p}"));
        }
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub what: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
    /// Optional extensions not installed in the image, or waiting for
    /// `shared_preload_libraries` (reported, not failures).
    pub pending_extensions: Vec<String>,
    /// Pending extensions that wait for a server setting, naming it.
    pub warnings: Vec<String>,
    /// LOGIN roles that have no password (reported, not failures).
    pub without_password: Vec<String>,
}

impl CheckReport {
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| !f.ok)
    }

    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .failures()
            .map(|f| format!("MISSING/DIFFERENT: {}", f.what))
            .collect();
        for e in &self.pending_extensions {
            if !self
                .warnings
                .iter()
                .any(|w| w.starts_with(&format!("extension {e} ")))
            {
                out.push(format!(
                    "note: optional extension {e} is not installed in this image (pending)"
                ));
            }
        }
        for w in &self.warnings {
            out.push(format!("warning: {w}"));
        }
        for r in &self.without_password {
            out.push(format!("note: LOGIN role {r} has no password"));
        }
        let failed = self.failures().count();
        out.push(format!(
            "{} of {} checks passed{}",
            self.findings.len() - failed,
            self.findings.len(),
            if failed == 0 {
                ": the database meets the contract"
            } else {
                ""
            }
        ));
        out
    }
}

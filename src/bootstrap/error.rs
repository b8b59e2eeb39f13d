//! The bootstrap's typed errors. Every message names the thing that failed;
//! every variant says what to do about it ([`Diagnostic::hint`]) and maps to
//! one of the shared exit codes. No variant ever carries a secret: passwords
//! and the JWT secret are read into [`super::secrets::Secret`], which has no
//! way to be displayed.

use crate::error::{Diagnostic, ExitCode};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot read the bootstrap configuration {path}")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid bootstrap configuration {path}: {message}")]
    ConfigInvalid { path: PathBuf, message: String },

    #[error("invalid connection string {dsn}: {reason}")]
    Dsn { dsn: String, reason: String },

    #[error("cannot connect to PostgreSQL at {target}: {detail}")]
    Connect { target: String, detail: String },

    #[error("{what} failed: {detail}")]
    Query { what: String, detail: String },

    #[error("the connecting role {role} is not a superuser")]
    NotSuperuser { role: String },

    #[error("migration {migration} failed{location}: {detail}")]
    Migration {
        migration: String,
        location: String,
        detail: String,
    },

    #[error(
        "drift: the ledger records {} migration(s) whose text has changed since they were applied: {}",
        changed.len(),
        changed.join(", ")
    )]
    Drift { changed: Vec<String> },

    #[error(
        "the ledger records migration(s) this pgha-bootstrap does not know: {}",
        unknown.join(", ")
    )]
    UnknownApplied { unknown: Vec<String> },

    #[error("cannot read the migrations in {path}: {reason}")]
    Migrations { path: PathBuf, reason: String },

    #[error(
        "required extension(s) not installed in this image: {}",
        names.join(", ")
    )]
    RequiredExtensionMissing { names: Vec<String> },

    #[error(
        "required extension(s) cannot be created until the server preloads their library: {}",
        names.join(", ")
    )]
    RequiredExtensionNotPreloaded { names: Vec<String> },

    #[error("creating extension {name} failed: {detail}")]
    Extension { name: String, detail: String },

    #[error("cannot read the secret file {path}")]
    SecretRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret file {path} is {problem}")]
    SecretInvalid { path: PathBuf, problem: String },
    #[error("the secret file {path} is a symbolic link to {target}, which does not exist")]
    SecretDangling { path: PathBuf, target: PathBuf },
    /// A FIFO, a device or a file over the limit where a secret should be:
    /// a broken or wrong mount, refused without waiting or reading it all.
    #[error("the secret file {path} is {problem}")]
    SecretUnusable { path: PathBuf, problem: String },

    #[error("setting {what} failed: {detail}")]
    Secret { what: String, detail: String },

    #[error("the database does not meet the Supabase contract: {count} problem(s) found")]
    CheckFailed { count: usize },

    #[error("{what} timed out after {seconds} s")]
    Timeout {
        what: String,
        seconds: u64,
        /// The setting that raises the bound.
        setting: String,
    },

    #[error("the secrets directory {path} does not exist")]
    SecretsDirMissing { path: PathBuf },

    #[error("--extensions {given:?} names no extension")]
    EmptyExtensionList { given: String },

    #[error("unknown extension(s) in {origin}: {}", names.join(", "))]
    UnknownExtensions { origin: String, names: Vec<String> },

    #[error(
        "drift: {} function(s) of the contract changed since the bootstrap recorded them: {}",
        changed.len(),
        changed.join(", ")
    )]
    FunctionDrift { changed: Vec<String> },
}

impl Diagnostic for BootstrapError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::ConfigRead { .. } => {
                "create the file, or point --config / PGHA_BOOTSTRAP_CONFIG at an existing one \
                 (a missing /etc/pgha/bootstrap.toml means built-in defaults)"
                    .into()
            }
            Self::ConfigInvalid { .. } => "fix the TOML; the keys are described in docs/bootstrap.md".into(),
            Self::Dsn { .. } => "pass a libpq key=value string (`host=/run/postgresql dbname=postgres \
                 user=postgres`), a postgresql:// URL, or the word `postgres` for the local socket"
                .into(),
            Self::Connect { .. } => "check that PostgreSQL is running and accepts this connection \
                 (socket directory, port, pg_hba.conf, a password in PGPASSFILE or the DSN)"
                .into(),
            Self::Query { .. } => "see the PostgreSQL message above; nothing was left half-applied".into(),
            Self::NotSuperuser { .. } => "connect as a superuser (in Spilo: postgres), the bootstrap \
                 creates SUPERUSER roles and event triggers"
                .into(),
            Self::Migration { .. } => "that migration was rolled back completely and not recorded; \
                 fix the cause and run again, it resumes from there"
                .into(),
            Self::Drift { .. } => "a migration must never change once applied: restore its original \
                 text and put the change in a new migration with a higher number"
                .into(),
            Self::UnknownApplied { .. } => "this database was bootstrapped by a newer pgha-bootstrap (or \
                 with --extra-migrations); run that version, or pass the same --extra-migrations"
                .into(),
            Self::Migrations { .. } => "migration files are named NNNN_name.sql with a unique number".into(),
            Self::RequiredExtensionMissing { .. } => "install the extension in the image, or remove it \
                 from [extensions] required in the bootstrap configuration"
                .into(),
            Self::RequiredExtensionNotPreloaded { .. } => {
                "add the library to shared_preload_libraries (Patroni's \
                 postgresql.parameters, or SPILO_CONFIGURATION) and restart, or remove the extension from \
                 [extensions] required; nothing was written"
                    .into()
            }
            Self::Extension { .. } => "see the PostgreSQL message; the extension's creation was rolled \
                 back and will be retried by the next run"
                .into(),
            Self::SecretRead { .. } => "make the file readable by the user running pgha-bootstrap \
                 (in Spilo: postgres), or remove it"
                .into(),
            Self::SecretInvalid { .. } => "write the secret into the file, a regular file of at most \
                 64 KiB (a trailing newline is ignored), or remove the file; nothing was written"
                .into(),
            Self::SecretUnusable { .. } => "mount or write the secret as a regular file of at most \
                 64 KiB (a FIFO, a device or a bigger file is never read), or remove it; nothing was written"
                .into(),
            Self::SecretDangling { .. } => "a broken secret mount looks like this: mount the secret so \
                 that the link's target exists, or remove the link; nothing was written"
                .into(),
            Self::Secret { .. } => "see the PostgreSQL message; the secret itself is never shown".into(),
            Self::CheckFailed { .. } => "run `pgha-bootstrap apply` to establish what is missing; \
                 changes made by hand must be reverted by hand"
                .into(),
            Self::Timeout { setting, .. } => format!(
                "check that the server is PostgreSQL and responsive (not overloaded, not stopped \
                 mid-session); to wait longer raise {setting}"
            ),
            Self::SecretsDirMissing { .. } => "mount or create the directory with the secret files (one per \
                 LOGIN role and/or `password`), or name the right one with --secrets-dir; nothing was written"
                .into(),
            Self::EmptyExtensionList { .. } => "name the extensions to create, comma-separated \
                 (`--extensions pgcrypto,pg_net`), or leave out --extensions to use the configured list; \
                 nothing was written"
                .into(),
            Self::UnknownExtensions { .. } => "correct the name(s) (the names of `CREATE EXTENSION`, as \
                 listed by `pgha-image extensions list` or pg_available_extensions); nothing was written"
                .into(),
            Self::FunctionDrift { .. } => "restore the function's definition from the migration that \
                 created it, or, when a Supabase service (e.g. GoTrue's own migrations) redefined it on \
                 purpose, accept the current definition with `pgha-bootstrap apply --accept-function-changes`"
                .into(),
        })
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            Self::ConfigRead { .. }
            | Self::ConfigInvalid { .. }
            | Self::Dsn { .. }
            | Self::Migrations { .. }
            | Self::SecretInvalid { .. }
            | Self::NotSuperuser { .. }
            | Self::SecretsDirMissing { .. }
            | Self::EmptyExtensionList { .. }
            | Self::UnknownExtensions { .. } => ExitCode::Usage,
            Self::Drift { .. } | Self::CheckFailed { .. } | Self::FunctionDrift { .. } => {
                ExitCode::Verification
            }
            Self::RequiredExtensionMissing { .. } | Self::RequiredExtensionNotPreloaded { .. } => {
                ExitCode::Prerequisite
            }
            Self::SecretRead { .. } | Self::SecretDangling { .. } | Self::SecretUnusable { .. } => {
                ExitCode::Prerequisite
            }
            _ => ExitCode::Failure,
        }
    }
}

/// A PostgreSQL error as one line: severity, message, SQLSTATE, detail, hint.
pub fn describe_pg(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!(
                "{}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                db.code().code()
            );
            if let Some(d) = db.detail() {
                s.push_str(&format!("; detail: {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            if let Some(w) = db.where_() {
                s.push_str(&format!("; where: {}", w.replace('\n', " / ")));
            }
            use tokio_postgres::error::SqlState;
            if db.code() == &SqlState::QUERY_CANCELED && db.message().contains("statement timeout") {
                s.push_str(
                    " (the bootstrap's statement_timeout expired: raise [connection] \
                     statement_timeout_seconds in the bootstrap configuration)",
                );
            } else if db.code() == &SqlState::LOCK_NOT_AVAILABLE {
                s.push_str(
                    " (the bootstrap's lock_timeout expired while another session held a lock: \
                     raise [connection] lock_timeout_seconds, or end that session)",
                );
            }
            s
        }
        None => {
            // The cause chain of a client-side error (I/O, protocol).
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(c) = src {
                s.push_str(&format!(": {c}"));
                src = c.source();
            }
            s
        }
    }
}

/// A query error, for the `?` operator in the runner.
pub fn query_err(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> BootstrapError {
    let what = what.into();
    move |e| BootstrapError::Query {
        what,
        detail: describe_pg(&e),
    }
}

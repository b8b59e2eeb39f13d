//! The ledger: schema `pgha_bootstrap` in the bootstrapped database, which
//! records what the bootstrap did so that each piece is applied once.
//!
//! - `migrations`: version, name, SHA-256 of the SQL text, kind
//!   (`transaction` or `database:<name>`), when, by which tool version, how long.
//! - `extensions`: each configured extension's state: `created` (by the
//!   bootstrap), `present` (already there), `pending` (not installed in the
//!   image yet; a later run creates it).
//! - `secrets`: which role password / database setting was set from which
//!   file, and when. Never a secret, nor a hash of one.
//!
//! The schema is not readable by PUBLIC (so not by anon/authenticated).

use super::error::{BootstrapError, query_err};
use crate::hash::Sha256Digest;
use serde::Serialize;
use tokio_postgres::GenericClient;

pub const SCHEMA: &str = "pgha_bootstrap";

const CREATE: &str = r#"
CREATE SCHEMA IF NOT EXISTS pgha_bootstrap;
REVOKE ALL ON SCHEMA pgha_bootstrap FROM PUBLIC;
COMMENT ON SCHEMA pgha_bootstrap IS 'pgha-bootstrap ledger: what the Supabase bootstrap applied, once each';
CREATE TABLE IF NOT EXISTS pgha_bootstrap.migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  checksum text NOT NULL,
  kind text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  tool_version text NOT NULL,
  duration_ms bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS pgha_bootstrap.extensions (
  name text PRIMARY KEY,
  status text NOT NULL CHECK (status IN ('created', 'present', 'pending')),
  schema text,
  version text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  tool_version text NOT NULL
);
CREATE TABLE IF NOT EXISTS pgha_bootstrap.secrets (
  name text PRIMARY KEY,
  source text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  tool_version text NOT NULL
);
"#;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: i32,
    pub name: String,
    pub checksum: String,
    pub kind: String,
    pub applied_at: String,
    pub tool_version: String,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExtensionRow {
    pub name: String,
    pub status: String,
    pub schema: Option<String>,
    pub version: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SecretRow {
    pub name: String,
    pub source: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Ledger {
    /// False when the ledger schema does not exist yet (a fresh database).
    pub exists: bool,
    pub migrations: Vec<AppliedMigration>,
    pub extensions: Vec<ExtensionRow>,
    pub secrets: Vec<SecretRow>,
}

impl Ledger {
    pub fn migration(&self, version: i32) -> Option<&AppliedMigration> {
        self.migrations.iter().find(|m| m.version == version)
    }

    pub fn extension(&self, name: &str) -> Option<&ExtensionRow> {
        self.extensions.iter().find(|e| e.name == name)
    }
}

/// Create the ledger when missing (call under the advisory lock).
pub async fn ensure(client: &impl GenericClient) -> Result<(), BootstrapError> {
    client
        .batch_execute(CREATE)
        .await
        .map_err(query_err("creating the ledger schema pgha_bootstrap"))
}

pub async fn exists(client: &impl GenericClient) -> Result<bool, BootstrapError> {
    let row = client
        .query_typed_one("SELECT to_regclass('pgha_bootstrap.secrets') IS NOT NULL", &[])
        .await
        .map_err(query_err("looking for the ledger"))?;
    Ok(row.get(0))
}

/// Everything the ledger holds (empty when it does not exist).
pub async fn read(client: &impl GenericClient) -> Result<Ledger, BootstrapError> {
    if !exists(client).await? {
        return Ok(Ledger::default());
    }
    let what = "reading the ledger";
    let ts = "to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";
    let migrations = client
        .query_typed(
            &format!(
                "SELECT version, name, checksum, kind, {}, tool_version, duration_ms
                 FROM pgha_bootstrap.migrations ORDER BY version",
                ts.replace("%s", "applied_at")
            ),
            &[],
        )
        .await
        .map_err(query_err(what))?
        .into_iter()
        .map(|r| AppliedMigration {
            version: r.get(0),
            name: r.get(1),
            checksum: r.get(2),
            kind: r.get(3),
            applied_at: r.get(4),
            tool_version: r.get(5),
            duration_ms: r.get(6),
        })
        .collect();
    let extensions = client
        .query_typed(
            &format!(
                "SELECT name, status, schema, version, {} FROM pgha_bootstrap.extensions ORDER BY name",
                ts.replace("%s", "updated_at")
            ),
            &[],
        )
        .await
        .map_err(query_err(what))?
        .into_iter()
        .map(|r| ExtensionRow {
            name: r.get(0),
            status: r.get(1),
            schema: r.get(2),
            version: r.get(3),
            updated_at: r.get(4),
        })
        .collect();
    let secrets = client
        .query_typed(
            &format!(
                "SELECT name, source, {} FROM pgha_bootstrap.secrets ORDER BY name",
                ts.replace("%s", "updated_at")
            ),
            &[],
        )
        .await
        .map_err(query_err(what))?
        .into_iter()
        .map(|r| SecretRow {
            name: r.get(0),
            source: r.get(1),
            updated_at: r.get(2),
        })
        .collect();
    Ok(Ledger {
        exists: true,
        migrations,
        extensions,
        secrets,
    })
}

pub async fn record_migration(
    client: &impl GenericClient,
    version: i32,
    name: &str,
    checksum: &Sha256Digest,
    kind: &str,
    duration_ms: i64,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO pgha_bootstrap.migrations (version, name, checksum, kind, tool_version, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &version,
                &name,
                &checksum.to_hex(),
                &kind,
                &crate::TOOL_VERSION,
                &duration_ms,
            ],
        )
        .await
        .map(|_| ())
}

pub async fn record_extension(
    client: &impl GenericClient,
    name: &str,
    status: &str,
    schema: Option<&str>,
    version: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO pgha_bootstrap.extensions (name, status, schema, version, tool_version)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET status = EXCLUDED.status, schema = EXCLUDED.schema,
               version = EXCLUDED.version, updated_at = now(), tool_version = EXCLUDED.tool_version",
            &[&name, &status, &schema, &version, &crate::TOOL_VERSION],
        )
        .await
        .map(|_| ())
}

pub async fn record_secret(
    client: &impl GenericClient,
    name: &str,
    source: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO pgha_bootstrap.secrets (name, source, tool_version) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET source = EXCLUDED.source, updated_at = now(),
               tool_version = EXCLUDED.tool_version",
            &[&name, &source, &crate::TOOL_VERSION],
        )
        .await
        .map(|_| ())
}

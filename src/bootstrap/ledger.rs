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
use serde::{Deserialize, Serialize};
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

/// What later versions added: created only when missing, so that a ledger
/// that has them is not written to (a re-run must change nothing).
const UPGRADE: &str = r#"
DO $up$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                 WHERE attrelid = 'pgha_bootstrap.extensions'::regclass AND attname = 'reason') THEN
    ALTER TABLE pgha_bootstrap.extensions ADD COLUMN reason text;
  END IF;
  IF to_regclass('pgha_bootstrap.functions') IS NULL THEN
    CREATE TABLE pgha_bootstrap.functions (
      signature text PRIMARY KEY,
      sha256 text NOT NULL,
      source text NOT NULL CHECK (source IN ('applied', 'accepted')),
      recorded_at timestamptz NOT NULL DEFAULT now(),
      tool_version text NOT NULL
    );
  END IF;
  IF to_regclass('pgha_bootstrap.events') IS NULL THEN
    CREATE TABLE pgha_bootstrap.events (
      id bigserial PRIMARY KEY,
      at timestamptz NOT NULL DEFAULT now(),
      kind text NOT NULL,
      subject text NOT NULL,
      detail text NOT NULL,
      tool_version text NOT NULL
    );
  END IF;
  IF to_regclass('pgha_bootstrap.selection') IS NULL THEN
    CREATE TABLE pgha_bootstrap.selection (
      key text PRIMARY KEY,
      value jsonb NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(),
      tool_version text NOT NULL
    );
  END IF;
END
$up$;
"#;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Deserialize)]
pub struct AppliedMigration {
    pub version: i32,
    pub name: String,
    pub checksum: String,
    pub kind: String,
    pub applied_at: String,
    pub tool_version: String,
    pub duration_ms: i64,
}

/// An extension's state in the ledger (the column's CHECK constraint).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtensionStatus {
    /// Created by the bootstrap.
    Created,
    /// Already there when the bootstrap first looked.
    Present,
    /// Not creatable yet (not installed, or its library not preloaded).
    Pending,
}

impl ExtensionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Present => "present",
            Self::Pending => "pending",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Created, Self::Present, Self::Pending]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for ExtensionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Deserialize)]
pub struct ExtensionRow {
    pub name: String,
    pub status: ExtensionStatus,
    pub schema: Option<String>,
    pub version: Option<String>,
    /// Why it is pending (e.g. its library is not preloaded).
    pub reason: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Deserialize)]
pub struct FunctionRow {
    pub signature: String,
    pub sha256: String,
    /// `applied` (recorded after the bootstrap's own migrations) or `accepted`
    /// (`apply --accept-function-changes`).
    pub source: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Deserialize)]
pub struct EventRow {
    pub at: String,
    pub kind: String,
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Deserialize)]
pub struct SecretRow {
    pub name: String,
    pub source: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// False when the ledger schema does not exist yet (a fresh database).
    pub exists: bool,
    pub migrations: Vec<AppliedMigration>,
    pub extensions: Vec<ExtensionRow>,
    pub secrets: Vec<SecretRow>,
    pub functions: Vec<FunctionRow>,
    pub events: Vec<EventRow>,
    /// What `apply` was last asked for (`extensions`, `extra_migrations`).
    pub selection: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Ledger {
    pub fn migration(&self, version: i32) -> Option<&AppliedMigration> {
        self.migrations.iter().find(|m| m.version == version)
    }

    pub fn extension(&self, name: &str) -> Option<&ExtensionRow> {
        self.extensions.iter().find(|e| e.name == name)
    }

    pub fn function(&self, signature: &str) -> Option<&FunctionRow> {
        self.functions.iter().find(|f| f.signature == signature)
    }
}

/// Create the ledger, or add what this version needs, when missing (call
/// under the advisory lock). Writes nothing when the ledger is complete.
pub async fn ensure(client: &impl GenericClient, exists: bool) -> Result<(), BootstrapError> {
    let what = "creating the ledger schema pgha_bootstrap";
    if !exists {
        client.batch_execute(CREATE).await.map_err(query_err(what))?;
    }
    if !exists || !complete(client).await? {
        client.batch_execute(UPGRADE).await.map_err(query_err(what))?;
    }
    Ok(())
}

pub async fn exists(client: &impl GenericClient) -> Result<bool, BootstrapError> {
    let row = client
        .query_typed_one("SELECT to_regclass('pgha_bootstrap.secrets') IS NOT NULL", &[])
        .await
        .map_err(query_err("looking for the ledger"))?;
    Ok(row.get(0))
}

/// Whether the ledger has everything this version records.
async fn complete(client: &impl GenericClient) -> Result<bool, BootstrapError> {
    let row = client
        .query_typed_one(
            "SELECT to_regclass('pgha_bootstrap.selection') IS NOT NULL
                AND to_regclass('pgha_bootstrap.functions') IS NOT NULL
                AND to_regclass('pgha_bootstrap.events') IS NOT NULL
                AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                            WHERE attrelid = 'pgha_bootstrap.extensions'::regclass AND attname = 'reason')",
            &[],
        )
        .await
        .map_err(query_err("looking at the ledger"))?;
    Ok(row.get(0))
}

/// Everything the ledger holds (empty when it does not exist).
pub async fn read(client: &impl GenericClient) -> Result<Ledger, BootstrapError> {
    if !exists(client).await? {
        return Ok(Ledger::default());
    }
    let what = "reading the ledger";
    let upgraded = complete(client).await?;
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
                "SELECT name, status, schema, version, {}, {} FROM pgha_bootstrap.extensions ORDER BY name",
                ts.replace("%s", "updated_at"),
                if upgraded { "reason" } else { "NULL::text" }
            ),
            &[],
        )
        .await
        .map_err(query_err(what))?
        .into_iter()
        .map(|r| {
            let status: String = r.get(1);
            Ok(ExtensionRow {
                status: ExtensionStatus::parse(&status).ok_or_else(|| BootstrapError::Query {
                    what: what.into(),
                    detail: format!("unknown extension status {status:?} in {SCHEMA}.extensions"),
                })?,
                name: r.get(0),
                schema: r.get(2),
                version: r.get(3),
                updated_at: r.get(4),
                reason: r.get(5),
            })
        })
        .collect::<Result<_, BootstrapError>>()?;
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
    let mut ledger = Ledger {
        exists: true,
        migrations,
        extensions,
        secrets,
        ..Default::default()
    };
    if !upgraded {
        return Ok(ledger);
    }
    ledger.functions = client
        .query_typed(
            "SELECT signature, sha256, source FROM pgha_bootstrap.functions ORDER BY signature",
            &[],
        )
        .await
        .map_err(query_err(what))?
        .into_iter()
        .map(|r| FunctionRow {
            signature: r.get(0),
            sha256: r.get(1),
            source: r.get(2),
        })
        .collect();
    ledger.events = client
        .query_typed(
            &format!(
                "SELECT {}, kind, subject, detail FROM pgha_bootstrap.events ORDER BY id",
                ts.replace("%s", "at")
            ),
            &[],
        )
        .await
        .map_err(query_err(what))?
        .into_iter()
        .map(|r| EventRow {
            at: r.get(0),
            kind: r.get(1),
            subject: r.get(2),
            detail: r.get(3),
        })
        .collect();
    ledger.selection = client
        .query_typed("SELECT key, value::text FROM pgha_bootstrap.selection", &[])
        .await
        .map_err(query_err(what))?
        .into_iter()
        .map(|r| {
            let v: String = r.get(1);
            (
                r.get(0),
                serde_json::from_str(&v).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect();
    Ok(ledger)
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
    status: ExtensionStatus,
    schema: Option<&str>,
    version: Option<&str>,
    reason: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO pgha_bootstrap.extensions (name, status, schema, version, tool_version, reason)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET status = EXCLUDED.status, schema = EXCLUDED.schema,
               version = EXCLUDED.version, updated_at = now(), tool_version = EXCLUDED.tool_version,
               reason = EXCLUDED.reason",
            &[
                &name,
                &status.as_str(),
                &schema,
                &version,
                &crate::TOOL_VERSION,
                &reason,
            ],
        )
        .await
        .map(|_| ())
}

/// Record `name` as pending, with why.
pub async fn record_pending(
    client: &impl GenericClient,
    name: &str,
    reason: &str,
) -> Result<(), BootstrapError> {
    record_extension(client, name, ExtensionStatus::Pending, None, None, Some(reason))
        .await
        .map_err(query_err(format!("recording extension {name}")))
}

pub async fn record_function(
    client: &impl GenericClient,
    signature: &str,
    sha256: &str,
    source: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO pgha_bootstrap.functions (signature, sha256, source, tool_version)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (signature) DO UPDATE SET sha256 = EXCLUDED.sha256, source = EXCLUDED.source,
               recorded_at = now(), tool_version = EXCLUDED.tool_version",
            &[&signature, &sha256, &source, &crate::TOOL_VERSION],
        )
        .await
        .map(|_| ())
}

pub async fn record_event(
    client: &impl GenericClient,
    kind: &str,
    subject: &str,
    detail: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO pgha_bootstrap.events (kind, subject, detail, tool_version) VALUES ($1, $2, $3, $4)",
            &[&kind, &subject, &detail, &crate::TOOL_VERSION],
        )
        .await
        .map(|_| ())
}

/// Record what `apply` was asked for, only when it differs (no write otherwise).
pub async fn record_selection(
    client: &impl GenericClient,
    key: &str,
    value: &serde_json::Value,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO pgha_bootstrap.selection (key, value, tool_version) VALUES ($1, $2::text::jsonb, $3)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(),
               tool_version = EXCLUDED.tool_version
             WHERE pgha_bootstrap.selection.value IS DISTINCT FROM EXCLUDED.value",
            &[&key, &value.to_string(), &crate::TOOL_VERSION],
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

//! The runner: applies what the ledger does not record yet, once.
//!
//! One run:
//! 1. connects; on a replica (`pg_is_in_recovery()`) it does nothing and
//!    succeeds (after a promotion it may first wait, bounded, for recovery
//!    to end);
//! 2. checks the connecting role is a superuser and reads the secret files;
//! 3. takes a session advisory lock, so concurrent runners queue and exactly
//!    one applies each migration; then, still before writing anything,
//!    checks that the required extensions are installed;
//! 4. creates the ledger if missing and refuses to go on if an applied
//!    migration's text has changed (drift) or is unknown to this binary;
//! 5. applies each missing migration in its own transaction together with
//!    its ledger row (a failure rolls back that migration completely);
//!    a migration for another database creates it first, idempotently;
//! 6. creates the configured extensions (or records them as pending);
//! 7. sets passwords and the JWT settings whose secret differs from what the
//!    database holds.

use super::config;
use super::dsn::{ConnInfo, Env};
use super::error::{BootstrapError, describe_pg, query_err};
use super::extensions::{self, ExtensionAction, ExtensionPlan};
use super::ledger::{self, Ledger};
use super::migrations::{Migration, MigrationSet, Target};
use super::report::{AppliedStep, ApplyReport, JwtStatus, Outcome, PlanReport, SecretsReport, StatusReport};
use super::roles;
use super::secrets::{self, SecretSet};
use crate::progress::Progress;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// The advisory lock every runner takes ("pghaboot").
pub const LOCK_KEY: i64 = 0x7067_6861_626f_6f74;

/// Everything a run needs, resolved from the configuration and the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub conn: ConnInfo,
    pub local: config::Connection,
    pub env: Env,
    pub migrations: MigrationSet,
    /// `--extra-migrations DIR`, when given (recorded by `apply`).
    pub extra_dir: Option<PathBuf>,
    /// Extra migrations a recorded selection names whose directory is gone:
    /// known by name, not verifiable.
    pub recorded_extra: Vec<String>,
    pub extensions: ExtensionPlan,
    pub secrets: config::Secrets,
    /// When set (after a promotion), wait up to this long for the server to
    /// leave recovery before treating it as a replica.
    pub wait_for_primary: Option<Duration>,
    /// `apply --accept-function-changes`: record the contract functions'
    /// current definitions instead of refusing their drift.
    pub accept_function_changes: bool,
}

impl Settings {
    pub fn new(cfg: &config::Config, conn: ConnInfo) -> Self {
        Self {
            conn,
            local: cfg.connection.clone(),
            env: Env::from_process(),
            migrations: MigrationSet::embedded(),
            extra_dir: None,
            recorded_extra: vec![],
            extensions: ExtensionPlan::from_config(&cfg.extensions),
            secrets: cfg.secrets.clone(),
            wait_for_primary: None,
            accept_function_changes: false,
        }
    }

    /// `--extra-migrations DIR`.
    pub fn with_extra_migrations(mut self, dir: &Path) -> Result<Self, BootstrapError> {
        self.migrations = self.migrations.with_extra(dir)?;
        self.extra_dir = Some(dir.to_path_buf());
        Ok(self)
    }

    /// `--secrets-dir DIR`: a directory named explicitly must exist (a typo
    /// must not leave LOGIN roles without passwords). Checked before connecting.
    pub fn with_secrets_dir(mut self, dir: &Path) -> Result<Self, BootstrapError> {
        if !dir.is_dir() {
            return Err(BootstrapError::SecretsDirMissing {
                path: dir.to_path_buf(),
            });
        }
        self.secrets = self.secrets.in_dir(dir);
        Ok(self)
    }

    /// Connect to the configured database (see [`Settings::connect_to`]).
    pub async fn connect(&self) -> Result<Client, BootstrapError> {
        self.connect_conn(&self.conn).await
    }

    /// Connect to another database of the same server.
    pub async fn connect_to(&self, dbname: &str) -> Result<Client, BootstrapError> {
        self.connect_conn(&self.conn.with_dbname(dbname)).await
    }

    /// Connect (bounded by the connect timeout) and bound the session's own
    /// statements and lock waits: Patroni passes `statement_timeout=0`.
    async fn connect_conn(&self, conn: &ConnInfo) -> Result<Client, BootstrapError> {
        let client = conn.connect(&self.local, &self.env).await?;
        let sql = format!(
            "SET statement_timeout = '{}s'; SET lock_timeout = '{}s'",
            self.local.statement_timeout_seconds, self.local.lock_timeout_seconds
        );
        client
            .batch_execute(&sql)
            .await
            .map_err(query_err("setting the session's timeouts"))?;
        Ok(client)
    }

    /// What `apply` was asked for last time, where this run was not told:
    /// the extension selection (unless `--extensions`) and the extra
    /// migrations (unless `--extra-migrations`).
    pub fn with_recorded_selection(mut self, led: &Ledger) -> Result<Self, BootstrapError> {
        if self.extensions.origin == extensions::ListOrigin::Configuration
            && let Some(plan) = led
                .selection
                .get(SELECTION_EXTENSIONS)
                .and_then(|v| self.extensions.from_json(v))
        {
            self.extensions = plan;
        }
        if self.extra_dir.is_none()
            && let Some(v) = led.selection.get(SELECTION_EXTRA)
        {
            let dir = v.get("dir").and_then(|d| d.as_str()).map(PathBuf::from);
            match dir {
                Some(d) if d.is_dir() => self = self.with_extra_migrations(&d)?,
                _ => {
                    self.recorded_extra = v
                        .get("migrations")
                        .and_then(|m| m.as_array())
                        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                        .unwrap_or_default()
                }
            }
        }
        Ok(self)
    }
}

/// Keys of the ledger's `selection` table.
const SELECTION_EXTENSIONS: &str = "extensions";
const SELECTION_EXTRA: &str = "extra_migrations";

/// Run `fut` bounded by `[connection] run_timeout_seconds`: a server that
/// stops answering mid-session cannot enforce its own timeouts.
pub async fn bounded<T>(
    s: &Settings,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, BootstrapError>>,
) -> Result<T, BootstrapError> {
    let limit = Duration::from_secs(s.local.run_timeout_seconds);
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(BootstrapError::Timeout {
            what: what.to_string(),
            seconds: limit.as_secs(),
            setting: "[connection] run_timeout_seconds in the bootstrap configuration".into(),
        }),
    }
}

/// Facts read at the start of every run.
struct ServerFacts {
    server_version_num: i32,
    in_recovery: bool,
    superuser: bool,
    user: String,
    database: String,
}

async fn facts(client: &Client) -> Result<ServerFacts, BootstrapError> {
    let r = client
        .query_typed_one(
            "SELECT pg_is_in_recovery(), r.rolsuper, current_user::text, current_database()::text,
                    current_setting('server_version_num')::int
             FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(query_err("reading the server's state"))?;
    Ok(ServerFacts {
        in_recovery: r.get(0),
        superuser: r.get(1),
        user: r.get(2),
        database: r.get(3),
        server_version_num: r.get(4),
    })
}

/// After a promotion the server may still be finishing recovery: poll,
/// bounded by `wait`. Returns whether it is (now) a primary.
async fn wait_until_primary(client: &Client, wait: Option<Duration>) -> Result<bool, BootstrapError> {
    let deadline = Instant::now() + wait.unwrap_or_default();
    loop {
        let in_recovery: bool = client
            .query_typed_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(query_err("reading the server's state"))?
            .get(0);
        if !in_recovery {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Drift and unknown migrations: an applied migration must match this binary's text.
pub fn verify_ledger(s: &Settings, ledger: &Ledger) -> Result<(), BootstrapError> {
    let set = &s.migrations;
    let mut changed = Vec::new();
    let mut unknown = Vec::new();
    for row in &ledger.migrations {
        match set.get(row.version) {
            None if s.recorded_extra.contains(&row.name) => {}
            Some(m) if m.checksum.to_hex() == row.checksum && m.name == row.name => {}
            Some(m) if m.name != row.name => changed.push(format!(
                "{} (recorded as {}, this binary has {})",
                row.version, row.name, m.name
            )),
            Some(m) => changed.push(format!(
                "{} (applied sha256 {}, now {})",
                m.name,
                &row.checksum[..12.min(row.checksum.len())],
                &m.checksum.to_hex()[..12]
            )),
            None => unknown.push(row.name.clone()),
        }
    }
    if !changed.is_empty() {
        return Err(BootstrapError::Drift { changed });
    }
    if !unknown.is_empty() {
        return Err(BootstrapError::UnknownApplied { unknown });
    }
    Ok(())
}

/// The migrations the ledger does not record.
pub fn pending<'a>(set: &'a MigrationSet, ledger: &Ledger) -> Vec<&'a Migration> {
    set.iter()
        .filter(|m| ledger.migration(m.version).is_none())
        .collect()
}

/// "line N" for an error position (a character offset) in `sql`.
fn location(sql: &str, e: &tokio_postgres::Error) -> String {
    use tokio_postgres::error::ErrorPosition;
    match e.as_db_error().and_then(|d| d.position()) {
        Some(ErrorPosition::Original(pos)) => {
            let line = sql.chars().take(*pos as usize).filter(|&c| c == '\n').count() + 1;
            format!(" at line {line}")
        }
        _ => String::new(),
    }
}

async fn apply_migration(s: &Settings, client: &mut Client, m: &Migration) -> Result<i64, BootstrapError> {
    let started = Instant::now();
    let fail = |e: &tokio_postgres::Error| BootstrapError::Migration {
        migration: m.name.clone(),
        location: location(&m.sql, e),
        detail: describe_pg(e),
    };
    match &m.target {
        Target::Connected => {
            let tx = client.transaction().await.map_err(|e| fail(&e))?;
            tx.batch_execute(&m.sql).await.map_err(|e| fail(&e))?;
            let ms = started.elapsed().as_millis() as i64;
            ledger::record_migration(&tx, m.version, &m.name, &m.checksum, &m.target.kind(), ms)
                .await
                .map_err(|e| fail(&e))?;
            tx.commit().await.map_err(|e| fail(&e))?;
            Ok(ms)
        }
        Target::Database { name, owner } => {
            let exists: bool = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)",
                    &[name],
                )
                .await
                .map_err(|e| fail(&e))?
                .get(0);
            if !exists {
                let mut sql = format!("CREATE DATABASE {}", extensions::quote_ident(name));
                if let Some(o) = owner {
                    sql.push_str(&format!(" OWNER {}", extensions::quote_ident(o)));
                }
                client.batch_execute(&sql).await.map_err(|e| fail(&e))?;
            }
            let mut other = s.connect_to(name).await?;
            let tx = other.transaction().await.map_err(|e| fail(&e))?;
            tx.batch_execute(&m.sql).await.map_err(|e| fail(&e))?;
            tx.commit().await.map_err(|e| fail(&e))?;
            drop(other);
            let ms = started.elapsed().as_millis() as i64;
            ledger::record_migration(&*client, m.version, &m.name, &m.checksum, &m.target.kind(), ms)
                .await
                .map_err(|e| fail(&e))?;
            Ok(ms)
        }
    }
}

/// Statement logging off for the current transaction: secrets never reach the server log.
/// pg_stat_statements is told not to track it either: it would keep the
/// statement text (a password verifier) in its query texts file.
const QUIET_LOGGING: &str = "SET LOCAL log_statement = 'none'; SET LOCAL log_min_duration_statement = -1; \
     SET LOCAL log_min_error_statement = 'panic'; SET LOCAL pg_stat_statements.track = 'none'; \
     SET LOCAL pg_stat_statements.track_utility = off";

async fn apply_secrets(
    client: &mut Client,
    set: &SecretSet,
    d: &secrets::SecretDecisions,
    database: &str,
) -> Result<SecretsReport, BootstrapError> {
    let mut report = SecretsReport {
        unchanged: d.unchanged.clone(),
        without_password: d.without_password.clone(),
        ..Default::default()
    };
    for (role, source) in &d.set {
        let secret = &set
            .passwords
            .iter()
            .find(|p| &p.0 == role)
            .expect("decided from this set")
            .2;
        let err = |e: tokio_postgres::Error| BootstrapError::Secret {
            what: format!("the password of role {role}"),
            detail: describe_pg(&e),
        };
        let verifier = secrets::scram_verifier(secret.expose());
        let tx = client.transaction().await.map_err(err)?;
        tx.batch_execute(QUIET_LOGGING).await.map_err(err)?;
        tx.batch_execute(&format!(
            "ALTER ROLE {} PASSWORD {}",
            extensions::quote_ident(role),
            postgres_protocol::escape::escape_literal(&verifier)
        ))
        .await
        .map_err(err)?;
        ledger::record_secret(&tx, role, &source.describe())
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        report.set.push((role.clone(), source.describe()));
    }
    if let Some((path, secret)) = &set.jwt {
        if d.jwt_to_set() {
            let err = |e: tokio_postgres::Error| BootstrapError::Secret {
                what: "app.settings.jwt_secret".into(),
                detail: describe_pg(&e),
            };
            let db = extensions::quote_ident(database);
            let tx = client.transaction().await.map_err(err)?;
            tx.batch_execute(QUIET_LOGGING).await.map_err(err)?;
            let exp = set.jwt_exp.to_string();
            tx.execute(
                "SELECT set_config('app.settings.jwt_secret', $1, true), set_config('app.settings.jwt_exp', $2, true)",
                &[&secret.expose(), &exp],
            )
            .await
            .map_err(err)?;
            tx.batch_execute(&format!(
                "ALTER DATABASE {db} SET app.settings.jwt_secret FROM CURRENT; \
                 ALTER DATABASE {db} SET app.settings.jwt_exp FROM CURRENT"
            ))
            .await
            .map_err(err)?;
            ledger::record_secret(
                &tx,
                "app.settings.jwt_secret",
                &format!("file {}", path.display()),
            )
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            report.jwt = Some(JwtStatus::Set);
        } else {
            report.jwt = Some(JwtStatus::Unchanged);
        }
    }
    Ok(report)
}

/// Apply everything pending. See the module documentation for the steps.
pub async fn apply(s: &Settings, progress: &Progress) -> Result<ApplyReport, BootstrapError> {
    let mut client = s.connect().await?;
    let f = facts(&client).await?;
    if f.in_recovery && !wait_until_primary(&client, s.wait_for_primary).await? {
        return Ok(ApplyReport::replica());
    }
    if !f.superuser {
        return Err(BootstrapError::NotSuperuser { role: f.user });
    }
    let secret_set = SecretSet::read(&s.secrets)?;
    extensions::refuse_unknown(&client, &s.extensions).await?;
    // Taking the lock writes nothing (and is released when the session ends,
    // also when this process dies). Whoever held it before may have changed
    // everything: all state is read after it.
    client
        .query_typed(
            "SELECT pg_advisory_lock($1)",
            &[(&LOCK_KEY, tokio_postgres::types::Type::INT8)],
        )
        .await
        .map_err(query_err("taking the bootstrap's advisory lock"))?;
    // Everything that can fail is checked before the first write.
    let led = ledger::read(&client).await?;
    let s = &s.clone().with_recorded_selection(&led)?;
    let states = extensions::server_states(&client, &s.extensions.create).await?;
    let missing = extensions::missing_required(&s.extensions, &states);
    if !missing.is_empty() {
        return Err(BootstrapError::RequiredExtensionMissing { names: missing });
    }
    let preloaded = extensions::preloaded(&client).await?;
    let not_preloaded: Vec<String> = extensions::decide(&s.extensions, &states, &led, &preloaded)
        .iter()
        .filter_map(|a| match a {
            ExtensionAction::NeedsPreload { name, library, .. } if s.extensions.is_required(name) => {
                Some(format!("{name} ({})", extensions::preload_reason(library)))
            }
            _ => None,
        })
        .collect();
    if !not_preloaded.is_empty() {
        return Err(BootstrapError::RequiredExtensionNotPreloaded { names: not_preloaded });
    }
    verify_ledger(s, &led)?;
    let digests = roles::function_digests(&client).await?;
    let changed = roles::changed_functions(&digests, &led);
    if !changed.is_empty() && !s.accept_function_changes {
        return Err(BootstrapError::FunctionDrift { changed });
    }
    ledger::ensure(&client, led.exists).await?;
    let mut led = ledger::read(&client).await?;

    let mut applied = Vec::new();
    for m in pending(&s.migrations, &led) {
        progress.println(format!("applying {} ...", m.name));
        let ms = apply_migration(s, &mut client, m).await?;
        applied.push(AppliedStep {
            name: m.name.clone(),
            duration_ms: ms,
        });
    }

    // The contract's roles, as the contract says, every run.
    let roles = roles::establish(&mut client, f.server_version_num).await?;

    // The functions' definitions: after this binary's migrations, what they
    // defined is the contract; accepted changes are recorded as such.
    let digests = roles::function_digests(&client).await?;
    if !changed.is_empty() {
        roles::record_functions(&client, &digests, &led, true, "accepted").await?;
        for c in &changed {
            ledger::record_event(&client, "function_accepted", c, "apply --accept-function-changes")
                .await
                .map_err(query_err("recording an accepted function"))?;
        }
        led = ledger::read(&client).await?;
    }
    let recorded = roles::record_functions(&client, &digests, &led, !applied.is_empty(), "applied").await?;

    // Migrations may create extensions and change the ledger: re-read only then.
    let (led, states) = if applied.is_empty() && changed.is_empty() {
        (led, states)
    } else {
        (
            ledger::read(&client).await?,
            extensions::server_states(&client, &s.extensions.create).await?,
        )
    };
    let mut actions = extensions::decide(&s.extensions, &states, &led, &preloaded);
    extensions::apply(&mut client, &s.extensions, &mut actions).await?;

    let decisions = secrets::decide(&client, &secret_set).await?;
    let secrets = apply_secrets(&mut client, &secret_set, &decisions, &f.database).await?;

    // What this run was asked for, so that a bare check/status/apply knows it.
    let recorded_selection = record_selection(&client, s, &led).await?;

    client
        .query_typed(
            "SELECT pg_advisory_unlock($1)",
            &[(&LOCK_KEY, tokio_postgres::types::Type::INT8)],
        )
        .await
        .map_err(query_err("releasing the advisory lock"))?;

    let wrote = !applied.is_empty()
        || !roles.is_empty()
        || recorded > 0
        || !changed.is_empty()
        || recorded_selection
        || actions.iter().any(ExtensionAction::writes)
        || !secrets.set.is_empty()
        || secrets.jwt == Some(JwtStatus::Set);
    Ok(ApplyReport {
        outcome: if wrote {
            Outcome::Applied
        } else {
            Outcome::NothingToDo
        },
        applied,
        roles,
        functions_accepted: changed,
        selection_recorded: recorded_selection,
        extensions: actions,
        secrets,
    })
}

/// Record the extension selection and the extra migrations of this run
/// when they differ from what the ledger holds. Returns whether it wrote.
async fn record_selection(client: &Client, s: &Settings, led: &Ledger) -> Result<bool, BootstrapError> {
    let mut want = vec![(SELECTION_EXTENSIONS, s.extensions.to_json())];
    if let Some(dir) = &s.extra_dir {
        let names: Vec<String> = s
            .migrations
            .iter()
            .filter(|m| m.origin != "embedded")
            .map(|m| m.name.clone())
            .collect();
        want.push((
            SELECTION_EXTRA,
            serde_json::json!({ "dir": dir.display().to_string(), "migrations": names }),
        ));
    }
    let mut wrote = false;
    for (key, value) in want {
        if led.selection.get(key) != Some(&value) {
            ledger::record_selection(client, key, &value)
                .await
                .map_err(query_err("recording the selection"))?;
            wrote = true;
        }
    }
    Ok(wrote)
}

/// What `apply` would do, without writing anything.
pub async fn plan(s: &Settings) -> Result<PlanReport, BootstrapError> {
    let client = s.connect().await?;
    let f = facts(&client).await?;
    let led = ledger::read(&client).await?;
    let s = &s.clone().with_recorded_selection(&led)?;
    verify_ledger(s, &led)?;
    let changed = roles::changed_functions(&roles::function_digests(&client).await?, &led);
    if !changed.is_empty() {
        return Err(BootstrapError::FunctionDrift { changed });
    }
    let role_changes = roles::inspect(&client)
        .await?
        .iter()
        .map(roles::RoleDrift::describe)
        .collect();
    let states = extensions::server_states(&client, &s.extensions.create).await?;
    let preloaded = extensions::preloaded(&client).await?;
    let secret_set = SecretSet::read(&s.secrets)?;
    let decisions = if f.superuser {
        secrets::decide(&client, &secret_set).await?
    } else {
        return Err(BootstrapError::NotSuperuser { role: f.user });
    };
    Ok(PlanReport {
        replica: f.in_recovery,
        migrations: pending(&s.migrations, &led)
            .iter()
            .map(|m| m.name.clone())
            .collect(),
        role_changes,
        extensions: extensions::decide(&s.extensions, &states, &led, &preloaded)
            .into_iter()
            .filter(|a| !matches!(a, ExtensionAction::Done { .. }))
            .collect(),
        missing_required: extensions::missing_required(&s.extensions, &states),
        passwords_to_set: decisions
            .set
            .iter()
            .map(|(r, src)| (r.clone(), src.describe()))
            .collect(),
        jwt_to_set: decisions.jwt_to_set(),
        without_password: decisions.without_password,
    })
}

/// The ledger and what is pending, read-only; works on replicas too.
pub async fn status(s: &Settings) -> Result<StatusReport, BootstrapError> {
    let client = s.connect().await?;
    let f = facts(&client).await?;
    let led = ledger::read(&client).await?;
    let s = &s.clone().with_recorded_selection(&led)?;
    let mut problems = match verify_ledger(s, &led) {
        Ok(()) => vec![],
        Err(e) => vec![e.to_string()],
    };
    let changed = roles::changed_functions(&roles::function_digests(&client).await?, &led);
    if !changed.is_empty() {
        problems.push(BootstrapError::FunctionDrift { changed }.to_string());
    }
    if led.exists {
        problems.extend(
            roles::inspect(&client)
                .await?
                .iter()
                .map(roles::RoleDrift::describe),
        );
    }
    let states = extensions::server_states(&client, &s.extensions.create).await?;
    let preloaded = extensions::preloaded(&client).await?;
    let actions = extensions::decide(&s.extensions, &states, &led, &preloaded);
    let pending_extensions = actions
        .iter()
        .filter_map(|a| a.pending_name().map(str::to_string))
        .collect();
    let warnings = actions
        .iter()
        .filter_map(|a| match a {
            ExtensionAction::NeedsPreload { name, library, .. } => Some(format!(
                "extension {name} is pending: {}",
                extensions::preload_reason(library)
            )),
            _ => None,
        })
        .collect();
    Ok(StatusReport {
        in_recovery: f.in_recovery,
        pending_migrations: pending(&s.migrations, &led)
            .iter()
            .map(|m| m.name.clone())
            .collect(),
        ledger: led,
        pending_extensions,
        warnings,
        problems,
        tool_version: crate::TOOL_VERSION.into(),
    })
}

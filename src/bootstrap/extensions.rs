//! The extensions to create at bootstrap: configurable (`[extensions]` in
//! the configuration, `--extensions` on the command line), the contract's
//! list by default. They are not plain migrations, because what an image
//! holds varies:
//!
//! - installed in the image → `CREATE EXTENSION` (in schema `extensions`
//!   unless the extension fixes its own schema, dependencies with CASCADE),
//!   in its own transaction with its ledger row; then what the contract
//!   grants on it (pgsodium's roles);
//! - already created (e.g. by Spilo's post-init) → recorded as `present`;
//! - not installed and required → the run fails before it writes anything,
//!   naming the extension;
//! - not installed and optional → reported, recorded as `pending`, and
//!   created by a later run (e.g. at the next promotion) once the image has it.
//!
//! An extension the bootstrap created and someone dropped since is not
//! re-created behind their back (`check` reports it).

use super::error::{BootstrapError, describe_pg, query_err};
use super::ledger::{self, ExtensionStatus, Ledger};
use serde::Serialize;
use std::collections::BTreeMap;
use tokio_postgres::Client;

/// Which extensions to create, and which of them must be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionPlan {
    pub create: Vec<String>,
    pub required: Vec<String>,
    /// Extension → the library that must be in `shared_preload_libraries`.
    pub preload: BTreeMap<String, String>,
    /// Where `create` came from (for messages), and whether its names are
    /// checked against what exists (a list typed on the command line is;
    /// the image's configuration names what the image was built with).
    pub origin: ListOrigin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListOrigin {
    Configuration,
    CommandLine,
    /// What the last `apply` recorded in the ledger.
    Ledger,
}

impl std::fmt::Display for ListOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Configuration => "the configuration's [extensions] create",
            Self::CommandLine => "--extensions",
            Self::Ledger => "the selection recorded by the last apply",
        })
    }
}

impl ExtensionPlan {
    pub fn from_config(cfg: &super::config::Extensions) -> Self {
        Self {
            create: cfg.create.clone(),
            required: cfg.required.clone(),
            preload: cfg.preload.clone(),
            origin: ListOrigin::Configuration,
        }
    }

    /// `--extensions a,b,c`: those are created; the configured `required`
    /// list still applies to the ones named. A list that names nothing
    /// (`''`, `','`) is refused: it would be recorded and used by every
    /// later run.
    pub fn with_list(&self, list: &str) -> Result<Self, BootstrapError> {
        let create: Vec<String> = list
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if create.is_empty() {
            return Err(BootstrapError::EmptyExtensionList {
                given: list.to_string(),
            });
        }
        let required = self
            .required
            .iter()
            .filter(|r| create.contains(r))
            .cloned()
            .collect();
        Ok(Self {
            create,
            required,
            preload: self.preload.clone(),
            origin: ListOrigin::CommandLine,
        })
    }

    /// The selection as the ledger records it.
    pub fn to_json(&self) -> serde_json::Value {
        let origin = match self.origin {
            ListOrigin::Configuration => "configuration",
            _ => "command_line",
        };
        serde_json::json!({ "create": self.create, "required": self.required, "origin": origin })
    }

    /// The selection the ledger recorded, when it was an explicit one
    /// (`--extensions`); `None` for the configuration's list, which follows
    /// the image (a new image's configuration may list more).
    pub fn from_json(&self, v: &serde_json::Value) -> Option<Self> {
        if v.get("origin").and_then(|o| o.as_str()) == Some("configuration") {
            return None;
        }
        let list = |k: &str| -> Option<Vec<String>> {
            v.get(k)?
                .as_array()?
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect()
        };
        Some(Self {
            create: list("create")?,
            required: list("required")?,
            preload: self.preload.clone(),
            origin: ListOrigin::Ledger,
        })
    }

    pub fn is_required(&self, name: &str) -> bool {
        self.required.iter().any(|r| r == name)
    }
}

/// What the server knows about one extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    Created {
        schema: String,
        version: String,
    },
    Installed {
        fixed_schema: Option<String>,
        /// The extensions its control file requires (created by CASCADE).
        requires: Vec<String>,
    },
    NotInstalled,
}

/// What a run does (or would do) about one extension.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ExtensionAction {
    /// Create it now.
    Create { name: String, schema: Option<String> },
    /// Already there; record it as present.
    RecordPresent {
        name: String,
        schema: String,
        version: String,
    },
    /// Not installed: record (or keep) it as pending.
    Pending { name: String, newly: bool },
    /// Installed, but its library (or a dependency's) is not in
    /// `shared_preload_libraries`: record (or keep) it as pending.
    NeedsPreload {
        name: String,
        library: String,
        newly: bool,
    },
    /// Created by an earlier run and dropped since: left alone.
    DroppedSinceCreated { name: String },
    /// Nothing to do.
    Done { name: String },
}

impl ExtensionAction {
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Self::Create { .. }
                | Self::RecordPresent { .. }
                | Self::Pending { newly: true, .. }
                | Self::NeedsPreload { newly: true, .. }
        )
    }

    /// Still to be created by a later run.
    pub fn pending_name(&self) -> Option<&str> {
        match self {
            Self::Pending { name, .. } | Self::NeedsPreload { name, .. } | Self::Create { name, .. } => {
                Some(name)
            }
            _ => None,
        }
    }
}

/// The warning for an extension whose library is not preloaded.
pub fn preload_reason(library: &str) -> String {
    format!("shared_preload_libraries must include {library}")
}

/// The libraries in the server's `shared_preload_libraries`.
pub async fn preloaded(client: &Client) -> Result<Vec<String>, BootstrapError> {
    let v: String = client
        .query_typed_one("SELECT current_setting('shared_preload_libraries')", &[])
        .await
        .map_err(query_err("reading shared_preload_libraries"))?
        .get(0);
    Ok(v.split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

/// Names of `plan.create` that no image could have: not available on this
/// server, not in the catalog, not in the contract's list. Each comes with a
/// "did you mean" when a known name is close. Only a list typed on the
/// command line is checked (the configuration names what the image has).
pub async fn unknown_names(client: &Client, plan: &ExtensionPlan) -> Result<Vec<String>, BootstrapError> {
    if plan.origin != ListOrigin::CommandLine {
        return Ok(vec![]);
    }
    let mut known: Vec<String> = client
        .query_typed("SELECT name::text FROM pg_catalog.pg_available_extensions", &[])
        .await
        .map_err(query_err("listing the available extensions"))?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    if let Ok(cat) = crate::catalog::Catalog::embedded() {
        known.extend(cat.iter().map(|e| e.name.clone()));
    }
    known.extend(super::config::DEFAULT_CREATE.iter().map(|s| s.to_string()));
    known.sort();
    known.dedup();
    Ok(plan
        .create
        .iter()
        .filter(|n| !known.contains(n))
        .map(|n| {
            let best = known
                .iter()
                .map(|k| (strsim::jaro_winkler(n, k), k))
                .filter(|(score, _)| *score >= 0.85)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            match best {
                Some((_, k)) => format!("{n} (did you mean {k}?)"),
                None => n.clone(),
            }
        })
        .collect())
}

/// Refuse a list typed on the command line that names an extension no image
/// could have (see [`unknown_names`]); `apply` and `check` both call this
/// before anything else.
pub async fn refuse_unknown(client: &Client, plan: &ExtensionPlan) -> Result<(), BootstrapError> {
    let names = unknown_names(client, plan).await?;
    if names.is_empty() {
        return Ok(());
    }
    Err(BootstrapError::UnknownExtensions {
        origin: plan.origin.to_string(),
        names,
    })
}

/// The server's view of the named extensions.
pub async fn server_states(
    client: &Client,
    names: &[String],
) -> Result<BTreeMap<String, ServerState>, BootstrapError> {
    let rows = client
        .query_typed(
            "SELECT n.name,
                    e.extversion,
                    s.nspname,
                    a.name IS NOT NULL,
                    (SELECT v.schema FROM pg_catalog.pg_available_extension_versions v
                      WHERE v.name = a.name AND v.version = a.default_version),
                    (SELECT coalesce(v.requires::text[], '{}') FROM pg_catalog.pg_available_extension_versions v
                      WHERE v.name = a.name AND v.version = a.default_version)
             FROM unnest($1::text[]) AS n(name)
             LEFT JOIN pg_catalog.pg_extension e ON e.extname = n.name
             LEFT JOIN pg_catalog.pg_namespace s ON s.oid = e.extnamespace
             LEFT JOIN pg_catalog.pg_available_extensions a ON a.name = n.name",
            &[(&names, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await
        .map_err(query_err("looking up the extensions"))?;
    let mut out = BTreeMap::new();
    for r in rows {
        let name: String = r.get(0);
        let version: Option<String> = r.get(1);
        let state = match version {
            Some(version) => ServerState::Created {
                schema: r.get::<_, Option<String>>(2).unwrap_or_default(),
                version,
            },
            None if r.get::<_, bool>(3) => ServerState::Installed {
                fixed_schema: r.get(4),
                requires: r.get::<_, Option<Vec<String>>>(5).unwrap_or_default(),
            },
            None => ServerState::NotInstalled,
        };
        out.insert(name, state);
    }
    Ok(out)
}

/// Required extensions that the image lacks (checked before anything is written).
pub fn missing_required(plan: &ExtensionPlan, states: &BTreeMap<String, ServerState>) -> Vec<String> {
    plan.create
        .iter()
        .filter(|n| plan.is_required(n) && matches!(states.get(*n), Some(ServerState::NotInstalled) | None))
        .cloned()
        .collect()
}

/// Decide, for each configured extension, what to do (`preloaded`: the
/// server's `shared_preload_libraries`).
pub fn decide(
    plan: &ExtensionPlan,
    states: &BTreeMap<String, ServerState>,
    ledger: &Ledger,
    preloaded: &[String],
) -> Vec<ExtensionAction> {
    plan.create
        .iter()
        .map(|name| {
            let row = ledger.extension(name);
            let status = row.map(|r| r.status);
            match states.get(name).unwrap_or(&ServerState::NotInstalled) {
                ServerState::Created { schema, version } => {
                    let same = row.is_some_and(|r| {
                        matches!(r.status, ExtensionStatus::Created | ExtensionStatus::Present)
                            && r.schema.as_deref() == Some(schema)
                            && r.version.as_deref() == Some(version)
                    });
                    if same {
                        ExtensionAction::Done { name: name.clone() }
                    } else {
                        ExtensionAction::RecordPresent {
                            name: name.clone(),
                            schema: schema.clone(),
                            version: version.clone(),
                        }
                    }
                }
                ServerState::Installed { .. } if status == Some(ExtensionStatus::Created) => {
                    ExtensionAction::DroppedSinceCreated { name: name.clone() }
                }
                ServerState::Installed {
                    fixed_schema,
                    requires,
                } => {
                    let missing_lib = std::iter::once(name)
                        .chain(requires.iter())
                        .filter_map(|n| plan.preload.get(n))
                        .find(|lib| !preloaded.contains(lib));
                    match missing_lib {
                        Some(library) => ExtensionAction::NeedsPreload {
                            name: name.clone(),
                            library: library.clone(),
                            newly: status != Some(ExtensionStatus::Pending)
                                || row.and_then(|r| r.reason.clone()) != Some(preload_reason(library)),
                        },
                        None => ExtensionAction::Create {
                            name: name.clone(),
                            schema: fixed_schema.is_none().then(|| "extensions".to_string()),
                        },
                    }
                }
                ServerState::NotInstalled => ExtensionAction::Pending {
                    name: name.clone(),
                    newly: status != Some(ExtensionStatus::Pending),
                },
            }
        })
        .collect()
}

/// The contract's grants on what an extension brings with it (pgsodium,
/// supabase_vault, pg_net, pg_cron): one function, defined by migration
/// 0011, a no-op for other extensions and before that migration exists.
const GRANTS: &str = "SELECT extensions.pgha_grant_extension_access($1::text) \
     WHERE to_regprocedure('extensions.pgha_grant_extension_access(text)') IS NOT NULL";

/// The SQL that creates one extension (also used by `plan`).
pub fn create_sql(name: &str, schema: Option<&str>) -> String {
    let ident = quote_ident(name);
    match schema {
        Some(s) => format!(
            "CREATE EXTENSION IF NOT EXISTS {ident} WITH SCHEMA {} CASCADE",
            quote_ident(s)
        ),
        None => format!("CREATE EXTENSION IF NOT EXISTS {ident} CASCADE"),
    }
}

pub fn quote_ident(s: &str) -> String {
    postgres_protocol::escape::escape_identifier(s)
}

/// Carry out the actions that write, each in its own transaction. An
/// optional extension whose creation fails because a library is not
/// preloaded becomes pending (returned, to be reported) instead of failing
/// the run: a first bootstrap must not fail on a server setting.
pub async fn apply(
    client: &mut Client,
    plan: &ExtensionPlan,
    actions: &mut [ExtensionAction],
) -> Result<(), BootstrapError> {
    for a in actions.iter_mut() {
        match a {
            ExtensionAction::Create { name, schema } => match create(client, name, schema.as_deref()).await {
                Ok(()) => {}
                Err(detail) if detail.contains("shared_preload_libraries") && !plan.is_required(name) => {
                    let library = plan
                        .preload
                        .get(name.as_str())
                        .cloned()
                        .unwrap_or_else(|| name.clone());
                    ledger::record_pending(&*client, name, &preload_reason(&library)).await?;
                    *a = ExtensionAction::NeedsPreload {
                        name: name.clone(),
                        library,
                        newly: true,
                    };
                }
                Err(detail) => {
                    return Err(BootstrapError::Extension {
                        name: name.clone(),
                        detail,
                    });
                }
            },
            ExtensionAction::RecordPresent {
                name,
                schema,
                version,
            } => {
                // Found created (e.g. by the base image): the contract's grants, then the record.
                let what = format!("recording extension {name}");
                let tx = client.transaction().await.map_err(query_err(&what))?;
                tx.execute(GRANTS, &[&*name])
                    .await
                    .map_err(query_err(format!("granting access to extension {name}")))?;
                ledger::record_extension(
                    &tx,
                    name,
                    ExtensionStatus::Present,
                    Some(schema),
                    Some(version),
                    None,
                )
                .await
                .map_err(query_err(&what))?;
                tx.commit().await.map_err(query_err(what))?;
            }
            ExtensionAction::Pending { name, newly: true } => {
                ledger::record_pending(&*client, name, "not installed").await?;
            }
            ExtensionAction::NeedsPreload {
                name,
                library,
                newly: true,
            } => {
                ledger::record_pending(&*client, name, &preload_reason(library)).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Create one extension and what the contract grants on it, with its ledger
/// row, in one transaction. Err: the PostgreSQL message.
async fn create(client: &mut Client, name: &str, schema: Option<&str>) -> Result<(), String> {
    let err = |e: tokio_postgres::Error| describe_pg(&e);
    let tx = client.transaction().await.map_err(err)?;
    tx.batch_execute(&create_sql(name, schema)).await.map_err(err)?;
    tx.execute(GRANTS, &[&name]).await.map_err(err)?;
    let row = tx
        .query_one(
            "SELECT s.nspname::text, e.extversion FROM pg_extension e
             JOIN pg_namespace s ON s.oid = e.extnamespace WHERE e.extname = $1",
            &[&name],
        )
        .await
        .map_err(err)?;
    let (s, v): (String, String) = (row.get(0), row.get(1));
    ledger::record_extension(&tx, name, ExtensionStatus::Created, Some(&s), Some(&v), None)
        .await
        .map_err(err)?;
    tx.commit().await.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ExtensionPlan {
        ExtensionPlan {
            create: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            required: vec!["a".into(), "b".into()],
            preload: BTreeMap::new(),
            origin: ListOrigin::Configuration,
        }
    }

    #[test]
    fn list_override_keeps_required_only_for_named() {
        let p = plan().with_list("b, x").unwrap();
        assert_eq!(p.create, vec!["b", "x"]);
        assert_eq!(p.required, vec!["b"]);
        for empty in ["", ",", " , "] {
            let e = plan().with_list(empty).unwrap_err();
            assert!(matches!(e, BootstrapError::EmptyExtensionList { .. }), "{e}");
        }
    }

    #[test]
    fn decisions() {
        let mut states = BTreeMap::new();
        states.insert(
            "a".to_string(),
            ServerState::Created {
                schema: "public".into(),
                version: "1.0".into(),
            },
        );
        states.insert(
            "b".to_string(),
            ServerState::Installed {
                fixed_schema: None,
                requires: vec![],
            },
        );
        states.insert("c".to_string(), ServerState::NotInstalled);
        states.insert(
            "d".to_string(),
            ServerState::Installed {
                fixed_schema: Some("pg_catalog".into()),
                requires: vec!["c".into()],
            },
        );
        assert!(missing_required(&plan(), &states).is_empty());
        let acts = decide(&plan(), &states, &Ledger::default(), &[]);
        assert!(matches!(&acts[0], ExtensionAction::RecordPresent { schema, .. } if schema == "public"));
        assert!(matches!(&acts[1], ExtensionAction::Create { schema: Some(s), .. } if s == "extensions"));
        assert!(matches!(&acts[2], ExtensionAction::Pending { newly: true, .. }));
        assert!(matches!(&acts[3], ExtensionAction::Create { schema: None, .. }));
        // A library that must be preloaded, for the extension or what it requires.
        let mut p = plan();
        p.preload.insert("c".into(), "libc".into());
        let acts = decide(&p, &states, &Ledger::default(), &[]);
        assert!(
            matches!(&acts[3], ExtensionAction::NeedsPreload { library, newly: true, .. } if library == "libc")
        );
        let acts = decide(&p, &states, &Ledger::default(), &["libc".into()]);
        assert!(matches!(&acts[3], ExtensionAction::Create { .. }));
        states.insert("b".to_string(), ServerState::NotInstalled);
        assert_eq!(missing_required(&plan(), &states), vec!["b"]);
    }

    #[test]
    fn create_sql_quotes() {
        assert_eq!(
            create_sql("uuid-ossp", Some("extensions")),
            "CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA \"extensions\" CASCADE"
        );
    }
}

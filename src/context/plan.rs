//! The build plan: which base, which PostgreSQL majors, which extensions at
//! which versions built by which recipe, what the final image must preload
//! and configure. Everything the templates need, decided here; nothing is
//! decided in the templates.

use super::ContextError;
use super::base::{BaseImage, BaseKnowledge, BaseOverrides, DEFAULT_BASE_IMAGE};
use crate::catalog::{BuildKind, Catalog, Preload, SelectRequest, Selected, Smoke};
use crate::hash::Sha256Digest;
use serde::Serialize;
use std::collections::BTreeMap;

pub use crate::contract::layout::{BOOTSTRAP_CONFIG, PGSODIUM_KEY_FILE, SECRETS_DIR, SPILO_DEFAULTS};
/// The Rust toolchain pgrx stages install (rustup, minimal profile).
pub const RUST_TOOLCHAIN: &str = "1.85.0";

/// The bootstrap's defaults are the contract's: the extensions it creates, and
/// those that must exist (PostgreSQL contrib, in every installation).
use crate::bootstrap::config::{DEFAULT_CREATE as CONTRACT_CREATE, DEFAULT_REQUIRED as CONTRIB};

/// Server settings the Supabase contract needs, whatever the selection.
const CONTRACT_SETTINGS: &[(&str, &str)] = &[
    // Realtime reads logical replication.
    ("wal_level", "logical"),
    // Bounded slots and senders (Spilo's own values), and a stuck slot must not fill the volume.
    ("max_replication_slots", "10"),
    ("max_wal_senders", "10"),
    ("max_slot_wal_keep_size", "4GB"),
    ("password_encryption", "scram-sha-256"),
];

/// Parameters Patroni only takes from the DCS (its local configuration is
/// ignored for them): they go under `bootstrap.dcs.postgresql.parameters`.
const DCS_ONLY: &[&str] = &[
    "hot_standby",
    "max_connections",
    "max_locks_per_transaction",
    "max_prepared_transactions",
    "max_replication_slots",
    "max_wal_senders",
    "max_worker_processes",
    "track_commit_timestamp",
    "wal_level",
    "wal_log_hints",
];

/// What to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// None: [`DEFAULT_BASE_IMAGE`].
    pub base_image: Option<String>,
    pub base_overrides: BaseOverrides,
    /// Empty: the base's main major.
    pub pg_majors: Vec<u32>,
    /// `name[@version]` list; None: the default Supabase set.
    pub extensions: Option<Vec<String>>,
    /// Base-provided extensions to build from their pinned source instead.
    pub from_source: Vec<String>,
    /// Set `ENV SPILO_CONFIGURATION` in the image (for plain `docker run`;
    /// deployments that set their own replace it).
    pub embed_spilo_configuration: bool,
}

/// A selected extension's pinned upstream source.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedSource {
    pub url: String,
    pub sha256: Sha256Digest,
    /// The file's name in the context's `sources/` directory.
    pub file_name: String,
    pub tag: Option<String>,
    pub commit: Option<String>,
}

/// One extension of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedExtension {
    pub name: String,
    pub version: String,
    /// How it gets into the image: pgxs, sql, pgrx, prebuilt, or base (checked, not built).
    pub recipe: BuildKind,
    /// The builder stage, `ext-<name>` (None for base-provided extensions).
    pub stage: Option<String>,
    /// None for base-provided extensions.
    pub source: Option<PlannedSource>,
    /// Build-time packages besides the compiler and postgresql-server-dev-N.
    pub build_packages: Vec<String>,
    pub runtime_packages: Vec<String>,
    pub make_flags: Vec<String>,
    pub pgrx: Option<String>,
    pub features: Vec<String>,
    /// The library name it is preloaded as, when it is.
    pub preload: Option<String>,
    /// The library name (`$libdir/<library>.so`).
    pub library: String,
    /// For base-provided extensions: the lowest acceptable version.
    pub min_version: Option<String>,
    /// Why this version, when it is not the pinned one.
    pub note: Option<String>,
    /// The catalog's smoke test (carried into the build manifest).
    pub smoke: Option<Smoke>,
}

/// The bootstrap configuration shipped at /etc/pgha/bootstrap.toml.
#[derive(Debug, Clone, Serialize)]
pub struct BootstrapPlan {
    pub config_path: String,
    pub secrets_dir: String,
    pub create: Vec<String>,
    pub required: Vec<String>,
}

/// The pgsodium getkey script, when pgsodium is selected.
#[derive(Debug, Clone, Serialize)]
pub struct GetKeyPlan {
    /// Where the script goes (the catalog's `pgsodium.getkey_script`).
    pub path: String,
    /// The mounted secret it reads.
    pub key_file: String,
}

/// Everything the templates need.
#[derive(Debug, Clone, Serialize)]
pub struct BuildPlan {
    pub tool_version: String,
    pub base: BaseImage,
    /// Sorted.
    pub pg_majors: Vec<u32>,
    pub extensions: Vec<PlannedExtension>,
    /// The full `shared_preload_libraries`: the base's own first (Spilo's
    /// defaults, which must be repeated when the list is set), then what the
    /// selection needs.
    pub preload: Vec<String>,
    /// Server settings for `postgresql.parameters` (local configuration).
    pub local_parameters: BTreeMap<String, String>,
    /// Server settings Patroni takes only from the DCS (`bootstrap.dcs`).
    pub dcs_parameters: BTreeMap<String, String>,
    /// Run-time packages the final image needs, sorted.
    pub runtime_packages: Vec<String>,
    pub bootstrap: BootstrapPlan,
    pub getkey: Option<GetKeyPlan>,
    pub rust_toolchain: String,
    /// Whether the image sets `ENV SPILO_CONFIGURATION` ([`Self::spilo_configuration`]).
    pub embed_spilo_configuration: bool,
    /// Things the user should know (version fallbacks, assumptions).
    pub notes: Vec<String>,
}

impl BuildPlan {
    /// Resolve the base, the majors and the selection into a plan.
    pub fn new(catalog: &Catalog, req: &PlanRequest) -> Result<Self, ContextError> {
        let reference = req.base_image.as_deref().unwrap_or(DEFAULT_BASE_IMAGE);
        let base = BaseImage::resolve(reference, &req.base_overrides)
            .map_err(|m| ContextError::BadBaseImage(reference.to_string(), m))?;
        let mut notes = Vec::new();

        let mut majors = req.pg_majors.clone();
        majors.sort_unstable();
        majors.dedup();
        if majors.is_empty() {
            match base.main_major {
                Some(m) => majors.push(m),
                None => {
                    return Err(ContextError::UnknownBaseNeedsPg {
                        image: base.reference.clone(),
                    });
                }
            }
        }
        if let Some(available) = &base.pg_majors {
            for &m in &majors {
                if !available.contains(&m) {
                    return Err(ContextError::MajorNotInBase {
                        major: m,
                        image: base.reference.clone(),
                        available: format!(
                            "{}-{}",
                            available.first().copied().unwrap_or_default(),
                            available.last().copied().unwrap_or_default()
                        ),
                    });
                }
            }
        }
        match &base.knowledge {
            BaseKnowledge::KnownSpilo { .. } => {}
            BaseKnowledge::SpiloFamily => notes.push(format!(
                "{} is not a Spilo tag this version knows: assuming {}",
                base.reference,
                base.describe()
            )),
            BaseKnowledge::Unknown => notes.push(format!(
                "{} is an unknown base: assuming glibc {}, {}, and that it follows the Spilo contract \
                 (/scripts/post_init.sh, PGDG paths)",
                base.reference,
                base.glibc,
                base.libs
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }

        let selected = catalog.select(&SelectRequest {
            names: req.extensions.clone(),
            pg_majors: majors.clone(),
            base_libs: base.libs.clone(),
        })?;

        for name in &req.from_source {
            let Some(s) = selected.iter().find(|s| &s.extension.name == name) else {
                catalog.get(name)?;
                return Err(ContextError::FromSource {
                    name: name.clone(),
                    reason: "the extension is not in the selection".into(),
                });
            };
            if s.extension.build.kind == BuildKind::Base
                && s.extension.base.as_ref().and_then(|b| b.from_source).is_none()
            {
                return Err(ContextError::FromSource {
                    name: name.clone(),
                    reason: "the catalog has no way to build it (only the base's copy can be used)".into(),
                });
            }
            if s.extension.build.kind != BuildKind::Base {
                notes.push(format!("--from-source {name}: it is built from source anyway"));
            }
        }

        let mut extensions = Vec::new();
        let mut settings: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut add_setting = |k: &str, v: &str, by: &str| -> Result<(), ContextError> {
            match settings.get(k) {
                Some((have, first_by)) if have != v => Err(ContextError::SettingConflict {
                    setting: k.to_string(),
                    wanted: format!("as {have:?} by {first_by} and as {v:?} by {by}"),
                }),
                Some(_) => Ok(()),
                None => {
                    settings.insert(k.to_string(), (v.to_string(), by.to_string()));
                    Ok(())
                }
            }
        };
        for (k, v) in CONTRACT_SETTINGS {
            add_setting(k, v, "the Supabase contract")?;
        }
        let mut preload = base.preload.clone();
        if !preload.iter().any(|p| p == "pg_stat_statements") {
            // The Supabase contract needs it; it is contrib, in every installation.
            preload.push("pg_stat_statements".into());
        }
        let mut getkey = None;

        for s in &selected {
            let e = s.extension;
            let recipe = match e.build.kind {
                BuildKind::Base if req.from_source.contains(&e.name) => e
                    .base
                    .as_ref()
                    .and_then(|b| b.from_source)
                    .unwrap_or(BuildKind::Pgxs),
                k => k,
            };
            if let Some(n) = &s.note {
                notes.push(n.clone());
            }
            let library = e.library().to_string();
            let preloaded = matches!(e.preload, Preload::Required | Preload::WhenUsed);
            if preloaded && !preload.contains(&library) {
                preload.push(library.clone());
            }
            for (k, v) in &e.settings {
                add_setting(k, v, &e.name)?;
            }
            // pgsodium.getkey_script, vault.getkey_script: one script that
            // prints the mounted root key (the catalog gives them one path).
            for (k, path) in &e.settings {
                if !k.ends_with(".getkey_script") {
                    continue;
                }
                match &getkey {
                    Some(GetKeyPlan { path: have, .. }) if have != path => {
                        return Err(ContextError::SettingConflict {
                            setting: k.clone(),
                            wanted: format!(
                                "as {path:?} by {}, but the image's getkey script is {have:?}",
                                e.name
                            ),
                        });
                    }
                    _ => {
                        getkey = Some(GetKeyPlan {
                            path: path.clone(),
                            key_file: PGSODIUM_KEY_FILE.to_string(),
                        })
                    }
                }
            }
            let built = recipe != BuildKind::Base;
            let v = s.version;
            extensions.push(PlannedExtension {
                name: e.name.clone(),
                version: v.version.clone(),
                recipe,
                stage: built.then(|| format!("ext-{}", e.name.to_ascii_lowercase())),
                source: built.then(|| PlannedSource {
                    url: v.source.url.clone(),
                    sha256: v.source.sha256,
                    file_name: format!("{}-{}{}", e.name, v.version, v.source.suffix()),
                    tag: v.source.tag.clone(),
                    commit: v.source.commit.clone(),
                }),
                build_packages: if built {
                    e.build.packages.clone()
                } else {
                    Vec::new()
                },
                runtime_packages: if built {
                    e.build.runtime_packages.clone()
                } else {
                    Vec::new()
                },
                make_flags: e.build.make_flags.clone(),
                pgrx: e.build.pgrx.clone(),
                features: e.build.features.clone(),
                preload: preloaded.then(|| library.clone()),
                library,
                min_version: if built {
                    None
                } else {
                    e.base.as_ref().and_then(|b| b.min_version.clone())
                },
                note: s.note.clone(),
                smoke: e.smoke.clone(),
            });
        }

        let mut runtime_packages: Vec<String> = extensions
            .iter()
            .flat_map(|e| e.runtime_packages.iter().cloned())
            .collect();
        runtime_packages.sort();
        runtime_packages.dedup();

        let (mut local_parameters, mut dcs_parameters) = (BTreeMap::new(), BTreeMap::new());
        for (k, (v, _)) in settings {
            if DCS_ONLY.contains(&k.as_str()) {
                dcs_parameters.insert(k, v);
            } else {
                local_parameters.insert(k, v);
            }
        }
        // An unknown base's own list is unknown unless --base-preload says it:
        // the image's defaults then leave the setting to the base (a
        // Spilo-like base appends its own list), instead of replacing that
        // list with ours; extensions that need preloading wait as pending
        // until the deployment sets the full list.
        if base.is_known() || req.base_overrides.preload.is_some() {
            local_parameters.insert("shared_preload_libraries".into(), preload.join(","));
        } else {
            notes.push(format!(
                "the preload list of {} is unknown (--base-preload LIST gives it): the image's defaults \
                 do not set shared_preload_libraries; a deployment sets it to the base's list followed by {}",
                base.reference,
                preload.join(",")
            ));
        }

        let has = |n: &str| CONTRIB.contains(&n) || extensions.iter().any(|e| e.name == n);
        let create: Vec<String> = CONTRACT_CREATE
            .iter()
            .filter(|n| has(n))
            .map(|n| n.to_string())
            .collect();

        // Required: a missing one fails the bootstrap (the image was built
        // with them). Not those that need a preloaded library: while a
        // deployment's list lacks it they wait as pending (a warning naming
        // the setting) instead of failing the cluster's first bootstrap.
        let needs_preload = |n: &str| extensions.iter().any(|e| e.name == n && e.preload.is_some());
        let required: Vec<String> = create.iter().filter(|n| !needs_preload(n)).cloned().collect();

        Ok(BuildPlan {
            tool_version: crate::TOOL_VERSION.to_string(),
            base,
            pg_majors: majors,
            extensions,
            preload,
            local_parameters,
            dcs_parameters,
            runtime_packages,
            bootstrap: BootstrapPlan {
                config_path: BOOTSTRAP_CONFIG.to_string(),
                secrets_dir: SECRETS_DIR.to_string(),
                required,
                create,
            },
            getkey,
            rust_toolchain: RUST_TOOLCHAIN.to_string(),
            embed_spilo_configuration: req.embed_spilo_configuration,
            notes,
        })
    }

    /// The sources the plan needs (every extension that is built), for the fetch step.
    pub fn sources_needed(&self) -> impl Iterator<Item = (&PlannedExtension, &PlannedSource)> {
        self.extensions
            .iter()
            .filter_map(|e| e.source.as_ref().map(|s| (e, s)))
    }

    /// The catalog entries of the sources the plan needs, for
    /// [`crate::fetch::fetch`] (base-provided extensions need none).
    pub fn selected_for_fetch<'c>(&self, catalog: &'c Catalog) -> Result<Vec<Selected<'c>>, ContextError> {
        self.sources_needed()
            .map(|(e, _)| {
                let extension = catalog.get(&e.name)?;
                let version = extension.require_version(&e.version)?;
                Ok(Selected {
                    extension,
                    version,
                    note: e.note.clone(),
                })
            })
            .collect()
    }

    /// The image's `SPILO_CONFIGURATION` (JSON, which is YAML): the preload
    /// list and settings, merged by Spilo over its generated configuration.
    pub fn spilo_configuration(&self) -> String {
        self.spilo_configuration_value().to_string()
    }

    /// The image's default Patroni configuration (what [`Self::spilo_configuration`]
    /// prints), shipped at [`SPILO_DEFAULTS`] and merged under the deployment's
    /// `SPILO_CONFIGURATION` by the image's `/launch.sh` wrapper.
    pub fn spilo_configuration_value(&self) -> serde_json::Value {
        crate::contract::spilo_configuration(&self.local_parameters, &self.dcs_parameters)
    }
}

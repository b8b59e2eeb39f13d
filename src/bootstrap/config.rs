//! The bootstrap configuration file (TOML), rendered into the image at
//! `/etc/pgha/bootstrap.toml`. Every key is optional; a missing default file
//! means the built-in defaults (which are the contract's). Unknown keys are
//! an error, so a typo cannot silently fall back to a default.

use super::error::BootstrapError;
use crate::contract::layout::SECRETS_DIR;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the image puts the file.
pub use crate::contract::layout::BOOTSTRAP_CONFIG as DEFAULT_PATH;
/// Environment variable naming another file (overridden by `--config`).
pub const ENV_VAR: &str = "PGHA_BOOTSTRAP_CONFIG";

/// The extensions the contract creates at first boot.
pub const DEFAULT_CREATE: &[&str] = &[
    "uuid-ossp",
    "pgcrypto",
    "pgjwt",
    "pg_stat_statements",
    "pgsodium",
    "supabase_vault",
    "pg_graphql",
    "pg_net",
];
/// Those whose absence fails the bootstrap (all are in PostgreSQL's contrib).
pub const DEFAULT_REQUIRED: &[&str] = &["uuid-ossp", "pgcrypto", "pg_stat_statements"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub connection: Connection,
    pub secrets: Secrets,
    pub extensions: Extensions,
}

/// The local server: used for the word `postgres` as the hook's last
/// argument, for the Patroni callbacks, and when no `--dsn` is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Connection {
    pub socket_dir: PathBuf,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    /// After a promotion (on_role_change, or the hook with `postgres`), how
    /// long to wait for the server to leave recovery before giving up
    /// quietly (Patroni calls the callback right after asking for promotion).
    pub promotion_wait_seconds: u64,
    /// Bound on connecting (socket, startup, authentication) when the DSN
    /// gives no `connect_timeout`.
    pub connect_timeout_seconds: u64,
    /// `statement_timeout` of the bootstrap's own sessions (Patroni's
    /// `PGOPTIONS` sets 0 = none; a hook must not hang on a stuck server).
    pub statement_timeout_seconds: u64,
    /// `lock_timeout` of the bootstrap's own sessions (also bounds the wait
    /// for a concurrent run's advisory lock).
    pub lock_timeout_seconds: u64,
    /// Bound on a whole command, client side (a server that stops answering
    /// mid-session cannot enforce its own timeouts).
    pub run_timeout_seconds: u64,
}

impl Default for Connection {
    fn default() -> Self {
        Self {
            socket_dir: PathBuf::from("/run/postgresql"),
            port: 5432,
            user: "postgres".into(),
            dbname: "postgres".into(),
            promotion_wait_seconds: 30,
            connect_timeout_seconds: 10,
            statement_timeout_seconds: 120,
            lock_timeout_seconds: 60,
            run_timeout_seconds: 900,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Secrets {
    /// One file per role, named after the role (e.g. `authenticator`).
    pub dir: PathBuf,
    /// The password for every LOGIN role that has no file of its own. A
    /// relative path is taken inside `dir`.
    pub shared_password_file: PathBuf,
    /// The JWT secret for `app.settings.jwt_secret` (optional). Relative = inside `dir`.
    pub jwt_secret_file: PathBuf,
    /// `app.settings.jwt_exp`, set together with the JWT secret.
    pub jwt_exp: u64,
}

impl Default for Secrets {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(SECRETS_DIR),
            shared_password_file: Path::new(SECRETS_DIR).join("password"),
            jwt_secret_file: Path::new(SECRETS_DIR).join("jwt_secret"),
            jwt_exp: 3600,
        }
    }
}

impl Secrets {
    /// The same layout in another directory (`--secrets-dir`): the shared
    /// password and the JWT secret are then `DIR/password` and `DIR/jwt_secret`.
    pub fn in_dir(&self, dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            shared_password_file: dir.join("password"),
            jwt_secret_file: dir.join("jwt_secret"),
            jwt_exp: self.jwt_exp,
        }
    }

    pub fn shared_path(&self) -> PathBuf {
        self.dir.join(&self.shared_password_file)
    }

    pub fn jwt_path(&self) -> PathBuf {
        self.dir.join(&self.jwt_secret_file)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Extensions {
    /// Created (in schema `extensions` unless the extension fixes its own) by the bootstrap.
    pub create: Vec<String>,
    /// Of those, the ones whose absence from the image is a failure; the
    /// others are recorded as pending and created by a later run.
    pub required: Vec<String>,
    /// Extensions whose library must be in `shared_preload_libraries`
    /// before `CREATE EXTENSION` can work: extension name = library name.
    /// Such an extension is recorded as pending (with a warning naming the
    /// setting) while its library is not preloaded, instead of failing the
    /// bootstrap; the next promotion or `apply` creates it once it is.
    /// Optional in the file: absent means [`default_preload`].
    pub preload: BTreeMap<String, String>,
    /// Members of the default Supabase set the image was built without, and
    /// why (name = reason): `status` and `check` say so, as information.
    pub left_out: BTreeMap<String, String>,
}

/// Which extensions need their library preloaded, from pgha-image's
/// catalog (`preload = "required"`, or `"when-used"`: the image configures
/// pgsodium's server key, which needs it). The image renders the same facts
/// into `[extensions.preload]`.
pub fn default_preload() -> BTreeMap<String, String> {
    use crate::catalog::{Catalog, model::Preload};
    let Ok(catalog) = Catalog::embedded() else {
        return BTreeMap::new();
    };
    catalog
        .iter()
        .filter(|e| !matches!(e.preload, Preload::No))
        .map(|e| (e.name.clone(), e.library().to_string()))
        .collect()
}

impl Default for Extensions {
    fn default() -> Self {
        Self {
            create: DEFAULT_CREATE.iter().map(|s| s.to_string()).collect(),
            required: DEFAULT_REQUIRED.iter().map(|s| s.to_string()).collect(),
            preload: default_preload(),
            left_out: BTreeMap::new(),
        }
    }
}

impl Extensions {
    /// One informational line per default-set member the image lacks.
    pub fn left_out_lines(&self) -> Vec<String> {
        self.left_out
            .iter()
            .map(|(name, why)| format!("note: the image was built without the default set's {name}: {why}"))
            .collect()
    }
}

impl Config {
    /// Load from `explicit` (`--config`), else `$PGHA_BOOTSTRAP_CONFIG`, else
    /// the default path; only a missing *default* file means defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Self, BootstrapError> {
        let env = std::env::var_os(ENV_VAR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        match explicit.map(Path::to_path_buf).or(env) {
            Some(path) => Self::from_file(&path),
            None => match std::fs::metadata(DEFAULT_PATH) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
                _ => Self::from_file(Path::new(DEFAULT_PATH)),
            },
        }
    }

    pub fn from_file(path: &Path) -> Result<Self, BootstrapError> {
        let text = crate::fsutil::read_limited_text(path, crate::fsutil::SMALL_FILE_MAX_BYTES).map_err(
            |source| BootstrapError::ConfigRead {
                path: path.to_path_buf(),
                source,
            },
        )?;
        Self::parse(&text).map_err(|message| BootstrapError::ConfigInvalid {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        for r in &cfg.extensions.required {
            if !cfg.extensions.create.contains(r) {
                return Err(format!(
                    "[extensions] required names {r:?}, which is not in [extensions] create"
                ));
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_defaults_and_documented_example_parses() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        let text = r#"
[connection]
socket_dir = "/run/postgresql"
port = 5432
user = "postgres"
dbname = "postgres"
[secrets]
dir = "/run/secrets/supabase"
shared_password_file = "/run/secrets/supabase/password"
jwt_secret_file = "/run/secrets/supabase/jwt_secret"
[extensions]
create = ["uuid-ossp", "pgcrypto", "pgjwt", "pg_stat_statements", "pgsodium", "supabase_vault", "pg_graphql", "pg_net"]
required = ["uuid-ossp", "pgcrypto", "pg_stat_statements"]
"#;
        assert_eq!(Config::parse(text).unwrap(), Config::default());
    }

    #[test]
    fn preload_defaults_come_from_the_catalog_and_the_file_may_replace_them() {
        let d = Config::default().extensions.preload;
        for e in ["pg_net", "pg_cron", "pgsodium", "supabase_vault"] {
            assert_eq!(d.get(e).map(String::as_str), Some(e), "{d:?}");
        }
        assert!(!d.contains_key("pgjwt"));
        let c = Config::parse("[extensions.preload]\npg_net = \"pg_net\"\n").unwrap();
        assert_eq!(c.extensions.preload.len(), 1);
    }

    #[test]
    fn typos_and_inconsistent_lists_are_errors() {
        let e = Config::parse("[connection]\nsocket_dri = \"/x\"\n").unwrap_err();
        assert!(e.contains("socket_dri"), "{e}");
        let e = Config::parse("[extensions]\ncreate = [\"a\"]\nrequired = [\"b\"]\n").unwrap_err();
        assert!(e.contains("\"b\""), "{e}");
    }

    #[test]
    fn relative_secret_files_are_inside_dir() {
        let s = Config::parse("[secrets]\ndir = \"/s\"\nshared_password_file = \"pw\"\n")
            .unwrap()
            .secrets;
        assert_eq!(s.shared_path(), PathBuf::from("/s/pw"));
        assert_eq!(s.jwt_path(), PathBuf::from("/run/secrets/supabase/jwt_secret"));
        let moved = s.in_dir(Path::new("/t"));
        assert_eq!(moved.shared_path(), PathBuf::from("/t/password"));
        assert_eq!(moved.jwt_path(), PathBuf::from("/t/jwt_secret"));
    }
}

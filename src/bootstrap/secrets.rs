//! Secrets from files (Spilo strips the hook's environment): one file per
//! LOGIN role in the secrets directory, named after the role, falling back to
//! one shared password file; and an optional JWT secret for
//! `app.settings.jwt_secret`.
//!
//! How they stay secret:
//! - a password is turned into a SCRAM-SHA-256 verifier here, in the client;
//!   only the verifier is sent (`ALTER ROLE … PASSWORD 'SCRAM-SHA-256$…'`),
//!   so the cleartext cannot reach the server's log or `pg_stat_activity`;
//! - the JWT secret travels as a bind parameter of `set_config()` and is
//!   stored with `ALTER DATABASE … SET … FROM CURRENT`: no quoting of the
//!   value, whatever characters it holds; statement logging is switched off
//!   for that transaction;
//! - [`Secret`] has no `Display`, and its `Debug` prints `***`; the ledger
//!   records only which file a secret came from and when it was set.
//!
//! Idempotence: a role whose stored verifier already matches its secret is
//! left alone (no new salt, no catalog write), so a re-run changes nothing.

use super::config::Secrets as SecretsConfig;
use super::error::BootstrapError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The contract's LOGIN roles whose password comes from a secret. `postgres`
/// is not among them: in Spilo its password belongs to Patroni.
pub const LOGIN_ROLES: &[&str] = &[
    "supabase_admin",
    "authenticator",
    "supabase_auth_admin",
    "supabase_storage_admin",
    "supabase_functions_admin",
    "supabase_replication_admin",
    "supabase_read_only_user",
    "pgbouncer",
    "pgha_monitor",
];

/// A secret value. Deliberately not `Display`; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Where a role's password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    RoleFile(PathBuf),
    SharedFile(PathBuf),
}

impl PasswordSource {
    /// What the ledger and the report say about it (a path, never the value).
    pub fn describe(&self) -> String {
        match self {
            PasswordSource::RoleFile(p) => format!("file {}", p.display()),
            PasswordSource::SharedFile(p) => format!("shared file {}", p.display()),
        }
    }
}

/// Everything read from the secrets directory, before touching the database.
#[derive(Debug, Clone, Default)]
pub struct SecretSet {
    pub passwords: Vec<(String, PasswordSource, Secret)>,
    /// LOGIN roles with neither their own file nor a shared one.
    pub without: Vec<String>,
    pub jwt: Option<(PathBuf, Secret)>,
    pub jwt_exp: u64,
}

/// The largest secret file read (a password, a JWT secret or a key is far
/// smaller): a bigger one is refused before it fills the memory.
pub const SECRET_MAX_BYTES: u64 = 64 * 1024;

/// Read a secret file: `None` when it does not exist; a trailing newline (as
/// `echo` writes) is not part of the secret. A symbolic link whose target is
/// missing is not "absent" but a broken secret mount: an error. Only a
/// regular file of at most [`SECRET_MAX_BYTES`] is read (a FIFO or a device
/// could block or never end); anything else is exit 4, as a broken mount.
pub fn read_secret(path: &Path) -> Result<Option<Secret>, BootstrapError> {
    use crate::fsutil::{BoundedReadError, read_regular_bounded};
    let invalid = |problem: &str| BootstrapError::SecretInvalid {
        path: path.to_path_buf(),
        problem: problem.into(),
    };
    let bytes = match read_regular_bounded(path, SECRET_MAX_BYTES) {
        Ok(b) => b,
        Err(BoundedReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return match std::fs::read_link(path) {
                Ok(target) => Err(BootstrapError::SecretDangling {
                    path: path.to_path_buf(),
                    target,
                }),
                Err(_) => Ok(None),
            };
        }
        Err(BoundedReadError::Io(source)) => {
            return Err(BootstrapError::SecretRead {
                path: path.to_path_buf(),
                source,
            });
        }
        Err(e) => {
            return Err(BootstrapError::SecretUnusable {
                path: path.to_path_buf(),
                problem: e.to_string(),
            });
        }
    };
    let mut text = String::from_utf8(bytes).map_err(|_| invalid("not valid UTF-8"))?;
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    if text.is_empty() {
        return Err(invalid("empty"));
    }
    if text.contains('\0') {
        return Err(invalid("holding a NUL byte, which PostgreSQL cannot store"));
    }
    Ok(Some(Secret(text)))
}

impl SecretSet {
    pub fn read(cfg: &SecretsConfig) -> Result<Self, BootstrapError> {
        let shared_path = cfg.shared_path();
        let shared = read_secret(&shared_path)?;
        let mut set = SecretSet {
            jwt_exp: cfg.jwt_exp,
            ..Default::default()
        };
        for role in LOGIN_ROLES {
            let own = cfg.dir.join(role);
            if let Some(s) = read_secret(&own)? {
                set.passwords
                    .push((role.to_string(), PasswordSource::RoleFile(own), s));
            } else if let Some(s) = &shared {
                set.passwords.push((
                    role.to_string(),
                    PasswordSource::SharedFile(shared_path.clone()),
                    s.clone(),
                ));
            } else {
                set.without.push(role.to_string());
            }
        }
        let jwt_path = cfg.jwt_path();
        set.jwt = read_secret(&jwt_path)?.map(|s| (jwt_path, s));
        Ok(set)
    }
}

/// A new SCRAM-SHA-256 verifier for `password` (random salt, 4096
/// iterations, SASLprep as PostgreSQL does). Contains only base64, `$`, `:`
/// and digits: safe inside an SQL string literal.
pub fn scram_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// Whether a stored `rolpassword` (SCRAM verifier or md5 hash) is the one of
/// `password` for `role`.
pub fn verifier_matches(stored: &str, password: &str, role: &str) -> bool {
    if stored.starts_with("md5") {
        return postgres_protocol::password::md5(password.as_bytes(), role) == stored;
    }
    let Some(rest) = stored.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    // SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
    let Some((iter_salt, keys)) = rest.split_once('$') else {
        return false;
    };
    let (Some((iters, salt)), Some((stored_key, server_key))) =
        (iter_salt.split_once(':'), keys.split_once(':'))
    else {
        return false;
    };
    let (Ok(iters), Ok(salt), Ok(stored_key), Ok(server_key)) = (
        iters.parse::<u32>(),
        B64.decode(salt),
        B64.decode(stored_key),
        B64.decode(server_key),
    ) else {
        return false;
    };
    let prepared = match stringprep::saslprep(password) {
        Ok(p) => p.into_owned().into_bytes(),
        Err(_) => password.as_bytes().to_vec(),
    };
    let salted = hi(&prepared, &salt, iters);
    let client_key = hmac(&salted, b"Client Key");
    let my_stored: [u8; 32] = Sha256::digest(client_key).into();
    let my_server = hmac(&salted, b"Server Key");
    my_stored[..] == stored_key[..] && my_server[..] == server_key[..]
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any size");
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 with one block (RFC 5802's Hi()).
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(password).expect("HMAC takes keys of any size");
    m.update(salt);
    m.update(&[0, 0, 0, 1]);
    let mut prev: [u8; 32] = m.finalize().into_bytes().into();
    let mut out = prev;
    for _ in 1..iterations {
        prev = hmac(password, &prev);
        for (o, p) in out.iter_mut().zip(prev.iter()) {
            *o ^= p;
        }
    }
    out
}

/// What the database holds against the secret files, read once: the one
/// decision `apply` (what to set), `plan` (what it would set) and `check`
/// (whether the database holds the files' secrets) all take.
#[derive(Debug, Default)]
pub struct SecretDecisions {
    /// Roles whose stored password is not their secret, with its source.
    pub set: Vec<(String, PasswordSource)>,
    /// Roles whose stored verifier matches their secret.
    pub unchanged: Vec<String>,
    /// LOGIN roles without a secret file that have no password.
    pub without_password: Vec<String>,
    /// With a JWT secret file: whether the database's `app.settings.jwt_secret`
    /// and `app.settings.jwt_exp` are the file's secret and the configured expiry.
    pub jwt_matches: Option<bool>,
}

impl SecretDecisions {
    /// A JWT secret file exists and the database does not hold it (or its expiry).
    pub fn jwt_to_set(&self) -> bool {
        self.jwt_matches == Some(false)
    }
}

/// Compare the secret files with the database (reads only; secrets are
/// compared here, never sent or shown).
pub async fn decide(
    client: &tokio_postgres::Client,
    set: &SecretSet,
) -> Result<SecretDecisions, BootstrapError> {
    use super::error::query_err;
    let roles: Vec<String> = set
        .passwords
        .iter()
        .map(|p| p.0.clone())
        .chain(set.without.iter().cloned())
        .collect();
    let rows = client
        .query_typed(
            "SELECT rolname::text, rolpassword FROM pg_catalog.pg_authid WHERE rolname = ANY($1)",
            &[(&roles, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await
        .map_err(query_err("reading the roles' passwords"))?;
    let stored = |role: &str| -> Option<Option<String>> {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == role)
            .map(|r| r.get(1))
    };
    let mut d = SecretDecisions::default();
    for (role, source, secret) in &set.passwords {
        match stored(role) {
            Some(Some(v)) if verifier_matches(&v, secret.expose(), role) => d.unchanged.push(role.clone()),
            _ => d.set.push((role.clone(), source.clone())),
        }
    }
    for role in &set.without {
        if matches!(stored(role), Some(None) | None) {
            d.without_password.push(role.clone());
        }
    }
    if let Some((_, secret)) = &set.jwt {
        let row = client
            .query_typed_opt(
                "SELECT setconfig FROM pg_catalog.pg_db_role_setting
                 WHERE setrole = 0 AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .map_err(query_err("reading the database settings"))?;
        let current: Vec<String> = row.and_then(|r| r.get(0)).unwrap_or_default();
        let want_secret = format!("app.settings.jwt_secret={}", secret.expose());
        let want_exp = format!("app.settings.jwt_exp={}", set.jwt_exp);
        d.jwt_matches = Some(current.contains(&want_secret) && current.contains(&want_exp));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_round_trip_with_awkward_passwords() {
        for pw in [
            "simple",
            "it's \"quoted\" \\ back\\slash",
            "ünïcødé €",
            "ｆｕｌｌ width",
            "trailing space ",
        ] {
            let v = scram_verifier(pw);
            assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
            assert!(!v.contains('\''), "{v}");
            assert!(verifier_matches(&v, pw, "r"), "{pw:?}");
            assert!(!verifier_matches(&v, &format!("{pw}x"), "r"));
        }
        assert!(!verifier_matches("garbage", "x", "r"));
    }

    #[test]
    fn md5_hashes_are_recognised() {
        // md5('secret' || 'alice'), as PostgreSQL stores it.
        let stored = "md54a0a68b43b6cd5cf266fa02f196e2371";
        assert_eq!(stored, postgres_protocol::password::md5(b"secret", "alice"));
        let stored = stored.to_string();
        assert!(verifier_matches(&stored, "secret", "alice"));
        assert!(!verifier_matches(&stored, "secret", "bob"));
    }

    #[test]
    fn files_per_role_then_shared_and_debug_hides() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("authenticator"), "a'b\\c\n").unwrap();
        std::fs::write(dir.path().join("password"), "shared-pw\r\n").unwrap();
        std::fs::write(dir.path().join("jwt_secret"), "jwt'\"\\").unwrap();
        let cfg = SecretsConfig::default().in_dir(dir.path());
        let set = SecretSet::read(&cfg).unwrap();
        let auth = set.passwords.iter().find(|p| p.0 == "authenticator").unwrap();
        assert_eq!(auth.2.expose(), "a'b\\c");
        assert!(matches!(auth.1, PasswordSource::RoleFile(_)));
        let pgb = set.passwords.iter().find(|p| p.0 == "pgbouncer").unwrap();
        assert_eq!(pgb.2.expose(), "shared-pw");
        assert!(matches!(pgb.1, PasswordSource::SharedFile(_)));
        assert!(set.without.is_empty());
        assert_eq!(set.jwt.as_ref().unwrap().1.expose(), "jwt'\"\\");
        let dbg = format!("{set:?}");
        assert!(!dbg.contains("shared-pw") && !dbg.contains("a'b"), "{dbg}");

        std::fs::remove_file(dir.path().join("password")).unwrap();
        let set = SecretSet::read(&cfg).unwrap();
        assert_eq!(set.passwords.len(), 1);
        assert_eq!(set.without.len(), LOGIN_ROLES.len() - 1);

        std::fs::write(dir.path().join("password"), "\n").unwrap();
        let e = SecretSet::read(&cfg).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }
}

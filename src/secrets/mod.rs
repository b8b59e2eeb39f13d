//! `pgha-image secrets`: every secret file a cluster and its Supabase API
//! services need, made at once, consistent with each other.
//!
//! ```text
//! cluster.toml ──► members, HAProxy addresses, ports
//! /dev/urandom ──► passwords, jwt_secret, pgsodium_root_key ──► anon / service_role JWTs (HS256)
//! rcgen        ──► cluster CA ──► one server certificate per member
//!                                          └─► DIR (temporary sibling, renamed into place)
//! ```
//!
//! `DIR` is what every member mounts at
//! [`crate::manifests::render::SECRETS_MOUNT`] (the spec's `secrets_dir`):
//! the files the image's bootstrap reads (`password` or one file per LOGIN
//! role, `jwt_secret`, `pgsodium_root_key`), the compose `env_file`s of
//! Patroni ([`PATRONI_ENV`]) and HAProxy ([`HAPROXY_ENV`]), the API keys,
//! `api.env` for the Supabase API services, the CA and each member's
//! certificate and key. Rendered deployments name these files, never their
//! values.
//!
//! Every file belongs to root and the image's `postgres` group, mode 0440
//! (PostgreSQL accepts a root-owned key readable by its group); `ca.key`
//! is root's alone (0400) and signs certificates only: keep it off the
//! VMs. Nothing is world-readable. An existing non-empty `DIR` is never
//! replaced without `force`, and then whole: a run that fails leaves it as
//! it was.

mod error;
pub mod jwt;
pub mod tls;

pub use error::SecretsError;

use crate::bootstrap::secrets::LOGIN_ROLES;
use crate::engine::Engine;
use crate::manifests::render::SECRETS_MOUNT;
use crate::manifests::spec::{self, HaproxyPlacement, Spec};
use serde::Serialize;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The shared password of the Supabase LOGIN roles (the image's bootstrap reads it).
pub const PASSWORD: &str = "password";
pub const JWT_SECRET: &str = "jwt_secret";
pub const PGSODIUM_ROOT_KEY: &str = "pgsodium_root_key";
/// Patroni's passwords, for the member's compose `env_file`.
pub const PATRONI_ENV: &str = "patroni.env";
/// HAProxy's stats login, for its compose `env_file`.
pub const HAPROXY_ENV: &str = "haproxy.env";
/// The Supabase API services' environment.
pub const API_ENV: &str = "api.env";
pub const ANON_KEY: &str = "anon_key";
pub const SERVICE_ROLE_KEY: &str = "service_role_key";
pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
/// Per-member certificates: `tls/<member>.crt` and `tls/<member>.key`.
pub const TLS_DIR: &str = "tls";

/// The variables of [`PATRONI_ENV`] and [`HAPROXY_ENV`] the rendered files use.
pub const RESTAPI_USER_VAR: &str = "PGHA_RESTAPI_USERNAME";
pub const RESTAPI_PASSWORD_VAR: &str = "PGHA_RESTAPI_PASSWORD";
pub const STATS_USER_VAR: &str = "PGHA_STATS_USER";
pub const STATS_PASSWORD_VAR: &str = "PGHA_STATS_PASSWORD";
/// The login names of the REST API and of HAProxy's stats page.
pub const RESTAPI_USER: &str = "patroni";
pub const STATS_USER: &str = "haproxy";

/// The certificate and key of `member`, relative to the secrets directory.
pub fn member_cert(member: &str) -> (String, String) {
    (
        format!("{TLS_DIR}/{member}.crt"),
        format!("{TLS_DIR}/{member}.key"),
    )
}

/// Whose group the files get.
pub enum Group<'a> {
    Gid(u32),
    /// The group of the `postgres` user of the spec's image, asked of the engine.
    FromImage(&'a Engine),
}

pub struct Request<'a> {
    pub spec: &'a Path,
    pub out: &'a Path,
    pub group: Group<'a>,
    /// One password file per Supabase LOGIN role instead of one shared `password`.
    pub per_role: bool,
    pub force: bool,
}

/// What was written (names only, never a value).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub out: PathBuf,
    pub scope: String,
    pub gid: u32,
    pub members: Vec<String>,
    pub files: Vec<String>,
    /// An earlier, non-empty DIR was replaced (`force`).
    pub replaced: bool,
}

struct File {
    path: String,
    contents: String,
    mode: u32,
    /// root's group instead of the image's (the CA key).
    root_only: bool,
}

/// Make every secret file of the spec's cluster in `out`.
pub fn run(req: &Request<'_>) -> Result<Report, SecretsError> {
    let spec = spec::load(req.spec)?;
    let replaced = check_out(req.out, req.force)?;
    let gid = match req.group {
        Group::Gid(g) => g,
        Group::FromImage(engine) => image_postgres_gid(engine, &spec.image)?,
    };
    let files = make(&spec, req.per_role)?;
    write_out(req.out, &files, gid)?;
    Ok(Report {
        out: req.out.to_path_buf(),
        scope: spec.scope.clone(),
        gid,
        members: spec.members.iter().map(|m| m.name.clone()).collect(),
        files: files.iter().map(|f| f.path.clone()).collect(),
        replaced,
    })
}

/// The addresses (host:port) through which clients reach the leader.
pub fn leader_endpoints(spec: &Spec) -> Vec<String> {
    match &spec.haproxy {
        HaproxyPlacement::Members => spec
            .members
            .iter()
            .map(|m| format!("{}:{}", m.address, spec.ports.rw))
            .collect(),
        HaproxyPlacement::Host(h) => vec![format!("{h}:{}", spec.ports.rw)],
    }
}

/// A libpq URL to the leader through HAProxy, verifying the server's
/// certificate against the cluster CA at `ca_path`. Hex passwords need no
/// escaping.
pub fn leader_url(spec: &Spec, user: &str, password: &str, ca_path: &str) -> String {
    format!(
        "postgres://{user}:{password}@{}/postgres?sslmode=verify-full&sslrootcert={ca_path}&target_session_attrs=read-write",
        leader_endpoints(spec).join(",")
    )
}

fn make(spec: &Spec, per_role: bool) -> Result<Vec<File>, SecretsError> {
    let secret = |path: &str, contents: String| File {
        path: path.to_string(),
        contents,
        mode: 0o440,
        root_only: false,
    };
    let mut files = Vec::new();

    // The Supabase LOGIN roles' passwords, as the image's bootstrap reads them.
    let mut role_password = std::collections::BTreeMap::new();
    if per_role {
        for role in LOGIN_ROLES {
            let p = random_hex(24)?;
            files.push(secret(role, format!("{p}\n")));
            role_password.insert(*role, p);
        }
    } else {
        let p = random_hex(24)?;
        files.push(secret(PASSWORD, format!("{p}\n")));
        for role in LOGIN_ROLES {
            role_password.insert(*role, p.clone());
        }
    }
    let jwt_secret = random_hex(32)?;
    files.push(secret(JWT_SECRET, format!("{jwt_secret}\n")));
    files.push(secret(PGSODIUM_ROOT_KEY, format!("{}\n", random_hex(32)?)));

    files.push(secret(
        PATRONI_ENV,
        format!(
            "# Patroni's passwords for the member's compose env_file (made by `pgha-image secrets`).\n\
             PGPASSWORD_SUPERUSER={}\nPGPASSWORD_STANDBY={}\n{RESTAPI_USER_VAR}={RESTAPI_USER}\n{RESTAPI_PASSWORD_VAR}={}\n",
            random_hex(24)?,
            random_hex(24)?,
            random_hex(24)?
        ),
    ));
    files.push(secret(
        HAPROXY_ENV,
        format!(
            "# HAProxy's stats login for its compose env_file (made by `pgha-image secrets`).\n\
             {STATS_USER_VAR}={STATS_USER}\n{STATS_PASSWORD_VAR}={}\n",
            random_hex(16)?
        ),
    ));

    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let anon = jwt::api_key("anon", &jwt_secret, iat);
    let service = jwt::api_key("service_role", &jwt_secret, iat);
    files.push(secret(ANON_KEY, format!("{anon}\n")));
    files.push(secret(SERVICE_ROLE_KEY, format!("{service}\n")));

    let ca_path = format!("{}/{CA_CERT}", spec.secrets_dir);
    let url = |role: &str| leader_url(spec, role, &role_password[role], &ca_path);
    files.push(secret(
        API_ENV,
        format!(
            "# The Supabase API services of the cluster \"{scope}\" (made by `pgha-image secrets`).\n\
             # They reach the leader through HAProxy ({endpoints}) with TLS, checking the\n\
             # server's certificate against the cluster CA ({ca_path}: give the services that file).\n\
             # Use these values rather than new ones: they match the database.\n\
             JWT_SECRET={jwt_secret}\n\
             ANON_KEY={anon}\n\
             SERVICE_ROLE_KEY={service}\n\
             # PostgREST: logs in as authenticator, then SET ROLE from the JWT's role claim.\n\
             PGRST_DB_URI={rest}\n\
             PGRST_JWT_SECRET={jwt_secret}\n\
             PGRST_DB_ANON_ROLE=anon\n\
             PGRST_DB_SCHEMAS=public,storage,graphql_public\n\
             # Auth (GoTrue).\n\
             GOTRUE_DB_DRIVER=postgres\n\
             GOTRUE_DB_DATABASE_URL={auth}\n\
             GOTRUE_JWT_SECRET={jwt_secret}\n\
             # Storage.\n\
             STORAGE_DATABASE_URL={storage}\n\
             PGRST_JWT_SECRET_STORAGE={jwt_secret}\n\
             # Realtime.\n\
             REALTIME_DATABASE_URL={realtime}\n\
             API_JWT_SECRET={jwt_secret}\n",
            scope = spec.scope,
            endpoints = leader_endpoints(spec).join(", "),
            rest = url("authenticator"),
            auth = url("supabase_auth_admin"),
            storage = url("supabase_storage_admin"),
            realtime = url("supabase_admin"),
        ),
    ));

    // TLS: each member's certificate names every address a client may dial to reach it.
    let haproxy_addrs: Vec<String> = match &spec.haproxy {
        HaproxyPlacement::Members => spec.members.iter().map(|m| m.address.clone()).collect(),
        HaproxyPlacement::Host(h) => vec![h.clone()],
    };
    let members: Vec<(String, Vec<String>)> = spec
        .members
        .iter()
        .map(|m| {
            let mut sans = vec![m.address.clone(), m.name.clone()];
            for a in &haproxy_addrs {
                if !sans.contains(a) {
                    sans.push(a.clone());
                }
            }
            (m.name.clone(), sans)
        })
        .collect();
    let issued = tls::issue(&spec.scope, &members)?;
    files.push(secret(CA_CERT, issued.ca_cert_pem));
    files.push(File {
        path: CA_KEY.into(),
        contents: issued.ca_key_pem,
        mode: 0o400,
        root_only: true,
    });
    for m in issued.members {
        let (crt, key) = member_cert(&m.name);
        files.push(secret(&crt, m.cert_pem));
        files.push(secret(&key, m.key_pem));
    }
    Ok(files)
}

/// The group id of `postgres` in `image` (`id -g postgres` in a throwaway container).
fn image_postgres_gid(engine: &Engine, image: &str) -> Result<u32, SecretsError> {
    let err = |detail: String| SecretsError::ImageGroup {
        image: image.to_string(),
        detail,
    };
    let text = engine
        .run_ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "id",
            image,
            "-g",
            "postgres",
        ])
        .map_err(|e| err(e.to_string()))?;
    text.trim()
        .parse()
        .map_err(|_| err(format!("`id -g postgres` printed {:?}", text.trim())))
}

/// `Ok(true)`: a non-empty `out` that `force` lets us replace; `Ok(false)`: absent or empty.
fn check_out(out: &Path, force: bool) -> Result<bool, SecretsError> {
    match fs::read_dir(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(SecretsError::OutExists {
            path: out.to_path_buf(),
        }),
        Err(e) => Err(io(format!("cannot read {}", out.display()), e)),
        Ok(mut entries) => {
            if entries.next().is_none() {
                Ok(false)
            } else if force {
                Ok(true)
            } else {
                Err(SecretsError::OutExists {
                    path: out.to_path_buf(),
                })
            }
        }
    }
}

fn random_hex(bytes: usize) -> Result<String, SecretsError> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| io("cannot read /dev/urandom".into(), e))?;
    Ok(hex::encode(buf))
}

fn io(what: String, source: std::io::Error) -> SecretsError {
    SecretsError::Io { what, source }
}

fn chown(path: &Path, gid: u32) -> Result<(), SecretsError> {
    std::os::unix::fs::chown(path, None, Some(gid)).map_err(|source| SecretsError::Chown {
        path: path.to_path_buf(),
        gid,
        source,
    })
}

/// Write every file into a temporary sibling directory (mode 0700 while
/// it fills), then rename it into place; a replaced `out` is removed only
/// after the new one is there.
fn write_out(out: &Path, files: &[File], gid: u32) -> Result<(), SecretsError> {
    let tmp = crate::fsutil::sibling_tempdir(out).map_err(|(parent, e)| {
        io(
            format!("cannot create a temporary directory in {}", parent.display()),
            e,
        )
    })?;
    let set_mode = |path: &Path, mode: u32| {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| io(format!("cannot set the mode of {}", path.display()), e))
    };
    for f in files {
        let path = tmp.path().join(&f.path);
        if let Some(dir) = path.parent().filter(|d| *d != tmp.path() && !d.exists()) {
            fs::create_dir(dir).map_err(|e| io(format!("cannot create {}", dir.display()), e))?;
            set_mode(dir, 0o750)?;
            chown(dir, gid)?;
        }
        // Created with mode 0600: never readable by others, not even while written.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io(format!("cannot create {}", path.display()), e))?;
        std::io::Write::write_all(&mut file, f.contents.as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(|e| io(format!("cannot write {}", path.display()), e))?;
        if !f.root_only {
            chown(&path, gid)?;
        }
        set_mode(&path, f.mode)?;
    }
    chown(tmp.path(), gid)?;
    set_mode(tmp.path(), 0o750)?;

    let tmp = tmp.keep();
    crate::fsutil::replace_dir(&tmp, out)
        .map_err(|(path, e)| io(format!("cannot move the secrets into {}", path.display()), e))
}

/// Where the members see a file of the secrets directory.
pub fn mounted(file: &str) -> String {
    format!("{SECRETS_MOUNT}/{file}")
}

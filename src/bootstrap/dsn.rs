//! Connection strings: parsed by `tokio_postgres::Config` (key=value strings
//! as Patroni passes them, `postgres://` URLs, quoting, several hosts, Unix
//! sockets). What it lacks, libpq's defaults, is added here and only here:
//!
//! - the word `postgres`: the local server over its socket, from the configuration;
//! - no host → the configured socket directory; no port → the configured port;
//!   no user → `$USER`, else the configured user; no application name → `pgha-bootstrap`;
//! - `PGPASSWORD`, then the password file (`PGPASSFILE`, else `~/.pgpass`);
//! - `PGOPTIONS` when the string has no `options`;
//! - a `connect_timeout` when none is given (a Patroni hook must not hang).
//!
//! A DSN is only ever displayed through [`ConnInfo::redacted`]; a string that
//! does not parse is shown with its password and URL credentials removed.

use super::config;
use super::error::BootstrapError;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode};

/// The process environment the connection honours, as libpq does.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub pgpassfile: Option<PathBuf>,
    pub pgpassword: Option<String>,
    pub pgoptions: Option<String>,
    pub home: Option<PathBuf>,
    pub user: Option<String>,
}

impl Env {
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            pgpassfile: var("PGPASSFILE").map(PathBuf::from),
            pgpassword: var("PGPASSWORD"),
            pgoptions: var("PGOPTIONS"),
            home: var("HOME").map(PathBuf::from),
            user: var("USER").or_else(|| var("LOGNAME")),
        }
    }
}

/// A parsed connection string (what the user gave; defaults are added by
/// [`ConnInfo::to_config`]).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    cfg: tokio_postgres::Config,
}

impl ConnInfo {
    /// Parse a key=value string or a `postgres://` / `postgresql://` URL.
    pub fn parse(dsn: &str) -> Result<Self, BootstrapError> {
        if dsn.trim().is_empty() {
            return Err(BootstrapError::Dsn {
                dsn: "''".into(),
                reason: "empty connection string".into(),
            });
        }
        let cfg: tokio_postgres::Config =
            without_tls_keys(dsn.trim())
                .parse()
                .map_err(|e: tokio_postgres::Error| {
                    BootstrapError::Dsn {
                        dsn: redact_raw(dsn),
                        // The cause ("unknown option `x`"), without "invalid connection string" again.
                        reason: std::error::Error::source(&e)
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| e.to_string()),
                    }
                })?;
        if cfg.get_ssl_mode() == SslMode::Require {
            return Err(BootstrapError::Dsn {
                dsn: Self { cfg }.redacted(),
                reason: "sslmode=require needs TLS, which pgha-bootstrap does not speak; connect over the \
                         local Unix socket (host=/run/postgresql) or use sslmode=prefer"
                    .into(),
            });
        }
        Ok(Self { cfg })
    }

    /// The local server over its Unix socket, as the configuration describes it.
    pub fn local(conn: &config::Connection) -> Self {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host_path(&conn.socket_dir)
            .port(conn.port)
            .user(&conn.user)
            .dbname(&conn.dbname);
        Self { cfg }
    }

    /// `dsn`, or the word `postgres` for [`ConnInfo::local`].
    pub fn parse_or_local(dsn: &str, conn: &config::Connection) -> Result<Self, BootstrapError> {
        if dsn.trim() == "postgres" {
            Ok(Self::local(conn))
        } else {
            Self::parse(dsn)
        }
    }

    /// The same connection to another database.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut c = self.clone();
        c.cfg.dbname(dbname);
        c
    }

    /// For messages: what the string said, the password as `***`.
    pub fn redacted(&self) -> String {
        let c = &self.cfg;
        let mut parts = Vec::new();
        if let Some(d) = c.get_dbname() {
            parts.push(format!("dbname={}", quote_value(d)));
        }
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(s) => s.clone(),
                Host::Unix(p) => p.display().to_string(),
            })
            .collect();
        if !hosts.is_empty() {
            parts.push(format!("host={}", quote_value(&hosts.join(","))));
        }
        if !c.get_hostaddrs().is_empty() {
            let a: Vec<String> = c.get_hostaddrs().iter().map(|a| a.to_string()).collect();
            parts.push(format!("hostaddr={}", a.join(",")));
        }
        if !c.get_ports().is_empty() {
            let p: Vec<String> = c.get_ports().iter().map(|p| p.to_string()).collect();
            parts.push(format!("port={}", p.join(",")));
        }
        if let Some(u) = c.get_user() {
            parts.push(format!("user={}", quote_value(u)));
        }
        if c.get_password().is_some() {
            parts.push("password=***".into());
        }
        parts.join(" ")
    }

    /// The tokio-postgres configuration, with libpq's defaults from `conn`
    /// (socket directory, port, user) and the environment (user, password, options).
    pub fn to_config(&self, conn: &config::Connection, env: &Env) -> tokio_postgres::Config {
        let mut cfg = self.cfg.clone();
        if cfg.get_hosts().is_empty() && cfg.get_hostaddrs().is_empty() {
            cfg.host_path(&conn.socket_dir);
        }
        if cfg.get_ports().is_empty() {
            cfg.port(conn.port);
        }
        if cfg.get_user().is_none() {
            cfg.user(env.user.as_deref().unwrap_or(&conn.user));
        }
        let user = cfg.get_user().unwrap_or_default().to_string();
        if cfg.get_dbname().is_none() {
            cfg.dbname(&user);
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("pgha-bootstrap");
        }
        if cfg.get_options().is_none()
            && let Some(o) = &env.pgoptions
        {
            cfg.options(o);
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(conn.connect_timeout_seconds));
        }
        // No TLS is spoken: `prefer` (the default) connects without it.
        cfg.ssl_mode(SslMode::Disable);
        if cfg.get_password().is_none() {
            let password = env.pgpassword.clone().or_else(|| {
                let file = env
                    .pgpassfile
                    .clone()
                    .or_else(|| env.home.as_ref().map(|h| h.join(".pgpass")))?;
                let host = match cfg.get_hosts().first() {
                    Some(Host::Tcp(h)) => h.clone(),
                    Some(Host::Unix(p)) => p.display().to_string(),
                    None => "localhost".into(),
                };
                let port = cfg.get_ports().first().copied().unwrap_or(conn.port);
                let dbname = cfg.get_dbname().unwrap_or_default().to_string();
                passfile_lookup(&file, &host, port, &dbname, &user)
            });
            if let Some(p) = password {
                cfg.password(p);
            }
        }
        cfg
    }

    /// Connect, driving the connection on a background task. The whole
    /// connection (TCP or socket, startup, authentication) is bounded by the
    /// connect timeout: tokio-postgres bounds only the socket connect.
    pub async fn connect(
        &self,
        conn: &config::Connection,
        env: &Env,
    ) -> Result<tokio_postgres::Client, BootstrapError> {
        let cfg = self.to_config(conn, env);
        let limit = cfg
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(conn.connect_timeout_seconds));
        let connecting = cfg.connect(tokio_postgres::NoTls);
        let (client, connection) = match tokio::time::timeout(limit, connecting).await {
            Ok(r) => r.map_err(|e| BootstrapError::Connect {
                target: self.redacted(),
                detail: super::error::describe_pg(&e),
            })?,
            Err(_) => {
                return Err(BootstrapError::Timeout {
                    what: format!("connecting to PostgreSQL at {}", self.redacted()),
                    seconds: limit.as_secs(),
                    setting: "connect_timeout in the DSN, or [connection] connect_timeout_seconds".into(),
                });
            }
        };
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }
}

/// libpq keys that matter only for TLS or GSS, which pgha-bootstrap does not
/// speak (it connects over the local socket) and tokio-postgres does not
/// know. Patroni copies them from `authentication.superuser` into the hook's
/// DSN; refusing them would fail the bootstrap (and Patroni would wipe the
/// data directory), so they are dropped before tokio-postgres parses.
const TLS_GSS_KEYS: &[&str] = &[
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslcompression",
    "sslsni",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssencmode",
];

/// `dsn` without the [`TLS_GSS_KEYS`]. Only finds where each `key=value`
/// ends (quotes and backslash escapes as libpq writes them); a string it
/// cannot follow is returned as is, for tokio-postgres to report.
fn without_tls_keys(dsn: &str) -> String {
    if let Some((base, query)) = dsn.split_once('?')
        && (dsn.starts_with("postgres://") || dsn.starts_with("postgresql://"))
    {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| !TLS_GSS_KEYS.contains(&kv.split('=').next().unwrap_or_default()))
            .collect();
        return if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
    }
    let b = dsn.as_bytes();
    let (mut i, mut out) = (0, String::new());
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        let key = dsn[start..i].trim();
        i += 1; // '='
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let quoted = i < b.len() && b[i] == b'\'';
        if quoted {
            i += 1;
        }
        while i < b.len()
            && !(if quoted {
                b[i] == b'\''
            } else {
                b[i].is_ascii_whitespace()
            })
        {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        if i > b.len() || (quoted && i >= b.len()) || key.contains(char::is_whitespace) {
            return dsn.to_string();
        }
        if quoted {
            i += 1;
        }
        if !TLS_GSS_KEYS.contains(&key) {
            out.push_str(&dsn[start..i.min(b.len())]);
        }
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        out.push(' ');
    }
    out.trim_end().to_string()
}

fn quote_value(v: &str) -> String {
    if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// A DSN that could not be parsed, for a message: URL credentials and
/// everything from `password` on are dropped.
fn redact_raw(dsn: &str) -> String {
    if let Some(rest) = dsn.split_once("://").map(|x| x.1) {
        let scheme = &dsn[..dsn.len() - rest.len()];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let rest = match rest[..authority_end].rfind('@') {
            Some(at) => format!("***@{}", &rest[at + 1..]),
            None => rest.to_string(),
        };
        // A password may also be a query parameter.
        return match rest.find("password") {
            Some(i) => format!("{scheme}{}password=***", &rest[..i]),
            None => format!("{scheme}{rest}"),
        };
    }
    match dsn.find("password") {
        Some(i) => format!("{}password=***", &dsn[..i]),
        None => dsn.to_string(),
    }
}

/// The password for this connection in a libpq password file
/// (`hostname:port:database:username:password`, `*` wildcards, `\:` and `\\`
/// escapes). Like libpq, a file readable by group or others is ignored, and a
/// Unix-socket connection also matches the host name `localhost`.
pub fn passfile_lookup(path: &Path, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "warning: password file {} has group or world access; ignoring it (chmod 0600 it)",
            path.display()
        );
        return None;
    }
    let text = crate::fsutil::read_limited_text(path, crate::fsutil::SMALL_FILE_MAX_BYTES).ok()?;
    let socket = host.starts_with('/') || host.starts_with('@');
    let port = port.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_passfile_line(line);
        if fields.len() < 5 {
            continue;
        }
        let m = |field: &str, value: &str| field == "*" || field == value;
        let host_ok = m(&fields[0], host) || (socket && fields[0] == "localhost");
        if host_ok && m(&fields[1], &port) && m(&fields[2], dbname) && m(&fields[3], user) {
            return Some(fields[4..].join(":"));
        }
    }
    None
}

fn split_passfile_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().unwrap().push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dsn: &str) -> tokio_postgres::Config {
        ConnInfo::parse(dsn)
            .unwrap()
            .to_config(&config::Connection::default(), &Env::default())
    }

    #[test]
    fn keyword_value_with_quotes_and_escapes() {
        let c = cfg("dbname=postgres user=postgres host=/run/postgresql port=5432");
        assert!(matches!(&c.get_hosts()[0], Host::Unix(p) if p == Path::new("/run/postgresql")));
        let info = ConnInfo::parse(r"password = 'it\'s a \\ pw' user=x").unwrap();
        let c = cfg(r"password = 'it\'s a \\ pw' user=x");
        assert_eq!(c.get_password(), Some(&br"it's a \ pw"[..]));
        assert!(!info.redacted().contains("it's"), "{}", info.redacted());
        // Patroni escapes spaces, quotes and backslashes with a backslash, unquoted.
        let c = cfg(r"user=a\ b password=x\'y\\z host=/run/postgresql");
        assert_eq!(c.get_user(), Some("a b"));
        assert_eq!(c.get_password(), Some(&br"x'y\z"[..]));
        assert!(ConnInfo::parse("host").is_err());
        assert!(ConnInfo::parse("password='x").is_err());
        let e = ConnInfo::parse("bogus=1").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn urls_and_their_secrets() {
        let c = cfg("postgresql://us%40r:p%3Ass@db.example:6543/my%20db?sslmode=disable");
        assert_eq!(c.get_user(), Some("us@r"));
        assert_eq!(c.get_password(), Some(&b"p:ss"[..]));
        assert_eq!(c.get_hosts(), &[Host::Tcp("db.example".into())]);
        assert_eq!(c.get_ports(), &[6543]);
        assert_eq!(c.get_dbname(), Some("my db"));
        let c = cfg("postgres://%2Frun%2Fpostgresql/postgres");
        assert_eq!(c.get_hosts(), &[Host::Unix("/run/postgresql".into())]);
        for bad in [
            "postgresql://u:secret%zzpw@h/db?x=1",
            "postgresql://u:secretpw@h/db?bogus=1",
            "postgresql://u@h/db?password=secretpw&bogus=1",
            "host=h password=secretpw bogus=1",
        ] {
            let e = ConnInfo::parse(bad).map(|c| c.redacted());
            let text = match e {
                Ok(r) => r,
                Err(e) => e.to_string(),
            };
            assert!(!text.contains("secret"), "{bad}: {text}");
        }
    }

    #[test]
    fn the_word_postgres_is_the_local_socket_and_timeouts_default() {
        let conn = config::Connection {
            socket_dir: "/tmp/s".into(),
            port: 6000,
            ..Default::default()
        };
        let c = ConnInfo::parse_or_local("postgres", &conn).unwrap();
        let cfg = c.to_config(&conn, &Env::default());
        assert_eq!(cfg.get_ports(), &[6000]);
        assert_eq!(cfg.get_user(), Some("postgres"));
        assert!(matches!(cfg.get_hosts()[0], Host::Unix(ref p) if p == Path::new("/tmp/s")));
        assert_eq!(cfg.get_connect_timeout(), Some(&Duration::from_secs(10)));
        let cfg = ConnInfo::parse("host=h connect_timeout=3")
            .unwrap()
            .to_config(&conn, &Env::default());
        assert_eq!(cfg.get_connect_timeout(), Some(&Duration::from_secs(3)));
    }

    #[test]
    fn env_options_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pgpass");
        std::fs::write(
            &pass,
            "# c\nother:*:*:*:no\nlocalhost:5432:*:postgres:pa\\:ss\\\\w:rd\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = Env {
            pgpassfile: Some(pass.clone()),
            pgoptions: Some("-c statement_timeout=0".into()),
            ..Default::default()
        };
        let conn = config::Connection::default();
        let c = ConnInfo::parse("host=/run/postgresql user=postgres").unwrap();
        let cfg = c.to_config(&conn, &env);
        assert_eq!(cfg.get_password(), Some(&b"pa:ss\\w:rd"[..]));
        assert_eq!(cfg.get_options(), Some("-c statement_timeout=0"));
        assert_eq!(cfg.get_dbname(), Some("postgres"));
        // The DSN's options win over PGOPTIONS; a DSN password over the file.
        let c = ConnInfo::parse("host=localhost user=postgres options='-c a=b' password=x").unwrap();
        let cfg = c.to_config(&conn, &env);
        assert_eq!(cfg.get_options(), Some("-c a=b"));
        assert_eq!(cfg.get_password(), Some(&b"x"[..]));
        // No match for another user; a world-readable file is ignored.
        assert_eq!(passfile_lookup(&pass, "localhost", 5432, "db", "bob"), None);
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(passfile_lookup(&pass, "localhost", 5432, "db", "postgres"), None);
    }

    #[test]
    fn tls_and_gss_keys_are_dropped_everything_else_is_kept() {
        let c = cfg(
            r"dbname=postgres user=a\ b sslrootcert='/x y/ca.crt' host=/run/postgresql gssencmode=prefer port=5433",
        );
        assert_eq!(c.get_user(), Some("a b"));
        assert_eq!(c.get_ports(), &[5433]);
        assert_eq!(c.get_dbname(), Some("postgres"));
        let c = cfg("postgresql://u@h/db?sslrootcert=%2Fca&connect_timeout=4&krbsrvname=pg");
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(4)));
        assert_eq!(
            without_tls_keys("postgresql://u@h/db?sslcert=x"),
            "postgresql://u@h/db"
        );
        // Unfollowable input is left for tokio-postgres to refuse.
        assert!(ConnInfo::parse("host='unterminated sslcert=x").is_err());
        assert!(ConnInfo::parse("host").is_err());
        assert!(ConnInfo::parse(" ").is_err());
    }

    #[test]
    fn tls_modes_are_refused_clearly() {
        let e = ConnInfo::parse("host=h sslmode=require").unwrap_err();
        assert!(e.to_string().contains("sslmode=require"), "{e}");
        let e = ConnInfo::parse("host=h sslmode=verify-full").unwrap_err();
        assert!(e.to_string().contains("sslmode"), "{e}");
    }
}

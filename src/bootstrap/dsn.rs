//! Connection strings, the way libpq understands them, for tokio-postgres
//! (which is not libpq): key=value strings (what Patroni passes), URLs, the
//! word `postgres` (the local server over its socket, from the
//! configuration), `PGPASSFILE` / `~/.pgpass` (read here: tokio-postgres does
//! not), `PGPASSWORD`, `PGOPTIONS` and Unix sockets (`host=/run/postgresql`).
//!
//! A DSN is only ever displayed through [`ConnInfo::redacted`].

use super::config;
use super::error::BootstrapError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// libpq parameters understood and passed on to tokio-postgres.
const PASSED: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "dbname",
    "password",
    "options",
    "application_name",
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "target_session_attrs",
    "sslmode",
    "passfile",
];
/// libpq parameters accepted and ignored (they do not apply without TLS/GSS).
const IGNORED: &[&str] = &[
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslcompression",
    "sslpassword",
    "sslsni",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "requirepeer",
    "fallback_application_name",
    "client_encoding",
    "channel_binding",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
];

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

/// A parsed connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    params: BTreeMap<String, String>,
}

impl ConnInfo {
    /// Parse a key=value string or a `postgres://` / `postgresql://` URL.
    pub fn parse(dsn: &str) -> Result<Self, BootstrapError> {
        let trimmed = dsn.trim();
        let params = if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            parse_url(trimmed)
        } else {
            parse_keyword_value(trimmed)
        }
        .map_err(|reason| BootstrapError::Dsn {
            dsn: redact_raw(dsn),
            reason,
        })?;
        let info = Self { params };
        for k in info.params.keys() {
            if !PASSED.contains(&k.as_str()) && !IGNORED.contains(&k.as_str()) {
                return Err(BootstrapError::Dsn {
                    dsn: info.redacted(),
                    reason: format!("unknown connection parameter {k:?}"),
                });
            }
        }
        Ok(info)
    }

    /// The local server over its Unix socket, as the configuration describes it.
    pub fn local(conn: &config::Connection) -> Self {
        let mut params = BTreeMap::new();
        params.insert("host".into(), conn.socket_dir.display().to_string());
        params.insert("port".into(), conn.port.to_string());
        params.insert("user".into(), conn.user.clone());
        params.insert("dbname".into(), conn.dbname.clone());
        Self { params }
    }

    /// `dsn`, or the word `postgres` for [`ConnInfo::local`].
    pub fn parse_or_local(dsn: &str, conn: &config::Connection) -> Result<Self, BootstrapError> {
        if dsn.trim() == "postgres" {
            Ok(Self::local(conn))
        } else {
            Self::parse(dsn)
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// The same connection to another database.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut c = self.clone();
        c.params.insert("dbname".into(), dbname.into());
        c
    }

    /// For messages: every parameter but the password.
    pub fn redacted(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| {
                if k == "password" {
                    format!("{k}=***")
                } else {
                    format!("{k}={}", quote_value(v))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The tokio-postgres configuration, with defaults from `conn` (socket
    /// directory, port) and the environment (user, password, options).
    pub fn to_config(
        &self,
        conn: &config::Connection,
        env: &Env,
    ) -> Result<tokio_postgres::Config, BootstrapError> {
        let bad = |reason: String| BootstrapError::Dsn {
            dsn: self.redacted(),
            reason,
        };
        let mut cfg = tokio_postgres::Config::new();
        let hosts: Vec<String> = match self.get("host").filter(|h| !h.is_empty()) {
            Some(h) => h.split(',').map(str::to_string).collect(),
            None if self.get("hostaddr").is_some() => Vec::new(),
            None => vec![conn.socket_dir.display().to_string()],
        };
        for h in &hosts {
            if h.starts_with('/') || h.starts_with('@') {
                cfg.host_path(h);
            } else {
                cfg.host(h);
            }
        }
        if let Some(addrs) = self.get("hostaddr") {
            for a in addrs.split(',') {
                let ip = a
                    .parse()
                    .map_err(|_| bad(format!("hostaddr {a:?} is not an IP address")))?;
                cfg.hostaddr(ip);
            }
        }
        let ports = self
            .get("port")
            .map(str::to_string)
            .unwrap_or_else(|| conn.port.to_string());
        let mut first_port = conn.port;
        for (i, p) in ports.split(',').enumerate() {
            let port: u16 = p
                .trim()
                .parse()
                .map_err(|_| bad(format!("port {p:?} is not a number")))?;
            if i == 0 {
                first_port = port;
            }
            cfg.port(port);
        }
        let user = self
            .get("user")
            .map(str::to_string)
            .or_else(|| env.user.clone())
            .unwrap_or_else(|| conn.user.clone());
        cfg.user(&user);
        let dbname = self
            .get("dbname")
            .map(str::to_string)
            .unwrap_or_else(|| user.clone());
        cfg.dbname(&dbname);
        cfg.application_name(self.get("application_name").unwrap_or("pgha-bootstrap"));
        // libpq: the options parameter, else PGOPTIONS.
        if let Some(o) = self
            .get("options")
            .map(str::to_string)
            .or_else(|| env.pgoptions.clone())
        {
            cfg.options(&o);
        }
        if let Some(t) = self.get("connect_timeout") {
            let secs: u64 = t
                .parse()
                .map_err(|_| bad(format!("connect_timeout {t:?} is not a number")))?;
            if secs > 0 {
                cfg.connect_timeout(Duration::from_secs(secs.max(2)));
            }
        } else {
            cfg.connect_timeout(Duration::from_secs(30));
        }
        if let Some(k) = self.get("keepalives") {
            cfg.keepalives(k != "0");
        }
        if let Some(k) = self.get("keepalives_idle") {
            let secs: u64 = k
                .parse()
                .map_err(|_| bad(format!("keepalives_idle {k:?} is not a number")))?;
            cfg.keepalives_idle(Duration::from_secs(secs));
        }
        if let Some(t) = self.get("target_session_attrs") {
            cfg.target_session_attrs(match t {
                "any" => tokio_postgres::config::TargetSessionAttrs::Any,
                "read-write" => tokio_postgres::config::TargetSessionAttrs::ReadWrite,
                "read-only" => tokio_postgres::config::TargetSessionAttrs::ReadOnly,
                other => return Err(bad(format!("target_session_attrs {other:?} is not supported"))),
            });
        }
        match self.get("sslmode").unwrap_or("prefer") {
            "disable" | "allow" | "prefer" => {
                cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
            }
            other => {
                return Err(bad(format!(
                    "sslmode={other} needs TLS, which pgha-bootstrap does not speak; \
                     connect over the local Unix socket (host=/run/postgresql) or use sslmode=prefer"
                )));
            }
        }
        // Password: the parameter, else PGPASSWORD, else the password file.
        let password = match self
            .get("password")
            .map(str::to_string)
            .or_else(|| env.pgpassword.clone())
        {
            Some(p) => Some(p),
            None => {
                let file = self
                    .get("passfile")
                    .map(PathBuf::from)
                    .or_else(|| env.pgpassfile.clone())
                    .or_else(|| env.home.as_ref().map(|h| h.join(".pgpass")));
                let host = hosts.first().cloned().unwrap_or_else(|| "localhost".into());
                file.and_then(|f| passfile_lookup(&f, &host, first_port, &dbname, &user))
            }
        };
        if let Some(p) = password {
            cfg.password(p);
        }
        Ok(cfg)
    }

    /// Connect, driving the connection on a background task.
    pub async fn connect(
        &self,
        conn: &config::Connection,
        env: &Env,
    ) -> Result<tokio_postgres::Client, BootstrapError> {
        let cfg = self.to_config(conn, env)?;
        let (client, connection) =
            cfg.connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| BootstrapError::Connect {
                    target: self.redacted(),
                    detail: super::error::describe_pg(&e),
                })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }
}

fn quote_value(v: &str) -> String {
    if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// A DSN we could not parse, for a message: URL userinfo and `password=` dropped.
fn redact_raw(dsn: &str) -> String {
    if let Some(rest) = dsn.split_once("://").map(|x| x.1)
        && let Some(at) = rest.find('@')
    {
        let scheme = &dsn[..dsn.len() - rest.len()];
        return format!("{scheme}***@{}", &rest[at + 1..]);
    }
    match dsn.find("password") {
        Some(i) => format!("{}password=***", &dsn[..i]),
        None => dsn.to_string(),
    }
}

/// libpq's `keyword = value` syntax: values may be single-quoted, with `\'`
/// and `\\` escapes.
fn parse_keyword_value(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("missing \"=\" after {key:?}"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.push(chars.next().ok_or("unterminated quoted value")?),
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated quoted value for {key:?}"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.push(chars.next().ok_or("trailing backslash")?);
                } else {
                    value.push(c);
                }
            }
        }
        if key.is_empty() {
            return Err("empty parameter name".into());
        }
        out.insert(key, value);
    }
    if out.is_empty() {
        return Err("empty connection string".into());
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("bad percent-escape in {s:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad percent-escape in {s:?}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} does not decode to UTF-8"))
}

/// `postgresql://[user[:password]@][host][:port][,host[:port]...][/dbname][?k=v&...]`
fn parse_url(url: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let rest = url.split_once("://").map(|x| x.1).unwrap_or_default();
    let (rest, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    let hostlist = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, pass) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                out.insert("user".into(), percent_decode(user)?);
            }
            if let Some(p) = pass {
                out.insert("password".into(), percent_decode(p)?);
            }
            hosts
        }
        None => authority,
    };
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for hp in hostlist.split(',').filter(|s| !s.is_empty()) {
        let (h, p) = if let Some(v6) = hp.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unclosed [ in host")?;
            (h.to_string(), after.strip_prefix(':').map(str::to_string))
        } else {
            match hp.rsplit_once(':') {
                Some((h, p)) => (percent_decode(h)?, Some(p.to_string())),
                None => (percent_decode(hp)?, None),
            }
        };
        hosts.push(h);
        ports.push(p);
    }
    if !hosts.is_empty() && hosts.iter().any(|h| !h.is_empty()) {
        out.insert("host".into(), hosts.join(","));
    }
    if ports.iter().any(Option::is_some) {
        let ps: Vec<String> = ports
            .into_iter()
            .map(|p| p.unwrap_or_else(|| "5432".into()))
            .collect();
        out.insert("port".into(), ps.join(","));
    }
    if let Some(p) = path.filter(|p| !p.is_empty()) {
        out.insert("dbname".into(), percent_decode(p)?);
    }
    if let Some(q) = query {
        for kv in q.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("query parameter {kv:?} has no value"))?;
            out.insert(percent_decode(k)?, percent_decode(v)?);
        }
    }
    Ok(out)
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
    let text = std::fs::read_to_string(path).ok()?;
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

    #[test]
    fn keyword_value_with_quotes_and_escapes() {
        let c = ConnInfo::parse("dbname=postgres user=postgres host=/run/postgresql port=5432").unwrap();
        assert_eq!(c.get("host"), Some("/run/postgresql"));
        let c = ConnInfo::parse(r"password = 'it\'s a \\ pw' user=x application_name=a\ b").unwrap();
        assert_eq!(c.get("password"), Some(r"it's a \ pw"));
        assert_eq!(c.get("application_name"), Some("a b"));
        assert!(!c.redacted().contains("it's"), "{}", c.redacted());
        assert!(ConnInfo::parse("host").is_err());
        assert!(ConnInfo::parse("password='x").is_err());
        let e = ConnInfo::parse("bogus=1").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn urls() {
        let c =
            ConnInfo::parse("postgresql://us%40r:p%3Ass@db.example:6543/my%20db?sslmode=disable").unwrap();
        assert_eq!(c.get("user"), Some("us@r"));
        assert_eq!(c.get("password"), Some("p:ss"));
        assert_eq!(c.get("host"), Some("db.example"));
        assert_eq!(c.get("port"), Some("6543"));
        assert_eq!(c.get("dbname"), Some("my db"));
        let c = ConnInfo::parse("postgres://%2Frun%2Fpostgresql/postgres").unwrap();
        assert_eq!(c.get("host"), Some("/run/postgresql"));
        let c = ConnInfo::parse("postgres:///x?host=/tmp&port=7").unwrap();
        assert_eq!(
            (c.get("host"), c.get("port"), c.get("dbname")),
            (Some("/tmp"), Some("7"), Some("x"))
        );
        let c = ConnInfo::parse("postgresql://[::1]:5433,h2/db").unwrap();
        assert_eq!(
            (c.get("host"), c.get("port")),
            (Some("::1,h2"), Some("5433,5432"))
        );
        let e = ConnInfo::parse("postgresql://u:secretpw@h/db?x=1")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secretpw"), "{e}");
    }

    #[test]
    fn the_word_postgres_is_the_local_socket() {
        let conn = config::Connection {
            socket_dir: "/tmp/s".into(),
            port: 6000,
            ..Default::default()
        };
        let c = ConnInfo::parse_or_local("postgres", &conn).unwrap();
        let cfg = c.to_config(&conn, &Env::default()).unwrap();
        assert_eq!(cfg.get_ports(), &[6000]);
        assert_eq!(cfg.get_user(), Some("postgres"));
        assert!(
            matches!(cfg.get_hosts()[0], tokio_postgres::config::Host::Unix(ref p) if p == Path::new("/tmp/s"))
        );
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
        let cfg = c.to_config(&conn, &env).unwrap();
        assert_eq!(cfg.get_password(), Some(&b"pa:ss\\w:rd"[..]));
        assert_eq!(cfg.get_options(), Some("-c statement_timeout=0"));
        assert_eq!(cfg.get_dbname(), Some("postgres"));
        // The DSN's options win over PGOPTIONS; a DSN password over the file.
        let c = ConnInfo::parse("host=localhost user=postgres options='-c a=b' password=x").unwrap();
        let cfg = c.to_config(&conn, &env).unwrap();
        assert_eq!(cfg.get_options(), Some("-c a=b"));
        assert_eq!(cfg.get_password(), Some(&b"x"[..]));
        // No match for another user; a world-readable file is ignored.
        assert_eq!(passfile_lookup(&pass, "localhost", 5432, "db", "bob"), None);
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(passfile_lookup(&pass, "localhost", 5432, "db", "postgres"), None);
    }

    #[test]
    fn tls_modes_are_refused_clearly() {
        let c = ConnInfo::parse("host=h sslmode=require").unwrap();
        let e = c
            .to_config(&config::Connection::default(), &Env::default())
            .unwrap_err();
        assert!(e.to_string().contains("sslmode=require"), "{e}");
    }
}

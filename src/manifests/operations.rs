//! Day two in the spec: backups, monitoring and Spilo's continuous
//! archiving (WAL-G). Each is a table of its own, optional:
//!
//! ```toml
//! [backup]                # a pg_dump service on one VM, from a replica (through HAProxy's ro port)
//! member = "pg1"          # default: the first member
//! every = "1d"            # the schedule: Ns, Nm, Nh or Nd
//! keep = 7                # the newest N dumps of each database are kept
//! dir = "/var/lib/pgha/backups"   # on that VM; default <its data_dir>/backups
//! databases = ["postgres"]
//! port = 9188             # the service's /status and /metrics
//!
//! [monitoring]            # a PostgreSQL exporter per member
//! exporter_port = 9187
//! max_lag = 16777216      # bytes of replay lag above which `status` reports a member degraded
//!
//! [walg]                  # Spilo's WAL-G: base backups and WAL to an S3-compatible store
//! s3_prefix = "s3://bucket/supabase"
//! endpoint = "https://s3.example:9000"   # optional (MinIO, Ceph, …)
//! region = "us-east-1"                   # optional
//! force_path_style = true                # optional
//! schedule = "0 1 * * *"                 # base backups (cron)
//! retain = 5                             # base backups kept
//! ```

use super::ManifestsError;
use super::spec::Member;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use toml::Spanned;

pub const DEFAULT_BACKUP_PORT: u16 = 9188;
pub const DEFAULT_EXPORTER_PORT: u16 = 9187;
/// 16 MiB: one WAL segment behind.
pub const DEFAULT_MAX_LAG: u64 = 16 * 1024 * 1024;
pub const DEFAULT_EXPORTER_IMAGE: &str = "quay.io/prometheuscommunity/postgres-exporter:v0.15.0";

/// The backup service of the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backup {
    /// The member whose VM runs the service.
    pub member: String,
    /// Seconds between two backups.
    pub every: u64,
    pub keep: u32,
    /// Host directory on that VM.
    pub dir: String,
    pub databases: Vec<String>,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Monitoring {
    pub exporter_port: u16,
    pub max_lag: u64,
    pub exporter_image: String,
}

/// Spilo's WAL-G settings (see [`crate::manifests::render::walg_env`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Walg {
    pub s3_prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub force_path_style: bool,
    pub schedule: String,
    pub retain: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackup {
    member: Option<Spanned<String>>,
    every: Option<Spanned<String>>,
    keep: Option<Spanned<u32>>,
    dir: Option<Spanned<String>>,
    databases: Option<Spanned<Vec<String>>>,
    port: Option<Spanned<u16>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMonitoring {
    exporter_port: Option<Spanned<u16>>,
    max_lag: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWalg {
    s3_prefix: Spanned<String>,
    endpoint: Option<Spanned<String>>,
    region: Option<String>,
    #[serde(default)]
    force_path_style: bool,
    schedule: Option<Spanned<String>>,
    retain: Option<u32>,
}

/// How a check reports a wrong field: (span, field, message, hint).
pub(super) type FieldErr<'a> = &'a dyn Fn(&Range<usize>, &str, String, &str) -> ManifestsError;

/// `30s`, `15m`, `6h`, `1d` (or plain seconds) → seconds.
pub fn parse_interval(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(mult).filter(|v| *v > 0)
}

pub(super) fn backup(
    raw: &RawBackup,
    members: &[Member],
    err: FieldErr<'_>,
) -> Result<Backup, ManifestsError> {
    let member = match &raw.member {
        None => members[0].clone(),
        Some(m) => members
            .iter()
            .find(|x| x.name == *m.get_ref())
            .cloned()
            .ok_or_else(|| {
                err(
                    &m.span(),
                    "backup.member",
                    format!("{:?} is not a member of the spec", m.get_ref()),
                    "name one of the [[member]] names: its VM runs the backup service",
                )
            })?,
    };
    let every = match &raw.every {
        None => 86400,
        Some(e) => parse_interval(e.get_ref()).ok_or_else(|| {
            err(
                &e.span(),
                "backup.every",
                format!("{:?} is not an interval", e.get_ref()),
                "write a number with a unit: 30s, 15m, 6h or 1d",
            )
        })?,
    };
    let keep = match &raw.keep {
        None => 7,
        Some(k) if *k.get_ref() == 0 => {
            return Err(err(
                &k.span(),
                "backup.keep",
                "keep = 0 would delete every backup".into(),
                "keep at least 1 (the newest dumps of each database are kept)",
            ));
        }
        Some(k) => *k.get_ref(),
    };
    let dir = match &raw.dir {
        None => format!("{}/backups", member.data_dir),
        Some(d) => {
            let v = d.get_ref();
            if !v.starts_with('/') || v.contains(char::is_whitespace) || v.contains(':') {
                return Err(err(
                    &d.span(),
                    "backup.dir",
                    format!("{v:?} is not an absolute host path"),
                    "give an absolute directory on the VM, without spaces or ':' (compose mounts it)",
                ));
            }
            v.trim_end_matches('/').to_string()
        }
    };
    let databases = match &raw.databases {
        None => vec!["postgres".to_string()],
        Some(d) => {
            let list = d.get_ref();
            if list.is_empty() || list.iter().any(|n| n.is_empty() || n.contains(['/', '\0'])) {
                return Err(err(
                    &d.span(),
                    "backup.databases",
                    format!("{list:?} is not a list of database names"),
                    "list the databases to dump, e.g. databases = [\"postgres\"]",
                ));
            }
            list.clone()
        }
    };
    let port = listen_port(&raw.port, DEFAULT_BACKUP_PORT, "backup.port", err)?;
    Ok(Backup {
        member: member.name,
        every,
        keep,
        dir,
        databases,
        port,
    })
}

pub(super) fn monitoring(
    raw: &RawMonitoring,
    exporter_image: Option<String>,
    err: FieldErr<'_>,
) -> Result<Monitoring, ManifestsError> {
    let exporter_port = listen_port(
        &raw.exporter_port,
        DEFAULT_EXPORTER_PORT,
        "monitoring.exporter_port",
        err,
    )?;
    Ok(Monitoring {
        exporter_port,
        max_lag: raw.max_lag.unwrap_or(DEFAULT_MAX_LAG),
        exporter_image: exporter_image.unwrap_or_else(|| DEFAULT_EXPORTER_IMAGE.into()),
    })
}

pub(super) fn walg(raw: &RawWalg, err: FieldErr<'_>) -> Result<Walg, ManifestsError> {
    let prefix = raw.s3_prefix.get_ref();
    if !prefix.starts_with("s3://") || prefix.len() <= 5 || prefix.contains(char::is_whitespace) {
        return Err(err(
            &raw.s3_prefix.span(),
            "walg.s3_prefix",
            format!("{prefix:?} is not an s3:// prefix"),
            "give the bucket and path WAL-G writes under, e.g. s3_prefix = \"s3://backups/supabase\"",
        ));
    }
    if let Some(e) = &raw.endpoint
        && !(e.get_ref().starts_with("https://") || e.get_ref().starts_with("http://"))
    {
        return Err(err(
            &e.span(),
            "walg.endpoint",
            format!("{:?} is not an http(s) URL", e.get_ref()),
            "give the S3-compatible store's URL, e.g. endpoint = \"https://s3.example:9000\"",
        ));
    }
    let schedule = match &raw.schedule {
        None => "0 1 * * *".to_string(),
        Some(s) if s.get_ref().split_whitespace().count() != 5 => {
            return Err(err(
                &s.span(),
                "walg.schedule",
                format!("{:?} is not a cron schedule (five fields)", s.get_ref()),
                "write minute hour day month weekday, e.g. schedule = \"0 1 * * *\"",
            ));
        }
        Some(s) => s.get_ref().clone(),
    };
    Ok(Walg {
        s3_prefix: prefix.clone(),
        endpoint: raw.endpoint.as_ref().map(|e| e.get_ref().clone()),
        region: raw.region.clone(),
        force_path_style: raw.force_path_style,
        schedule,
        retain: raw.retain.unwrap_or(5),
    })
}

/// A port a service listens on: given (not 0) or the default.
fn listen_port(
    p: &Option<Spanned<u16>>,
    default: u16,
    field: &str,
    err: FieldErr<'_>,
) -> Result<u16, ManifestsError> {
    match p {
        Some(p) if *p.get_ref() == 0 => Err(err(
            &p.span(),
            field,
            "port 0 cannot be listened on".into(),
            "give a port between 1 and 65535",
        )),
        Some(p) => Ok(*p.get_ref()),
        None => Ok(default),
    }
}

/// A port of a day-two service that must not collide with the member's others.
pub fn ports_of(backup: Option<&Backup>, monitoring: Option<&Monitoring>) -> Vec<(u16, &'static str)> {
    let mut v = Vec::new();
    if let Some(b) = backup {
        v.push((b.port, "backup.port"));
    }
    if let Some(m) = monitoring {
        v.push((m.exporter_port, "monitoring.exporter_port"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("30s"), Some(30));
        assert_eq!(parse_interval("15m"), Some(900));
        assert_eq!(parse_interval("6h"), Some(21600));
        assert_eq!(parse_interval("1d"), Some(86400));
        assert_eq!(parse_interval("45"), Some(45));
        assert_eq!(parse_interval("0s"), None);
        assert_eq!(parse_interval("1w"), None);
        assert_eq!(parse_interval("h"), None);
    }
}

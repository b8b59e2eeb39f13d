//! The requests `status` makes, each bounded in time, and what it reads
//! from their answers: Patroni's `/patroni` and `/cluster`, HAProxy's stats
//! CSV (`/;csv`), the exporter's and the backup service's endpoints.

use std::collections::BTreeMap;
use std::time::Duration;

/// A login for HTTP basic authentication.
#[derive(Clone)]
pub struct Login {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({}, ***)", self.user)
    }
}

/// One GET with a connect limit and a total limit: the body, or why not.
pub async fn get(
    client: &reqwest::Client,
    url: &str,
    login: Option<&Login>,
    limit: Duration,
) -> Result<String, String> {
    let once = async {
        let mut req = client.get(url);
        if let Some(l) = login {
            req = req.basic_auth(&l.user, Some(&l.password));
        }
        let resp = req.send().await.map_err(|e| one_line(&e))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| one_line(&e))?;
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        Ok(body)
    };
    match tokio::time::timeout(limit, once).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

fn one_line(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// What `/patroni` says of its own member.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Own {
    pub role: String,
    pub state: String,
    pub timeline: Option<u64>,
    pub image: Option<String>,
    /// On the leader: (application_name, state) of each WAL sender
    /// (pg_stat_replication); Patroni names a replica's connection after it.
    pub replication: Vec<(String, String)>,
}

pub fn parse_patroni(body: &str) -> Result<Own, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    // Patroni 3 says "master", 4 "primary": the leader either way.
    let role = match v["role"].as_str().unwrap_or("") {
        "master" | "primary" => "leader".to_string(),
        r => r.to_string(),
    };
    Ok(Own {
        role,
        state: v["state"].as_str().unwrap_or("").to_string(),
        timeline: v["timeline"].as_u64(),
        image: v["tags"]["pgha_image"].as_str().map(str::to_string),
        replication: v["replication"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        (
                            r["application_name"].as_str().unwrap_or("").to_string(),
                            r["state"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// One member as `/cluster` (the DCS's view) lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub role: String,
    pub state: String,
    pub timeline: Option<u64>,
    /// Replay lag in bytes; None on the leader or when Patroni says "unknown".
    pub lag: Option<u64>,
}

pub fn parse_cluster(body: &str) -> Result<BTreeMap<String, Listed>, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let members = v["members"].as_array().ok_or("no `members` in /cluster")?;
    Ok(members
        .iter()
        .map(|m| {
            let role = match m["role"].as_str().unwrap_or("") {
                "master" | "primary" | "standby_leader" => "leader".to_string(),
                r => r.to_string(),
            };
            (
                m["name"].as_str().unwrap_or("").to_string(),
                Listed {
                    role,
                    state: m["state"].as_str().unwrap_or("").to_string(),
                    timeline: m["timeline"].as_u64(),
                    lag: m["lag"].as_u64(),
                },
            )
        })
        .collect())
}

/// HAProxy's stats CSV: (backend, server) → status ("UP", "DOWN", "MAINT", …).
pub fn parse_haproxy_csv(body: &str) -> Result<BTreeMap<(String, String), String>, String> {
    let mut lines = body.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or("not HAProxy's stats CSV (no `# pxname,…` header)")?;
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("no column {name} in HAProxy's CSV"))
    };
    let (px, sv, st) = (col("pxname")?, col("svname")?, col("status")?);
    let mut out = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() <= st.max(px).max(sv) || f[sv] == "FRONTEND" || f[sv] == "BACKEND" {
            continue;
        }
        out.insert((f[px].to_string(), f[sv].to_string()), f[st].to_string());
    }
    Ok(out)
}

/// The value of the first sample of `name` (whatever its labels) in
/// Prometheus' text format.
pub fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let value = if rest.starts_with('{') {
            rest.rsplit_once('}')?.1
        } else if rest.starts_with(' ') {
            rest
        } else {
            return None;
        };
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patroni_3_and_4_roles() {
        let own =
            parse_patroni(r#"{"state":"running","role":"master","timeline":3,"tags":{"pgha_image":"x:1"}}"#)
                .unwrap();
        assert_eq!(own.role, "leader");
        assert_eq!(own.timeline, Some(3));
        assert_eq!(own.image.as_deref(), Some("x:1"));
        assert_eq!(parse_patroni(r#"{"role":"primary"}"#).unwrap().role, "leader");
        let leader = parse_patroni(
            r#"{"role":"master","replication":[{"application_name":"pg2","state":"streaming"}]}"#,
        )
        .unwrap();
        assert_eq!(leader.replication, [("pg2".to_string(), "streaming".to_string())]);
    }

    #[test]
    fn cluster_lag() {
        let c = parse_cluster(
            r#"{"members":[{"name":"a","role":"leader","state":"running","timeline":2},
            {"name":"b","role":"replica","state":"streaming","timeline":2,"lag":17},
            {"name":"c","role":"replica","state":"running","lag":"unknown"}]}"#,
        )
        .unwrap();
        assert_eq!(c["a"].lag, None);
        assert_eq!(c["b"].lag, Some(17));
        assert_eq!(c["c"].lag, None);
        assert_eq!(c["b"].state, "streaming");
    }

    #[test]
    fn haproxy_csv() {
        let csv = "# pxname,svname,qcur,status,x\nprimary,FRONTEND,,OPEN,\nprimary,pg1,0,UP,\nprimary,pg2,0,DOWN,\nprimary,BACKEND,0,UP,\n";
        let m = parse_haproxy_csv(csv).unwrap();
        assert_eq!(m[&("primary".into(), "pg1".into())], "UP");
        assert_eq!(m[&("primary".into(), "pg2".into())], "DOWN");
        assert_eq!(m.len(), 2);
        assert!(parse_haproxy_csv("<html>").is_err());
    }

    #[test]
    fn metrics_text() {
        let t = "# HELP x\nfoox 1\nfoo{a=\"b\"} 3\nfoo 4\nbar 5e0\n";
        assert_eq!(metric(t, "foo"), Some(3.0));
        assert_eq!(metric(t, "bar"), Some(5.0));
        assert_eq!(metric(t, "baz"), None);
    }
}

//! `[USER@]HOST[:PORT]` targets, as `--to` takes them.

use super::ShipError;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Target {
    /// Parse one target; `[::1]:22` brackets an IPv6 address.
    pub fn parse(s: &str) -> Result<Self, ShipError> {
        let bad = |why: &str| ShipError::BadTarget {
            target: s.to_string(),
            why: why.to_string(),
        };
        let s = s.trim();
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) => (Some(u.to_string()), r),
            None => (None, s),
        };
        if user
            .as_deref()
            .is_some_and(|u| u.is_empty() || u.starts_with('-'))
        {
            return Err(bad("empty or invalid user"));
        }
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad("junk after ']'")),
            };
            (h.to_string(), port)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c == '/' || c == '\'') {
            return Err(bad("not a host name or address"));
        }
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("port is not 1-65535"))
            })
            .transpose()?;
        Ok(Target { user, host, port })
    }

    /// Every target of `--to` values (each may be comma-separated), in order, without repeats.
    pub fn parse_list<S: AsRef<str>>(values: &[S]) -> Result<Vec<Target>, ShipError> {
        let mut out: Vec<Target> = Vec::new();
        for v in values {
            for part in v.as_ref().split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let t = Target::parse(part)?;
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        if out.is_empty() {
            return Err(ShipError::NoTarget);
        }
        Ok(out)
    }

    /// What ssh is given as destination: `user@host` (port goes to `-p`).
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let t = Target::parse("root@10.0.0.1:2222").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.port),
            (Some("root"), "10.0.0.1", Some(2222))
        );
        assert_eq!(t.to_string(), "root@10.0.0.1:2222");
        let t = Target::parse("vm1").unwrap();
        assert_eq!((t.user, t.port), (None, None));
        let t = Target::parse("[::1]:22").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", Some(22)));
        assert_eq!(t.to_string(), "[::1]:22");
        for bad in ["", "@h", "h:0", "h:x", "-oProxyCommand=x", "a b", "[::1"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let l = Target::parse_list(&["a,b", "a", "c:22"]).unwrap();
        assert_eq!(l.len(), 3);
        assert!(Target::parse_list::<&str>(&[]).is_err());
    }
}

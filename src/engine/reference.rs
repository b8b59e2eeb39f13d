//! Image references (`[REGISTRY[:PORT]/]PATH[:TAG][@sha256:DIGEST]`), checked
//! by the grammar of the distribution spec before any work starts, so that a
//! malformed tag is a usage error and not an engine failure an hour later.

/// Why `reference` is not a valid image reference, or `Ok`.
pub fn check_reference(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(c) = reference.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("it contains {c:?}"));
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest {
        let hex = d
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("the digest {d:?} is not sha256:<64 hex>"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("the digest {d:?} is not sha256:<64 lowercase hex>"));
        }
    }
    // The tag is after the last ':' that follows the last '/' (a registry port has a '/' after it).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(format!(
                "the tag {t:?} is not 1-128 of A-Z a-z 0-9 _ . - (not starting with . or -)"
            ));
        }
    }
    if name.len() > 255 {
        return Err("the name is longer than 255 characters".into());
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.')
            || first.contains(':')
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase())
        {
            check_domain(first)?;
            parts.remove(0);
        }
    }
    for p in parts {
        check_path_component(p)?;
    }
    Ok(())
}

fn check_domain(d: &str) -> Result<(), String> {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("the registry port {p:?} is not a number"));
    }
    let ok = !host.is_empty()
        && host.split('.').all(|c| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("the registry {host:?} is not a host name"))
    }
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn check_path_component(p: &str) -> Result<(), String> {
    let bad = || {
        if p.chars().any(|c| c.is_ascii_uppercase()) {
            format!("{p:?} has uppercase letters; image names are lowercase")
        } else {
            format!("{p:?} is not lowercase letters and digits joined by '.', '_', '__' or '-'")
        }
    };
    if p.is_empty() {
        return Err("it has an empty name part".into());
    }
    let b = p.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err(bad());
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return Err(bad());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_reference;

    #[test]
    fn valid_references() {
        for r in [
            "supabase-patroni:v1.0",
            "localhost/pgha-test/spilo-standin:15",
            "ghcr.io/zalando/spilo-16:3.2-p2",
            "localhost:5000/db",
            "registry.example.com:443/a/b__c/d.e:Tag_1",
            "x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "db:16@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a--b",
        ] {
            assert_eq!(check_reference(r), Ok(()), "{r}");
        }
    }

    #[test]
    fn malformed_references() {
        for r in [
            "",
            "Supabase:v1",
            "my image:1",
            "x:",
            "x:-1",
            "x:.a",
            "x:a b",
            "-x",
            "x-",
            "a//b",
            "x@sha256:abc",
            "x@md5:0123",
            "localhost:port/x",
            "x:1:2",
            "a/b:c/d",
            "x\n",
        ] {
            assert!(check_reference(r).is_err(), "{r:?} accepted");
        }
        assert!(check_reference("Supabase:v1").unwrap_err().contains("lowercase"));
    }
}

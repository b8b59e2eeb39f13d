//! Hiding credentials wherever a URL is shown: progress lines, errors,
//! `--json`, listings. One implementation, used everywhere a URL leaves the
//! process in text.
//!
//! What is hidden:
//! - the userinfo of a URL: `https://user:secret@host/` shows as
//!   `https://user:***@host/`, and a lone token (`https://TOKEN@host/`) as
//!   `https://***@host/`;
//! - the values of query parameters whose names look like credentials
//!   (`token`, `key`, `sig`, `secret`, `pass`, `auth`, `credential`, e.g. a
//!   pre-signed S3 URL's `X-Amz-Signature`).
//!
//! A URL the parser refuses (e.g. a password with a `%` not followed by two
//! hex digits) is still redacted: everything between `://` and the last `@`
//! of the word is hidden. [`text`] applies the same to every URL found in a
//! free-form message, and hides the value of a libpq-style `password=…`,
//! which is what [`crate::Error::report`] does as a last line of defence.

use std::borrow::Cow;
use std::fmt;

/// What replaces a hidden part.
const MASK: &str = "***";

/// A URL kept whole (it is needed to connect) but shown redacted: its
/// `Display`, `Debug` and `Serialize` all hide credentials.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedactedUrl(String);

impl RedactedUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its credentials, for connecting. Never print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The redacted text.
    pub fn shown(&self) -> String {
        url(&self.0).into_owned()
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&url(&self.0))
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*url(&self.0), f)
    }
}

impl serde::Serialize for RedactedUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&url(&self.0))
    }
}

impl From<&str> for RedactedUrl {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for RedactedUrl {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

/// Whether a query parameter's name suggests its value is a credential.
fn secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["pass", "secret", "token", "sig", "key", "auth", "credential"]
        .iter()
        .any(|w| n.contains(w))
}

/// One URL (or any string: text without `://` is returned unchanged), with
/// its credentials hidden.
pub fn url(s: &str) -> Cow<'_, str> {
    let Some(sep) = s.find("://") else {
        return Cow::Borrowed(s);
    };
    let after = sep + 3;
    // The authority ends at the first of `/?#`; its userinfo at its last `@`.
    let auth_end = s[after..].find(['/', '?', '#']).map_or(s.len(), |i| after + i);
    let query = s[after..].find('?').map(|i| after + i);
    let has_userinfo = s[after..auth_end].contains('@');
    let has_secret_query = query.is_some_and(|q| {
        let end = s[q..].find('#').map_or(s.len(), |i| q + i);
        s[q + 1..end]
            .split('&')
            .any(|kv| kv.split_once('=').is_some_and(|(k, _)| secret_param(k)))
    });
    // An `@` after the authority may still be a userinfo that holds a raw
    // `/`, `?` or `#` (which no parser reads as the user meant): hide it too.
    let stray_at = !has_userinfo && s[auth_end..].contains('@') && reqwest::Url::parse(s).is_err();
    if !has_userinfo && !has_secret_query && !stray_at {
        return Cow::Borrowed(s);
    }
    if let Ok(mut u) = reqwest::Url::parse(s)
        && !u.cannot_be_a_base()
    {
        let mut out = String::new();
        out.push_str(u.scheme());
        out.push_str("://");
        if !u.username().is_empty() || u.password().is_some() {
            if u.password().is_some() {
                out.push_str(u.username());
                out.push(':');
            }
            out.push_str(MASK);
            out.push('@');
        }
        let _ = u.set_username("");
        let _ = u.set_password(None);
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret_param(&k) {
                    MASK.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        if u.query().is_some() {
            // Rebuilt by hand so that the mask stays readable (not %2A).
            let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            u.set_query(None);
            let rest = &u.as_str()[u.scheme().len() + 3..];
            let (before_frag, frag) = match rest.split_once('#') {
                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                None => (rest.to_string(), None),
            };
            out.push_str(&before_frag);
            out.push('?');
            out.push_str(&q.join("&"));
            if let Some(f) = frag {
                out.push('#');
                out.push_str(&f);
            }
        } else {
            out.push_str(&u.as_str()[u.scheme().len() + 3..]);
        }
        return Cow::Owned(out);
    }
    // Unparseable: hide everything between `://` and the last `@`.
    match s.rfind('@') {
        Some(at) if at > after => Cow::Owned(format!("{}{MASK}{}", &s[..after], &s[at..])),
        _ => Cow::Borrowed(s),
    }
}

/// Characters that end a URL inside free text.
fn ends_word(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`')
}

/// Every URL in free text (error messages, log lines), redacted by [`url`];
/// and the value of a libpq-style `password=…` (quoted or not).
pub fn text(s: &str) -> Cow<'_, str> {
    let s = match key_value_password(s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(o) => return Cow::Owned(text(&o).into_owned()),
    };
    if !s.contains("://") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(sep) = rest.find("://") {
        let start = rest[..sep]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + rest[i..].chars().next().map_or(1, char::len_utf8));
        let end = rest[sep..].find(ends_word).map_or(rest.len(), |i| sep + i);
        out.push_str(&rest[..start]);
        out.push_str(&url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

/// `password=VALUE` / `password='VAL UE'` (any case) with VALUE hidden;
/// returns the text unchanged (borrowed) when there is none, or when every
/// one is already hidden.
fn key_value_password(s: &str) -> Cow<'_, str> {
    const KEY: &str = "password=";
    let lower = s.to_ascii_lowercase();
    let mut out = String::new();
    let mut last = 0;
    let mut from = 0;
    while let Some(i) = lower[from..].find(KEY).map(|i| from + i) {
        let v = i + KEY.len();
        // A key, not the end of a longer word (e.g. `nopassword=`).
        let word_start = i == 0 || !lower.as_bytes()[i - 1].is_ascii_alphanumeric();
        let end = if s[v..].starts_with('\'') {
            // Up to the closing quote (backslash escapes skipped).
            let b = s.as_bytes();
            let mut j = v + 1;
            while j < b.len() && b[j] != b'\'' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(s.len())
        } else {
            s[v..]
                .find(|c: char| c.is_whitespace())
                .map_or(s.len(), |k| v + k)
        };
        from = end.max(v);
        if !word_start || end == v || &s[v..end] == MASK {
            continue;
        }
        out.push_str(&s[last..v]);
        out.push_str(MASK);
        last = end;
    }
    if last == 0 {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[last..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_hidden() {
        assert_eq!(
            url("https://u:s3cret@h.example/m/x.tar.gz"),
            "https://u:***@h.example/m/x.tar.gz"
        );
        assert_eq!(url("https://TOKEN@h.example/m"), "https://***@h.example/m");
        assert_eq!(url("http://127.0.0.1:8080/m"), "http://127.0.0.1:8080/m");
        assert_eq!(url("/a/path@x"), "/a/path@x");
        // A password the parser refuses is hidden all the same.
        assert_eq!(url("https://u:p%zz@h/x"), "https://u:***@h/x");
        assert_eq!(url("https://u:pa/ss@h/x"), "https://***@h/x");
        assert_eq!(url("https://u:p@ss@h/x"), "https://u:***@h/x");
        assert!(!url("postgres://u:hunter2@db:5432/postgres").contains("hunter2"));
    }

    #[test]
    fn secret_query_values_are_hidden() {
        let u = url("https://s3.example/b/x.tgz?X-Amz-Signature=abc123&X-Amz-Date=1#frag");
        assert_eq!(
            u,
            "https://s3.example/b/x.tgz?X-Amz-Signature=***&X-Amz-Date=1#frag"
        );
        assert_eq!(url("https://h/x?v=1"), "https://h/x?v=1");
    }

    #[test]
    fn urls_in_text_are_hidden() {
        let t = "error sending request for url (http://u:s3cret@127.0.0.1:1/m/a.tar.gz): refused";
        assert_eq!(
            text(t),
            "error sending request for url (http://u:***@127.0.0.1:1/m/a.tar.gz): refused"
        );
        let t = "invalid --mirror \"https://u:p%zz@h/m\": bad";
        assert_eq!(text(t), "invalid --mirror \"https://u:***@h/m\": bad");
        assert_eq!(text("no urls here: a@b"), "no urls here: a@b");
        assert_eq!(text("ünï https://h/x ok"), "ünï https://h/x ok");
    }

    #[test]
    fn key_value_passwords_in_text_are_hidden() {
        assert_eq!(
            text("bad dsn \"host=db password=hunter2 user=x\""),
            "bad dsn \"host=db password=*** user=x\""
        );
        assert_eq!(text("PASSWORD='a b\\' c' port=1"), "PASSWORD=*** port=1");
        assert_eq!(text("nopassword=x password="), "nopassword=x password=");
        assert_eq!(text("password=*** again"), "password=*** again");
    }

    #[test]
    fn redacted_url_displays_serializes_and_debugs_redacted() {
        let u = RedactedUrl::new("https://u:s3cret@h/x");
        assert_eq!(u.to_string(), "https://u:***@h/x");
        assert_eq!(format!("{u:?}"), "\"https://u:***@h/x\"");
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"https://u:***@h/x\"");
        assert_eq!(u.expose(), "https://u:s3cret@h/x");
    }
}

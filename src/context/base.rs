//! What we know about base images, without pulling them (no registry is
//! reachable while generating): the Spilo tags of `spilo-contract.md`, and a
//! documented assumption for anything else.
//!
//! - A known Spilo tag (`ghcr.io/zalando/spilo-16:3.2-p2`, …) gives its OS,
//!   glibc, libcurl, PostgreSQL majors and main major from the table below.
//! - A `spilo-NN` repository with another tag or a `@sha256:` digest is taken
//!   as the Spilo family of that repository: Ubuntu 22.04, main major NN, the
//!   majors every Spilo tag of that repository has.
//! - Anything else is an unknown base: it needs `--pg`, and is assumed to be
//!   Ubuntu-22.04-like (glibc 2.35, libcurl 7.81) — the oldest libraries any
//!   supported base has, so that what builds and runs there also does on a
//!   newer base — unless `--base-glibc` / `--base-lib` say otherwise. Its own
//!   `shared_preload_libraries` are unknown: empty unless `--base-preload`.

use serde::Serialize;
use std::collections::BTreeMap;

/// The base image used when `--base-image` is not given.
pub const DEFAULT_BASE_IMAGE: &str = "ghcr.io/zalando/spilo-16:3.2-p2";

/// Spilo's own default `shared_preload_libraries` (configure_spilo.py), plus
/// the libraries it appends when they exist for the major. A configuration
/// that sets the list must repeat all of them (spilo#1043).
pub const SPILO_PRELOAD: &[&str] = &[
    "bg_mon",
    "pg_stat_statements",
    "pgextwlist",
    "pg_auth_mon",
    "set_user",
    "timescaledb",
    "pg_cron",
    "pg_stat_kcache",
];

/// One known Spilo release.
struct KnownSpilo {
    repo_major: u32,
    tags: &'static [&'static str],
    patroni: &'static str,
    pg_min: u32,
}

/// From spilo-contract.md ("Tags and what is inside").
const KNOWN: &[KnownSpilo] = &[
    KnownSpilo {
        repo_major: 16,
        tags: &["3.2-p2", "3.2-p3"],
        patroni: "3.2.2",
        pg_min: 11,
    },
    KnownSpilo {
        repo_major: 16,
        tags: &["3.3-p1", "3.3-p2", "3.3-p3"],
        patroni: "3.3",
        pg_min: 12,
    },
    KnownSpilo {
        repo_major: 17,
        tags: &["4.0-p2", "4.0-p3"],
        patroni: "4.0.4",
        pg_min: 13,
    },
];

/// The Ubuntu 22.04 facts every Spilo 3.x / 4.0 image shares.
const UBUNTU_2204: &str = "Ubuntu 22.04";
const GLIBC_2204: &str = "2.35";
const LIBCURL_2204: &str = "7.81";

/// How much we know about the base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum BaseKnowledge {
    /// A Spilo tag from the contract's table.
    KnownSpilo { tag: String, patroni: String },
    /// A `spilo-NN` image with a tag or digest we have no record of.
    SpiloFamily,
    /// Anything else: facts are assumptions (or what the user told us).
    Unknown,
}

/// A parsed image reference: `name[:tag][@sha256:digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    /// Registry and path, e.g. `ghcr.io/zalando/spilo-16`.
    pub name: String,
    pub tag: Option<String>,
    /// `sha256:<hex>` when the reference is pinned by digest.
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{s:?} is not an image reference"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| format!("{s:?}: only sha256 digests are supported (@sha256:<64 hex>)"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!(
                        "{s:?}: the digest must be sha256: followed by 64 hex characters"
                    ));
                }
                (r, Some(format!("sha256:{}", hex.to_ascii_lowercase())))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that comes after the last '/' (a ':' before
        // it is a registry port).
        let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if name.is_empty() || tag.as_deref() == Some("") {
            return Err(format!("{s:?} is not an image reference"));
        }
        Ok(Self {
            name: name.to_string(),
            tag,
            digest,
        })
    }

    /// The last path component, e.g. `spilo-16`.
    pub fn repository(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }
}

/// What the generator knows (or assumes) about the base image.
#[derive(Debug, Clone, Serialize)]
pub struct BaseImage {
    /// The reference as given (used in `FROM`).
    pub reference: String,
    pub image: ImageRef,
    pub knowledge: BaseKnowledge,
    /// e.g. "Ubuntu 22.04" (assumed for unknown bases).
    pub os: String,
    pub glibc: String,
    /// Library versions that matter for building (e.g. `libcurl = 7.81`).
    pub libs: BTreeMap<String, String>,
    /// The PostgreSQL majors the image holds; None when unknown.
    pub pg_majors: Option<Vec<u32>>,
    /// The major whose binaries are on PATH; None when unknown.
    pub main_major: Option<u32>,
    /// The base's own `shared_preload_libraries`.
    pub preload: Vec<String>,
}

/// What the user told us about a base we do not know.
#[derive(Debug, Clone, Default)]
pub struct BaseOverrides {
    pub glibc: Option<String>,
    pub libs: BTreeMap<String, String>,
    /// The base's own `shared_preload_libraries`; None: the known default.
    pub preload: Option<Vec<String>>,
}

impl BaseImage {
    /// Resolve a reference into what we know about it.
    pub fn resolve(reference: &str, overrides: &BaseOverrides) -> Result<Self, String> {
        let image = ImageRef::parse(reference)?;
        let repo_major = image
            .repository()
            .strip_prefix("spilo-")
            .and_then(|m| m.parse::<u32>().ok());
        let known = repo_major.and_then(|m| {
            let tag = image.tag.as_deref()?;
            KNOWN.iter().find(|k| k.repo_major == m && k.tags.contains(&tag))
        });
        let mut base = match (known, repo_major) {
            (Some(k), _) => BaseImage {
                reference: reference.trim().to_string(),
                knowledge: BaseKnowledge::KnownSpilo {
                    tag: image.tag.clone().unwrap_or_default(),
                    patroni: k.patroni.to_string(),
                },
                os: UBUNTU_2204.into(),
                glibc: GLIBC_2204.into(),
                libs: [("libcurl".to_string(), LIBCURL_2204.to_string())].into(),
                pg_majors: Some((k.pg_min..=k.repo_major).collect()),
                main_major: Some(k.repo_major),
                preload: SPILO_PRELOAD.iter().map(|s| s.to_string()).collect(),
                image,
            },
            (None, Some(m)) => {
                // Every Spilo tag of this repository has these majors (the
                // newest tags dropped the oldest ones).
                let pg_min = KNOWN
                    .iter()
                    .filter(|k| k.repo_major == m)
                    .map(|k| k.pg_min)
                    .max()
                    .unwrap_or(m.saturating_sub(4));
                BaseImage {
                    reference: reference.trim().to_string(),
                    knowledge: BaseKnowledge::SpiloFamily,
                    os: UBUNTU_2204.into(),
                    glibc: GLIBC_2204.into(),
                    libs: [("libcurl".to_string(), LIBCURL_2204.to_string())].into(),
                    pg_majors: Some((pg_min..=m).collect()),
                    main_major: Some(m),
                    preload: SPILO_PRELOAD.iter().map(|s| s.to_string()).collect(),
                    image,
                }
            }
            (None, None) => BaseImage {
                reference: reference.trim().to_string(),
                knowledge: BaseKnowledge::Unknown,
                os: format!("unknown (assumed {UBUNTU_2204}-like)"),
                glibc: GLIBC_2204.into(),
                libs: [("libcurl".to_string(), LIBCURL_2204.to_string())].into(),
                pg_majors: None,
                main_major: None,
                preload: Vec::new(),
                image,
            },
        };
        if let Some(g) = &overrides.glibc {
            base.glibc = g.clone();
        }
        for (k, v) in &overrides.libs {
            base.libs.insert(k.clone(), v.clone());
        }
        if let Some(p) = &overrides.preload {
            base.preload = p.clone();
        }
        Ok(base)
    }

    pub fn is_known(&self) -> bool {
        !matches!(self.knowledge, BaseKnowledge::Unknown)
    }

    /// One line for humans, e.g. "Spilo 3.2-p2 (Ubuntu 22.04, glibc 2.35, PostgreSQL 11-16, main 16)".
    pub fn describe(&self) -> String {
        let what = match &self.knowledge {
            BaseKnowledge::KnownSpilo { tag, patroni } => format!("Spilo {tag}, Patroni {patroni}"),
            BaseKnowledge::SpiloFamily => "a Spilo image not in the known table".to_string(),
            BaseKnowledge::Unknown => "an unknown base".to_string(),
        };
        let majors = match &self.pg_majors {
            Some(m) if !m.is_empty() => format!(
                ", PostgreSQL {}-{}",
                m.first().copied().unwrap_or_default(),
                m.last().copied().unwrap_or_default()
            ),
            _ => String::new(),
        };
        let libs: Vec<String> = self.libs.iter().map(|(k, v)| format!("{k} {v}")).collect();
        format!(
            "{what}: {}, glibc {}{}{}{}",
            self.os,
            self.glibc,
            if libs.is_empty() {
                String::new()
            } else {
                format!(", {}", libs.join(", "))
            },
            majors,
            self.main_major
                .map(|m| format!(", main major {m}"))
                .unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = ImageRef::parse("ghcr.io/zalando/spilo-16:3.2-p2").unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag.as_deref()),
            ("ghcr.io/zalando/spilo-16", Some("3.2-p2"))
        );
        let r = ImageRef::parse("localhost:5000/x/spilo-17").unwrap();
        assert_eq!((r.name.as_str(), r.tag), ("localhost:5000/x/spilo-17", None));
        let d = "a".repeat(64);
        let r = ImageRef::parse(&format!("ghcr.io/zalando/spilo-16@sha256:{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(format!("sha256:{d}").as_str()));
        assert!(ImageRef::parse("x@sha256:abc").is_err());
        assert!(ImageRef::parse("x@md5:abc").is_err());
        assert!(ImageRef::parse("a b").is_err());
        assert!(ImageRef::parse("x:").is_err());
    }

    #[test]
    fn knows_spilo_tags() {
        let b = BaseImage::resolve(DEFAULT_BASE_IMAGE, &Default::default()).unwrap();
        assert!(matches!(b.knowledge, BaseKnowledge::KnownSpilo { .. }));
        assert_eq!(b.main_major, Some(16));
        assert_eq!(b.pg_majors, Some((11..=16).collect()));
        assert_eq!(b.libs["libcurl"], "7.81");
        assert_eq!(b.glibc, "2.35");
        let b = BaseImage::resolve("ghcr.io/zalando/spilo-17:4.0-p2", &Default::default()).unwrap();
        assert_eq!(b.pg_majors, Some((13..=17).collect()));
        let b = BaseImage::resolve(
            &format!("ghcr.io/zalando/spilo-16@sha256:{}", "b".repeat(64)),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(b.knowledge, BaseKnowledge::SpiloFamily);
        assert_eq!(b.pg_majors, Some((12..=16).collect()));
        assert_eq!(b.main_major, Some(16));
    }

    #[test]
    fn unknown_base_is_assumed_ubuntu_like_unless_told() {
        let b = BaseImage::resolve("localhost/pgha-test/spilo-standin:15", &Default::default()).unwrap();
        assert_eq!(b.knowledge, BaseKnowledge::Unknown);
        assert_eq!((b.glibc.as_str(), b.libs["libcurl"].as_str()), ("2.35", "7.81"));
        assert!(b.preload.is_empty() && b.main_major.is_none());
        let o = BaseOverrides {
            glibc: Some("2.36".into()),
            libs: [("libcurl".to_string(), "7.88".to_string())].into(),
            preload: Some(vec!["pg_stat_statements".into()]),
        };
        let b = BaseImage::resolve("localhost/pgha-test/spilo-standin:15", &o).unwrap();
        assert_eq!((b.glibc.as_str(), b.libs["libcurl"].as_str()), ("2.36", "7.88"));
        assert_eq!(b.preload, ["pg_stat_statements"]);
    }
}

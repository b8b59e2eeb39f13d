//! What we know about the base image, and where each fact came from.
//!
//! - **probe**: read from the base itself ([`super::probe`]): what `generate`
//!   and `build` use whenever an engine is there. It wins over the table.
//! - **flag**: `--base-glibc`, `--base-lib`, `--base-preload` win over the
//!   probe; a flag that disagrees with the probe is a warning naming both.
//! - **table**: the Spilo tags of `spilo-contract.md`, kept as a cross-check
//!   of the probe (a disagreement is a note) and for `generate --no-probe`
//!   (no engine asked): a known tag gives its OS, glibc, libcurl, majors,
//!   main major and Spilo's preload list; a `spilo-NN` repository with
//!   another tag or a digest is taken as that Spilo family.
//! - **assumed**: anything else without a probe is taken as
//!   Ubuntu-22.04-like (glibc 2.35, libcurl 7.81, the oldest libraries any
//!   supported base has); its majors and its own preload list are unknown
//!   (the plan then asks for `--pg` and `--base-preload`).

use super::probe::BaseFacts;
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

fn list(majors: Option<&[u32]>) -> String {
    majors
        .unwrap_or_default()
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(",")
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
    /// The base's own `shared_preload_libraries`; None: unknown.
    pub preload: Option<Vec<String>>,
    /// Where each fact came from: `os`, `glibc`, `lib.<name>`, `majors`,
    /// `main major`, `preload` → probe, flag, table or assumed.
    pub sources: BTreeMap<String, FactSource>,
    /// What the probe read (None with `--no-probe` or without an engine).
    pub probed: Option<BaseFacts>,
    /// Flags that disagree with the probe, and table entries that do.
    pub warnings: Vec<String>,
}

/// Where a fact about the base came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FactSource {
    Probe,
    Flag,
    Table,
    Assumed,
}

impl std::fmt::Display for FactSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FactSource::Probe => "probe",
            FactSource::Flag => "flag",
            FactSource::Table => "table",
            FactSource::Assumed => "assumed",
        })
    }
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
    /// Resolve a reference into what we know about it: the table's entry
    /// (or the assumption), then the probe's facts over it, then the flags.
    pub fn resolve(
        reference: &str,
        overrides: &BaseOverrides,
        probed: Option<&BaseFacts>,
    ) -> Result<Self, String> {
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
                preload: Some(SPILO_PRELOAD.iter().map(|s| s.to_string()).collect()),
                sources: BTreeMap::new(),
                probed: None,
                warnings: Vec::new(),
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
                    preload: Some(SPILO_PRELOAD.iter().map(|s| s.to_string()).collect()),
                    sources: BTreeMap::new(),
                    probed: None,
                    warnings: Vec::new(),
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
                preload: None,
                sources: BTreeMap::new(),
                probed: None,
                warnings: Vec::new(),
                image,
            },
        };
        let table = if base.knowledge == BaseKnowledge::Unknown {
            FactSource::Assumed
        } else {
            FactSource::Table
        };
        for k in ["os", "glibc", "majors", "main major", "preload"] {
            base.sources.insert(k.to_string(), table);
        }
        for k in base.libs.keys() {
            base.sources.insert(format!("lib.{k}"), table);
        }
        if base.pg_majors.is_none() {
            base.sources.remove("majors");
            base.sources.remove("main major");
        }
        if base.preload.is_none() {
            base.sources.remove("preload");
        }
        if let Some(f) = probed {
            base.apply_probe(f);
        }
        base.apply_flags(overrides);
        Ok(base)
    }

    /// The probe's facts over the table's: a table entry that disagrees is a note.
    fn apply_probe(&mut self, f: &BaseFacts) {
        let cross_check = self.knowledge != BaseKnowledge::Unknown;
        let set = |base: &mut Self, key: &str, have: String, probed: String| {
            if cross_check && have != probed && base.sources.get(key) == Some(&FactSource::Table) {
                base.warnings.push(format!(
                    "the probe of {} says {key} {probed}, the built-in table says {have}: using the probe",
                    base.reference
                ));
            }
            base.sources.insert(key.to_string(), FactSource::Probe);
        };
        if let Some(os) = &f.os {
            set(self, "os", self.os.clone(), os.clone());
            self.os = os.clone();
        }
        if let Some(g) = &f.glibc {
            set(self, "glibc", self.glibc.clone(), g.clone());
            self.glibc = g.clone();
        }
        for (k, v) in &f.libs {
            let have = self.libs.get(k).cloned().unwrap_or_default();
            set(self, &format!("lib.{k}"), have, v.clone());
            self.libs.insert(k.clone(), v.clone());
        }
        if !f.majors.is_empty() {
            let majors: Vec<u32> = f.majors.keys().copied().collect();
            set(
                self,
                "majors",
                list(self.pg_majors.as_deref()),
                list(Some(&majors)),
            );
            self.pg_majors = Some(majors);
        }
        if let Some(m) = f.main_major.or_else(|| f.majors.keys().next_back().copied()) {
            let have = self.main_major.map(|m| m.to_string()).unwrap_or_default();
            set(self, "main major", have, m.to_string());
            self.main_major = Some(m);
        }
        match &f.preload {
            Some(p) => {
                let have = self.preload.as_ref().map(|p| p.join(",")).unwrap_or_default();
                set(self, "preload", have, p.join(","));
                self.preload = Some(p.clone());
            }
            // The probe could not compute it: the table's guess is not the base's word.
            None => {
                self.preload = None;
                self.sources.remove("preload");
            }
        }
        self.probed = Some(f.clone());
    }

    /// The user's flags win; one that disagrees with the probe is a warning naming both.
    fn apply_flags(&mut self, o: &BaseOverrides) {
        let probed = self.probed.clone();
        let flag = |base: &mut Self, key: &str, flag: &str, probe: Option<String>, value: &str| {
            if let Some(p) = probe.filter(|p| p != value) {
                base.warnings.push(format!(
                    "{flag} says {value}, the probe of {} says {p}: using {value} (the flag)",
                    base.reference
                ));
            }
            base.sources.insert(key.to_string(), FactSource::Flag);
        };
        if let Some(g) = &o.glibc {
            let p = probed.as_ref().and_then(|f| f.glibc.clone());
            flag(self, "glibc", &format!("--base-glibc {g}"), p, g);
            self.glibc = g.clone();
        }
        for (k, v) in &o.libs {
            let p = probed.as_ref().and_then(|f| f.libs.get(k).cloned());
            flag(self, &format!("lib.{k}"), &format!("--base-lib {k}={v}"), p, v);
            self.libs.insert(k.clone(), v.clone());
        }
        if let Some(list) = &o.preload {
            let p = probed
                .as_ref()
                .and_then(|f| f.preload.as_ref().map(|p| p.join(",")));
            let value = list.join(",");
            flag(self, "preload", &format!("--base-preload {value}"), p, &value);
            self.preload = Some(list.clone());
        }
    }

    /// Where `fact` came from, for `plan`.
    pub fn source_of(&self, fact: &str) -> Option<FactSource> {
        self.sources.get(fact).copied()
    }

    /// The version of `extension` the base provides for `major` (probed).
    pub fn provided_version(&self, major: u32, extension: &str) -> Option<&str> {
        self.probed
            .as_ref()?
            .majors
            .get(&major)?
            .extensions
            .get(extension)
            .map(String::as_str)
    }

    /// One line for humans, e.g. "Spilo 3.2-p2 (Ubuntu 22.04, glibc 2.35, PostgreSQL 11-16, main 16)".
    pub fn describe(&self) -> String {
        let what = match &self.knowledge {
            BaseKnowledge::KnownSpilo { tag, patroni } => format!("Spilo {tag}, Patroni {patroni}"),
            BaseKnowledge::SpiloFamily => "a Spilo image not in the known table".to_string(),
            BaseKnowledge::Unknown if self.probed.is_some() => "probed".to_string(),
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
        let b = BaseImage::resolve(DEFAULT_BASE_IMAGE, &Default::default(), None).unwrap();
        assert!(matches!(b.knowledge, BaseKnowledge::KnownSpilo { .. }));
        assert_eq!(b.main_major, Some(16));
        assert_eq!(b.pg_majors, Some((11..=16).collect()));
        assert_eq!(b.libs["libcurl"], "7.81");
        assert_eq!(b.glibc, "2.35");
        let b = BaseImage::resolve("ghcr.io/zalando/spilo-17:4.0-p2", &Default::default(), None).unwrap();
        assert_eq!(b.pg_majors, Some((13..=17).collect()));
        let b = BaseImage::resolve(
            &format!("ghcr.io/zalando/spilo-16@sha256:{}", "b".repeat(64)),
            &Default::default(),
            None,
        )
        .unwrap();
        assert_eq!(b.knowledge, BaseKnowledge::SpiloFamily);
        assert_eq!(b.pg_majors, Some((12..=16).collect()));
        assert_eq!(b.main_major, Some(16));
    }

    #[test]
    fn unknown_base_is_assumed_ubuntu_like_unless_told() {
        let b =
            BaseImage::resolve("localhost/pgha-test/spilo-standin:15", &Default::default(), None).unwrap();
        assert_eq!(b.knowledge, BaseKnowledge::Unknown);
        assert_eq!((b.glibc.as_str(), b.libs["libcurl"].as_str()), ("2.35", "7.81"));
        assert!(b.preload.is_none() && b.main_major.is_none());
        let o = BaseOverrides {
            glibc: Some("2.36".into()),
            libs: [("libcurl".to_string(), "7.88".to_string())].into(),
            preload: Some(vec!["pg_stat_statements".into()]),
        };
        let b = BaseImage::resolve("localhost/pgha-test/spilo-standin:15", &o, None).unwrap();
        assert_eq!((b.glibc.as_str(), b.libs["libcurl"].as_str()), ("2.36", "7.88"));
        assert_eq!(
            b.preload.as_deref(),
            Some(&["pg_stat_statements".to_string()][..])
        );
        assert_eq!(b.source_of("glibc"), Some(FactSource::Flag));
    }

    #[test]
    fn the_probe_wins_over_the_table_and_a_flag_over_the_probe_with_a_warning() {
        let text = "probe=1\nos=Debian GNU/Linux 12\nglibc=2.36\nlib.libcurl=7.88.1\nmain=15\npg=15\n\
                    ext.15.pg_cron=1.4\npreload=pg_stat_statements,pg_cron\ndone=1\n";
        let f = BaseFacts::parse("sha256:ab", text).unwrap();
        let b = BaseImage::resolve("localhost/x/spilo-standin:15", &Default::default(), Some(&f)).unwrap();
        assert_eq!((b.glibc.as_str(), b.main_major), ("2.36", Some(15)));
        assert_eq!(b.source_of("preload"), Some(FactSource::Probe));
        assert_eq!(b.provided_version(15, "pg_cron"), Some("1.4"));
        assert!(b.warnings.is_empty(), "{:?}", b.warnings);
        let o = BaseOverrides {
            glibc: Some("2.35".into()),
            ..Default::default()
        };
        let b = BaseImage::resolve("localhost/x/spilo-standin:15", &o, Some(&f)).unwrap();
        assert_eq!(b.glibc, "2.35");
        assert!(b.warnings[0].contains("--base-glibc 2.35") && b.warnings[0].contains("2.36"));
        // A known tag whose probe disagrees: the probe wins, with a note.
        let b = BaseImage::resolve(DEFAULT_BASE_IMAGE, &Default::default(), Some(&f)).unwrap();
        assert_eq!(b.pg_majors, Some(vec![15]));
        assert!(
            b.warnings
                .iter()
                .any(|w| w.contains("glibc 2.36") && w.contains("2.35"))
        );
    }
}

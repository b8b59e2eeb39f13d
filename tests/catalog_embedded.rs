//! The embedded catalog against the facts it was written from, the two URL
//! forms, invalid catalog files, and `pgha-image extensions list|show`.

mod common;

use assert_cmd::Command;
use pgha_image::catalog::{Catalog, CatalogError};
use std::path::Path;

/// (extension, version, sha256) as pinned in docs/extension-catalog-facts.md.
const FACTS: &[(&str, &str, &str)] = &[
    (
        "vector",
        "0.8.0",
        "867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0",
    ),
    (
        "pg_cron",
        "1.6.4",
        "52d1850ee7beb85a4cb7185731ef4e5a90d1de216709d8988324b0d02e76af61",
    ),
    (
        "pgsodium",
        "3.1.8",
        "4d027aeee5163f3f33740d269938a120d1593a41c3701c920d2a1de80aa97486",
    ),
    (
        "pgjwt",
        "0.2.0",
        "dae8ed99eebb7593b43013f6532d772b12dfecd55548d2673f2dfd0163f6d2b9",
    ),
    (
        "http",
        "1.6.1",
        "4de81fb351fec4ac9aad4657fa325e8c14c91442011232557298f6c7ab409b5a",
    ),
    (
        "pg_hashids",
        "1.3.0",
        "4accd37d774aedac8b5e2c64e6ea469ff5daba7e1837d3ddb02208de88a15c29",
    ),
    (
        "pg_graphql",
        "1.5.11",
        "b93d195e3306bfcfbad51b7bc24d2873e7f42223448044cb6b0aecdb9e60de45",
    ),
    (
        "pg_net",
        "0.19.5",
        "514686cf4cae2199e240a9677bb59d795c437346ad18e1682f8fd9bd9f45fe62",
    ),
    (
        "vector",
        "0.8.1",
        "a9094dfb85ccdde3cbb295f1086d4c71a20db1d26bf1d6c39f07a7d164033eb4",
    ),
    (
        "vector",
        "0.7.4",
        "0341edf89b1924ae0d552f617e14fb7f8867c0194ed775bcc44fa40288642583",
    ),
    (
        "pg_cron",
        "1.6.7",
        "d950bc29155f31017567e23a31d268ff672e98276c0e9d062512fb7870351f03",
    ),
    (
        "pg_cron",
        "1.6.5",
        "0118080f995fec67e25e58d44c66953e7b2bf5a47bb0602fd2ad147ea646d808",
    ),
    (
        "pgsodium",
        "3.1.9",
        "44284da99215051ad8304849e48f1840780ef59cb28b9043a97428f9abda1d06",
    ),
    (
        "http",
        "1.6.3",
        "82917d694d7b1b4084584c991da62a76e935a060f18f7e5296b45027565f51fe",
    ),
    (
        "pg_hashids",
        "1.2.1",
        "74576b992d9277c92196dd8d816baa2cc2d8046fe102f3dcd7f3c3febed6822a",
    ),
    (
        "pg_graphql",
        "1.5.9",
        "cf768385a41278be1333472204fc0328118644ae443182cf52f7b9b23277e497",
    ),
    (
        "pg_net",
        "0.9.2",
        "268c87c09ccd26e6566d2522cb02ba7918b4cbda37eb5076d2e790bbd994a087",
    ),
    (
        "supautils",
        "3.1.0",
        "21e7848f396dc4f2e894ce4fa215a12e7a5bb94ea68eaee2ead635434f7c0a0b",
    ),
    (
        "supabase_vault",
        "0.3.1",
        "344edb590e574cc94937d5665f696b4b04c3af5ae9431cc9050da657ab563b11",
    ),
    (
        "pg_jsonschema",
        "0.3.3",
        "40c2cffab4187e0233cb8c3bde013be92218c282f95f4469c5282f6b30d64eac",
    ),
    (
        "index_advisor",
        "0.2.0",
        "2d3642012a9185cda51f1e82ba43d64a81b24a2655a3ac3afdcbbd95d46a1a27",
    ),
    (
        "hypopg",
        "1.4.1",
        "9afe6357fd389d8d33fad81703038ce520b09275ec00153c6c89282bcdedd6bc",
    ),
    (
        "plpgsql_check",
        "2.7.11",
        "208933f8dbe8e0d2628eb3851e9f52e6892b8e280c63700c0f1ce7883625d172",
    ),
    (
        "pg_tle",
        "1.4.0",
        "3aae142e887726fbb64fc56c1ef19d3ee1db0f189238dd87df08d683868ce0b2",
    ),
    (
        "wal2json",
        "2.6",
        "18b4bdec28c74a8fc98a11c72de38378a760327ef8e5e42e975b0029eb96ba0d",
    ),
    (
        "pg_repack",
        "1.5.2",
        "4516cad42251ed3ad53ff619733004db47d5755acac83f75924cd94d1c4fb681",
    ),
    (
        "pgtap",
        "1.3.3",
        "325ea79d0d2515bce96bce43f6823dcd3effbd6c54cb2a4d6c2384fffa3a14c7",
    ),
    (
        "wrappers",
        "0.5.7",
        "b0ed0d587b68250e7cc4098aba5a1dc7c13f266614b1b45b6a54ce193e39eb5d",
    ),
];

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[test]
fn every_entry_has_a_64_hex_digest_and_one_of_the_two_url_forms() {
    let c = Catalog::embedded().unwrap();
    assert!(c.len() >= 8);
    let mut checked = 0;
    for e in c.iter() {
        for v in &e.versions {
            let src = &v.source;
            let hex = src.sha256.to_hex();
            assert!(is_hex(&hex, 64), "{} {}: {hex}", e.name, v.version);
            let rest = src.url.strip_prefix("https://github.com/").unwrap_or_else(|| {
                panic!(
                    "{} {}: {} is not a GitHub archive URL",
                    e.name, v.version, src.url
                )
            });
            let parts: Vec<&str> = rest.splitn(4, '/').collect();
            assert!(
                parts.len() == 4 && parts[2] == "archive",
                "{}: {}",
                e.name,
                src.url
            );
            let (owner, repo, tail) = (parts[0], parts[1], parts[3]);
            assert!(!owner.is_empty() && !repo.is_empty(), "{}", src.url);
            let reference = tail
                .strip_suffix(".tar.gz")
                .unwrap_or_else(|| panic!("{}: {} does not end in .tar.gz", e.name, src.url));
            match reference.strip_prefix("refs/tags/") {
                // tag form: the tag must be the one the entry names
                Some(tag) => assert_eq!(src.tag.as_deref(), Some(tag), "{} {}", e.name, v.version),
                // commit form: 40 hex, the entry's commit
                None => {
                    assert!(is_hex(reference, 40), "{}: {} is neither form", e.name, src.url);
                    assert_eq!(src.commit.as_deref(), Some(reference), "{} {}", e.name, v.version);
                }
            }
            assert_eq!(
                e.homepage,
                format!("https://github.com/{owner}/{repo}"),
                "{}: the URL's repository is not the homepage",
                e.name
            );
            checked += 1;
        }
    }
    assert!(checked >= FACTS.len(), "{checked}");
}

#[test]
fn the_pins_are_the_facts() {
    let c = Catalog::embedded().unwrap();
    for (name, version, sha) in FACTS {
        let e = c.get(name).unwrap();
        let v = e
            .version(version)
            .unwrap_or_else(|| panic!("{name} has no version {version}"));
        assert_eq!(v.source.sha256.to_hex(), *sha, "{name} {version}");
    }
    let pinned: Vec<(&str, &str)> = c
        .iter()
        .filter(|e| e.set == pgha_image::catalog::Set::Default)
        .map(|e| (e.name.as_str(), e.version.as_str()))
        .collect();
    for (name, version, _) in &FACTS[..8] {
        assert!(
            pinned.contains(&(name, version)),
            "{name} {version} is not pinned in the default set: {pinned:?}"
        );
    }
}

#[test]
fn the_repository_files_are_the_embedded_catalog() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("extensions");
    let on_disk = Catalog::from_dir(&dir).unwrap();
    let embedded = Catalog::embedded().unwrap();
    let a: Vec<_> = on_disk.iter().map(|e| (&e.name, &e.version)).collect();
    let b: Vec<_> = embedded.iter().map(|e| (&e.name, &e.version)).collect();
    assert_eq!(a, b);
}

fn write_bad(dir: &Path, file: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(file), text).unwrap();
}

fn good_entry() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("extensions");
    std::fs::read_to_string(dir.join("vector.toml")).unwrap()
}

#[test]
fn an_invalid_digest_is_reported_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let text = good_entry().replacen(
        "sha256 = \"867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0\"",
        "sha256 = \"867a2c32\"",
        1,
    );
    let line = text.lines().position(|l| l.contains("\"867a2c32\"")).unwrap() + 1;
    write_bad(tmp.path(), "vector.toml", &text);
    let err = Catalog::from_dir(tmp.path()).unwrap_err();
    match &err {
        CatalogError::Invalid {
            path,
            line: l,
            message,
        } => {
            assert_eq!(path, &tmp.path().join("vector.toml"));
            assert_eq!(*l, line);
            assert!(message.contains("64 hex"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }

    // The CLI reports it as bad input with file:line.
    let out = Command::cargo_bin("pgha-image")
        .unwrap()
        .arg("--catalog")
        .arg(tmp.path())
        .args(["extensions", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:{line}:", tmp.path().join("vector.toml").display());
    assert!(stderr.contains(&want), "{want:?} missing from: {stderr}");
}

#[test]
fn syntax_errors_and_unknown_fields_name_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = good_entry();
    text.push_str("\n[build2]\nkind = \"pgxs\"\n");
    let line = text.lines().position(|l| l == "[build2]").unwrap() + 1;
    write_bad(tmp.path(), "vector.toml", &text);
    match Catalog::from_dir(tmp.path()).unwrap_err() {
        CatalogError::Invalid { line: l, message, .. } => {
            assert_eq!(l, line, "{message}");
            assert!(message.contains("build2"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }

    let tmp = tempfile::tempdir().unwrap();
    let text = good_entry().replacen("license = \"PostgreSQL\"", "license = PostgreSQL", 1);
    let line = text.lines().position(|l| l == "license = PostgreSQL").unwrap() + 1;
    write_bad(tmp.path(), "vector.toml", &text);
    match Catalog::from_dir(tmp.path()).unwrap_err() {
        CatalogError::Invalid { line: l, .. } => assert_eq!(l, line),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn pgha(args: &[&str]) -> std::process::Output {
    common::cli::pgha()
        .env_remove("PGHA_CATALOG")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn extensions_list_shows_every_extension() {
    let c = Catalog::embedded().unwrap();
    let out = pgha(&["extensions", "list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{text}");
    assert_eq!(lines.len(), c.len() + 1, "{text}");
    for e in c.iter() {
        assert!(
            lines.iter().any(|l| l
                .split_whitespace()
                .take(2)
                .eq([e.name.as_str(), e.version.as_str()])),
            "{} {} missing:\n{text}",
            e.name,
            e.version
        );
    }

    let out = pgha(&["extensions", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), c.len());
    let vector = arr.iter().find(|x| x["name"] == "vector").unwrap();
    assert_eq!(vector["version"], "0.8.0");
    assert_eq!(vector["set"], "default");
}

#[test]
fn extensions_show_prints_the_entry_and_suggests_on_unknown_names() {
    let out = pgha(&["extensions", "show", "pgjwt"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for part in [
        "pgjwt",
        "pgcrypto",
        "f3d82fd30151e754e19ce5d6a06c71c20689ce3d",
        "dae8ed99eebb7593b43013f6532d772b12dfecd55548d2673f2dfd0163f6d2b9",
        "MIT",
    ] {
        assert!(text.contains(part), "{part:?} missing:\n{text}");
    }

    let out = pgha(&["extensions", "show", "pg_net", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "pg_net");
    assert_eq!(v["preload"], "required");
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);

    let out = pgha(&["extensions", "show", "pg_crn"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean \"pg_cron\""), "{err}");
}

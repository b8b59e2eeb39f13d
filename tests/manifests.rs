//! The deployment templates in manifests/ must agree with what the image
//! needs: HAProxy accepts its configuration, and the compose file and the
//! postgres-operator manifest set every server parameter the build plan of
//! the default image says it needs, in the place Spilo reads it from.

mod common;

use pgha_image::catalog::Catalog;
use pgha_image::context::plan::{BuildPlan, PlanRequest};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

fn default_plan() -> BuildPlan {
    BuildPlan::new(&Catalog::embedded().unwrap(), &PlanRequest::default()).unwrap()
}

/// `key: value` pairs of a YAML block, each with the path of parent keys
/// (by indentation) joined with '.'. Enough for these flat templates.
fn yaml_pairs(block: &str) -> BTreeMap<String, String> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut out = BTreeMap::new();
    for line in block.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        if value.is_empty() || value == "|" {
            stack.push((indent, key.trim().to_string()));
        } else {
            let mut path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
            path.push(key.trim());
            out.insert(path.join("."), value.to_string());
        }
    }
    out
}

/// The lines of the literal block that follows `key: |`, dedented.
fn literal_block(text: &str, key: &str) -> String {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(&format!("{key}: |")));
    let head = lines.next().unwrap_or_else(|| panic!("no {key} block"));
    let base = head.len() - head.trim_start().len();
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > base)
        .map(|l| l.get(base + 2..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn haproxy_accepts_the_template() {
    let haproxy = common::prereq::require_program("haproxy", "haproxy", &["/usr/sbin"]);
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/compose/haproxy.cfg");
    let out = Command::new(haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "haproxy -c rejected {}:\n{}{}",
        cfg.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compose_spilo_configuration_sets_what_the_image_needs_where_spilo_reads_it() {
    let plan = default_plan();
    let pairs = yaml_pairs(&literal_block(
        &read("manifests/compose/docker-compose.yml"),
        "SPILO_CONFIGURATION",
    ));
    for (k, v) in &plan.local_parameters {
        assert_eq!(
            pairs.get(&format!("postgresql.parameters.{k}")),
            Some(v),
            "compose: postgresql.parameters.{k} should be {v:?}; got {pairs:#?}"
        );
    }
    for (k, v) in &plan.dcs_parameters {
        assert_eq!(
            pairs.get(&format!("bootstrap.dcs.postgresql.parameters.{k}")),
            Some(v),
            "compose: bootstrap.dcs.postgresql.parameters.{k} should be {v:?}; got {pairs:#?}"
        );
    }
    assert_eq!(
        pairs
            .get("postgresql.parameters.shared_preload_libraries")
            .map(String::as_str),
        Some(plan.preload.join(",").as_str())
    );
}

#[test]
fn operator_manifest_sets_what_the_image_needs() {
    let plan = default_plan();
    let pairs = yaml_pairs(&read("manifests/postgres-operator/postgresql.yaml"));
    for (k, v) in plan.local_parameters.iter().chain(&plan.dcs_parameters) {
        assert_eq!(
            pairs.get(&format!("spec.postgresql.parameters.{k}")),
            Some(v),
            "operator manifest: spec.postgresql.parameters.{k} should be {v:?}"
        );
    }
    // The secret the image's scripts read is mounted where the bootstrap config looks.
    assert!(read("manifests/postgres-operator/postgresql.yaml").contains("mountPath: /run/secrets/supabase"));
}

#[test]
fn the_yaml_reader_sees_nesting() {
    let p = yaml_pairs("a:\n  b:\n    c: 1\n  d: x\ne: 2\n");
    assert_eq!(p["a.b.c"], "1");
    assert_eq!(p["a.d"], "x");
    assert_eq!(p["e"], "2");
}

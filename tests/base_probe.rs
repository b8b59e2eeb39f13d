//! Building for the base the user actually has (issue 14), as a new user
//! would, on the bookworm Spilo stand-in under real Podman:
//! - `plan` reads the base's facts by running it once (glibc 2.36, libcurl
//!   7.88, PostgreSQL 15 with its pg_config, pg_cron 1.4, Spilo's preload list
//!   computed as Spilo does), says where each came from, caches them by image
//!   id, builds the too-old pg_cron from its pinned source, and warns when a
//!   flag disagrees with the probe;
//! - a missing base fails (exit 4, the engine's words, a hint) before anything
//!   is fetched or written; a base whose preload list cannot be read (the
//!   stand-in without Spilo's table) is refused with exit 2 naming the flag;
//! - `build --tag T --mirror SOURCES --base-image STANDIN -e default,-pg_graphql`
//!   with no other flag builds an image whose plain run passes `verify`; the
//!   same from a `pgha.toml` with no flags gives the same context; `--like T`
//!   reproduces T's context digest byte for byte, and `--like T -e +pgtap`
//!   plans exactly T's inputs plus pgtap.
//!
//! The engine is chosen with PGHA_ENGINE=podman and the cache with
//! PGHA_CACHE_DIR (the environment a CI job sets once), not with flags.

mod common;

use common::images::{self, TestImage, podman_cmd, run};
use common::sources;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const TOOL: &str = env!("CARGO_BIN_EXE_pgha-image");

fn tool(cache: &Path, cwd: &Path) -> Command {
    let mut c = Command::new(TOOL);
    c.current_dir(cwd)
        .env("PGHA_ENGINE", "podman")
        .env("PGHA_CACHE_DIR", cache)
        .env_remove("PGHA_MIRROR")
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["--progress", "plain"])
        .stdin(Stdio::null());
    c
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn plan_json(cache: &Path, cwd: &Path, args: &[&str]) -> serde_json::Value {
    let o = tool(cache, cwd)
        .arg("plan")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
#[ignore = "slow tier: needs Podman and the Spilo stand-in"]
fn plan_reads_the_base_says_where_facts_came_from_and_builds_old_pg_cron_from_source() {
    let _engine = images::engine_lock();
    let standin = images::spilo_standin();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");

    let v = plan_json(
        &cache,
        dir.path(),
        &["--base-image", &standin, "-e", "default,-pg_graphql"],
    );
    let base = &v["base"];
    assert_eq!(base["glibc"], "2.36", "{v:#}");
    assert_eq!(base["libs"]["libcurl"], "7.88");
    assert_eq!(base["pg_majors"], serde_json::json!([15]));
    assert_eq!(base["main_major"], 15);
    assert_eq!(
        base["preload"],
        serde_json::json!(["pg_stat_statements", "pg_cron"])
    );
    for fact in ["os", "glibc", "lib.libcurl", "majors", "main major", "preload"] {
        assert_eq!(base["sources"][fact], "probe", "{fact}: {v:#}");
    }
    let pg15 = &base["probed"]["majors"]["15"];
    assert!(
        pg15["with"].as_array().unwrap().iter().any(|w| w == "icu"),
        "{pg15}"
    );
    assert_eq!(pg15["extensions"]["pg_cron"], "1.4-1");
    // The base's pg_cron 1.4 is older than the catalog's 1.6: built from source, and said so.
    let cron = v["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "pg_cron")
        .unwrap();
    assert_eq!(cron["recipe"], "pgxs", "{cron}");
    assert_eq!(cron["stage"], "ext-pg_cron");
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("pg_cron is 1.4-1")
                && n.as_str().unwrap().contains("built from source")),
        "{v:#}"
    );
    // libcurl 7.88: the pinned pg_net, not the Ubuntu 22.04 fallback.
    assert!(names(&v).contains(&"pg_net".to_string()));
    assert_eq!(
        v["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "pg_net")
            .unwrap()["version"],
        "0.19.5"
    );
    assert_eq!(v["left_out"][0]["name"], "pg_graphql");
    assert!(!names(&v).contains(&"pg_graphql".to_string()));

    // Cached by the image's id, as one JSON file.
    let id = images::image_id(&standin);
    let cached = pgha_image::context::probe::BaseFacts::cache_path(&cache, &id);
    assert!(
        cached.starts_with(cache.join("base-facts"))
            && cached
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(id.trim_start_matches("sha256:")),
        "{}",
        cached.display()
    );
    let facts: serde_json::Value = serde_json::from_slice(&std::fs::read(&cached).unwrap()).unwrap();
    assert_eq!(facts["glibc"], "2.36");

    // The human form names the source of each fact; a flag wins with a warning naming both.
    let o = tool(&cache, dir.path())
        .args([
            "plan",
            "--base-image",
            &standin,
            "--base-glibc",
            "2.35",
            "-e",
            "vector",
        ])
        .output()
        .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("glibc        2.35") && out.contains(" flag"),
        "{out}"
    );
    assert!(
        out.contains("libcurl      7.88") && out.contains(" probe"),
        "{out}"
    );
    assert!(
        out.contains("warning: --base-glibc 2.35 says 2.35, the probe of")
            || (out.contains("--base-glibc 2.35") && out.contains("says 2.36")),
        "{out}"
    );
    assert!(out.contains("cached"), "the second probe reads the cache: {out}");

    // The PostgreSQL 17 (trixie) stand-in: its own majors and libraries, and
    // its pg_cron (1.6) is new enough to be used as the base's.
    let standin17 = images::spilo_standin_17();
    let v = plan_json(
        &cache,
        dir.path(),
        &["--base-image", &standin17, "-e", "default,-pg_graphql"],
    );
    let (glibc, curl) = images::standin_facts(17);
    assert_eq!(v["base"]["glibc"], glibc, "{v:#}");
    assert_eq!(
        v["base"]["libs"]["libcurl"],
        curl.split('.').take(2).collect::<Vec<_>>().join(".")
    );
    assert_eq!(v["pg_majors"], serde_json::json!([17]));
    let cron = v["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "pg_cron")
        .unwrap();
    assert_eq!(cron["recipe"], "base", "{cron}");
    assert_eq!(
        v["base"]["preload"],
        serde_json::json!(["pg_stat_statements", "pg_cron"])
    );
}

#[test]
#[ignore = "slow tier: needs Podman"]
fn a_missing_base_fails_before_any_fetch_and_writes_nothing() {
    let _engine = images::engine_lock();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out_dir = dir.path().join("out");
    let missing = format!("localhost/pgha-test/no-such-base-{}:1", std::process::id());
    let o = tool(&cache, dir.path())
        .args([
            "build",
            "--tag",
            "localhost/pgha-test/never:1",
            "--base-image",
            &missing,
        ])
        .args(["-e", "default,-pg_graphql"])
        .args(sources::fetch_args())
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let all = text(&o);
    assert_eq!(o.status.code(), Some(4), "{all}");
    assert!(
        all.contains(&missing) && all.contains("could not be pulled"),
        "{all}"
    );
    // The engine's own words, and what to do.
    assert!(all.contains("pinging container registry"), "{all}");
    assert!(all.contains("hint: load it into the podman image store"), "{all}");
    assert!(!cache.exists(), "nothing was written to the cache: {all}");
    assert!(!out_dir.exists(), "no context was written");
}

#[test]
#[ignore = "slow tier: needs Podman and the Spilo stand-in"]
fn a_base_whose_preload_list_cannot_be_read_is_refused_with_exit_2() {
    let _engine = images::engine_lock();
    let standin = images::spilo_standin();
    let dir = tempfile::tempdir().unwrap();
    // The stand-in without Spilo's table: its list cannot be computed.
    let broken = TestImage {
        reference: format!("localhost/pgha-test/no-preload-table:{}", std::process::id()),
    };
    std::fs::write(
        dir.path().join("Containerfile"),
        format!("FROM {standin}\nRUN rm /scripts/spilo_commons.py\n"),
    )
    .unwrap();
    run(podman_cmd()
        .args(["build", "-q", "-t", &broken.reference])
        .arg(dir.path()));
    let cache = dir.path().join("cache");
    let o = tool(&cache, dir.path())
        .args([
            "build",
            "--tag",
            "localhost/pgha-test/never:2",
            "--base-image",
            &broken.reference,
        ])
        .args(["-e", "default,-pg_graphql"])
        .args(sources::fetch_args())
        .output()
        .unwrap();
    let all = text(&o);
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(
        all.contains("shared_preload_libraries") && all.contains("--base-preload"),
        "{all}"
    );
    assert!(
        !cache.join("sha256").exists() && !cache.join("builds").exists(),
        "nothing fetched: {all}"
    );
    // Told, it goes on (only as far as the plan here).
    let v = plan_json(
        &cache,
        dir.path(),
        &[
            "--base-image",
            &broken.reference,
            "--base-preload",
            "pg_stat_statements,pg_cron",
            "-e",
            "vector",
        ],
    );
    assert_eq!(v["base"]["sources"]["preload"], "flag");
}

fn context_digest(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("context "))
        .unwrap_or_else(|| panic!("no context line:\n{stdout}\n{stderr}"));
    line.split_whitespace().next().unwrap().to_string()
}

#[test]
#[ignore = "slow tier: needs Podman, the Spilo stand-in and the upstream sources"]
fn default_set_without_pg_graphql_builds_from_flags_a_build_file_and_like_and_verifies() {
    let _engine = images::engine_lock();
    default_set_on(&images::spilo_standin(), 15);
}

#[test]
#[ignore = "slow tier: needs Podman, the PostgreSQL 17 (trixie) Spilo stand-in and the upstream sources"]
fn the_same_on_the_postgresql_17_standin() {
    let _engine = images::engine_lock();
    default_set_on(&images::spilo_standin_17(), 17);
}

/// The whole flow on one stand-in (the caller holds the engine lock).
fn default_set_on(standin: &str, major: u32) {
    let standin = standin.to_string();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mirror = match sources::sources() {
        sources::Sources::Mirror(m) => m.into_string().unwrap(),
        sources::Sources::Upstream => panic!(
            "this test builds from a --mirror directory: set PGHA_TEST_SOURCES or provide ../shared/sources"
        ),
    };
    let image = TestImage {
        reference: format!("localhost/pgha-test/issue14-flags:{major}-{}", std::process::id()),
    };

    // 1. Flags only: no --pg, no --base-*, no --from-source.
    let o = tool(&cache, dir.path())
        .args([
            "build",
            "--tag",
            &image.reference,
            "--mirror",
            &mirror,
            "--base-image",
            &standin,
        ])
        .args(["-e", "default,-pg_graphql"])
        .output()
        .unwrap();
    let all = text(&o);
    assert!(o.status.success(), "{all}");
    assert!(
        all.contains("note: the default set's pg_graphql is not in the image: left out by -pg_graphql"),
        "{all}"
    );
    let digest = context_digest(&o);
    // The majors came from the probe (no --pg).
    let manifest = run(podman_cmd().args([
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"io.pgha.pg-majors\"}}",
        &image.reference,
    ]));
    assert_eq!(manifest.trim(), major.to_string());

    // Its plain run passes verify, which reports what was left out.
    let v = Command::new(TOOL)
        .args([
            "--progress",
            "plain",
            "verify",
            "--engine",
            "podman",
            "--json",
            &image.reference,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&v.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&v)));
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    let left = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "image.left-out")
        .unwrap_or_else(|| panic!("no image.left-out check: {report:#}"));
    assert!(left["message"].as_str().unwrap().contains("pg_graphql"), "{left}");

    // 2. The same from a build file, no flags at all.
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let file_image = TestImage {
        reference: format!("localhost/pgha-test/issue14-file:{major}-{}", std::process::id()),
    };
    std::fs::write(
        work.join("pgha.toml"),
        format!(
            "base = \"{standin}\"\nextensions = [\"default\", \"-pg_graphql\"]\nmirror = \"{mirror}\"\n\
             tag = \"{}\"\nengine = \"podman\"\n",
            file_image.reference
        ),
    )
    .unwrap();
    let o = tool(&cache, &work).arg("build").output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("inputs: build file"), "{}", text(&o));
    assert_eq!(
        context_digest(&o),
        digest,
        "the build file gives the same context"
    );

    // An unknown key: file:line, exit 2.
    std::fs::write(work.join("pgha.toml"), "base = \"x:1\"\nmajor = [15]\n").unwrap();
    let o = tool(&cache, &work).arg("plan").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("pgha.toml:2:"), "{}", text(&o));

    // 3. --like the first image: the same context, byte for byte.
    let like_image = TestImage {
        reference: format!("localhost/pgha-test/issue14-like:{major}-{}", std::process::id()),
    };
    let o = tool(&cache, dir.path())
        .args([
            "build",
            "--like",
            &image.reference,
            "--tag",
            &like_image.reference,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(context_digest(&o), digest, "--like reproduces the context digest");
    let tar = |img: &str| {
        let labels = run(podman_cmd().args([
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"io.pgha.context-digest\"}}",
            img,
        ]));
        labels.trim().to_string()
    };
    assert_eq!(tar(&like_image.reference), tar(&image.reference));

    // The upgrade case: the same inputs plus one extension.
    let v = plan_json(&cache, dir.path(), &["--like", &image.reference, "-e", "+pgtap"]);
    let mut want = vec![
        "http",
        "pg_cron",
        "pg_hashids",
        "pg_net",
        "pgjwt",
        "pgsodium",
        "pgtap",
        "vector",
    ];
    want.sort();
    assert_eq!(names(&v), want, "{v:#}");
    assert_eq!(
        v["inputs"]["extensions"],
        serde_json::json!(["default", "-pg_graphql", "+pgtap"])
    );
}

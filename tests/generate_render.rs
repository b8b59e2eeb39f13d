//! Rendering the build context: snapshots of the Dockerfile for the default
//! Spilo base with the full Supabase set and for a second base/major
//! combination, and the plan's decisions and errors.

use pgha_image::ExitCode;
use pgha_image::catalog::{BuildKind, Catalog, CatalogError};
use pgha_image::context::render::{self, RenderedFile};
use pgha_image::context::{BuildPlan, ContextError, PlanRequest};
use pgha_image::error::Diagnostic;

fn plan(req: PlanRequest) -> Result<BuildPlan, ContextError> {
    BuildPlan::new(&Catalog::embedded().unwrap(), &req)
}

fn file<'a>(files: &'a [RenderedFile], path: &str) -> &'a str {
    let f = files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{path} not rendered"));
    std::str::from_utf8(&f.contents).unwrap()
}

#[test]
fn default_spilo_base_with_the_supabase_set() {
    let p = plan(PlanRequest::default()).unwrap();
    assert_eq!(p.base.reference, "ghcr.io/zalando/spilo-16:3.2-p2");
    assert_eq!(p.pg_majors, [16]);
    let names: Vec<_> = p.extensions.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "http",
            "pg_cron",
            "pg_graphql",
            "pg_hashids",
            "pg_net",
            "pgjwt",
            "pgsodium",
            "vector"
        ]
    );
    // pg_net falls back to 0.9.2 on Ubuntu 22.04's libcurl, with a note.
    let net = p.extensions.iter().find(|e| e.name == "pg_net").unwrap();
    assert_eq!(net.version, "0.9.2");
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("libcurl") && n.contains("0.9.2")),
        "{:?}",
        p.notes
    );
    // pg_cron is Spilo's, checked; vector is built (pinned, as Supabase pins it).
    let cron = p.extensions.iter().find(|e| e.name == "pg_cron").unwrap();
    assert_eq!((cron.recipe, cron.stage.as_deref()), (BuildKind::Base, None));
    assert_eq!(
        p.extensions
            .iter()
            .find(|e| e.name == "vector")
            .unwrap()
            .stage
            .as_deref(),
        Some("ext-vector")
    );
    // Spilo's defaults first, then what the selection needs.
    assert_eq!(
        p.preload.join(","),
        "bg_mon,pg_stat_statements,pgextwlist,pg_auth_mon,set_user,timescaledb,pg_cron,pg_stat_kcache,pg_net,pgsodium"
    );
    assert_eq!(p.local_parameters["cron.database_name"], "postgres");
    assert_eq!(
        p.local_parameters["pgsodium.getkey_script"],
        "/usr/local/lib/pgha/pgsodium_getkey"
    );
    assert_eq!(p.dcs_parameters["wal_level"], "logical");
    assert!(!p.local_parameters.contains_key("wal_level"));
    assert_eq!(p.runtime_packages, ["libcurl4", "libsodium23"]);
    // The bootstrap creates the contract's list, restricted to what the image has.
    assert_eq!(
        p.bootstrap.create,
        [
            "uuid-ossp",
            "pgcrypto",
            "pgjwt",
            "pg_stat_statements",
            "pgsodium",
            "pg_graphql",
            "pg_net"
        ]
    );

    let files = render::render(&p).unwrap();
    let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "Dockerfile",
            "cargo/config.toml",
            "config/bootstrap.toml",
            "config/spilo-defaults.json",
            "hook/check-base-extension.sh",
            "hook/launch.sh",
            "hook/pgsodium_getkey",
            "hook/post_init.sh",
            "hook/spilo_configuration.py"
        ]
    );
    insta::assert_snapshot!("dockerfile_spilo16_supabase_default", file(&files, "Dockerfile"));
    // The image's defaults: the full preload list (Spilo's first) and the
    // settings, local and DCS-only, as the launch wrapper merges them.
    insta::assert_snapshot!(
        "spilo_defaults_spilo16_supabase_default",
        file(&files, "config/spilo-defaults.json")
    );
    insta::assert_snapshot!(
        "bootstrap_toml_spilo16_supabase_default",
        file(&files, "config/bootstrap.toml")
    );
}

#[test]
fn spilo17_with_two_majors_and_from_source() {
    let p = plan(PlanRequest {
        base_image: Some("ghcr.io/zalando/spilo-17:4.0-p2".into()),
        pg_majors: vec![17, 16],
        extensions: Some(vec![
            "default".into(),
            "supabase_vault".into(),
            "pg_jsonschema".into(),
        ]),
        from_source: vec!["pg_cron".into()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(p.pg_majors, [16, 17]);
    let cron = p.extensions.iter().find(|e| e.name == "pg_cron").unwrap();
    assert_eq!(
        (cron.recipe, cron.stage.as_deref()),
        (BuildKind::Pgxs, Some("ext-pg_cron"))
    );
    assert_eq!(cron.build_packages, ["libpq-dev"]);
    assert!(p.bootstrap.create.contains(&"supabase_vault".to_string()));
    let files = render::render(&p).unwrap();
    let df = file(&files, "Dockerfile");
    // Every built extension has its stage, built for both majors; the final stage copies each.
    for e in p.extensions.iter().filter(|e| e.stage.is_some()) {
        let stage = e.stage.as_deref().unwrap();
        assert!(df.contains(&format!(" AS {stage}\n")), "no stage {stage}");
        assert!(
            df.contains(&format!("COPY --from={stage} /pgha/root/ /")),
            "{stage} not copied"
        );
    }
    assert!(df.contains("postgresql-server-dev-16 postgresql-server-dev-17"));
    assert!(
        !df.contains("check-base-extension"),
        "nothing is base-provided any more"
    );
    insta::assert_snapshot!("dockerfile_spilo17_pg16_17", df);
}

#[test]
fn standin_base_needs_pg_and_renders_against_debian() {
    let req = PlanRequest {
        base_image: Some("localhost/pgha-test/spilo-standin:15".into()),
        extensions: Some(vec!["vector".into(), "pg_cron".into(), "pgtap".into()]),
        from_source: vec!["vector".into()],
        ..Default::default()
    };
    let e = plan(req.clone()).unwrap_err();
    assert!(matches!(e, ContextError::UnknownBaseNeedsPg { .. }), "{e}");
    assert_eq!(e.exit_code(), ExitCode::Usage);
    assert!(e.hint().unwrap().contains("--pg"));

    // Its own preload list is unknown: refused, naming the flag.
    let e = plan(PlanRequest {
        pg_majors: vec![15],
        ..req.clone()
    })
    .unwrap_err();
    assert!(matches!(e, ContextError::PreloadUnknown { .. }), "{e}");
    assert_eq!(e.exit_code(), ExitCode::Usage);
    assert!(e.hint().unwrap().contains("--base-preload"), "{e}");

    let p = plan(PlanRequest {
        pg_majors: vec![15],
        base_overrides: pgha_image::context::BaseOverrides {
            preload: Some(vec!["pg_stat_statements".into()]),
            ..Default::default()
        },
        ..req
    })
    .unwrap();
    assert!(
        p.notes.iter().any(|n| n.contains("unknown base")),
        "{:?}",
        p.notes
    );
    // The base's list as told, then what the selection needs.
    assert_eq!(p.preload, ["pg_stat_statements", "pg_cron"]);
    let files = render::render(&p).unwrap();
    let df = file(&files, "Dockerfile");
    assert!(df.contains("FROM localhost/pgha-test/spilo-standin:15 AS pgha-pgxs"));
    assert!(df.contains("RUN /usr/local/lib/pgha/check-base-extension pg_cron pg_cron 1.6 15\n"));
    assert!(
        df.contains("FROM pgha-pgxs AS ext-pgtap"),
        "SQL-only builds without the compiler stage"
    );
    assert!(
        df.contains("OPTFLAGS="),
        "pgvector must not be built with -march=native"
    );
    assert!(
        !df.contains("hook/pgsodium_getkey"),
        "no pgsodium, no getkey script"
    );
}

#[test]
fn selection_errors_are_usage_errors_with_hints() {
    // Unknown extension: the catalog's error, with a suggestion.
    let e = plan(PlanRequest {
        extensions: Some(vec!["pg_crn".into()]),
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        matches!(&e, ContextError::Catalog(c) if matches!(**c, CatalogError::Unknown { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("did you mean \"pg_cron\""), "{e}");
    assert_eq!(e.exit_code(), ExitCode::Usage);

    // A major the base does not have.
    let e = plan(PlanRequest {
        pg_majors: vec![10],
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, ContextError::MajorNotInBase { major: 10, .. }), "{e}");
    assert!(e.to_string().contains("11-16"), "{e}");

    // A major the extension does not support (pg_graphql: 14-17).
    let e = plan(PlanRequest {
        pg_majors: vec![13, 16],
        extensions: Some(vec!["pg_graphql".into()]),
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        matches!(&e, ContextError::Catalog(c) if matches!(**c, CatalogError::UnsupportedMajor { major: 13, .. })),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("--pg"));

    // --from-source for something not selected, and for something that cannot be built.
    let e = plan(PlanRequest {
        extensions: Some(vec!["vector".into()]),
        from_source: vec!["pg_cron".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, ContextError::FromSource { .. }), "{e}");
    assert!(e.to_string().contains("not in the selection"), "{e}");

    // A bad image reference.
    let e = plan(PlanRequest {
        base_image: Some("spilo@sha256:1234".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, ContextError::BadBaseImage(..)), "{e}");
}

#[test]
fn explicit_versions_and_digest_bases() {
    // A digest-pinned spilo-16 is the Spilo family: main major 16, Ubuntu 22.04 facts.
    let digest = "c".repeat(64);
    let p = plan(PlanRequest {
        base_image: Some(format!("ghcr.io/zalando/spilo-16@sha256:{digest}")),
        extensions: Some(vec!["vector@0.7.4".into(), "pg_net".into()]),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(p.pg_majors, [16]);
    assert_eq!(
        p.extensions.iter().find(|e| e.name == "vector").unwrap().version,
        "0.7.4"
    );
    assert_eq!(
        p.extensions.iter().find(|e| e.name == "pg_net").unwrap().version,
        "0.9.2"
    );
    let labels = render::labels(&p);
    assert_eq!(
        labels["org.opencontainers.image.base.digest"],
        format!("sha256:{digest}")
    );
    assert_eq!(
        labels["io.pgha.extension.vector"],
        "0.7.4@sha256:0341edf89b1924ae0d552f617e14fb7f8867c0194ed775bcc44fa40288642583"
    );
    let all: serde_json::Value = serde_json::from_str(&labels["io.pgha.extensions"]).unwrap();
    assert_eq!(all["pg_net"]["version"], "0.9.2");
    assert_eq!(
        all["pg_net"]["sha256"],
        "268c87c09ccd26e6566d2522cb02ba7918b4cbda37eb5076d2e790bbd994a087"
    );

    // A newer libcurl (told for a base) keeps the pinned pg_net.
    let p = plan(PlanRequest {
        base_image: Some("localhost/other:1".into()),
        pg_majors: vec![16],
        extensions: Some(vec!["pg_net".into()]),
        base_overrides: pgha_image::context::BaseOverrides {
            libs: [("libcurl".to_string(), "8.5".to_string())].into(),
            preload: Some(vec!["pg_stat_statements".into()]),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    assert_eq!(p.extensions[0].version, "0.19.5");
}

#[test]
fn spilo_configuration_is_valid_json_holding_the_preload_list() {
    let p = plan(PlanRequest::default()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&p.spilo_configuration()).unwrap();
    assert_eq!(
        v["postgresql"]["parameters"]["shared_preload_libraries"],
        p.preload.join(",")
    );
    assert_eq!(
        v["bootstrap"]["dcs"]["postgresql"]["parameters"]["wal_level"],
        "logical"
    );
    // Not in the image unless asked for: deployments set their own.
    let files = render::render(&p).unwrap();
    let df = file(&files, "Dockerfile");
    assert!(!df.contains("ENV SPILO_CONFIGURATION"));
    assert!(df.contains(&format!(
        "#   shared_preload_libraries = {}\n",
        p.preload.join(",")
    )));
    assert!(df.contains("#   wal_level = logical   (bootstrap.dcs)\n"));
    let p = plan(PlanRequest {
        embed_spilo_configuration: true,
        ..Default::default()
    })
    .unwrap();
    let files = render::render(&p).unwrap();
    let df = file(&files, "Dockerfile");
    let line = df
        .lines()
        .find(|l| l.starts_with("ENV SPILO_CONFIGURATION="))
        .unwrap();
    // Dockerfile double-quoted: undo the escapes and compare.
    let quoted = line.trim_start_matches("ENV SPILO_CONFIGURATION=");
    let unquoted = quoted[1..quoted.len() - 1]
        .replace("\\\"", "\"")
        .replace("\\$", "$");
    assert_eq!(unquoted, p.spilo_configuration());
}

#[test]
fn conflicting_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, level) in [("one", "logical"), ("two", "replica")] {
        std::fs::write(
            dir.path().join(format!("{name}.toml")),
            format!(
                "name = \"{name}\"\ndescription = \"x\"\nlicense = \"MIT\"\nset = \"default\"\nversion = \"1.0\"\n\
                 pg_majors = {{ min = 10 }}\nsettings = {{ \"wal_level\" = \"{level}\" }}\n\n[build]\nkind = \"sql\"\n\n\
                 [[versions]]\nversion = \"1.0\"\ntag = \"v1.0\"\nurl = \"http://127.0.0.1/{name}.tar.gz\"\n\
                 sha256 = \"{}\"\nprovenance = \"reproduced-only\"\n",
                "a".repeat(64)
            ),
        )
        .unwrap();
    }
    let catalog = Catalog::from_dir(dir.path()).unwrap();
    let e = BuildPlan::new(&catalog, &PlanRequest::default()).unwrap_err();
    match &e {
        ContextError::SettingConflict { setting, wanted } => {
            assert_eq!(setting, "wal_level");
            assert!(wanted.contains("\"replica\" by two"), "{wanted}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(e.exit_code(), ExitCode::Usage);
}

#[test]
fn pgrx_features_and_prebuilt_packages_render() {
    // wrappers: pgrx with a cargo feature besides the major's.
    let p = plan(PlanRequest {
        extensions: Some(vec!["wrappers".into()]),
        ..Default::default()
    })
    .unwrap();
    let files = render::render(&p).unwrap();
    let df = file(&files, "Dockerfile");
    // cargo-pgrx built offline and locked from its vendored crates, the
    // toolchain from the pinned Rust image; no script piped into a shell.
    assert!(
        df.contains("FROM pgha-toolchain AS pgha-cargo-pgrx-0-16-1-deps"),
        "{df}"
    );
    assert!(
        df.contains(
            "cargo install --offline --locked --root /pgha/cargo-pgrx --path /pgha/vendor/cargo-pgrx-0.16.1"
        ),
        "{df}"
    );
    // The toolchain is copied from the pinned reference itself: no stage is
    // a bare FROM of it (Podman 4.3's --layers=false deletes such an image).
    let rust = pgha_image::context::plan::DEFAULT_RUST_IMAGE;
    assert!(
        df.contains(&format!("COPY --from={rust} /usr/local/rustup /usr/local/rustup"))
            && df.contains(&format!("COPY --from={rust} /usr/local/cargo /usr/local/cargo")),
        "{df}"
    );
    assert!(!df.contains(&format!("FROM {rust}")), "{df}");
    assert!(df.contains("COPY crates/wrappers-0.5.7/ /pgha/crates/"), "{df}");
    assert!(
        !df.contains("curl -") && !df.contains("| sh") && !df.contains("rustup.rs"),
        "{df}"
    );
    assert!(df.contains("--features \"pg$v all_fdws\""), "{df}");
    assert!(df.contains("libssl-dev") && df.contains("libssl3"), "{df}");

    // A prebuilt package pinned by digest: unpacked with dpkg -x in a stage from the base.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pg_graphql.toml"),
        format!(
            "name = \"pg_graphql\"\ndescription = \"x\"\nlicense = \"Apache-2.0\"\nset = \"default\"\n\
             version = \"1.5.11\"\npg_majors = {{ min = 14, max = 17 }}\n\n[build]\nkind = \"prebuilt\"\n\n\
             [[versions]]\nversion = \"1.5.11\"\ntag = \"v1.5.11\"\n\
             url = \"https://github.com/supabase/pg_graphql/releases/download/v1.5.11/pg_graphql-v1.5.11-pg16-amd64-linux-gnu.deb\"\n\
             sha256 = \"{}\"\nprovenance = \"reproduced-only\"\n",
            "d".repeat(64)
        ),
    )
    .unwrap();
    let catalog = Catalog::from_dir(dir.path()).unwrap();
    let p = BuildPlan::new(&catalog, &PlanRequest::default()).unwrap();
    assert_eq!(
        p.extensions[0].source.as_ref().unwrap().file_name,
        "pg_graphql-1.5.11.deb"
    );
    let files = render::render(&p).unwrap();
    let df = file(&files, "Dockerfile");
    assert!(
        df.contains("FROM ghcr.io/zalando/spilo-16:3.2-p2 AS ext-pg_graphql"),
        "{df}"
    );
    assert!(
        df.contains("dpkg -x /pgha/src/pg_graphql-1.5.11.deb /pgha/root"),
        "{df}"
    );
    assert!(df.contains("COPY --from=ext-pg_graphql /pgha/root/ /"), "{df}");
    assert!(
        !df.contains("AS pgha-toolchain") && !df.contains("AS pgha-pgxs"),
        "no build tools for a prebuilt package: {df}"
    );
}

/// The config the image ships is the bootstrap's own format: the binary in the
/// image parses it, with the extensions the plan chose.
#[test]
fn rendered_bootstrap_config_is_accepted_by_pgha_bootstrap() {
    for req in [
        PlanRequest::default(),
        PlanRequest {
            base_image: Some("ghcr.io/zalando/spilo-17:4.0-p2".into()),
            pg_majors: vec![16, 17],
            extensions: Some(vec!["vector".into(), "pgjwt".into()]),
            ..Default::default()
        },
    ] {
        let p = plan(req).unwrap();
        let files = render::render(&p).unwrap();
        let text = file(&files, "config/bootstrap.toml");
        let cfg = pgha_image::bootstrap::config::Config::parse(text)
            .unwrap_or_else(|e| panic!("pgha-bootstrap rejects the rendered config: {e}\n{text}"));
        assert_eq!(cfg.extensions.create, p.bootstrap.create, "{text}");
        assert_eq!(cfg.extensions.required, p.bootstrap.required, "{text}");
        // The extensions that must be preloaded, as the plan knows them.
        for e in p.extensions.iter().filter(|e| e.preload.is_some()) {
            assert_eq!(cfg.extensions.preload.get(&e.name), e.preload.as_ref(), "{text}");
            // Never required: without the setting it waits as pending
            // instead of failing the cluster's first bootstrap.
            assert!(!cfg.extensions.required.contains(&e.name), "{}: {text}", e.name);
        }
        assert_eq!(
            cfg.connection.socket_dir,
            std::path::PathBuf::from("/run/postgresql")
        );
        // The default set's members left out: what `status` and `check` print.
        let lines = cfg.extensions.left_out_lines();
        assert_eq!(lines.len(), p.left_out.len(), "{text}");
        for l in &p.left_out {
            assert!(
                lines.iter().any(|x| x.contains(&l.name) && x.contains(&l.reason)),
                "{lines:?}"
            );
        }
    }
    // `-NAME` says why.
    let p = plan(PlanRequest {
        extensions: Some(vec!["default".into(), "-pg_graphql".into(), "+pgtap".into()]),
        ..Default::default()
    })
    .unwrap();
    assert!(p.extensions.iter().any(|e| e.name == "pgtap"));
    assert!(!p.extensions.iter().any(|e| e.name == "pg_graphql"));
    assert_eq!(p.left_out.len(), 1);
    assert_eq!(p.left_out[0].reason, "left out by -pg_graphql in the selection");
    let files = render::render(&p).unwrap();
    let cfg = pgha_image::bootstrap::config::Config::parse(file(&files, "config/bootstrap.toml")).unwrap();
    assert_eq!(
        cfg.extensions.left_out_lines(),
        [
            "note: the image was built without the default set's pg_graphql: left out by -pg_graphql in the selection"
        ]
    );
    // A misspelt `-NAME` is refused with a suggestion; leaving out what another needs is refused.
    let e = plan(PlanRequest {
        extensions: Some(vec!["default".into(), "-pg_grapql".into()]),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("did you mean \"pg_graphql\""), "{e}");
    let e = plan(PlanRequest {
        extensions: Some(vec!["index_advisor".into(), "-hypopg".into()]),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::Usage);
    assert!(e.to_string().contains("hypopg is left out"), "{e}");
}

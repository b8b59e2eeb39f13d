//! Cached rebuild of one context: through `Engine::build` vs the engine's own
//! CLI, alternating, N rounds; prints medians and the ratio. Run by
//! benches/export.sh: `cargo bench --bench engine_rebuild -- CONTEXT_DIR ENGINE [ROUNDS]`.

use pgha_image::engine::{BuildRequest, Engine, EngineChoice, EngineKind};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(ctx) = args.first().map(PathBuf::from) else {
        eprintln!("usage: engine_rebuild CONTEXT_DIR [docker|podman] [ROUNDS]");
        std::process::exit(2);
    };
    let choice: EngineChoice = args
        .get(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(EngineChoice::Podman);
    let rounds: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(5);
    let engine = Engine::detect(choice).unwrap_or_else(|e| panic!("{e}"));
    let tag = format!("localhost/pgha-bench/rebuild:{}", std::process::id());
    let log = std::env::temp_dir().join(format!("pgha-bench-rebuild-{}.log", std::process::id()));
    let req = BuildRequest {
        context_dir: ctx.clone(),
        tag: tag.clone(),
        platform: None,
        build_args: BTreeMap::new(),
        labels: BTreeMap::new(),
        log_path: log.clone(),
        no_cache: false,
        push: false,
        jobs: None,
        network: None,
    };
    // Warm the cache (the first build may run every step).
    let first = engine.build(&req, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let b = engine.build(&req, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"));
        ours.push(t.elapsed());
        assert_eq!(
            b.image_id, first.image_id,
            "a no-change rebuild must give the same image"
        );

        // The engine's own cached rebuild of the same context.
        let ctx_arg = ctx.to_string_lossy().into_owned();
        let mut args = vec!["build", "-q", "-t", tag.as_str()];
        if engine.kind() == EngineKind::Podman {
            args.push("--layers");
        }
        args.push(&ctx_arg);
        let t = Instant::now();
        let out = engine.run_raw(&args).unwrap();
        theirs.push(t.elapsed());
        assert!(out.status.success());
        let id = pgha_image::engine::normalize_id(
            String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or(""),
        );
        assert_eq!(
            id, first.image_id,
            "the engine's own rebuild gives the same image"
        );
    }
    let (o, p) = (median(ours), median(theirs));
    println!(
        "rebuild_engine={} rounds={rounds} ours_ms={} plain_ms={} ratio={:.2}",
        engine.kind(),
        o.as_millis(),
        p.as_millis(),
        o.as_secs_f64() / p.as_secs_f64()
    );
    let _ = engine.run_raw(&["image", "rm", tag.as_str()]);
    let _ = std::fs::remove_file(log);
}

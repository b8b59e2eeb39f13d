//! `export` and `load`: thin wrappers over `pgha_image::export`.

use crate::Global;
use clap::Args;
use pgha_image::engine::{Engine, EngineChoice};
use pgha_image::export::{self, Compression, ExportRequest};
use std::path::PathBuf;

#[derive(Args)]
#[command(
    after_help = "Writes FILE (under a hidden temporary name until it is complete), FILE.sha256 \
    (check with `sha256sum -c FILE.sha256`) and FILE.manifest.json (tag, image id, sizes, base image, \
    extensions). An existing FILE, FILE.sha256 or FILE.manifest.json is refused (exit 2) unless --force; \
    a malformed tag, a directory or an unwritable place is refused before the engine saves anything. \
    The engine's own temporary files (Podman: the whole image) go to a hidden directory next to FILE, \
    removed on success, failure, Ctrl-C and SIGTERM: FILE's file system needs room for both.\n\n\
    The tarball is the engine's `save` output, compressed. `pgha-image load` reads every compression. \
    Without pgha-image: `podman load` reads zstd and plain tar (Podman 4.3, as in Debian 12, fails on gzip: \
    podman#15944); a Docker Engine daemon reads gzip, and zstd only when recent (older ones, e.g. 20.10, \
    reject it). Use --compress gzip for an old Docker daemon, --compress none when unsure. See docs/export.md."
)]
pub struct ExportArgs {
    /// The image to export, e.g. supabase-patroni:v1.0
    #[arg(value_name = "IMAGE", required_unless_present = "tag")]
    pub image: Option<String>,

    /// The image, as earlier versions took it (`--tag IMAGE`)
    #[arg(
        long,
        short = 't',
        value_name = "IMAGE",
        hide = true,
        conflicts_with = "image"
    )]
    pub tag: Option<String>,

    /// Output file [default: derived from the image, e.g. supabase-patroni_v1.0.tar.zst]
    #[arg(long = "out", short = 'o', visible_alias = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Compression
    #[arg(long, value_name = "KIND", value_enum, default_value_t = Compression::Zstd)]
    pub compress: Compression,

    /// Compression level: zstd 1-19 [default: 1, about gzip -6's size at the speed of `save`], gzip 1-9 [default: 6]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: Option<i32>,

    /// Container engine: auto (a Docker that answers, else Podman), docker, podman
    #[arg(long, value_name = "ENGINE", value_enum, default_value_t = EngineChoice::Auto, env = "PGHA_ENGINE")]
    pub engine: EngineChoice,

    /// Replace an existing FILE, FILE.sha256 and FILE.manifest.json (never a directory)
    #[arg(long)]
    pub force: bool,

    /// Print the manifest as JSON on stdout
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub cache: crate::CacheDir,

    /// Write a delta with only the layers OLD_TAG lacks (zstd layers in a plain tar, so no --compress/--level); `load` it where OLD_TAG is (docs/ship.md)
    #[arg(long, value_name = "OLD_TAG", conflicts_with_all = ["compress", "level"])]
    pub since: Option<String>,
}

#[derive(Args)]
#[command(
    after_help = "Refuses (exit 3) a file whose FILE.sha256 or FILE.manifest.json does not match, \
    before anything reaches the engine. Reads zstd, gzip and plain tar (by magic bytes). \
    A delta (`export --since OLD_TAG`) is rebuilt from the layers of OLD_TAG held here plus the file, \
    verified and loaded; without OLD_TAG's layers it is refused (exit 4), naming OLD_TAG."
)]
pub struct LoadArgs {
    /// The exported tarball; FILE.sha256 must be next to it
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Container engine: auto (a Docker that answers, else Podman), docker, podman
    #[arg(long, value_name = "ENGINE", value_enum, default_value_t = EngineChoice::Auto, env = "PGHA_ENGINE")]
    pub engine: EngineChoice,

    /// Print the result as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run_export(args: ExportArgs, global: &Global) -> Result<(), pgha_image::Error> {
    let tag = args.image.or(args.tag).expect("clap requires IMAGE or --tag");
    if let Some(since) = args.since {
        return crate::ship::run_export_since(
            crate::ship::SinceArgs {
                tag,
                since,
                output: args.output,
                force: args.force,
                engine: args.engine,
                json: args.json,
            },
            global,
        );
    }
    let req = ExportRequest {
        tag,
        output: args.output,
        compression: args.compress,
        level: args.level,
        force: args.force,
    };
    export::check_request(&req)?;
    let engine = Engine::detect(args.engine)?;
    export::stop_on_signals();
    let progress = global.progress();
    let out = export::export(&engine, &req, &progress)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out).expect("serializes"));
    } else if !global.quiet {
        let m = &out.manifest;
        println!(
            "exported {} ({}) to {}\n  {} bytes ({} uncompressed, {}), sha256 {}\n  checksum: {}\n  manifest: {}",
            m.tag,
            m.image_id,
            out.file.display(),
            m.size,
            m.uncompressed_size,
            m.compression,
            m.sha256,
            out.checksum_file.display(),
            out.manifest_file.display()
        );
    }
    Ok(())
}

pub fn run_load(args: LoadArgs, global: &Global) -> Result<(), pgha_image::Error> {
    if pgha_image::ship::delta::is_delta(&args.file) {
        return crate::ship::run_load_delta(&args.file, args.engine, args.json, global);
    }
    let engine = Engine::detect(args.engine)?;
    let progress = global.progress();
    let out = export::load(&engine, &args.file, &progress)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out).expect("serializes"));
    } else if !global.quiet {
        println!(
            "verified {} (sha256 {}) and loaded {} ({})",
            out.verified.file.display(),
            out.verified.sha256,
            out.reference,
            out.image_id
        );
    }
    Ok(())
}

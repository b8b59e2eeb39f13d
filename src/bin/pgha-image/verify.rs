//! `pgha-image verify IMAGE`: arguments → `pgha_image::verify::run` → the
//! report as a table, lines, JSON and/or a JUnit file.

use crate::Global;
use clap::Args;
use pgha_image::engine::EngineChoice;
use pgha_image::fsutil::AtomicFile;
use pgha_image::verify::{self, Request, VerifyError};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args)]
#[command(
    after_help = "Exit codes: 0 every check passed, 3 a check failed, 4 no container engine, \
    2 bad input (no such image, not a pgha-image build), 1 the run itself failed."
)]
pub struct VerifyArgs {
    /// The image to verify (built by `pgha-image build`)
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// Container engine: auto (a Docker that answers, else Podman), docker, podman
    #[arg(long, value_name = "ENGINE", value_enum, default_value_t = EngineChoice::Auto, env = "PGHA_ENGINE")]
    pub engine: EngineChoice,

    /// 1: one member with the image's local etcd; 3: three members and an etcd on a
    /// network of the run, with a failover
    #[arg(long, value_name = "N", default_value = "1", value_parser = clap::builder::PossibleValuesParser::new(["1", "3"]))]
    pub members: String,

    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,

    /// Also write the report as JUnit XML to FILE (each check a test case)
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Leave the containers, network and volumes for a post-mortem, and print how to remove them
    #[arg(long)]
    pub keep: bool,

    /// Seconds a member may take to start and elect a leader (and the replicas to follow)
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,

    /// Do not mount this secret file (tests: a member without its key file)
    #[arg(long, value_name = "NAME", hide = true)]
    pub without_secret: Vec<String>,
}

pub fn run_verify(args: VerifyArgs, global: &Global) -> Result<(), pgha_image::Error> {
    // The JUnit file's place is checked (its temporary file created) before
    // the run, not after it: a bad path must not lose the report.
    let junit = match &args.junit {
        Some(path) => Some(junit_file(path)?),
        None => None,
    };
    let req = Request {
        image: args.image.clone(),
        engine: args.engine,
        members: args.members.parse().unwrap_or(1),
        keep: args.keep,
        timeout: Duration::from_secs(args.timeout),
        omit_secrets: args.without_secret.clone(),
    };
    // Progress (a line per check) goes to stderr; the result to stdout.
    let report = verify::run(req, global.progress())?;
    if args.json {
        println!("{}", report.to_json());
    } else if std::io::stdout().is_terminal() {
        print!("{}", report.table());
    } else {
        for l in report.lines() {
            println!("{l}");
        }
    }
    if !report.kept.is_empty() {
        eprintln!("kept for a post-mortem (--keep); remove with:");
        for c in &report.kept {
            eprintln!("  {c}");
        }
    }
    let failed = report.failed().count();
    let written = junit.map(|mut f| {
        use std::io::Write;
        let path = f.dest().to_path_buf();
        f.write_all(report.junit().as_bytes())
            .and_then(|()| f.commit())
            .map_err(|source| VerifyError::Io {
                what: format!("writing the JUnit report {}", path.display()),
                source,
            })
    });
    if failed > 0 {
        // A failed check is the verdict, whatever happened to the file.
        if let Some(Err(e)) = written {
            eprintln!("error: {e}");
        }
        return Err(VerifyError::ChecksFailed {
            failed,
            total: report.checks.len(),
        }
        .into());
    }
    written.transpose()?;
    Ok(())
}

/// The temporary file the JUnit report goes to, next to `path`, renamed
/// over it when written: a directory, a missing directory or a place that
/// cannot be written is refused before the run (exit 2).
fn junit_file(path: &Path) -> Result<AtomicFile, VerifyError> {
    verify::check_output(path)?;
    AtomicFile::create(path).map_err(|e| VerifyError::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

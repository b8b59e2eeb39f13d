//! `pgha-bootstrap`: Patroni's post-init hook that makes a fresh cluster a
//! Supabase database. This file only parses arguments and calls
//! `pgha_image::bootstrap`; docs/bootstrap.md describes the behaviour.

use clap::{Parser, Subcommand};
use pgha_image::bootstrap::config::Config;
use pgha_image::bootstrap::dsn::ConnInfo;
use pgha_image::bootstrap::{BootstrapError, Settings, check, runner};
use pgha_image::error::{Error, ExitCode, exit_with};
use pgha_image::progress::{Mode, Progress};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "pgha-bootstrap",
    version,
    about = "Make a fresh PostgreSQL (a Patroni cluster's first leader) a Supabase database, once",
    long_about = "Make a fresh PostgreSQL (a Patroni cluster's first leader) a Supabase database.\n\n\
        The Supabase contract (roles, schemas, grants, functions, event triggers, publication, the \
        _supabase database) is applied as embedded, checksummed migrations recorded in the ledger \
        schema pgha_bootstrap; each runs once. Extensions and secrets come from the configuration \
        file and secret files. On a replica nothing happens.\n\n\
        Patroni/Spilo forms:\n  \
        pgha-bootstrap DSN                      (bootstrap.post_bootstrap: pgha-bootstrap)\n  \
        pgha-bootstrap hook ARGS... DSN|postgres (Spilo's post_init wrapper: hook \"$@\")\n  \
        pgha-bootstrap on_role_change ROLE SCOPE (Patroni callback; applies pending work on promotion)",
    after_help = "Exit codes: 0 success or nothing to do, 1 failure (also a connect/statement/lock/run \
        timeout), 2 bad input (configuration, DSN, an empty or non-UTF-8 secret, a missing --secrets-dir, an \
        unknown --extensions name), 3 drift (a migration or a contract function changed) or contract check \
        failed, 4 missing prerequisite (a required extension; a secret file that is unreadable, a dangling link, \
        or not a regular file of at most 64 KiB)."
)]
struct Cli {
    /// The configuration file [default: /etc/pgha/bootstrap.toml; missing = built-in defaults]
    #[arg(long, global = true, value_name = "FILE", env = "PGHA_BOOTSTRAP_CONFIG")]
    config: Option<PathBuf>,

    /// Also apply the NNNN_name.sql migrations of DIR (site-specific additions, after the built-in ones;
    /// apply records DIR, later runs use it without the flag)
    #[arg(long, global = true, value_name = "DIR")]
    extra_migrations: Option<PathBuf>,

    /// Print only errors and the command's result
    #[arg(short, long, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply what is pending: migrations, the contract roles' attributes and members, extensions,
    /// passwords, JWT settings
    Apply {
        /// libpq key=value string, postgresql:// URL, or `postgres` (the local socket) [default: the configured local server]
        #[arg(long, value_name = "DSN")]
        dsn: Option<String>,
        /// Extensions to create, comma-separated, instead of the configured (or last recorded) list;
        /// recorded, so later runs and a bare check use it
        #[arg(long, value_name = "LIST")]
        extensions: Option<String>,
        /// Read secrets from DIR (one file per role, `password`, `jwt_secret`); DIR must exist
        #[arg(long, value_name = "DIR")]
        secrets_dir: Option<PathBuf>,
        /// Accept the current definitions of contract functions that changed since they were
        /// recorded (e.g. redefined by GoTrue's own migrations) instead of refusing the drift
        #[arg(long)]
        accept_function_changes: bool,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show the ledger and what is pending
    Status {
        /// libpq key=value string, postgresql:// URL, or `postgres` [default: the configured local server]
        #[arg(long, value_name = "DSN")]
        dsn: Option<String>,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Show what `apply` would do, without doing it
    Plan {
        /// Compare with the secrets in DIR instead of the configured directory
        #[arg(long, value_name = "DIR")]
        secrets_dir: Option<PathBuf>,
        /// libpq key=value string, postgresql:// URL, or `postgres` [default: the configured local server]
        #[arg(long, value_name = "DSN")]
        dsn: Option<String>,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Verify the live database against the Supabase contract (exit 3 when anything is missing or different)
    Check {
        /// Extensions to verify, comma-separated [default: what the last apply recorded, else the configured list]
        #[arg(long, value_name = "LIST")]
        extensions: Option<String>,
        /// Compare with the secrets in DIR instead of the configured directory
        #[arg(long, value_name = "DIR")]
        secrets_dir: Option<PathBuf>,
        /// libpq key=value string, postgresql:// URL, or `postgres` [default: the configured local server]
        #[arg(long, value_name = "DSN")]
        dsn: Option<String>,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Hook form for Patroni/Spilo: the last argument is the DSN, or `postgres` for the local socket
    Hook {
        /// Anything (e.g. Spilo's human role), then the DSN or `postgres`
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Patroni callback: on promotion (ROLE master or primary) apply pending work; otherwise nothing
    #[command(name = "on_role_change")]
    OnRoleChange { role: String, scope: Option<String> },
    /// Patroni callback: does nothing
    #[command(name = "on_start", hide = true)]
    OnStart { args: Vec<String> },
    /// Patroni callback: does nothing
    #[command(name = "on_stop", hide = true)]
    OnStop { args: Vec<String> },
    /// Patroni callback: does nothing
    #[command(name = "on_restart", hide = true)]
    OnRestart { args: Vec<String> },
    /// Patroni callback: does nothing
    #[command(name = "on_reload", hide = true)]
    OnReload { args: Vec<String> },
}

const SUBCOMMANDS: &[&str] = &[
    "apply",
    "status",
    "plan",
    "check",
    "hook",
    "on_role_change",
    "on_start",
    "on_stop",
    "on_restart",
    "on_reload",
    "help",
];

/// `pgha-bootstrap DSN` (Patroni's post_bootstrap appends the DSN) means the hook form.
fn normalise_args(mut args: Vec<OsString>) -> Vec<OsString> {
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if a == "--config" || a == "--extra-migrations" {
            i += 2;
        } else if a.starts_with('-') {
            // --config=X, -q, --quiet, --help, --version: leave clap to it.
            if a == "-h" || a == "--help" || a == "-V" || a == "--version" {
                return args;
            }
            i += 1;
        } else {
            if !SUBCOMMANDS.contains(&a.as_ref()) {
                args.insert(i, "hook".into());
            }
            return args;
        }
    }
    args
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse_from(normalise_args(std::env::args_os().collect()));
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::Failure.into();
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code.into(),
        Err(e) => exit_with(&e),
    }
}

/// The run's settings: the configuration, the connection (`dsn`, else the
/// local socket), `--extra-migrations`, and `--secrets-dir` when given.
fn settings(
    cli: &Cli,
    cfg: &Config,
    dsn: Option<&str>,
    secrets_dir: Option<&std::path::Path>,
) -> Result<Settings, Error> {
    let conn = match dsn {
        Some(d) => ConnInfo::parse_or_local(d, &cfg.connection)?,
        None => ConnInfo::local(&cfg.connection),
    };
    let mut s = Settings::new(cfg, conn);
    if let Some(dir) = &cli.extra_migrations {
        s = s.with_extra_migrations(dir)?;
    }
    if let Some(dir) = secrets_dir {
        s = s.with_secrets_dir(dir)?;
    }
    Ok(s)
}

/// A report on stdout: JSON, or its lines (none when quiet).
fn print_report(
    report: &impl serde::Serialize,
    lines: impl FnOnce() -> Vec<String>,
    json: bool,
    quiet: bool,
) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("reports serialise")
        );
    } else if !quiet {
        for l in lines() {
            println!("{l}");
        }
    }
}

async fn apply_and_report(s: &Settings, quiet: bool, json: bool) -> Result<ExitCode, Error> {
    let progress = Progress::new(if quiet || json { Mode::Quiet } else { Mode::Plain });
    let report = runner::bounded(s, "pgha-bootstrap apply", runner::apply(s, &progress)).await?;
    print_report(&report, || report.lines(), json, quiet);
    Ok(ExitCode::Success)
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let cfg = Config::load(cli.config.as_deref())?;
    let promotion_wait = Some(Duration::from_secs(cfg.connection.promotion_wait_seconds));
    match &cli.command {
        Command::Apply {
            dsn,
            extensions,
            secrets_dir,
            accept_function_changes,
            json,
        } => {
            let mut s = settings(&cli, &cfg, dsn.as_deref(), secrets_dir.as_deref())?;
            if let Some(list) = extensions {
                s.extensions = s.extensions.with_list(list)?;
            }
            s.accept_function_changes = *accept_function_changes;
            apply_and_report(&s, cli.quiet, *json).await
        }
        Command::Status { dsn, json } => {
            let s = settings(&cli, &cfg, dsn.as_deref(), None)?;
            let report = runner::bounded(&s, "pgha-bootstrap status", runner::status(&s)).await?;
            print_report(&report, || report.lines(), *json, false);
            if !*json {
                cfg.extensions
                    .left_out_lines()
                    .iter()
                    .for_each(|l| println!("{l}"));
            }
            Ok(ExitCode::Success)
        }
        Command::Plan {
            dsn,
            json,
            secrets_dir,
        } => {
            let s = settings(&cli, &cfg, dsn.as_deref(), secrets_dir.as_deref())?;
            let report = runner::bounded(&s, "pgha-bootstrap plan", runner::plan(&s)).await?;
            print_report(&report, || report.lines(), *json, false);
            Ok(ExitCode::Success)
        }
        Command::Check {
            extensions,
            dsn,
            json,
            secrets_dir,
        } => {
            let mut s = settings(&cli, &cfg, dsn.as_deref(), secrets_dir.as_deref())?;
            if let Some(list) = extensions {
                s.extensions = s.extensions.with_list(list)?;
            }
            let report = runner::bounded(&s, "pgha-bootstrap check", check::check(&s)).await?;
            print_report(&report, || report.lines(), *json, false);
            if !*json {
                cfg.extensions
                    .left_out_lines()
                    .iter()
                    .for_each(|l| println!("{l}"));
            }
            let failed = report.failures().count();
            if failed > 0 {
                return Err(BootstrapError::CheckFailed { count: failed }.into());
            }
            Ok(ExitCode::Success)
        }
        Command::Hook { args } => {
            let last = args.last().expect("clap requires one argument");
            let mut s = settings(&cli, &cfg, Some(last), None)?;
            if last.trim() == "postgres" {
                // Spilo's promotion callback form: the server may still be leaving recovery.
                s.wait_for_primary = promotion_wait;
            }
            apply_and_report(&s, cli.quiet, false).await
        }
        Command::OnRoleChange { role, scope } => {
            if role == "master" || role == "primary" {
                let mut s = settings(&cli, &cfg, None, None)?;
                s.wait_for_primary = promotion_wait;
                if !cli.quiet {
                    println!(
                        "pgha-bootstrap: on_role_change {role} {}: applying pending work",
                        scope.as_deref().unwrap_or("")
                    );
                }
                apply_and_report(&s, cli.quiet, false).await
            } else {
                if !cli.quiet {
                    println!("pgha-bootstrap: on_role_change {role}: nothing to do (not a primary)");
                }
                Ok(ExitCode::Success)
            }
        }
        Command::OnStart { .. }
        | Command::OnStop { .. }
        | Command::OnRestart { .. }
        | Command::OnReload { .. } => Ok(ExitCode::Success),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[&str]) -> Vec<String> {
        normalise_args(v.iter().map(OsString::from).collect())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn a_bare_dsn_is_the_hook_form() {
        assert_eq!(
            norm(&["x", "dbname=postgres host=h"]),
            ["x", "hook", "dbname=postgres host=h"]
        );
        assert_eq!(
            norm(&["x", "--config", "c", "postgres"]),
            ["x", "--config", "c", "hook", "postgres"]
        );
        assert_eq!(norm(&["x", "apply", "--dsn", "d"]), ["x", "apply", "--dsn", "d"]);
        assert_eq!(
            norm(&["x", "on_role_change", "master", "s"]),
            ["x", "on_role_change", "master", "s"]
        );
        assert_eq!(norm(&["x", "--help"]), ["x", "--help"]);
        Cli::try_parse_from(norm(&["x", "admin", "postgres"])).unwrap();
        Cli::try_parse_from(norm(&["x", "on_stop", "replica", "s"])).unwrap();
    }
}

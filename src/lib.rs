//! pgha-image: turn Zalando's Spilo image into a Supabase-ready, highly
//! available PostgreSQL image, and bootstrap the Supabase database on the
//! cluster's first leader.
//!
//! The data flows one way, and the modules follow it:
//!
//! ```text
//! catalog ──► fetch (verify, cache) ──► context (plan, render, pack) ──► engine (build) ──► export / load
//!
//! bootstrap: migrations (sql/) ──► runner (ledger, lock) ──► check
//! ```
//!
//! Shared plumbing: [`hash`] (streaming SHA-256), [`progress`] (bars on a
//! terminal, plain lines elsewhere), [`error`] (one error type for the
//! binaries, with a hint and an exit code), [`redact`] (credentials hidden
//! in every URL shown), [`templates`] (the minijinja environment of both
//! renderers), [`fsutil`] (atomic writes, checksum files).
//!
//! Beside the build line: [`manifests`] (cluster spec → per-VM
//! deployments), [`verify`] (run an image and prove what it claims) and
//! [`ship`] (put an image on hosts over ssh, only the missing layers).

pub mod archive;
pub mod bootstrap;
pub mod catalog;
pub mod context;
pub mod contract;
pub mod engine;
pub mod error;
pub mod export;
pub mod fetch;
pub mod fsutil;
pub mod hash;
pub mod manifests;
pub mod pipeline;
pub mod progress;
pub mod redact;
pub mod ship;
pub mod templates;
pub mod verify;

pub use error::{Error, ExitCode};

/// The version of this tool, recorded in image labels and in the bootstrap ledger.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

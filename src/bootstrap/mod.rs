//! pgha-bootstrap's library: makes a fresh PostgreSQL (a Patroni cluster's
//! first leader) a Supabase database, as `docs/bootstrap.md` and the contract
//! describe, once, recorded, and safely any number of times.
//!
//! ```text
//! config (TOML) ─┐
//! dsn ───────────┼─► runner ─► migrations (sql/, embedded) ─► ledger
//! secrets ───────┘      └────► extensions, secrets        check (read-only)
//! ```

pub mod check;
pub mod config;
pub mod dsn;
pub mod error;
pub mod extensions;
pub mod ledger;
pub mod migrations;
pub mod report;
pub mod roles;
pub mod runner;
pub mod secrets;

pub use error::BootstrapError;
pub use report::{ApplyReport, Outcome};
pub use runner::Settings;

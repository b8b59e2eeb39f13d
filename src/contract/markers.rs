//! Log lines that one part prints and another looks for: the post_init
//! wrapper's (rendered from here) and pgha-bootstrap's, read by `verify`.

/// What the post_init wrapper (dockerfiles/post_init.sh.j2) prints when the
/// cluster bootstrap hands over to pgha-bootstrap: once per bootstrap.
pub const HOOK_MARKER: &str = "running pgha-bootstrap hook (bootstrap)";
/// What pgha-bootstrap prints when a run (e.g. after a promotion) finds the
/// database up to date (bootstrap/runner.rs).
pub const NOTHING_TO_DO: &str = "pgha-bootstrap: nothing to do";

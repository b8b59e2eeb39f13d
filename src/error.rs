//! One error type for the binaries: every module's typed error converts into
//! [`Error`], which keeps the cause chain, a hint of what to do, and an exit
//! code that means something.
//!
//! A module makes its error usable here by implementing [`Diagnostic`]; the
//! `?` operator then converts it. No central list of modules to edit.

use std::fmt;

/// Process exit codes, shared by both binaries and documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// The work was done, or there was nothing to do.
    Success = 0,
    /// The operation failed (network, engine, database, I/O).
    Failure = 1,
    /// The input was wrong: arguments, catalog files, names, configuration.
    Usage = 2,
    /// Something did not verify: a digest mismatch, a tampered export, a
    /// database that does not meet the contract.
    Verification = 3,
    /// A prerequisite is missing: no container engine, an extension not
    /// installed, a source not in the cache while offline.
    Prerequisite = 4,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

/// What a module error tells the user beyond its message.
pub trait Diagnostic: std::error::Error + Send + Sync + 'static {
    /// What to do about it, in one or two sentences.
    fn hint(&self) -> Option<String> {
        None
    }

    fn exit_code(&self) -> ExitCode {
        ExitCode::Failure
    }
}

/// Any error of this crate, for the binaries to print.
pub struct Error(Box<dyn Diagnostic>);

impl Error {
    pub fn hint(&self) -> Option<String> {
        self.0.hint()
    }

    pub fn exit_code(&self) -> ExitCode {
        self.0.exit_code()
    }

    /// The full report a binary prints: message, causes, hint. Any URL in
    /// it is shown without credentials ([`crate::redact::text`]).
    pub fn report(&self) -> String {
        let mut out = String::new();
        for (i, msg) in causes(&*self.0).into_iter().enumerate() {
            if i == 0 {
                out.push_str(&format!("error: {msg}\n"));
            } else {
                out.push_str(&format!("  caused by: {msg}\n"));
            }
        }
        if let Some(h) = self.hint() {
            out.push_str(&format!("  hint: {h}\n"));
        }
        crate::redact::text(&out).into_owned()
    }
}

impl<E: Diagnostic> From<E> for Error {
    fn from(e: E) -> Self {
        Error(Box::new(e))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.report().trim_end())
    }
}

/// The messages of `e` and its causes, outermost first. A cause whose
/// message an earlier one already contains is left out (thiserror messages
/// often embed their source). The one chain walk of the crate: [`Error::report`]
/// prints it a line each, [`one_line`] joins it.
fn causes(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for cause in std::iter::successors(Some(e), |e| e.source()) {
        let msg = cause.to_string();
        if !out.iter().any(|m| m.contains(&msg)) {
            out.push(msg);
        }
    }
    out
}

/// An error and its causes on one line, joined by `: `, credentials in URLs
/// hidden: for messages that embed a foreign error (e.g. an HTTP client's).
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    crate::redact::text(&causes(e).join(": ")).into_owned()
}

/// An error made on the spot by a binary (e.g. conflicting flags).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    pub message: String,
    pub hint: Option<String>,
}

impl UsageError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl Diagnostic for UsageError {
    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
    fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }
}

/// Print an error report to stderr and turn it into the process exit code.
pub fn exit_with(err: &Error) -> std::process::ExitCode {
    eprint!("{}", err.report());
    err.exit_code().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}")]
    struct Outer {
        path: String,
        #[source]
        source: std::io::Error,
    }
    impl Diagnostic for Outer {
        fn hint(&self) -> Option<String> {
            Some("check the path".into())
        }
        fn exit_code(&self) -> ExitCode {
            ExitCode::Prerequisite
        }
    }

    #[test]
    fn report_has_message_cause_and_hint() {
        let e: Error = Outer {
            path: "/x".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        }
        .into();
        let r = e.report();
        assert!(r.starts_with("error: reading /x\n"), "{r}");
        assert!(r.contains("caused by: no such file"), "{r}");
        assert!(r.contains("hint: check the path"), "{r}");
        assert_eq!(e.exit_code(), ExitCode::Prerequisite);
    }
}

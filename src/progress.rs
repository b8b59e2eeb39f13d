//! Progress reporting: indicatif bars and spinners on a terminal, plain lines
//! on stderr otherwise (CI logs, pipes), nothing when quiet.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// Bars when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    Bars,
    Plain,
    #[value(alias = "none")]
    Quiet,
}

/// A set of progress displays sharing one output.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
    mode: Mode,
}

impl Progress {
    pub fn new(mode: Mode) -> Self {
        let mode = match mode {
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Bars,
            Mode::Auto => Mode::Plain,
            m => m,
        };
        let multi =
            (mode == Mode::Bars).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { multi, mode }
    }

    /// No output at all (library callers, tests).
    pub fn quiet() -> Self {
        Self::new(Mode::Quiet)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A line of text that does not break the bars.
    pub fn println(&self, msg: impl AsRef<str>) {
        match (&self.multi, self.mode) {
            (_, Mode::Quiet) => {}
            (Some(m), _) => {
                let _ = m.println(msg.as_ref());
            }
            (None, _) => eprintln!("{}", msg.as_ref()),
        }
    }

    /// A byte-counting bar for one item (e.g. a download). `total` may be unknown.
    pub fn bytes(&self, label: &str, total: Option<u64>) -> Task {
        let bar = self.multi.as_ref().map(|m| {
            let bar = match total {
                Some(t) => ProgressBar::new(t).with_style(
                    ProgressStyle::with_template(
                        "{prefix:>20.bold} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {msg}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{prefix:>20.bold} {spinner} {bytes:>10} {bytes_per_sec:>12} {msg}")
                        .expect("static template"),
                ),
            };
            let bar = m.add(bar);
            bar.set_prefix(label.to_string());
            bar
        });
        Task::new(label, bar, self.mode)
    }

    /// A counting bar over `total` items (e.g. the total of several downloads).
    pub fn count(&self, label: &str, total: u64) -> Task {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(total)).with_style(
                ProgressStyle::with_template("{prefix:>20.bold} [{bar:30}] {pos}/{len} {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        Task::new(label, bar, self.mode)
    }

    /// A spinner showing the current step of a long operation.
    pub fn spinner(&self, label: &str) -> Task {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner()).with_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}")
                    .expect("static template"),
            );
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Task::new(label, bar, self.mode)
    }
}

/// One bar or spinner. In plain mode, messages become lines on stderr.
pub struct Task {
    label: String,
    bar: Option<ProgressBar>,
    mode: Mode,
}

impl Task {
    fn new(label: &str, bar: Option<ProgressBar>, mode: Mode) -> Self {
        Self {
            label: label.to_string(),
            bar,
            mode,
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn set_length(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_length(n);
        }
    }

    /// Reset the position (e.g. when a download is retried from the start).
    pub fn reset(&self) {
        if let Some(b) = &self.bar {
            b.set_position(0);
        }
    }

    /// The current step. Plain mode prints it as a line.
    pub fn set_message(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match (&self.bar, self.mode) {
            (_, Mode::Quiet) => {}
            (Some(b), _) => b.set_message(msg),
            (None, _) => eprintln!("{}: {}", self.label, msg),
        }
    }

    pub fn finish(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match (&self.bar, self.mode) {
            (_, Mode::Quiet) => {}
            (Some(b), _) => b.finish_with_message(msg),
            (None, _) => eprintln!("{}: {}", self.label, msg),
        }
    }

    pub fn fail(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match (&self.bar, self.mode) {
            (_, Mode::Quiet) => {}
            (Some(b), _) => b.abandon_with_message(msg),
            (None, _) => eprintln!("{}: {}", self.label, msg),
        }
    }
}

/// Bytes as a human-readable size (KiB, MiB, GiB).
pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

//! Waiting on a condition, never a fixed sleep standing in for one.

use std::time::{Duration, Instant};

/// Poll `check` every `every` until it returns Some, or panic after
/// `timeout` with `what` and the last state `describe` gives.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("{what}: not within {timeout:?}\n{}", describe());
        }
        std::thread::sleep(every);
    }
}

/// Whether any process's command line or environment contains `needle`
/// (read from /proc; the environment only of processes this user may
/// read): the condition "the engine process a test orphaned has ended".
pub fn process_running_with(needle: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| {
            ["cmdline", "environ"].iter().any(|f| {
                std::fs::read(e.path().join(f)).is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
            })
        })
}

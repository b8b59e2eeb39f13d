//! SIGINT/SIGTERM during an export: a flag the streaming loop checks, so that
//! the export stops itself and cleans up instead of dying half-way.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT/SIGTERM once [`stop_on_signals`] is installed.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Make SIGINT and SIGTERM stop a running export cleanly (the engine's save
/// killed, the temporary file and the engine's scratch directory removed,
/// exit status 1) instead of killing the process with files left behind.
/// For the binary; call once.
pub fn stop_on_signals() {
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

pub(crate) fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

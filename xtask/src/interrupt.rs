//! Ctrl-C for the long demos. SIGINT and SIGTERM are caught (tokio's signal
//! streams, on a thread of their own) instead of ending xtask at once, so
//! the demo fails at its next check and its guards (agents, routing daemons,
//! the testbed's namespaces) clean up as on any other failure. Not by
//! blocking the signals: children inherit a blocked mask (std keeps it), and
//! an agent would then ignore the SIGTERM that stops it, while a caught
//! signal is back to its default in a child once it execs. The terminal's
//! SIGINT reaches the children too: an agent withdraws its routes and stops.
use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::bail;
use tokio::signal::unix::{SignalKind, signal};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Catches SIGINT and SIGTERM from here on (the handlers are in place when
/// this returns).
pub fn catch() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut int, mut term) = {
        let _in_runtime = rt.enter();
        (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?)
    };
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        rt.block_on(async {
            loop {
                let name = tokio::select! {
                    Some(()) = int.recv() => "SIGINT",
                    Some(()) = term.recv() => "SIGTERM",
                    else => return,
                };
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    // A second one: the user won't wait for the cleanup. The
                    // next testbed build sweeps what is left.
                    eprintln!("\n==> {name} again: leaving without cleaning up");
                    std::process::exit(130);
                }
                eprintln!("\n==> {name}: stopping the demo and cleaning up (again to leave at once)");
            }
        });
    })?;
    Ok(())
}

/// Fails once SIGINT or SIGTERM came.
pub fn check() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps `d`, failing early when interrupted.
pub fn sleep(d: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + d;
    loop {
        check()?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

//! HAProxy's seamless upgrade from the new agent's side (-sf/-st PID...): it
//! binds beside the old agents (SO_REUSEPORT listeners, replaced stats
//! sockets, the adopted XDP datapath), and once it serves it tells them to
//! go: SIGUSR1 (finish the sessions, then exit) or SIGTERM (exit now).
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tracing::{info, warn};

/// The agents this one replaces.
#[derive(Debug, Clone, Default)]
pub struct Predecessors {
    /// -sf: told to finish their sessions.
    pub soft: Vec<i32>,
    /// -st: told to stop now.
    pub hard: Vec<i32>,
}

impl Predecessors {
    pub fn is_empty(&self) -> bool {
        self.soft.is_empty() && self.hard.is_empty()
    }

    /// Called once this agent serves. A pid that is gone is only noted: a
    /// script's pidfile may be stale, and HAProxy goes on likewise.
    pub fn dismiss(&self) {
        let own = std::process::id() as i32;
        for (pids, signal, what) in [
            (&self.soft, Signal::SIGUSR1, "finish its sessions and exit"),
            (&self.hard, Signal::SIGTERM, "stop"),
        ] {
            for &pid in pids.iter().filter(|&&p| p > 0 && p != own) {
                match kill(Pid::from_raw(pid), signal) {
                    Ok(()) => info!("taking over from pid {pid}: told it ({signal}) to {what}"),
                    Err(e) => warn!("taking over from pid {pid}: {signal}: {e}"),
                }
            }
        }
    }
}

/// How the agent loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM/SIGINT: close everything now.
    Hard,
    /// SIGUSR1: stop taking new connections, let the open ones finish
    /// (until `hard-stop-after`), then exit.
    Soft,
}

/// Whether `pid` is a live process (signal 0 probes without sending).
pub fn alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|p| p > 0 && kill(Pid::from_raw(p), None).is_ok())
}

//! The signals a serving agent answers, HAProxy-style: SIGINT/SIGTERM stop,
//! SIGHUP reloads, SIGUSR1 stops softly (HAProxy's soft stop). Both modes
//! install the same set.
use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};

pub struct Signals {
    pub interrupt: Signal,
    pub terminate: Signal,
    pub usr1: Signal,
    pub hangup: Signal,
}

impl Signals {
    pub fn install() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
            usr1: signal(SignalKind::user_defined1()).context("installing SIGUSR1 handler")?,
            hangup: signal(SignalKind::hangup()).context("installing SIGHUP handler")?,
        })
    }
}

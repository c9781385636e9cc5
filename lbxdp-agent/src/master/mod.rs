//! HAProxy 2.6's master-worker mode (`-W`, `-Ws`, `master-worker` in the
//! global section).
//!
//! The master is a small supervisor: it parses the configuration (the
//! caller did, with the usual diagnostics: a bad one stops it at once),
//! writes the pidfile, binds the master CLI (`-S`), then starts a worker —
//! this executable again, with the master's arguments minus -W/-S/-D/-p,
//! plus `--foreground`. The master binds nothing of the configuration,
//! loads no BPF and balances nothing.
//!
//! - Reload (SIGUSR2, SIGHUP, or `reload` on the master CLI): the
//!   configuration is read again; if it has errors they are logged with
//!   "Loading failure!" and the current worker stays. Otherwise a new
//!   worker starts with `--soft-stop <the live workers' pids>`: it binds
//!   beside the old one and, once it serves, tells it to finish (the
//!   worker side's contract). Its READY=1 on the master's per-worker notify
//!   socket is "Loading success."; if it dies before that, the old one
//!   keeps serving and the reload counts as failed. Unlike HAProxy's, the
//!   master doesn't re-execute itself: the master CLI connection that asked
//!   for `reload` is closed without a word, as HAProxy 2.6's is (its master
//!   re-executes and loses it), and the reload counters survive.
//! - Supervision: a worker that exits is logged in HAProxy's words
//!   ("Current worker (PID) exited with code N (Exit)", "Former worker ...");
//!   when the current worker fails (neither 0 nor SIGINT/SIGTERM) the others
//!   get SIGTERM ("exit-on-failure"), and once no worker is left the master
//!   exits with that code — unless `master-worker no-exit-on-failure`,
//!   where it stays and a reload starts a worker again.
//! - SIGTERM/SIGINT: forwarded to the workers; the master exits once they
//!   are gone, removing its sockets and pidfile. SIGUSR1: forwarded (the
//!   workers' soft stop), same end.
//! - systemd (NOTIFY_SOCKET, `-Ws`): the master says READY=1 when its first
//!   worker serves and after each reload (with the worker's STATUS),
//!   RELOADING=1 when a reload begins, STOPPING=1 at the end.
//! - `-D` with `-W`: the daemon (see `daemon`) is the master; its READY=1
//!   (its first worker's) sends the foreground process away, and the
//!   workers, which inherit the daemon's environment, leave the terminal
//!   themselves.
//! - The master CLI: see [`cli`]; `@1 <command>` and `@!<pid> <command>` go
//!   to the worker's admin runtime socket, which the worker opens at the
//!   path the master gives it in `LBXDP_WORKER_CLI`, in a private directory.
mod cli;
mod listen;
mod workers;

use std::{ffi::OsString, path::PathBuf, process::ExitCode, time::Instant};

use anyhow::Context as _;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};
use tracing::{error, info, warn};
pub use workers::MASTER_PID_ENV;
use workers::{Event, Spawner, State, Worker};

use crate::{
    config::{Config, Severity},
    notify::Notifier,
};

/// What `show proc` and `show version` call this program.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The command line's part in master-worker mode.
pub struct Options {
    /// `-f`, read again at each reload.
    pub config_paths: Vec<PathBuf>,
    /// `-S`, each as HAProxy writes it (`/path,mode,600`).
    pub master_cli: Vec<String>,
    /// `-p`; else the configuration's `pidfile`. The master writes it.
    pub pidfile: Option<PathBuf>,
}

/// Whether this process is to be a master: -W or `master-worker`, and not
/// already a master's worker.
pub fn wanted(flag: bool, config: Option<&Config>) -> bool {
    (flag || config.is_some_and(|c| c.global.master_worker)) && !is_worker()
}

/// A master started this process: the pidfile is the master's.
pub fn is_worker() -> bool {
    std::env::var_os(MASTER_PID_ENV).is_some()
}

/// Runs the master until it ends; the exit code is the one HAProxy's master
/// leaves with. A plain function (it builds its own single-threaded tokio
/// runtime), so a caller may daemonize first.
pub fn run(opts: Options, config: Option<&Config>) -> anyhow::Result<ExitCode> {
    let config = config.context("master-worker mode needs a configuration (-f)")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the master's runtime")?;
    let code = rt.block_on(serve(opts, config))?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

async fn serve(opts: Options, config: &Config) -> anyhow::Result<i32> {
    // Caught before any worker exists: a signal at start is kept, not fatal.
    let mut usr2 = signal(SignalKind::user_defined2()).context("installing SIGUSR2 handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut usr1 = signal(SignalKind::user_defined1()).context("installing SIGUSR1 handler")?;
    let notifier = Notifier::from_env();
    let pidfile = opts
        .pidfile
        .clone()
        .or_else(|| config.global.pidfile.as_ref().map(PathBuf::from));
    let _pidfile = pidfile.as_deref().map(crate::pidfile::PidFile::write).transpose()?;
    let mut listeners = Vec::new();
    for text in &opts.master_cli {
        let spec = listen::parse(text)?;
        listeners.push(listen::bind(&spec).await?);
    }
    let dir = workers::PrivateDir::create()?;
    let exe = std::env::current_exe().context("finding this executable")?;
    let args: Vec<OsString> = crate::cli_args::haproxy_style(std::env::args_os())
        .into_iter()
        .skip(1)
        .collect();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (asks_tx, mut asks) = mpsc::channel(64);
    let mut cli_tasks = tokio::task::JoinSet::new();
    for l in listeners {
        cli_tasks.spawn(l.serve(asks_tx.clone()));
    }
    let mut m = Master {
        started: Instant::now(),
        reloads: 0,
        failed: 0,
        workers: Vec::new(),
        spawner: Spawner::new(exe, workers::worker_args(&args), dir.0.clone()),
        events: events_tx,
        notifier,
        config_paths: opts.config_paths,
        exit_on_failure: !config.global.master_no_exit_on_failure,
        stopping: false,
        exit_code: None,
        said_stopping: false,
        stats_sockets: config.global.stats_sockets.clone(),
    };
    m.start_worker()?;
    let code = loop {
        let done = tokio::select! {
            Some(ev) = events.recv() => m.event(ev),
            Some(ask) = asks.recv() => { m.ask(ask); None }
            _ = usr2.recv() => { m.reload(); None }
            _ = hup.recv() => { m.reload(); None }
            _ = term.recv() => m.stop(nix::sys::signal::Signal::SIGTERM),
            _ = int.recv() => m.stop(nix::sys::signal::Signal::SIGINT),
            _ = usr1.recv() => m.stop(nix::sys::signal::Signal::SIGUSR1),
        };
        if let Some(code) = done {
            break code;
        }
    };
    if !m.said_stopping {
        m.notifier.stopping();
    }
    cli_tasks.shutdown().await;
    for sock in &m.stats_sockets {
        crate::runtime::socket::remove_if_stale(sock);
    }
    Ok(code)
}

struct Master {
    started: Instant,
    reloads: u32,
    failed: u32,
    /// Oldest first.
    workers: Vec<Worker>,
    spawner: Spawner,
    events: mpsc::UnboundedSender<Event>,
    notifier: Notifier,
    config_paths: Vec<PathBuf>,
    exit_on_failure: bool,
    stopping: bool,
    /// The first failure's code: what the master leaves with.
    exit_code: Option<i32>,
    /// STOPPING=1 went out (once is enough for systemd).
    said_stopping: bool,
    /// The workers' stats sockets (the last good configuration's): removed
    /// when the master leaves, which a chrooted worker can't do.
    stats_sockets: Vec<crate::config::StatsSocket>,
}

impl Master {
    fn start_worker(&mut self) -> anyhow::Result<()> {
        let old: Vec<u32> = self.workers.iter().map(|w| w.pid).collect();
        let w = self.spawner.spawn(&old, &self.events)?;
        info!("New worker ({}) forked", w.pid);
        self.workers.push(w);
        Ok(())
    }

    fn reload(&mut self) {
        if self.stopping {
            return;
        }
        info!("Reloading lbxdp-agent (master {})", std::process::id());
        self.notifier.reloading();
        self.reloads += 1;
        for w in &mut self.workers {
            w.reloads += 1;
        }
        match self.check_config() {
            Ok(no_exit) => {
                self.exit_on_failure = !no_exit;
                if let Err(e) = self.start_worker() {
                    error!("starting a new worker: {e:#}");
                    self.failed("the new worker didn't start");
                }
            }
            Err(e) => {
                error!("{e:#}");
                self.failed("the configuration has errors");
            }
        }
    }

    fn failed(&mut self, why: &str) {
        warn!("Loading failure!");
        self.failed += 1;
        self.notifier
            .ready(&format!("reload failed ({why}); the current worker keeps serving"));
    }

    /// The configuration's `master-worker no-exit-on-failure`, once it
    /// parsed; its diagnostics are logged as the agent logs them.
    fn check_config(&mut self) -> anyhow::Result<bool> {
        let loaded = crate::config_files::load(&self.config_paths)?;
        for d in &loaded.diags {
            match d.severity {
                Severity::Warning => warn!("{d}"),
                Severity::Alert => eprintln!("{d}"),
            }
        }
        let config = loaded
            .config
            .context("the configuration has errors (see the [ALERT] lines); the current worker keeps serving")?;
        self.stats_sockets = config.global.stats_sockets.clone();
        Ok(config.global.master_no_exit_on_failure)
    }

    /// What a worker did; `Some(code)` when the master is to exit.
    fn event(&mut self, ev: Event) -> Option<i32> {
        match ev {
            Event::Notified { pid, message } => {
                self.notified(pid, &message);
                None
            }
            Event::Exited { pid, code } => self.exited(pid, code),
        }
    }

    fn notified(&mut self, pid: u32, message: &str) {
        if !message.lines().any(|l| l == "READY=1") {
            return;
        }
        let Some(i) = self.workers.iter().position(|w| w.pid == pid) else {
            return;
        };
        if self.workers[i].state != State::Starting {
            // A worker's own in-place reload: nothing for the master.
            return;
        }
        self.workers[i].state = State::Serving;
        // The older ones were named in its --soft-stop: it tells them to go.
        for w in &mut self.workers[..i] {
            w.state = State::Leaving;
        }
        info!("Loading success.");
        let status = message
            .lines()
            .find_map(|l| l.strip_prefix("STATUS="))
            .unwrap_or("serving");
        if !self.stopping {
            self.notifier.ready(status);
        }
        // -D: the process in front left on that READY=1; its pipe is gone.
        crate::daemon::leave_terminal();
    }

    fn exited(&mut self, pid: u32, code: i32) -> Option<i32> {
        let i = self.workers.iter().position(|w| w.pid == pid)?;
        let w = self.workers.remove(i);
        let why = workers::why(code);
        let serving = self.workers.iter().any(|w| w.state == State::Serving);
        match w.state {
            State::Leaving => warn!("Former worker ({pid}) exited with code {code} ({why})"),
            State::Starting if serving && !self.stopping => {
                error!(
                    "New worker ({pid}) exited with code {code} ({why}) before it served; the current worker keeps serving"
                );
                self.failed("the new worker exited");
            }
            _ => {
                if code < 128 {
                    warn!("Current worker ({pid}) exited with code {code} ({why})");
                } else {
                    error!("Current worker ({pid}) exited with code {code} ({why})");
                }
                if ![0, 130, 143].contains(&code) && self.exit_on_failure && !self.stopping {
                    error!("exit-on-failure: killing every processes with SIGTERM");
                    self.stopping = true;
                    self.signal_all(nix::sys::signal::Signal::SIGTERM);
                }
                // 0 and SIGTERM are normal ends; SIGINT and the rest are reported.
                if self.exit_code.is_none() && code != 0 && code != 143 {
                    self.exit_code = Some(code);
                }
            }
        }
        if self.workers.is_empty() && (self.exit_on_failure || self.stopping) {
            let code = self.exit_code.unwrap_or(0).max(0);
            warn!("All workers exited. Exiting... ({code})");
            return Some(code);
        }
        None
    }

    /// SIGTERM/SIGINT (stop now) or SIGUSR1 (finish the sessions), passed on.
    fn stop(&mut self, sig: nix::sys::signal::Signal) -> Option<i32> {
        warn!("Exiting Master process...");
        self.stopping = true;
        self.notifier.stopping();
        self.said_stopping = true;
        self.signal_all(sig);
        if self.workers.is_empty() {
            return Some(self.exit_code.unwrap_or(0).max(0));
        }
        None
    }

    fn signal_all(&self, sig: nix::sys::signal::Signal) {
        for w in &self.workers {
            let Ok(raw) = i32::try_from(w.pid) else { continue };
            if let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), sig) {
                warn!("worker {}: {sig}: {e}", w.pid);
            }
        }
    }

    fn ask(&mut self, ask: listen::Request) {
        match ask {
            listen::Request::Reload => self.reload(),
            listen::Request::ShowProc(reply) => {
                let _ = reply.send(self.show_proc());
            }
            listen::Request::Resolve(target, reply) => {
                let found = match target {
                    // The newest worker not on its way out.
                    cli::Target::Relative(1) => self.workers.iter().rev().find(|w| w.state != State::Leaving),
                    cli::Target::Pid(pid) => self.workers.iter().find(|w| w.pid == pid),
                    _ => None,
                };
                let _ = reply.send(found.map(|w| (w.pid, w.cli.clone())));
            }
        }
    }

    fn show_proc(&self) -> String {
        let proc = |w: &Worker| cli::Proc {
            pid: w.pid,
            reloads: w.reloads,
            uptime: w.forked.elapsed(),
        };
        let master = cli::Proc {
            pid: std::process::id(),
            reloads: self.reloads,
            uptime: self.started.elapsed(),
        };
        let current: Vec<_> = self
            .workers
            .iter()
            .filter(|w| w.state != State::Leaving)
            .map(proc)
            .collect();
        let old: Vec<_> = self
            .workers
            .iter()
            .filter(|w| w.state == State::Leaving)
            .map(proc)
            .collect();
        cli::show_proc(&master, self.failed, &current, &old)
    }
}

//! `-D` / `daemon`: the command returns once the agent serves, and the agent
//! goes on in the background, in a session of its own, as HAProxy's does.
//!
//! HAProxy forks after its set-up. The agent is multi-threaded from the
//! start (tokio), where fork(2) is unsafe, so it starts itself again
//! instead: the first process runs the same command line with
//! [`DAEMON_ENV`] set and waits. The second one starts a session of its own
//! (setsid) and serves; its READY=1 (the sd_notify message, on a socket the
//! first process listens on) tells the first to exit 0, and an exit before
//! that passes its code on. Until then its error output reaches the
//! terminal through the first process; after it, its standard streams go to
//! /dev/null (`log` lines go to syslog as configured).
use std::{
    io::{BufRead as _, Write as _},
    os::unix::net::UnixDatagram,
    process::{ExitCode, Stdio},
    time::Duration,
};

use anyhow::Context as _;

/// Set in the daemon's environment: it is the background process.
pub const DAEMON_ENV: &str = "LBXDP_DAEMON";

/// Whether this process is the daemon a `-D` started.
pub fn is_daemon() -> bool {
    std::env::var_os(DAEMON_ENV).is_some()
}

/// In the foreground process: starts the daemon and waits until it serves
/// (exit 0) or fails (its exit code).
pub fn start_in_background() -> anyhow::Result<ExitCode> {
    // Abstract: nothing to create or clean up in the file system.
    let name = format!("lbxdp-daemon-{}", std::process::id());
    let ready = {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        UnixDatagram::bind_addr(&addr).with_context(|| format!("binding @{name}"))?
    };
    ready.set_read_timeout(Some(Duration::from_millis(100)))?;
    let exe = std::env::current_exe().context("finding this program to start it in the background")?;
    let mut child = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(DAEMON_ENV, "1")
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the daemon")?;
    // The daemon's start-up messages and errors, as if it were in front.
    let relay = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            let mut out = std::io::stderr().lock();
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let _ = writeln!(out, "{line}");
            }
        })
    });
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(n) = ready.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "READY=1")
        {
            // Its last start-up lines may still be in the pipe; the relay
            // can't be joined (the daemon keeps the pipe open until it
            // leaves the terminal), so it gets a moment.
            std::thread::sleep(Duration::from_millis(50));
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(status) = child.try_wait()? {
            if let Some(r) = relay {
                let _ = r.join();
            }
            let code = status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1);
            return Ok(ExitCode::from(code));
        }
    }
}

/// In the daemon, first thing: a session of its own, so that the terminal's
/// hang-up and the shell's job control don't reach it.
pub fn new_session() {
    if is_daemon()
        && let Err(e) = nix::unistd::setsid()
    {
        tracing::warn!("setsid: {e}");
    }
}

/// In the daemon, once it serves: the foreground process is gone, so the
/// standard streams go to /dev/null (a write to the closed pipe would fail).
pub fn leave_terminal() {
    if !is_daemon() {
        return;
    }
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        Ok(null) => {
            let _ = nix::unistd::dup2_stdout(&null);
            let _ = nix::unistd::dup2_stderr(&null);
        }
        Err(e) => tracing::warn!("/dev/null: {e}"),
    }
}

//! Starting workers and watching them: each worker is this executable with
//! the master's arguments minus the master's own (-W, -S, -D, -p), plus
//! `--foreground`, and `--soft-stop <old pids>` when it replaces others.
//! It reports READY=1 on a datagram socket of its own (so the master knows
//! who spoke without asking the kernel for credentials) and opens an
//! admin runtime socket for the master CLI's `@` commands.
use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Instant,
};

use anyhow::Context as _;
use tokio::{net::UnixDatagram, sync::mpsc, task::JoinHandle};

/// Set in a worker's environment: the worker doesn't become a master
/// again (`master-worker` in its configuration, -W in a copied command
/// line) and leaves the pidfile to the master.
pub const MASTER_PID_ENV: &str = "LBXDP_MASTER_PID";

/// What happens to workers, for the master's loop.
pub(super) enum Event {
    Exited { pid: u32, code: i32 },
    Notified { pid: u32, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Forked, not READY yet.
    Starting,
    /// READY, and no newer worker is.
    Serving,
    /// A newer worker serves; this one finishes its sessions.
    Leaving,
}

pub(super) struct Worker {
    pub(super) pid: u32,
    pub(super) forked: Instant,
    /// Reloads of the master since it was forked (HAProxy's column).
    pub(super) reloads: u32,
    pub(super) state: State,
    /// Its admin runtime socket (`LBXDP_WORKER_CLI`).
    pub(super) cli: PathBuf,
    notify_path: PathBuf,
    notify_task: JoinHandle<()>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.notify_task.abort();
        let _ = std::fs::remove_file(&self.notify_path);
        let _ = std::fs::remove_file(&self.cli);
    }
}

/// Starts workers: the executable and arguments are fixed at the master's
/// start (a package upgrade replaces the file: the next reload runs the new
/// one from the same path).
pub(super) struct Spawner {
    exe: PathBuf,
    args: Vec<OsString>,
    dir: PathBuf,
    seq: u32,
}

impl Spawner {
    pub(super) fn new(exe: PathBuf, args: Vec<OsString>, dir: PathBuf) -> Self {
        Self { exe, args, dir, seq: 0 }
    }

    pub(super) fn spawn(&mut self, soft_stop: &[u32], events: &mpsc::UnboundedSender<Event>) -> anyhow::Result<Worker> {
        self.seq += 1;
        let notify_path = self.dir.join(format!("notify-{}", self.seq));
        let cli = self.dir.join(format!("worker-{}.sock", self.seq));
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path)
            .with_context(|| format!("binding the workers' notify socket {}", notify_path.display()))?;
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.args(&self.args)
            .arg("--foreground")
            .env("NOTIFY_SOCKET", &notify_path)
            .env(crate::runtime::WORKER_CLI_ENV, &cli)
            .env(MASTER_PID_ENV, std::process::id().to_string())
            .stdin(Stdio::null());
        if !soft_stop.is_empty() {
            cmd.arg("--soft-stop").args(soft_stop.iter().map(u32::to_string));
        }
        let spawned = cmd.spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&notify_path);
                return Err(anyhow::Error::new(e).context(format!("starting {}", self.exe.display())));
            }
        };
        let Some(pid) = child.id() else {
            anyhow::bail!("the new worker exited at once");
        };
        let tx = events.clone();
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(status) => exit_code(status),
                Err(_) => -1,
            };
            let _ = tx.send(Event::Exited { pid, code });
        });
        let tx = events.clone();
        let notify_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = notify.recv(&mut buf).await {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send(Event::Notified { pid, message }).is_err() {
                    return;
                }
            }
        });
        Ok(Worker {
            pid,
            forked: Instant::now(),
            reloads: 0,
            state: State::Starting,
            cli,
            notify_path,
            notify_task,
        })
    }
}

/// A shell's number for how a process ended: its code, or 128 + the signal.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1)
}

/// HAProxy's words for an exit code: "Exit", or strsignal()'s name.
pub(super) fn why(code: i32) -> String {
    if code < 128 {
        return "Exit".into();
    }
    let name = match code - 128 {
        1 => "Hangup",
        2 => "Interrupt",
        3 => "Quit",
        4 => "Illegal instruction",
        6 => "Aborted",
        7 => "Bus error",
        8 => "Floating point exception",
        9 => "Killed",
        10 => "User defined signal 1",
        11 => "Segmentation fault",
        12 => "User defined signal 2",
        13 => "Broken pipe",
        14 => "Alarm clock",
        15 => "Terminated",
        n => return format!("Unknown signal {n}"),
    };
    name.into()
}

/// The worker's arguments from the master's (program name excluded, after
/// `cli_args::haproxy_style`): -W, -S ADDR, -D, -p FILE, --soft-stop and
/// --hard-stop with their pids, and --foreground (added back once) go.
pub(super) fn worker_args(args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let Some(s) = a.to_str() else {
            out.push(a.clone());
            continue;
        };
        match s {
            "--" => {
                out.push(a.clone());
                out.extend(it.by_ref().cloned());
            }
            // Their value is a value, even when it looks like -W.
            "-f" | "-i" | "-x" | "--iface" | "--mode" | "--xdp-mode" | "--nat" | "--maglev-size" | "--max-flows"
            | "--stats-interval" | "--instance" => {
                out.push(a.clone());
                out.extend(it.next().cloned());
            }
            "-W" | "-D" | "--foreground" => {}
            "-S" | "-p" => {
                it.next();
            }
            "--soft-stop" | "--hard-stop" => {
                while it
                    .next_if(|p| p.to_str().is_some_and(|p| p.parse::<u32>().is_ok()))
                    .is_some()
                {}
            }
            // Values stuck to their option (`-S/run/m.sock`, `-p/run/x.pid`).
            _ if s.len() > 2 && (s.starts_with("-S") || s.starts_with("-p")) => {}
            _ => out.push(a.clone()),
        }
    }
    out
}

/// The master's private directory: the workers' notify and runtime
/// sockets, which nobody else may use (mode 0700). Removed at the end.
pub(super) struct PrivateDir(pub(super) PathBuf);

impl PrivateDir {
    pub(super) fn create() -> anyhow::Result<Self> {
        use std::os::unix::fs::DirBuilderExt as _;
        let name = format!("master-{}", std::process::id());
        let run = Path::new("/run/lbxdp");
        let parent = if std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(run)
            .is_ok()
        {
            run.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = parent.join(name);
        // A leftover of an earlier master with this pid.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn master_options_stay_with_the_master() {
        assert_eq!(
            worker_args(&args(
                "-W -f /etc/h.cfg -p /run/h.pid -S /run/m.sock,mode,600 --mode proxy -D"
            )),
            args("-f /etc/h.cfg --mode proxy")
        );
        assert_eq!(
            worker_args(&args(
                "-S/run/m.sock -p/run/x.pid -f a --soft-stop 12 13 -v --foreground"
            )),
            args("-f a -v")
        );
        // A file called like an option is not an option.
        assert_eq!(worker_args(&args("-f -W -W -i -p")), args("-f -W -i -p"));
    }

    #[test]
    fn exit_words() {
        assert_eq!(why(0), "Exit");
        assert_eq!(why(1), "Exit");
        assert_eq!(why(137), "Killed");
        assert_eq!(why(143), "Terminated");
        assert_eq!(why(130), "Interrupt");
    }
}

//! Commands run inside a testbed namespace.
use std::{
    ffi::OsStr,
    fs::File,
    io::Read,
    process::{Child, Command, Output, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// A `std::process::Command` that starts inside a network namespace: it is
/// spawned from a thread that entered the namespace, and a child inherits the
/// namespaces of the thread that forks it.
pub struct NsCommand {
    ns: Arc<File>,
    ns_name: String,
    cmd: Command,
}

impl NsCommand {
    pub(crate) fn new(ns: Arc<File>, ns_name: &str, program: impl AsRef<OsStr>) -> Self {
        Self {
            ns,
            ns_name: ns_name.to_string(),
            cmd: Command::new(program),
        }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.env(key, value);
        self
    }

    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stdin(cfg);
        self
    }

    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stdout(cfg);
        self
    }

    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stderr(cfg);
        self
    }

    /// The command line, for messages.
    pub fn show(&self) -> String {
        let mut s = self.cmd.get_program().to_string_lossy().into_owned();
        for a in self.cmd.get_args() {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        format!("[{}] {s}", self.ns_name)
    }

    pub fn spawn(&mut self) -> anyhow::Result<Child> {
        let show = self.show();
        let cmd = &mut self.cmd;
        crate::netns::run_in(&self.ns, &self.ns_name, || cmd.spawn().map_err(anyhow::Error::from))
            .with_context(|| format!("starting {show}"))
    }

    /// Runs to completion with stdout and stderr captured, and kills the
    /// command if it runs past `limit`: every test command has a bound.
    pub fn output_timeout(&mut self, limit: Duration) -> anyhow::Result<Output> {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let show = self.show();
        let mut child = self.spawn()?;
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{show} ran longer than {limit:?} and was killed");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        Ok(Output {
            status,
            stdout: join(stdout),
            stderr: join(stderr),
        })
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

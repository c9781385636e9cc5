//! The master CLI's sockets (`-S`): parsing HAProxy's `-S` argument,
//! binding, serving clients, and relaying `@` commands to a worker's
//! runtime socket.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader},
    net::UnixStream,
    sync::{mpsc, oneshot},
    task::JoinSet,
    time::timeout,
};
use tracing::{debug, warn};

use super::cli::{self, Session, Step, Target};
use crate::{
    config::{CliLevel, StatsSocket},
    runtime::{
        cli as runtime_cli,
        socket::{self, Socket},
    },
};

/// A client idle this long is closed, as HAProxy's CLI does by default.
const IDLE: Duration = runtime_cli::DEFAULT_TIMEOUT;

/// A worker that takes longer than this to answer a relayed command is
/// given up on; the client gets what came so far.
const RELAY_TIMEOUT: Duration = Duration::from_secs(30);

/// One `-S` argument: a socket as a `stats socket` line has it (bound by
/// the same code), admin by default as HAProxy's master CLI is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Spec {
    socket: StatsSocket,
}

/// `/path`, `unix@/path`, `abns@name`, `ipv4@ADDR:PORT`, `ipv6@ADDR:PORT`
/// or `ADDR:PORT` (the address is checked when bound), then `,name,value`
/// bind options: mode, uid, gid, user, group, level.
pub(super) fn parse(text: &str) -> anyhow::Result<Spec> {
    let mut parts = text.split(',');
    let address = parts.next().unwrap_or("");
    if address.is_empty() {
        bail!("-S {text}: no address");
    }
    let mut socket = StatsSocket::admin(address, crate::config::Origin::new("-S", 0));
    while let Some(name) = parts.next() {
        let Some(value) = parts.next() else {
            bail!("-S {text}: '{name}' needs a value");
        };
        let number = |radix| {
            u32::from_str_radix(value, radix)
                .with_context(|| format!("-S {text}: '{name}' expects a number, not '{value}'"))
        };
        match name {
            "mode" => socket.mode = Some(number(8)?),
            "uid" => socket.uid = Some(number(10)?),
            "gid" => socket.gid = Some(number(10)?),
            "user" => socket.user = Some(value.into()),
            "group" => socket.group = Some(value.into()),
            "level" => {
                socket.level = match value {
                    "user" => CliLevel::User,
                    "operator" => CliLevel::Operator,
                    "admin" => CliLevel::Admin,
                    _ => bail!("-S {text}: 'level' only supports 'user', 'operator', and 'admin'"),
                }
            }
            _ => bail!("-S {text}: unsupported bind option '{name}' (lbxdp knows mode, uid, gid, user, group, level)"),
        }
    }
    Ok(Spec { socket })
}

/// What a client asks the master's loop.
pub(super) enum Request {
    ShowProc(oneshot::Sender<String>),
    Reload,
    /// The worker a target names now: its pid and runtime socket.
    Resolve(Target, oneshot::Sender<Option<(u32, PathBuf)>>),
}

/// A bound master CLI socket; its file goes with it.
pub(super) struct Bound {
    socket: Socket,
    level: CliLevel,
}

/// Binds as HAProxy binds a CLI socket, with the stats sockets' code: a
/// stale file (nobody answering) is replaced, a live one refused; mode and
/// owner are set under a temporary name before it appears at its path.
pub(super) async fn bind(spec: &Spec) -> anyhow::Result<Bound> {
    let socket = socket::open(&spec.socket, false)
        .await
        .with_context(|| format!("the master CLI {}", spec.socket.address))?;
    Ok(Bound {
        socket,
        level: spec.socket.level,
    })
}

impl Bound {
    /// Serves clients until the returned future is dropped (the master's
    /// end), which closes them and removes the socket file.
    pub(super) async fn serve(self, asks: mpsc::Sender<Request>) {
        let mut clients = JoinSet::new();
        loop {
            while clients.try_join_next().is_some() {}
            let session = Session::new(self.level);
            let asks = asks.clone();
            let accepted = match &self.socket {
                Socket::Unix { listener: l, .. } => l.accept().await.map(|(s, _)| {
                    clients.spawn(client(s, session, asks));
                }),
                Socket::Tcp(l) => l.accept().await.map(|(s, _)| {
                    clients.spawn(client(s, session, asks));
                }),
            };
            if let Err(e) = accepted {
                warn!("master CLI: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client: HAProxy's line protocol (one line then close, unless in
/// prompt mode).
async fn client<S: AsyncRead + AsyncWrite>(stream: S, mut session: Session, asks: mpsc::Sender<Request>) {
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut read).take(runtime_cli::MAX_LINE as u64 - 1);
        match timeout(IDLE, limited.read_until(b'\n', &mut line)).await {
            Ok(Ok(_)) if line.last() == Some(&b'\n') => {}
            _ => return,
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        for command in runtime_cli::split_commands(&text) {
            let answer = match session.step(command) {
                Step::Answer(text) => text,
                Step::Quit => return,
                Step::Reload => {
                    let _ = asks.send(Request::Reload).await;
                    return;
                }
                Step::ShowProc => {
                    let (tx, rx) = oneshot::channel();
                    if asks.send(Request::ShowProc(tx)).await.is_err() {
                        return;
                    }
                    rx.await.unwrap_or_default()
                }
                Step::Route { to, prefix, line } => match resolve(&asks, to).await {
                    Some((_, path)) => relay(&path, &line, session.level).await,
                    None => cli::no_target(&prefix),
                },
            };
            let mut out = answer.into_bytes();
            if session.interactive {
                let pid = resolve(&asks, session.target.clone()).await.map(|(pid, _)| pid);
                out.extend_from_slice(session.prompt(pid).as_bytes());
            }
            match timeout(IDLE, write.write_all(&out)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    debug!("master CLI client: {e}");
                    return;
                }
                Err(_) => return,
            }
        }
        if !session.interactive {
            let _ = write.shutdown().await;
            return;
        }
    }
}

async fn resolve(asks: &mpsc::Sender<Request>, target: Target) -> Option<(u32, PathBuf)> {
    if target == Target::Master {
        return None;
    }
    let (tx, rx) = oneshot::channel();
    asks.send(Request::Resolve(target, tx)).await.ok()?;
    rx.await.ok().flatten()
}

/// Sends one line to a worker's runtime socket (non-interactive: it answers
/// and closes) and returns its answer; a lowered session's leading
/// `operator`/`user` answer (an empty line) is dropped.
async fn relay(path: &Path, line: &str, level: CliLevel) -> String {
    let exchange = async {
        let mut s = UnixStream::connect(path).await?;
        s.write_all(format!("{line}\n").as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    let out = match timeout(RELAY_TIMEOUT, exchange).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            warn!("master CLI: relaying to {}: {e}", path.display());
            return String::new();
        }
        Err(_) => {
            warn!("master CLI: the worker at {} didn't answer in time", path.display());
            return String::new();
        }
    };
    let mut text = String::from_utf8_lossy(&out).into_owned();
    if level < CliLevel::Admin && text.starts_with('\n') {
        text.remove(0);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_s_arguments() {
        let spec = parse("/run/haproxy-master.sock").expect("path");
        assert_eq!(spec.socket.address, "/run/haproxy-master.sock");
        assert_eq!(spec.socket.level, CliLevel::Admin);
        let spec = parse("unix@/tmp/m.sock,mode,600,level,operator,uid,0").expect("options");
        assert_eq!(spec.socket.address, "unix@/tmp/m.sock");
        assert_eq!(
            (spec.socket.mode, spec.socket.uid, spec.socket.level),
            (Some(0o600), Some(0), CliLevel::Operator)
        );
        let spec = parse("ipv6@::1:9999,user,root,group,root").expect("ipv6");
        assert_eq!(spec.socket.address, "ipv6@::1:9999");
        assert_eq!(spec.socket.user.as_deref(), Some("root"));
        for bad in [
            "",
            "/m.sock,mode",
            "/m.sock,mode,9z",
            "/m.sock,level,root",
            "/m.sock,expose-fd,listeners",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn bad_addresses_are_refused_when_bound() {
        for bad in ["127.0.0.1", "ipv4@127.0.0.1:x", "tcp@1.2.3.4:5"] {
            let spec = parse(bad).expect("options parse");
            assert!(bind(&spec).await.is_err(), "{bad}");
        }
    }
}

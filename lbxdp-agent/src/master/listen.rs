//! The master CLI's sockets (`-S`): parsing HAProxy's `-S` argument,
//! binding, serving clients, and relaying `@` commands to a worker's
//! runtime socket.
use std::{
    net::SocketAddr,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader},
    net::{TcpListener, UnixListener, UnixStream},
    sync::{mpsc, oneshot},
    task::JoinSet,
    time::timeout,
};
use tracing::{debug, warn};

use super::cli::{self, Session, Step, Target};
use crate::{config::CliLevel, runtime::cli as runtime_cli};

/// A client idle this long is closed, as HAProxy's CLI does by default.
const IDLE: Duration = runtime_cli::DEFAULT_TIMEOUT;

/// A worker that takes longer than this to answer a relayed command is
/// given up on; the client gets what came so far.
const RELAY_TIMEOUT: Duration = Duration::from_secs(30);

/// One `-S` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Spec {
    addr: Addr,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    user: Option<String>,
    group: Option<String>,
    level: CliLevel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Addr {
    Path(PathBuf),
    Inet(SocketAddr),
}

/// `/path`, `unix@/path`, `ipv4@ADDR:PORT`, `ipv6@ADDR:PORT` or `ADDR:PORT`,
/// then `,name,value` bind options: mode, uid, gid, user, group, level (the
/// master CLI is admin by default).
pub(super) fn parse(text: &str) -> anyhow::Result<Spec> {
    let mut parts = text.split(',');
    let address = parts.next().unwrap_or("");
    let addr = if let Some(path) = address.strip_prefix("unix@") {
        Addr::Path(path.into())
    } else if address.starts_with('/') {
        Addr::Path(address.into())
    } else {
        let rest = address
            .strip_prefix("ipv4@")
            .or_else(|| address.strip_prefix("ipv6@"))
            .unwrap_or(address);
        let Some((host, port)) = rest.rsplit_once(':') else {
            bail!("-S {text}: '{address}' is neither a socket path nor ADDR:PORT");
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: std::net::IpAddr = match host {
            "" | "*" => std::net::Ipv4Addr::UNSPECIFIED.into(),
            h => h.parse().with_context(|| format!("-S {text}: invalid address '{h}'"))?,
        };
        let port: u16 = port
            .parse()
            .with_context(|| format!("-S {text}: invalid port '{port}'"))?;
        Addr::Inet(SocketAddr::new(ip, port))
    };
    let mut spec = Spec {
        addr,
        mode: None,
        uid: None,
        gid: None,
        user: None,
        group: None,
        level: CliLevel::Admin,
    };
    while let Some(name) = parts.next() {
        let Some(value) = parts.next() else {
            bail!("-S {text}: '{name}' needs a value");
        };
        let number = |radix| {
            u32::from_str_radix(value, radix)
                .with_context(|| format!("-S {text}: '{name}' expects a number, not '{value}'"))
        };
        match name {
            "mode" => spec.mode = Some(number(8)?),
            "uid" => spec.uid = Some(number(10)?),
            "gid" => spec.gid = Some(number(10)?),
            "user" => spec.user = Some(value.into()),
            "group" => spec.group = Some(value.into()),
            "level" => {
                spec.level = match value {
                    "user" => CliLevel::User,
                    "operator" => CliLevel::Operator,
                    "admin" => CliLevel::Admin,
                    _ => bail!("-S {text}: 'level' only supports 'user', 'operator', and 'admin'"),
                }
            }
            _ => bail!("-S {text}: unsupported bind option '{name}' (lbxdp knows mode, uid, gid, user, group, level)"),
        }
    }
    Ok(spec)
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

enum Socket {
    /// The file is held for its Drop.
    Unix(UnixListener, #[allow(dead_code)] SocketFile),
    Tcp(TcpListener),
}

/// Removed when the master goes, if it is still the one this master made.
struct SocketFile {
    path: PathBuf,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds as HAProxy binds a UNIX CLI socket: a stale file (nobody
/// answering) is replaced, a live one refused; mode and owner are set
/// under a temporary name before it appears at its path.
pub(super) async fn bind(spec: &Spec) -> anyhow::Result<Bound> {
    let socket = match &spec.addr {
        Addr::Inet(addr) => Socket::Tcp(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the master CLI on {addr}"))?,
        ),
        Addr::Path(path) => {
            if UnixStream::connect(path).await.is_ok() {
                bail!("master CLI {}: another process answers on it", path.display());
            }
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(format!(".{}.tmp", std::process::id()));
            let tmp = PathBuf::from(tmp);
            let _ = std::fs::remove_file(&tmp);
            let listener =
                UnixListener::bind(&tmp).with_context(|| format!("binding the master CLI {}", path.display()))?;
            let placed = owner_and_mode(&tmp, spec).and_then(|()| Ok(std::fs::rename(&tmp, path)?));
            if let Err(e) = placed {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.context(format!("placing the master CLI {}", path.display())));
            }
            let ino = std::fs::symlink_metadata(path)?.ino();
            Socket::Unix(
                listener,
                SocketFile {
                    path: path.clone(),
                    ino,
                },
            )
        }
    };
    Ok(Bound {
        socket,
        level: spec.level,
    })
}

fn owner_and_mode(path: &Path, spec: &Spec) -> anyhow::Result<()> {
    let uid = match (spec.uid, &spec.user) {
        (Some(uid), _) => Some(uid),
        (None, Some(name)) => Some(
            nix::unistd::User::from_name(name)?
                .with_context(|| format!("user {name} doesn't exist"))?
                .uid
                .as_raw(),
        ),
        (None, None) => None,
    };
    let gid = match (spec.gid, &spec.group) {
        (Some(gid), _) => Some(gid),
        (None, Some(name)) => Some(
            nix::unistd::Group::from_name(name)?
                .with_context(|| format!("group {name} doesn't exist"))?
                .gid
                .as_raw(),
        ),
        (None, None) => None,
    };
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid)?;
    }
    if let Some(mode) = spec.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
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
                Socket::Unix(l, _) => l.accept().await.map(|(s, _)| {
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
        assert_eq!(spec.addr, Addr::Path("/run/haproxy-master.sock".into()));
        assert_eq!(spec.level, CliLevel::Admin);
        let spec = parse("unix@/tmp/m.sock,mode,600,level,operator,uid,0").expect("options");
        assert_eq!(spec.addr, Addr::Path("/tmp/m.sock".into()));
        assert_eq!(
            (spec.mode, spec.uid, spec.level),
            (Some(0o600), Some(0), CliLevel::Operator)
        );
        let spec = parse("ipv4@127.0.0.1:9999").expect("ipv4");
        assert_eq!(spec.addr, Addr::Inet("127.0.0.1:9999".parse().expect("addr")));
        let spec = parse("ipv6@::1:9999,user,root,group,root").expect("ipv6");
        assert_eq!(spec.addr, Addr::Inet("[::1]:9999".parse().expect("addr")));
        assert_eq!(spec.user.as_deref(), Some("root"));
        for bad in [
            "127.0.0.1",
            "ipv4@127.0.0.1:x",
            "/m.sock,mode",
            "/m.sock,mode,9z",
            "/m.sock,level,root",
            "/m.sock,expose-fd,listeners",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

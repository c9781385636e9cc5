//! One `stats socket`: HAProxy's runtime API on a UNIX or TCP socket.
//!
//! [`bind`] runs before the agent drops its privileges (the socket file is
//! created, given its mode and owner there); [`Listener::spawn`] serves it
//! later. Each client is a task of its own: a client that never reads nor
//! writes holds only its own slot until the idle timeout, and the agent
//! loop is only ever asked whole commands.
use std::{
    io,
    net::SocketAddr,
    os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader},
    net::{TcpListener, UnixListener},
    sync::{Semaphore, watch},
    task::{JoinHandle, JoinSet},
    time::timeout,
};
use tracing::{debug, warn};

use super::{
    cli::{self, Session, Step},
    command::{self, ask},
};
use crate::config::{CliLevel, Config, Global, StatsSocket};

/// HAProxy's `maxconn` for its CLI frontend when nothing sets it.
const DEFAULT_MAXCONN: usize = 10;

/// A bound stats socket, not yet served.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    level: CliLevel,
    maxconn: usize,
    timeout: Duration,
}

/// A bound UNIX (file or abstract) or TCP socket; a socket file goes with it.
#[derive(Debug)]
pub(crate) enum Socket {
    Unix {
        listener: UnixListener,
        /// Held for its Drop.
        _file: Option<SocketFile>,
    },
    Tcp(TcpListener),
}

/// The socket file this agent created; removed when the listener goes,
/// unless another process has put its own socket at that path since.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            warn!("removing the stats socket {}: {e}", self.path.display());
        }
    }
}

/// Where a `stats socket` line listens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    Path(PathBuf),
    /// `abns@name`: Linux's abstract namespace, no file.
    Abstract(String),
    Inet(SocketAddr),
}

/// Binds `sock` as HAProxy would: a UNIX socket file gets its `mode` and
/// owner before it appears at its path (it is bound under a temporary name
/// and renamed), a stale one (nobody answering) is replaced, a live one is
/// refused unless this agent takes over from the one answering there.
pub async fn bind(sock: &StatsSocket, global: &Global, takeover: bool) -> anyhow::Result<Listener> {
    let socket = open(sock, takeover).await?;
    Ok(Listener {
        socket,
        level: sock.level,
        // The socket line's maxconn, else `stats maxconn`, else HAProxy's 10.
        maxconn: sock
            .maxconn
            .or(global.stats_maxconn)
            .map_or(DEFAULT_MAXCONN, |m| m.max(1) as usize),
        timeout: global.stats_timeout.unwrap_or(cli::DEFAULT_TIMEOUT),
    })
}

/// Binds `sock`'s address with its mode and owner (the stats sockets' and
/// the master CLI's rule, see [`bind`]).
pub(crate) async fn open(sock: &StatsSocket, takeover: bool) -> anyhow::Result<Socket> {
    Ok(match parse_address(&sock.address)? {
        Address::Inet(addr) => {
            Socket::Tcp(super::listen_shared(addr).with_context(|| format!("binding {}", sock.address))?)
        }
        Address::Abstract(name) => Socket::Unix {
            listener: bind_abstract(&name)?,
            _file: None,
        },
        Address::Path(path) => {
            let (listener, file) = bind_path(&path, sock, takeover)
                .await
                .with_context(|| format!("binding {}", path.display()))?;
            Socket::Unix {
                listener,
                _file: Some(file),
            }
        }
    })
}

fn parse_address(text: &str) -> anyhow::Result<Address> {
    if let Some(path) = text.strip_prefix("unix@") {
        return Ok(Address::Path(path.into()));
    }
    if let Some(name) = text.strip_prefix("abns@") {
        return Ok(Address::Abstract(name.into()));
    }
    if text.starts_with('/') {
        return Ok(Address::Path(text.into()));
    }
    let (v6, rest) = match text.split_once('@') {
        Some(("ipv4", rest)) => (false, rest),
        Some(("ipv6", rest)) => (true, rest),
        Some((family, _)) => bail!("stats socket {text}: '{family}@' addresses are not supported by lbxdp"),
        None => (false, text),
    };
    // HAProxy writes IPv6 addresses bare: the port is after the last colon.
    let Some((host, port)) = rest.rsplit_once(':') else {
        bail!("stats socket {text}: missing port");
    };
    let port: u16 = port
        .parse()
        .with_context(|| format!("stats socket {text}: invalid port '{port}'"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match (host, v6) {
        ("" | "*", false) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        ("" | "*", true) => std::net::Ipv6Addr::UNSPECIFIED.into(),
        (host, _) => host
            .parse()
            .with_context(|| format!("stats socket {text}: invalid address '{host}'"))?,
    };
    Ok(Address::Inet(SocketAddr::new(ip, port)))
}

fn bind_abstract(name: &str) -> anyhow::Result<UnixListener> {
    use std::os::linux::net::SocketAddrExt as _;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let std = std::os::unix::net::UnixListener::bind_addr(&addr)
        .with_context(|| format!("binding the stats socket abns@{name}"))?;
    std.set_nonblocking(true)?;
    Ok(UnixListener::from_std(std)?)
}

async fn bind_path(path: &Path, sock: &StatsSocket, takeover: bool) -> anyhow::Result<(UnixListener, SocketFile)> {
    check_stale(path, takeover).await?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    // A leftover of an earlier run with the same pid.
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    let placed = owner_and_mode(&tmp, sock).and_then(|()| Ok(std::fs::rename(&tmp, path)?));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let meta = std::fs::symlink_metadata(path)?;
    let file = SocketFile {
        path: path.to_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    Ok((listener, file))
}

/// Removes a UNIX stats socket file nobody answers on any more. A chrooted
/// worker that dropped its privileges can't remove its own; its master
/// (root, outside the chroot) does it once the last worker is gone.
pub fn remove_if_stale(sock: &StatsSocket) {
    let Ok(Address::Path(path)) = parse_address(&sock.address) else {
        return;
    };
    let is_socket = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket());
    let refused = matches!(
        std::os::unix::net::UnixStream::connect(&path),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
    );
    if is_socket && refused {
        let _ = std::fs::remove_file(&path);
    }
}

/// Refuses to replace what isn't a socket, or a live one unless taking over.
async fn check_stale(path: &Path, takeover: bool) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !meta.file_type().is_socket() {
        bail!("{} exists and is not a socket", path.display());
    }
    if takeover {
        return Ok(());
    }
    match tokio::net::UnixStream::connect(path).await {
        Ok(_) => bail!("{} is in use: another process answers on it", path.display()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("probing the existing socket {}", path.display()))),
    }
}

fn owner_and_mode(path: &Path, sock: &StatsSocket) -> anyhow::Result<()> {
    let uid = match (sock.uid, &sock.user) {
        (Some(uid), _) => Some(uid),
        (None, Some(name)) => Some(
            nix::unistd::User::from_name(name)?
                .with_context(|| format!("user {name} (the socket's 'user') doesn't exist"))?
                .uid
                .as_raw(),
        ),
        (None, None) => None,
    };
    let gid = match (sock.gid, &sock.group) {
        (Some(gid), _) => Some(gid),
        (None, Some(name)) => Some(
            nix::unistd::Group::from_name(name)?
                .with_context(|| format!("group {name} (the socket's 'group') doesn't exist"))?
                .gid
                .as_raw(),
        ),
        (None, None) => None,
    };
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid).context("setting the socket's owner")?;
    }
    if let Some(mode) = sock.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).context("setting the socket's mode")?;
    }
    Ok(())
}

impl Listener {
    /// The TCP address it listens on (tests bind port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            Socket::Tcp(l) => l.local_addr().ok(),
            Socket::Unix { .. } => None,
        }
    }

    /// Serves clients until the task is aborted; aborting it (or dropping
    /// the runtime) closes every client and removes the socket file.
    /// `config` names the proxies and servers the commands may address.
    pub fn spawn(self, tx: command::Sender, config: watch::Receiver<Arc<Config>>) -> JoinHandle<()> {
        tokio::spawn(self.serve(tx, config))
    }

    async fn serve(self, tx: command::Sender, config: watch::Receiver<Arc<Config>>) {
        // Clients beyond maxconn wait in the kernel's backlog, as with HAProxy.
        let slots = Arc::new(Semaphore::new(self.maxconn));
        // Aborting this future drops them, and `self` with its socket file.
        let mut clients = JoinSet::new();
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            while clients.try_join_next().is_some() {}
            let session = Session::new(self.level, self.timeout);
            let (tx, config) = (tx.clone(), config.clone());
            let accepted = match &self.socket {
                Socket::Unix { listener, .. } => listener.accept().await.map(|(s, _)| {
                    clients.spawn(async move {
                        client(s, session, tx, config).await;
                        drop(slot);
                    });
                }),
                Socket::Tcp(listener) => listener.accept().await.map(|(s, _)| {
                    clients.spawn(async move {
                        client(s, session, tx, config).await;
                        drop(slot);
                    });
                }),
            };
            if let Err(e) = accepted {
                // EMFILE and the like pass; a pause keeps it from spinning.
                warn!("stats socket: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client: lines of commands until it quits, goes idle, or (out of
/// prompt mode) after its first line, as HAProxy does.
async fn client<S: AsyncRead + AsyncWrite>(
    stream: S,
    mut session: Session,
    tx: command::Sender,
    config: watch::Receiver<Arc<Config>>,
) {
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        // At most one byte short of HAProxy's buffer: a longer line is never read whole.
        let mut limited = (&mut read).take(cli::MAX_LINE as u64 - 1);
        match timeout(session.timeout, limited.read_until(b'\n', &mut line)).await {
            Ok(Ok(_)) if line.last() == Some(&b'\n') => {}
            // EOF within a line, a line too long, an error, the idle timeout:
            // HAProxy closes without a word in each case.
            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => return,
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let text = String::from_utf8_lossy(&line);
        for command in cli::split_commands(&text) {
            let step = session.step(command, &config.borrow().clone());
            let answer = match step {
                Step::Ask(command) => cli::frame(&ask(&tx, command).await),
                Step::Answer(text) => text,
                Step::Quit => return,
            };
            let mut out = answer.into_bytes();
            if session.interactive {
                out.extend_from_slice(b"> ");
            }
            match timeout(session.timeout, write.write_all(&out)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    debug!("stats socket client: {e}");
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

#[cfg(test)]
mod tests;

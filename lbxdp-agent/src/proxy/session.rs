//! One client connection from accept to close: choose a server (queueing if
//! needed), connect with retries and redispatch, send the PROXY header, pump,
//! count, log.
use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, SystemTime},
};

use tokio::{
    io::AsyncWriteExt,
    net::{TcpSocket, TcpStream},
    sync::OwnedSemaphorePermit,
    time::Instant,
};
use tracing::debug;

use crate::config::PortSpec;

use super::{
    FrontendRt, GlobalRt,
    backend::{AcquireError, BackendRt, SlotGuard},
    proxy_protocol,
    pump::{self, End, PumpSettings, Side},
    tcplog::{self, LogRecord},
};

/// Counts the session in the process and frontend gauges for exactly its
/// lifetime, whatever path it ends by; its end wakes an accept loop that
/// backs off after EMFILE.
struct Live {
    g: Arc<GlobalRt>,
    fe: Arc<FrontendRt>,
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl Drop for Live {
    fn drop(&mut self) {
        self.fe.counters.scur.dec();
        self.g.actconn.dec();
        self.g.session_ended.notify_waiters();
    }
}

struct BeConn(Arc<BackendRt>);

impl Drop for BeConn {
    fn drop(&mut self) {
        self.0.beconn.dec();
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A zero timeout is HAProxy's "no timeout".
fn nz(d: Option<Duration>) -> Option<Duration> {
    d.filter(|d| !d.is_zero())
}

enum ConnectError {
    Timeout,
    /// Refused, unreachable, reset: the server's answer.
    Failed,
    /// No socket could be made (fd or memory exhaustion).
    Resource,
}

async fn connect(addr: SocketAddr, timeout: Option<Duration>, keepalive: bool) -> Result<TcpStream, ConnectError> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|_| ConnectError::Resource)?;
    // HAProxy sets TCP_NODELAY on both sides: it forwards what it has at once.
    let _ = sock.set_nodelay(true);
    if keepalive {
        let _ = sock.set_keepalive(true);
    }
    match timeout {
        Some(t) => match tokio::time::timeout(t, sock.connect(addr)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(_)) => Err(ConnectError::Failed),
            Err(_) => Err(ConnectError::Timeout),
        },
        None => sock.connect(addr).await.map_err(|_| ConnectError::Failed),
    }
}

/// Runs `f` unless the proxy shuts down first.
async fn or_shutdown<T>(g: &GlobalRt, f: impl Future<Output = T>) -> Option<T> {
    let mut rx = g.shutdown.subscribe();
    if *rx.borrow_and_update() {
        return None;
    }
    tokio::select! {
        v = f => Some(v),
        _ = rx.changed() => None,
    }
}

pub(crate) async fn run(
    mut client: TcpStream,
    peer: SocketAddr,
    fe: Arc<FrontendRt>,
    g: Arc<GlobalRt>,
    permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    // Held to the end: the tracked entries' conn_cur goes down when it drops.
    tracked: super::rules::Tracked,
) {
    let accept_date = SystemTime::now();
    let t0 = Instant::now();
    g.actconn.inc();
    g.cum_conns.fetch_add(1, Relaxed);
    fe.counters.scur.inc();
    fe.counters.stot.fetch_add(1, Relaxed);
    let _live = Live {
        g: g.clone(),
        fe: fe.clone(),
        _permits: permits,
    };
    // `use_backend ... if`: the first rule that holds, else the frontend's backend.
    let backend = match client.local_addr() {
        Ok(local) if !fe.rules.is_empty() => fe.rules.backend(peer, local, &tracked).or_else(|| fe.backend.clone()),
        _ => fe.backend.clone(),
    };
    let listed = g.sessions.add(peer, &fe.name, backend.as_ref().map(|b| &b.name));
    // TCP_NODELAY and `option tcpka`'s SO_KEEPALIVE came with the socket
    // from its listener (see `accept_loop`).
    let mut rec = LogRecord {
        client: peer,
        accept_date,
        frontend: fe.name.clone(),
        backend: backend.as_ref().map_or_else(|| fe.name.clone(), |b| b.name.clone()),
        server: None,
        tw: -1,
        tc: -1,
        tt: 0,
        bytes_read: 0,
        termination: *b"--",
        actconn: 0,
        feconn: 0,
        beconn: 0,
        srv_conn: 0,
        retries: 0,
        redispatched: false,
        srv_queue: 0,
        backend_queue: 0,
    };
    let mut to_server = 0u64;
    let (slot, server_conn) = match backend.clone() {
        None => {
            // No backend: HAProxy refuses the connection ("PR": the proxy did).
            fe.counters.denied.fetch_add(1, Relaxed);
            rec.termination = *b"PR";
            (None, None)
        }
        Some(be) => {
            be.beconn.inc();
            let beconn = BeConn(be.clone());
            match or_shutdown(&g, establish(&be, &client, peer, &mut rec, t0)).await {
                Some(Ok((slot, mut server))) => {
                    listed.set_server(&slot.server().name);
                    let res = serve(&fe, &g, &be, &slot, &mut client, &mut server, &mut rec).await;
                    to_server = res;
                    (Some((slot, beconn)), Some(server))
                }
                Some(Err(term)) => {
                    fe.counters.denied.fetch_add(1, Relaxed);
                    rec.termination = term;
                    (None, None)
                }
                // Shut down while queued or connecting.
                None => {
                    rec.termination = *b"KC";
                    (None, None)
                }
            }
        }
    };
    rec.tt = ms(t0.elapsed());
    rec.actconn = g.actconn.get();
    rec.feconn = fe.counters.scur.get();
    if let Some(be) = &backend {
        rec.beconn = be.beconn.get();
    }
    if let Some((slot, _)) = &slot {
        rec.srv_conn = slot.server().counters.scur.get();
    }
    debug!(
        frontend = %fe.name, client = %peer, term = %String::from_utf8_lossy(&rec.termination),
        "session closed"
    );
    // dontlognull: HAProxy skips sessions on which the client sent nothing.
    if fe.tcplog
        && !(fe.dontlognull && to_server == 0)
        && let Some(logger) = &fe.logger
    {
        logger.send(tcplog::SEVERITY_INFO, &tcplog::format_tcplog(&rec, logger.time_zone()));
    }
    // Close the server side before giving back the slot, so a queued session
    // never finds the server holding one more connection than it counts.
    drop(server_conn);
    drop(slot);
}

/// Queue, connect, retry, redispatch; on failure the termination state.
async fn establish(
    be: &Arc<BackendRt>,
    client: &TcpStream,
    peer: SocketAddr,
    rec: &mut LogRecord,
    t0: Instant,
) -> Result<(SlotGuard, TcpStream), [u8; 2]> {
    // getsockname() only when a port offset or a PROXY header needs it.
    let mut local = None;
    let mut local_addr = || -> Result<SocketAddr, [u8; 2]> {
        match local {
            Some(a) => Ok(a),
            None => {
                let a = client.local_addr().map_err(|_| *b"CC")?;
                local = Some(a);
                Ok(a)
            }
        }
    };
    let acquire = |exclude| be.acquire(peer.ip(), exclude);
    let map_err = |e: AcquireError| match e {
        AcquireError::NoServer => {
            be.nosrv.fetch_add(1, Relaxed);
            *b"SC"
        }
        AcquireError::QueueTimeout => *b"sQ",
    };
    let (mut slot, q) = acquire(None).await.map_err(|e| {
        rec.tw = ms(t0.elapsed());
        map_err(e)
    })?;
    rec.srv_queue = q.srv_queue;
    rec.backend_queue = q.backend_queue;
    let connect_timeout = nz(be.timeouts.connect);
    let mut tc_start = Instant::now();
    rec.tw = ms(t0.elapsed());
    loop {
        let srv = slot.server();
        rec.server = Some(srv.name.clone());
        let dst_port = match srv.port {
            PortSpec::Fixed(_) => 0,
            PortSpec::Offset(_) => local_addr()?.port(),
        };
        let result = match srv.port_for(dst_port) {
            Some(port) => connect(SocketAddr::new(srv.addr, port), connect_timeout, be.tcpka).await,
            None => Err(ConnectError::Failed),
        };
        let err = match result {
            Ok(mut server) => {
                rec.tc = ms(tc_start.elapsed());
                if let Some(v) = srv.send_proxy {
                    let header = proxy_protocol::header(v, peer, local_addr()?);
                    if server.write_all(&header).await.is_err() {
                        srv.counters.econ.fetch_add(1, Relaxed);
                        return Err(*b"SC");
                    }
                }
                return Ok((slot, server));
            }
            Err(e) => e,
        };
        if rec.retries >= be.retries {
            // As HAProxy counts: one connection error per session that gave
            // up, the attempts before it are retries or redispatches.
            srv.counters.econ.fetch_add(1, Relaxed);
            return Err(match err {
                ConnectError::Timeout => *b"sC",
                ConnectError::Failed => *b"SC",
                ConnectError::Resource => *b"RC",
            });
        }
        rec.retries += 1;
        if be.redispatches_now(rec.retries, slot.idx) {
            srv.counters.wredis.fetch_add(1, Relaxed);
            rec.redispatched = true;
            let failed = slot.idx;
            drop(slot);
            let (s, q) = acquire(Some(failed)).await.map_err(map_err)?;
            slot = s;
            rec.srv_queue = rec.srv_queue.max(q.srv_queue);
            rec.backend_queue = rec.backend_queue.max(q.backend_queue);
        } else {
            srv.counters.wretr.fetch_add(1, Relaxed);
            // HAProxy's server `stot` counts every connection attempt.
            srv.counters.stot.fetch_add(1, Relaxed);
            if !matches!(err, ConnectError::Timeout) {
                // HAProxy's turn-around timer: min(timeout connect, 1s) before
                // retrying a server that refused, so a restarting server is
                // not hammered. A timeout already waited.
                let pause = connect_timeout.map_or(Duration::from_secs(1), |t| t.min(Duration::from_secs(1)));
                tokio::time::sleep(pause).await;
            }
        }
        tc_start = Instant::now();
    }
}

/// The data phase; returns the bytes the client sent.
async fn serve(
    fe: &FrontendRt,
    g: &GlobalRt,
    be: &BackendRt,
    slot: &SlotGuard,
    client: &mut TcpStream,
    server: &mut TcpStream,
    rec: &mut LogRecord,
) -> u64 {
    let srv = slot.server();
    let settings = PumpSettings {
        client_timeout: nz(fe.timeout_client),
        server_timeout: nz(be.timeouts.server),
        tunnel_timeout: nz(be.timeouts.tunnel),
        client_fin: nz(fe.timeout_client_fin),
        server_fin: nz(be.timeouts.server_fin),
        engine: g.engine,
        chunk: g.chunk,
    };
    let counters = srv.counters.clone();
    let on_bytes = |to_server: bool, n: u64| {
        if to_server {
            counters.bin.fetch_add(n, Relaxed);
            fe.counters.bin.fetch_add(n, Relaxed);
        } else {
            counters.bout.fetch_add(n, Relaxed);
            fe.counters.bout.fetch_add(n, Relaxed);
        }
    };
    let mut srv_kill = srv.kill.subscribe();
    srv_kill.mark_unchanged();
    let mut shut = g.shutdown.subscribe();
    // Lock-free looks at the same channels: has anything been sent since?
    let (srv_seen, shut_seen) = (srv_kill.clone(), shut.clone());
    let kill_may_fire = move || srv_seen.has_changed().unwrap_or(true) || shut_seen.has_changed().unwrap_or(true);
    let kill = async move {
        if *shut.borrow_and_update() {
            return b'K';
        }
        tokio::select! {
            r = srv_kill.changed() => match r {
                Ok(()) => srv_kill.borrow().1,
                Err(_) => std::future::pending().await,
            },
            r = shut.changed() => match r {
                Ok(()) => b'K',
                Err(_) => std::future::pending().await,
            },
        }
    };
    let res = pump::pump(client, server, &settings, &on_bytes, kill, &kill_may_fire).await;
    rec.bytes_read = res.to_client;
    rec.termination = match res.end {
        End::Normal => *b"--",
        End::Abort(Side::Client) => {
            counters.cli_abrt.fetch_add(1, Relaxed);
            *b"CD"
        }
        End::Abort(Side::Server) => {
            counters.srv_abrt.fetch_add(1, Relaxed);
            *b"SD"
        }
        End::Timeout(Side::Client) => {
            counters.cli_abrt.fetch_add(1, Relaxed);
            *b"cD"
        }
        End::Timeout(Side::Server) => {
            counters.srv_abrt.fetch_add(1, Relaxed);
            *b"sD"
        }
        End::Killed(letter) => {
            counters.killed.fetch_add(1, Relaxed);
            [letter, b'D']
        }
    };
    res.to_server
}

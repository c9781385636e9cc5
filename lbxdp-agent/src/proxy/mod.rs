//! The userspace TCP proxy: the same haproxy.cfg served without XDP, as an
//! HAProxy `mode tcp` replacement (same balancing, limits, queues, retries,
//! PROXY protocol, tcplog).
//!
//! Use: inside a tokio runtime, [`start`] the proxy with the config and a
//! [`ServerAvailability`] (health). The proxy runs its sessions on threads of
//! its own, [`worker_threads`] of them (see `workers`). Every `bind` gets one
//! SO_REUSEPORT listening socket per thread, so the kernel spreads new
//! connections over as many accept loops as there are threads.
mod backend;
mod buffers;
mod proxy_protocol;
mod pump;
mod queue;
mod rules;
mod select;
mod session;
mod sessions;
mod stats;
mod tables;
mod tcplog;
mod workers;

use std::{
    collections::HashMap,
    ffi::OsString,
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    pin::pin,
    sync::{
        Arc, RwLock,
        atomic::{
            AtomicU64,
            Ordering::{Acquire, Relaxed, Release},
        },
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::future::BoxFuture;
use nix::sys::socket::{setsockopt, sockopt};
use thiserror::Error;
use tokio::{
    net::{TcpListener, TcpSocket},
    sync::{Notify, Semaphore, watch},
    task::JoinHandle,
};
use tracing::{error, info, warn};

pub use backend::BackendRt;
pub use proxy_protocol::V2_SIGNATURE;
pub use pump::Engine;
pub use stats::{BackendStats, FrontendStats, ProxyStats, ServerStats};

use crate::config::{Config, Frontend, acl::TcpAction};
use stats::{FrontendCounters, Gauge};

/// What the proxy needs to know about server health. The health checker's
/// snapshot is adapted to this; [`SharedAvailability`] is a ready-made
/// implementation to push states into.
pub trait ServerAvailability: Send + Sync {
    /// The server may take new connections (up, not in maintenance).
    fn usable(&self, backend: &str, server: &str) -> bool;
    /// Its current weight, if it differs from the config's (None: the config's).
    fn weight(&self, backend: &str, server: &str) -> Option<u32>;
    /// A number that moves whenever an answer above may have changed, so the
    /// proxy asks again only then; None (the default) asks at every pick.
    fn version(&self) -> Option<u64> {
        None
    }
    /// Resolves at the next change. The default polls twice a second; an
    /// implementation with a change signal should override it, so queued
    /// sessions and `on-marked-down` react at once.
    fn changed(&self) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(Duration::from_millis(500)))
    }
    /// Whether the backend's backups must give up their sessions now
    /// (`health::recalls_backups`, HAProxy's `on-marked-up
    /// shutdown-backup-sessions`); the proxy closes them when this turns true.
    fn recalls_backups(&self, _backend: &str) -> bool {
        false
    }
}

/// Availability held in a map and pushed from outside: `set` a server's
/// state and the proxy reacts at once. `from_config` starts with every server
/// up except those `disabled` in the config; servers not in the map are up.
pub struct SharedAvailability {
    map: RwLock<HashMap<(String, String), (bool, u32)>>,
    /// Backends whose backups are recalled (see `recalls_backups`).
    recalling: RwLock<std::collections::HashSet<String>>,
    /// Bumped after every change to `map`.
    version: AtomicU64,
    tx: watch::Sender<u64>,
}

impl SharedAvailability {
    pub fn from_config(config: &Config) -> Arc<SharedAvailability> {
        let mut map = HashMap::new();
        for b in &config.backends {
            for s in &b.servers {
                map.insert((b.name.clone(), s.name.clone()), (!s.disabled, u32::from(s.weight)));
            }
        }
        Arc::new(SharedAvailability {
            map: RwLock::new(map),
            recalling: RwLock::new(std::collections::HashSet::new()),
            version: AtomicU64::new(0),
            tx: watch::channel(0).0,
        })
    }

    /// Sets whether `backend`'s backups are recalled; the proxy reacts at once.
    pub fn set_recall(&self, backend: &str, recall: bool) {
        let changed = self.recalling.write().is_ok_and(|mut r| {
            if recall {
                r.insert(backend.to_string())
            } else {
                r.remove(backend)
            }
        });
        if changed {
            self.version.fetch_add(1, Release);
            self.tx.send_modify(|v| *v += 1);
        }
    }

    /// Sets one server's state; unknown servers are added (for a later reload).
    /// Only a real change wakes the backends: every check result reaches
    /// here, and most change nothing the proxy reads.
    pub fn set(&self, backend: &str, server: &str, usable: bool, weight: u32) {
        let changed = self.map.write().is_ok_and(|mut m| {
            m.insert((backend.to_string(), server.to_string()), (usable, weight)) != Some((usable, weight))
        });
        if changed {
            // Release: a reader that sees the new version sees the new map too.
            self.version.fetch_add(1, Release);
            self.tx.send_modify(|v| *v += 1);
        }
    }
}

impl ServerAvailability for SharedAvailability {
    fn usable(&self, backend: &str, server: &str) -> bool {
        self.map
            .read()
            .ok()
            .and_then(|m| m.get(&(backend.to_string(), server.to_string())).map(|v| v.0))
            // A server it was never told about (added by a reload) is up, as
            // HAProxy starts servers; `disabled` ones the backend itself skips.
            .unwrap_or(true)
    }

    fn weight(&self, backend: &str, server: &str) -> Option<u32> {
        self.map
            .read()
            .ok()
            .and_then(|m| m.get(&(backend.to_string(), server.to_string())).map(|v| v.1))
    }

    fn version(&self) -> Option<u64> {
        Some(self.version.load(Acquire))
    }

    fn recalls_backups(&self, backend: &str) -> bool {
        self.recalling.read().is_ok_and(|r| r.contains(backend))
    }

    fn changed(&self) -> BoxFuture<'static, ()> {
        let mut rx = self.tx.subscribe();
        rx.mark_unchanged();
        Box::pin(async move {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[derive(Debug, Error)]
pub enum ProxyError {
    #[error("frontend '{frontend}': cannot listen on {addr}: {source}")]
    Bind {
        frontend: String,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("frontend '{frontend}': cannot bind to interface '{interface}' (needs CAP_NET_RAW): {source}")]
    Interface {
        frontend: String,
        interface: String,
        source: nix::Error,
    },
    #[error("cannot start the proxy's threads: {0}")]
    Threads(io::Error),
}

/// The proxy's threads for the config: `nbthread`, else every core.
pub fn worker_threads(config: &Config) -> usize {
    config
        .global
        .nbthread
        .map(|n| n.max(1) as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Tuning that is not in haproxy.cfg.
#[derive(Debug, Clone, Copy)]
pub struct ProxyOptions {
    /// Threads, and listening sockets per bind address (SO_REUSEPORT), one on each thread.
    pub listeners_per_bind: usize,
    pub engine: Engine,
    /// Buffer / pipe size per direction.
    pub chunk: usize,
}

impl ProxyOptions {
    pub fn from_config(config: &Config) -> ProxyOptions {
        ProxyOptions {
            listeners_per_bind: worker_threads(config),
            engine: Engine::default(),
            chunk: pump::DEFAULT_CHUNK,
        }
    }
}

/// HAProxy without `maxconn`: derived from the fd limit, two fds per
/// session and a few kept back for listeners, logs and checks.
fn default_global_maxconn() -> u32 {
    use nix::sys::resource::{Resource, getrlimit};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(s, _)| s);
    let usable = soft.saturating_sub(64) / 2;
    u32::try_from(usable).unwrap_or(u32::MAX).clamp(1, 1 << 24)
}

/// State shared by every frontend and kept across reloads.
pub(crate) struct GlobalRt {
    pub(crate) actconn: Gauge,
    pub(crate) cum_conns: AtomicU64,
    /// Notified when a session ends: an accept loop backing off after EMFILE
    /// tries again as soon as an fd may be free.
    pub(crate) session_ended: Notify,
    /// The sessions open now, for `show sess`.
    pub(crate) sessions: sessions::Registry,
    /// true: every session closes (shutdown).
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) engine: Engine,
    pub(crate) chunk: usize,
}

pub(crate) struct FrontendRt {
    /// Shared, not copied: every session's log record and `show sess` line names it.
    pub(crate) name: Arc<str>,
    pub(crate) backend: Option<Arc<BackendRt>>,
    /// `tcp-request connection` and `use_backend ... if` rules.
    pub(crate) rules: rules::Rules,
    /// The frontend's maxconn (defaults to the global one).
    maxconn: Arc<Semaphore>,
    /// The process-wide maxconn, shared by every frontend.
    global_maxconn: Arc<Semaphore>,
    pub(crate) timeout_client: Option<Duration>,
    pub(crate) timeout_client_fin: Option<Duration>,
    pub(crate) tcplog: bool,
    pub(crate) dontlognull: bool,
    pub(crate) tcpka: bool,
    pub(crate) logger: Option<Arc<tcplog::Logger>>,
    /// Shared with the rules of every frontend, for `fe_conn`.
    pub(crate) counters: Arc<FrontendCounters>,
}

/// One listening address of a frontend, with its per-thread sockets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ListenKey {
    addr: SocketAddr,
    interface: Option<String>,
}

/// One configuration's worth of running frontends and backends.
struct Generation {
    frontends: Vec<Arc<FrontendRt>>,
    backends: Vec<Arc<BackendRt>>,
    accept: Vec<(ListenKey, Arc<FrontendRt>, JoinHandle<Option<std::net::TcpListener>>)>,
    stop: watch::Sender<bool>,
    monitor: JoinHandle<()>,
    addrs: Vec<(String, SocketAddr)>,
    /// The configuration's stick tables (a reload starts them empty, as
    /// HAProxy's new process does without peers).
    tables: Arc<tables::Tables>,
}

pub struct Proxy {
    global: Arc<GlobalRt>,
    workers: workers::Workers,
    avail: Arc<dyn ServerAvailability>,
    options: ProxyOptions,
    gen_: Generation,
    /// Backends of earlier generations whose sessions may still run: their
    /// counters stay visible until they are idle.
    retired: Vec<Arc<BackendRt>>,
}

/// Starts the proxy for `config` with the default options (one listening
/// socket per bind per [`worker_threads`]). Must run inside a tokio runtime
/// (multi-thread for more than one core). Binds every listener before
/// returning, so an error (address in use, no permission) comes back here.
pub async fn start(config: &Config, avail: Arc<dyn ServerAvailability>) -> Result<Proxy, ProxyError> {
    start_with(config, avail, ProxyOptions::from_config(config)).await
}

pub async fn start_with(
    config: &Config,
    avail: Arc<dyn ServerAvailability>,
    options: ProxyOptions,
) -> Result<Proxy, ProxyError> {
    let global = Arc::new(GlobalRt {
        actconn: Gauge::default(),
        cum_conns: AtomicU64::new(0),
        session_ended: Notify::new(),
        sessions: sessions::Registry::default(),
        shutdown: watch::channel(false).0,
        engine: options.engine,
        chunk: options.chunk,
    });
    let workers = workers::Workers::start(options.listeners_per_bind).map_err(ProxyError::Threads)?;
    let gen_ = build(config, &avail, &global, &workers, &options, &mut HashMap::new())?;
    Ok(Proxy {
        global,
        workers,
        avail,
        options,
        gen_,
        retired: Vec::new(),
    })
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id())
}

fn build(
    config: &Config,
    avail: &Arc<dyn ServerAvailability>,
    global: &Arc<GlobalRt>,
    workers: &workers::Workers,
    options: &ProxyOptions,
    reuse: &mut HashMap<ListenKey, Vec<std::net::TcpListener>>,
) -> Result<Generation, ProxyError> {
    let per_bind = options.listeners_per_bind.max(1);
    let backends: Vec<Arc<BackendRt>> = config
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| Arc::new(BackendRt::new(b, avail.clone(), seed().wrapping_add(i as u64))))
        .collect();
    let by_name: HashMap<&str, &Arc<BackendRt>> = backends.iter().map(|b| (&*b.name, b)).collect();
    let gmax = config
        .global
        .maxconn
        .filter(|m| *m > 0)
        .unwrap_or_else(default_global_maxconn);
    let global_maxconn = Arc::new(Semaphore::new(gmax as usize));
    let tables = Arc::new(tables::Tables::new(config));
    let fe_counters: HashMap<String, Arc<FrontendCounters>> = config
        .frontends
        .iter()
        .map(|f| (f.name.clone(), Arc::new(FrontendCounters::default())))
        .collect();
    let mut frontends = Vec::new();
    // First every new socket, so that a bind error leaves `reuse` untouched
    // and nothing running.
    let mut plan: Vec<(ListenKey, Option<Vec<std::net::TcpListener>>, Arc<FrontendRt>)> = Vec::new();
    for f in config
        .frontends
        .iter()
        .filter(|f| !f.disabled && f.stats_page.is_none())
    {
        let logger = (f.tcplog && !f.logs.is_empty()).then(|| Arc::new(tcplog::Logger::new(&f.logs)));
        let fe = Arc::new(FrontendRt {
            name: f.name.as_str().into(),
            backend: f.backend.as_deref().and_then(|n| by_name.get(n).map(|b| (*b).clone())),
            rules: rules::Rules::new(f, &by_name, &fe_counters, &tables),
            maxconn: Arc::new(Semaphore::new(f.maxconn.filter(|m| *m > 0).unwrap_or(gmax) as usize)),
            global_maxconn: global_maxconn.clone(),
            timeout_client: f.timeout_client,
            timeout_client_fin: f.timeout_client_fin,
            tcplog: f.tcplog,
            dontlognull: f.dontlognull,
            tcpka: f.tcpka,
            logger,
            counters: fe_counters.get(&f.name).cloned().unwrap_or_default(),
        });
        for key in listen_keys(f) {
            let kept = reuse.get(&key).is_some_and(|s| s.len() == per_bind) && key.addr.port() != 0;
            let fresh = if kept {
                None
            } else {
                Some(bind(&f.name, &key, per_bind, f.maxconn.unwrap_or(gmax))?)
            };
            plan.push((key, fresh, fe.clone()));
        }
        frontends.push(fe);
    }
    let (stop, _) = watch::channel(false);
    let mut accept = Vec::new();
    let mut addrs = Vec::new();
    for (key, fresh, fe) in plan {
        let socks = fresh.or_else(|| reuse.remove(&key)).unwrap_or_default();
        for (i, l) in socks.into_iter().enumerate() {
            // Keyed by the address actually bound (port 0 resolved), which is
            // what a reload's config will name.
            let mut key = key.clone();
            if let Ok(a) = l.local_addr() {
                addrs.push((fe.name.to_string(), a));
                key.addr = a;
            }
            let h = workers
                .handle(i)
                .spawn(accept_loop(l, fe.clone(), global.clone(), stop.subscribe()));
            accept.push((key, fe.clone(), h));
        }
    }
    for b in &backends {
        b.refresh();
    }
    let monitor = tokio::spawn(monitor(avail.clone(), backends.clone(), stop.subscribe()));
    info!(frontends = frontends.len(), listeners = accept.len(), "proxy started");
    Ok(Generation {
        frontends,
        backends,
        accept,
        stop,
        monitor,
        addrs,
        tables,
    })
}

/// Every (address, port) of a frontend's binds; no address is HAProxy's `*`.
fn listen_keys(f: &Frontend) -> Vec<ListenKey> {
    let mut out = Vec::new();
    for b in &f.binds {
        let ip = b.addr.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        for port in b.addr.ports.clone() {
            let key = ListenKey {
                addr: SocketAddr::new(ip, port),
                interface: b.interface.clone(),
            };
            if !out.contains(&key) {
                out.push(key);
            }
        }
    }
    out
}

/// `n` SO_REUSEPORT sockets on one address. Port 0 (tests) binds the first
/// on an ephemeral port and the others on the same one.
fn bind(frontend: &str, key: &ListenKey, n: usize, maxconn: u32) -> Result<Vec<std::net::TcpListener>, ProxyError> {
    let mut addr = key.addr;
    let mut out = Vec::with_capacity(n);
    let err = |addr, source| ProxyError::Bind {
        frontend: frontend.to_string(),
        addr,
        source,
    };
    for _ in 0..n {
        let sock = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| err(addr, e))?;
        sock.set_reuseaddr(true).map_err(|e| err(addr, e))?;
        sock.set_reuseport(true).map_err(|e| err(addr, e))?;
        if let Some(dev) = &key.interface {
            setsockopt(&sock, sockopt::BindToDevice, &OsString::from(dev)).map_err(|source| ProxyError::Interface {
                frontend: frontend.to_string(),
                interface: dev.clone(),
                source,
            })?;
        }
        sock.bind(addr).map_err(|e| err(addr, e))?;
        // The kernel caps the backlog at somaxconn; HAProxy's default backlog
        // is the frontend's maxconn.
        // Handed over as a std socket (still non-blocking): each one is
        // registered with the runtime of the thread that accepts on it.
        let l = sock
            .listen(maxconn.clamp(128, 65_535))
            .and_then(TcpListener::into_std)
            .map_err(|e| err(addr, e))?;
        if addr.port() == 0 {
            addr = l.local_addr().map_err(|e| err(addr, e))?;
        }
        out.push(l);
    }
    Ok(out)
}

/// accept() failures that mean "out of fds or memory": retrying at once
/// would spin, so the loop waits for a session to end (or 100 ms).
fn is_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Runs on a proxy thread until `stop`; gives the listener back for a reload
/// (None if it could not be registered with this thread's runtime).
async fn accept_loop(
    listener: std::net::TcpListener,
    fe: Arc<FrontendRt>,
    g: Arc<GlobalRt>,
    mut stop: watch::Receiver<bool>,
) -> Option<std::net::TcpListener> {
    // Accepted sockets inherit these from the listener (Linux copies them
    // at accept), as HAProxy sets TCP_NODELAY on its listeners: one
    // setsockopt per listener instead of one or two per session. Set here,
    // on every generation's loop, so a reload that turns `option tcpka` on
    // or off applies it to a kept listener too.
    let _ = setsockopt(&listener, sockopt::TcpNoDelay, &true);
    let _ = setsockopt(&listener, sockopt::KeepAlive, &fe.tcpka);
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            error!(frontend = %fe.name, "listener lost: {e}");
            return None;
        }
    };
    // One wait for the stop signal for the loop's whole life: a new
    // `changed()` at every accept would register with (and leave) the
    // channel's waiter list, shared by every thread, twice per connection.
    let mut stopped = pin!(async move {
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    });
    let mut last_warn: Option<tokio::time::Instant> = None;
    loop {
        // Over a maxconn we stop calling accept(): new clients wait in the
        // kernel's backlog, as with HAProxy's paused listeners.
        let permits = tokio::select! {
            biased;
            _ = &mut stopped => break,
            p = async {
                let fp = fe.maxconn.clone().acquire_owned().await;
                let gp = fe.global_maxconn.clone().acquire_owned().await;
                (fp, gp)
            } => p,
        };
        let (Ok(fp), Ok(gp)) = permits else {
            break;
        };
        let accepted = tokio::select! {
            biased;
            _ = &mut stopped => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let mut tracked = rules::Tracked::default();
                if !fe.rules.is_empty()
                    && let Ok(local) = stream.local_addr()
                {
                    let action;
                    (action, tracked) = fe.rules.on_accept(peer, local);
                    if action != TcpAction::Accept {
                        // As HAProxy counts them: a reject in dcon, a
                        // silent drop in dreq.
                        match action {
                            TcpAction::SilentDrop => &fe.counters.denied,
                            _ => &fe.counters.denied_conn,
                        }
                        .fetch_add(1, Relaxed);
                        // silent-drop: no FIN, HAProxy's SO_LINGER 0 (a reset
                        // at most); reject: an ordinary close at once.
                        if action == TcpAction::SilentDrop {
                            let _ = setsockopt(
                                &stream,
                                sockopt::Linger,
                                &libc::linger {
                                    l_onoff: 1,
                                    l_linger: 0,
                                },
                            );
                        }
                        drop(stream);
                        continue;
                    }
                }
                tokio::spawn(session::run(stream, peer, fe.clone(), g.clone(), (fp, gp), tracked));
            }
            Err(e) => {
                fe.counters.accept_errors.fetch_add(1, Relaxed);
                let now = tokio::time::Instant::now();
                if last_warn.is_none_or(|t| now.duration_since(t) > Duration::from_secs(5)) {
                    warn!(frontend = %fe.name, "accept failed: {e}");
                    last_warn = Some(now);
                }
                let pause = if is_resource_error(&e) {
                    Duration::from_millis(100)
                } else {
                    // ECONNABORTED and the like are the client's; anything
                    // unknown gets a short pause so it cannot spin either.
                    Duration::from_millis(5)
                };
                tokio::select! {
                    _ = g.session_ended.notified() => {},
                    _ = tokio::time::sleep(pause) => {},
                    _ = &mut stopped => break,
                }
            }
        }
    }
    match listener.into_std() {
        Ok(l) => Some(l),
        Err(e) => {
            error!(frontend = %fe.name, "listener lost: {e}");
            None
        }
    }
}

/// Follows server availability: queued sessions move, `on-marked-down` kills.
async fn monitor(avail: Arc<dyn ServerAvailability>, backends: Vec<Arc<BackendRt>>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = avail.changed() => {},
            _ = stop.changed() => return,
        }
        for b in &backends {
            b.refresh();
        }
    }
}

impl Proxy {
    /// Counters of every frontend, backend and server, now.
    pub fn stats(&self) -> ProxyStats {
        let mut backends: Vec<BackendStats> = self.gen_.backends.iter().map(|b| b.stats()).collect();
        // A backend of an older generation is shown while it still has sessions.
        for r in &self.retired {
            if r.beconn.get() > 0 {
                let mut s = r.stats();
                s.name = format!("{} (old)", s.name);
                backends.push(s);
            }
        }
        ProxyStats {
            actconn: self.global.actconn.get(),
            cum_conns: self.global.cum_conns.load(Relaxed),
            frontends: self
                .gen_
                .frontends
                .iter()
                .map(|f| {
                    let c = &f.counters;
                    FrontendStats {
                        name: f.name.to_string(),
                        scur: c.scur.get(),
                        smax: c.scur.max(),
                        stot: c.stot.load(Relaxed),
                        bin: c.bin.load(Relaxed),
                        bout: c.bout.load(Relaxed),
                        denied: c.denied.load(Relaxed),
                        denied_conn: c.denied_conn.load(Relaxed),
                        accept_errors: c.accept_errors.load(Relaxed),
                    }
                })
                .collect(),
            backends,
        }
    }

    /// `show table`: the tables now, in the configuration's order (HAProxy's
    /// `show table` lists them so too), or only the one named.
    pub fn stick_dump(&self, name: Option<&str>) -> Vec<crate::stick::Dump> {
        self.gen_
            .tables
            .all()
            .iter()
            .filter(|t| name.is_none_or(|n| t.def.name == n))
            .map(|t| t.dump())
            .collect()
    }

    /// `clear table NAME ...`: None when there is no such table, else how
    /// many picked entries were in use (and stay).
    pub fn stick_clear(&self, name: &str, select: &crate::stick::Select) -> Option<usize> {
        self.gen_.tables.get(name).map(|t| t.clear(select))
    }

    /// `show sess`: one line per open session.
    pub fn show_sess(&self) -> String {
        self.global.sessions.show()
    }

    /// The addresses listened on, by frontend (one entry per socket).
    pub fn listen_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.gen_.addrs.clone()
    }

    /// Re-reads server availability now (the agent may call this on a health
    /// change instead of relying on [`ServerAvailability::changed`]).
    pub fn refresh_availability(&self) {
        for b in &self.gen_.backends {
            b.refresh();
        }
    }

    /// Applies a new config: listening sockets whose address (and interface)
    /// stay are handed over without closing, others are closed or bound;
    /// running sessions continue on the old backends until they end. On a
    /// bind error the old config stays in force.
    pub async fn reload(&mut self, config: &Config) -> Result<(), ProxyError> {
        let _ = self.gen_.stop.send(true);
        let mut reuse: HashMap<ListenKey, Vec<std::net::TcpListener>> = HashMap::new();
        let mut owners: Vec<(ListenKey, Arc<FrontendRt>)> = Vec::new();
        for (key, fe, h) in self.gen_.accept.drain(..) {
            if let Ok(Some(l)) = h.await {
                reuse.entry(key.clone()).or_default().push(l);
                owners.push((key, fe));
            }
        }
        match build(
            config,
            &self.avail,
            &self.global,
            &self.workers,
            &self.options,
            &mut reuse,
        ) {
            Ok(gen_) => {
                let old = std::mem::replace(&mut self.gen_, gen_);
                old.monitor.abort();
                self.retired.retain(|b| b.beconn.get() > 0);
                self.retired.extend(old.backends);
                // Listeners nobody kept are closed here, when `reuse` drops.
                info!(
                    closed_listeners = reuse.values().map(Vec::len).sum::<usize>(),
                    "proxy reloaded"
                );
                Ok(())
            }
            Err(e) => {
                // `build` touched nothing: resume the old listeners as they were.
                warn!("reload failed, keeping the previous configuration: {e}");
                let stop = watch::channel(false).0;
                for (i, (key, fe)) in owners.into_iter().enumerate() {
                    if let Some(l) = reuse.get_mut(&key).and_then(Vec::pop) {
                        let h = self.workers.handle(i).spawn(accept_loop(
                            l,
                            fe.clone(),
                            self.global.clone(),
                            stop.subscribe(),
                        ));
                        self.gen_.accept.push((key, fe, h));
                    }
                }
                self.gen_.stop = stop;
                Err(e)
            }
        }
    }

    /// Hard stop (HAProxy's SIGTERM): stops listening, closes every session
    /// at once (their log lines say "K"), returns when they are gone (at
    /// most 5 s).
    pub async fn shutdown(self) {
        self.drain(Duration::ZERO).await;
    }

    /// Soft stop (HAProxy's SIGUSR1 with `hard-stop-after`): stops listening,
    /// lets sessions finish for up to `grace`, then closes the rest.
    pub async fn drain(mut self, grace: Duration) {
        let _ = self.gen_.stop.send(true);
        for (_, _, h) in std::mem::take(&mut self.gen_.accept) {
            // The listeners close as each accept loop returns them.
            let _ = h.await;
        }
        self.wait_idle(grace).await;
        self.gen_.monitor.abort();
        let _ = self.global.shutdown.send(true);
        self.wait_idle(Duration::from_secs(5)).await;
    }

    async fn wait_idle(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.global.actconn.get() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = self.global.session_ended.notified() => {},
                _ = tokio::time::sleep(Duration::from_millis(10)) => {},
            }
        }
    }
}

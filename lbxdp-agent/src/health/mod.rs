//! Health checks, as HAProxy 2.6 runs them: one task per server with
//! `check`, HAProxy's rise/fall counter, its intervals and its log lines.
//!
//! The state lives in one [`Snapshot`] published on a tokio watch channel.
//! Subscribers (the XDP map writer, the userspace proxy) read the latest
//! snapshot whenever it changes; changes that land together coalesce, as a
//! watch channel keeps only the newest value. Nothing here touches the
//! datapath.
//!
//! Rules, with their HAProxy references:
//! - A checked server starts UP with its counter at `rise` (src/server.c:
//!   "up, but will fall down at first failure"), so the first failed check
//!   takes it DOWN and the first passed one makes it fully UP. Until then it
//!   shows "UP 1/<fall>". Leaving maintenance starts it the same way.
//! - A server without `check` is UP and never checked; a `disabled` one is
//!   MAINT, and its checks wait until it leaves maintenance.
//! - Intervals are HAProxy's `srv_getinter()`: `inter` when fully UP,
//!   `downinter` when fully DOWN, `fastinter` in between (see [`state`]).
//!   The next check is scheduled when the last one ends, moved by
//!   `spread-checks` percent at random; the first checks are staggered over
//!   the smallest interval as HAProxy's `start_checks()` does.
//! - Timeouts follow `timeout check` (see [`check`]).
pub mod check;
mod report;
pub mod state;
mod task;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::future::BoxFuture;
use tokio::{sync::watch, task::JoinHandle};

use crate::config::{Backend, CheckSettings, Config, HealthCheck, PortSpec};
pub use crate::runtime::ForcedHealth;
pub use check::{CheckResult, CheckSpec, CheckStatus};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId {
    pub backend: String,
    pub server: String,
}

impl ServerId {
    pub fn new(backend: &str, server: &str) -> Self {
        Self {
            backend: backend.to_string(),
            server: server.to_string(),
        }
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.backend, self.server)
    }
}

/// A server's state as HAProxy's stats page names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Up,
    Down,
    /// Still UP; `remaining` more failed checks of `fall` take it DOWN ("UP 2/3").
    GoingDown {
        remaining: u32,
        fall: u32,
    },
    /// Still DOWN; `passed` of the `rise` checks needed have passed ("DOWN 1/2").
    GoingUp {
        passed: u32,
        rise: u32,
    },
    /// `disabled` in the config or put in maintenance at runtime.
    Maint,
    /// UP (or going down) with weight 0: no new traffic.
    Drain,
    /// Up, but forced to take nothing new (`set server B/S health stopping`).
    Nolb,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Up => f.write_str("UP"),
            Self::Down => f.write_str("DOWN"),
            Self::GoingDown { remaining, fall } => write!(f, "UP {remaining}/{fall}"),
            Self::GoingUp { passed, rise } => write!(f, "DOWN {passed}/{rise}"),
            Self::Maint => f.write_str("MAINT"),
            Self::Drain => f.write_str("DRAIN"),
            Self::Nolb => f.write_str("NOLB"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    pub status: Status,
    /// The weight now (HAProxy's uweight): the configured one until the
    /// runtime API sets another.
    pub weight: u32,
    /// The configured weight (HAProxy's iweight).
    pub initial_weight: u32,
    /// `set server B/S state drain`: up, but no new traffic (shows DRAIN).
    pub drain: bool,
    /// `disable health B/S` clears it: the checks pause, the state stays.
    pub checks_enabled: bool,
    pub backup: bool,
    /// The last check's outcome, e.g. `Layer4 connection problem, info:
    /// "Connection refused"`; None before the first check or when unchecked.
    pub last_reason: Option<String>,
    pub checked: bool,
    /// How many times checks marked it DOWN, and UP. They only grow, so a
    /// subscriber that missed a coalesced DOWN-then-UP still sees it happened
    /// (`on-marked-down shutdown-sessions` needs that).
    pub marked_down: u64,
    pub marked_up: u64,
    /// Failed checks (HAProxy's chkfail).
    pub check_failures: u64,
    /// The last check, as the stats show it; None before the first or when unchecked.
    pub last_check: Option<LastCheck>,
    /// The check counter, as `show stat` columns check_health/rise/fall show it.
    pub health: Option<HealthCounter>,
    /// When the status last changed (HAProxy's lastchg counts from it).
    pub since: std::time::Instant,
    /// The last runtime order (numbered by the Monitor) that the server's
    /// check task has taken in: see [`Monitor::settle`].
    pub admin_seq: u64,
}

/// The last check's result, as `show stat` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastCheck {
    /// HAProxy's short name: L4OK, L4CON, L7STS, ...
    pub status: &'static str,
    /// The HTTP status, when there was one.
    pub code: Option<u16>,
    pub duration: Duration,
    /// HAProxy's description: "Layer4 connection problem", ...
    pub desc: &'static str,
}

/// HAProxy's check counter: `health` in `0 ..= rise + fall - 1`, UP from `rise`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCounter {
    pub health: u32,
    pub rise: u32,
    pub fall: u32,
}

impl ServerState {
    /// Up or going down, with a weight: HAProxy's `srv_is_usable()`.
    pub fn takes_traffic(&self) -> bool {
        matches!(self.status, Status::Up | Status::GoingDown { .. }) && self.effective_weight() > 0
    }

    /// The weight traffic follows: 0 while draining.
    pub fn effective_weight(&self) -> u32 {
        if self.drain { 0 } else { self.weight }
    }

    /// Up as far as the checks go, whatever the weight.
    pub fn is_up(&self) -> bool {
        matches!(
            self.status,
            Status::Up | Status::GoingDown { .. } | Status::Drain | Status::Nolb
        )
    }
}

pub type Snapshot = Arc<BTreeMap<ServerId, ServerState>>;

/// The state of a server the snapshot doesn't hold (yet): as it starts.
pub(crate) fn initial_state(server: &crate::config::Server, backend_disabled: bool) -> ServerState {
    let weight = u32::from(server.weight);
    let status = if server.disabled || backend_disabled {
        Status::Maint
    } else {
        match &server.check {
            Some(c) => task::status_of(&state::Health::starting(c.rise, c.fall), weight),
            None => task::with_weight(Status::Up, weight),
        }
    };
    ServerState {
        status,
        weight,
        initial_weight: weight,
        drain: false,
        checks_enabled: true,
        backup: server.backup,
        last_reason: None,
        checked: server.check.is_some(),
        marked_down: 0,
        marked_up: 0,
        check_failures: 0,
        last_check: None,
        health: server.check.as_ref().map(|c| {
            let h = state::Health::starting(c.rise, c.fall);
            HealthCounter {
                health: h.value(),
                rise: h.rise(),
                fall: h.fall(),
            }
        }),
        since: std::time::Instant::now(),
        admin_seq: 0,
    }
}

/// The weight each of `backend`'s servers (in config order) should get now.
/// Active servers that take traffic keep their weight; when there is none,
/// the first backup that takes traffic does (all of them with `option
/// allbackups`); everything else gets 0. All zeros: no server available.
pub fn effective_weights(backend: &Backend, snapshot: &BTreeMap<ServerId, ServerState>) -> Vec<u32> {
    let states = states(backend, snapshot);
    let mut out: Vec<u32> = states
        .iter()
        .map(|st| if usable(st, false) { st.effective_weight() } else { 0 })
        .collect();
    if out.iter().all(|w| *w == 0) {
        let mut first = true;
        for (w, st) in out.iter_mut().zip(&states) {
            if usable(st, true) && (first || backend.allbackups) {
                *w = st.effective_weight();
                first = false;
            }
        }
    }
    out
}

/// The backend's servers' states, as configured where the snapshot has none.
fn states(backend: &Backend, snapshot: &BTreeMap<ServerId, ServerState>) -> Vec<ServerState> {
    backend
        .servers
        .iter()
        .map(|s| {
            snapshot
                .get(&ServerId::new(&backend.name, &s.name))
                .cloned()
                .unwrap_or_else(|| initial_state(s, backend.disabled))
        })
        .collect()
}

/// A server that takes traffic, of the active or the backup kind.
fn usable(st: &ServerState, backup: bool) -> bool {
    st.backup == backup && st.takes_traffic()
}

/// HAProxy's `nbsrv`: the usable active servers, or with none, the usable backups.
pub fn nbsrv(backend: &Backend, snapshot: &BTreeMap<ServerId, ServerState>) -> u32 {
    let states = states(backend, snapshot);
    let count = |backup: bool| states.iter().filter(|st| usable(st, backup)).count() as u32;
    nbsrv_of(count(false), count(true))
}

/// `nbsrv` from the usable active and backup servers: the actives, or with
/// none, the backups. The proxy counts its own (see `BackendRt::nbsrv`).
pub fn nbsrv_of(actives: u32, backups: u32) -> u32 {
    if actives == 0 { backups } else { actives }
}

/// HAProxy's `on-marked-up shutdown-backup-sessions`: while an active
/// server with that option takes traffic (`weights` as [`effective_weights`]
/// gives them), the backups' sessions are closed, not only spared new ones.
/// Both engines follow this one rule: XDP marks the backups down (their
/// flows move), the proxy closes their sessions when it turns true.
pub fn recalls_backups(backend: &Backend, weights: &[u32]) -> bool {
    backend
        .servers
        .iter()
        .zip(weights)
        .any(|(s, w)| *w > 0 && !s.backup && s.on_marked_up == Some(crate::config::OnMarkedUp::ShutdownBackupSessions))
}

/// Runs one check; the task calls it each time. Tests give scripted ones.
pub(crate) type Probe = Arc<dyn Fn() -> BoxFuture<'static, CheckResult> + Send + Sync>;
type ProbeFactory = Arc<dyn Fn(CheckSpec) -> Probe + Send + Sync>;

fn real_probe(spec: CheckSpec) -> Probe {
    let spec = Arc::new(spec);
    Arc::new(move || {
        let spec = spec.clone();
        Box::pin(async move { check::run(&spec).await })
    })
}

/// What makes a running check task still right after a reload.
#[derive(Debug, Clone, PartialEq)]
struct Fingerprint {
    addr: IpAddr,
    port: PortSpec,
    check: Option<CheckSettings>,
    kind: HealthCheck,
    timeout_connect: Option<Duration>,
    timeout_check: Option<Duration>,
    log_health_checks: bool,
    disabled: bool,
}

/// A checked server's task: its handle, its maintenance switch, its life flag.
struct Job {
    handle: JoinHandle<()>,
    admin: watch::Sender<task::Admin>,
    alive: Arc<AtomicBool>,
}

impl Job {
    fn stop(self) {
        // First the flag, so a task mid-update on another thread writes nothing.
        self.alive.store(false, Ordering::SeqCst);
        self.handle.abort();
    }
}

struct Running {
    fingerprint: Fingerprint,
    /// Only for checked servers.
    task: Option<Job>,
}

/// The health checks of one configuration. Dropping it stops them.
pub struct Monitor {
    tx: Arc<watch::Sender<Snapshot>>,
    servers: HashMap<ServerId, Running>,
    probes: ProbeFactory,
    /// Numbers each order to a check task (see `task::Admin::seq`).
    admin_seq: std::sync::atomic::AtomicU64,
    /// Orders sent to check tasks that they may not have taken in yet.
    unsettled: std::sync::Mutex<Vec<(ServerId, u64)>>,
    /// Where each backend's state lines go, by backend name; its checked
    /// servers' tasks share it.
    logs: HashMap<String, report::SharedLog>,
}

impl Monitor {
    /// Starts a task per checked server; must run inside a tokio runtime.
    /// The receiver already holds the initial snapshot.
    pub fn start(config: &Config) -> (Monitor, watch::Receiver<Snapshot>) {
        Self::start_with(config, Arc::new(real_probe))
    }

    fn start_with(config: &Config, probes: ProbeFactory) -> (Monitor, watch::Receiver<Snapshot>) {
        let (tx, rx) = watch::channel(Snapshot::default());
        let mut m = Monitor {
            tx: Arc::new(tx),
            servers: HashMap::new(),
            probes,
            admin_seq: std::sync::atomic::AtomicU64::new(0),
            unsettled: std::sync::Mutex::new(Vec::new()),
            logs: HashMap::new(),
        };
        m.reload(config);
        (m, rx)
    }

    /// Another subscriber to the snapshots.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.tx.subscribe()
    }

    pub fn snapshot(&self) -> Snapshot {
        self.tx.borrow().clone()
    }

    /// Applies a new configuration: servers whose address, port and check
    /// settings are unchanged keep their state and their task (weight and
    /// backup flag are updated in place); the others start afresh, and
    /// servers gone from the config are dropped. One snapshot change.
    pub fn reload(&mut self, config: &Config) {
        let spread = config.global.spread_checks.unwrap_or(0);
        let mut keep: HashMap<ServerId, Running> = HashMap::new();
        let mut fresh: Vec<(ServerId, ServerState, Option<task::ServerTask>)> = Vec::new();
        // One logger (and so one socket) per distinct set of log targets,
        // not one per server: 300 backends with `log global` share one. A
        // `sample` target counts lines per proxy, as HAProxy's copies of it
        // do, so a backend with one has its own.
        let mut loggers: Vec<(&str, &[crate::config::LogTarget], Arc<crate::syslog::Logger>)> = Vec::new();
        let mut logs = HashMap::new();
        for be in &config.backends {
            let syslog = match loggers.iter().find(|(name, t, _)| {
                *t == be.logs.as_slice() && (*name == be.name.as_str() || t.iter().all(|x| x.sample.is_none()))
            }) {
                Some((_, _, l)) => Arc::clone(l),
                None => {
                    let l = Arc::new(crate::syslog::Logger::new(&be.logs));
                    loggers.push((&be.name, &be.logs, Arc::clone(&l)));
                    l
                }
            };
            // A listen section is both: HAProxy calls it a proxy.
            let listen = config.frontends.iter().any(|f| f.id == be.id && f.name == be.name);
            let log = report::BackendLog {
                syslog,
                kind: if listen { "proxy" } else { "backend" },
            };
            let log = match self.logs.remove(&be.name) {
                Some(shared) => {
                    shared.set(log);
                    shared
                }
                None => report::SharedLog::new(log),
            };
            logs.insert(be.name.clone(), log.clone());
            for s in &be.servers {
                let id = ServerId::new(&be.name, &s.name);
                let fingerprint = Fingerprint {
                    addr: s.addr,
                    port: s.port,
                    check: s.check.clone(),
                    kind: be.health_check.clone(),
                    timeout_connect: be.timeouts.connect,
                    timeout_check: be.timeouts.check,
                    log_health_checks: be.log_health_checks,
                    disabled: s.disabled || be.disabled,
                };
                if let Some(r) = self.servers.remove(&id).filter(|r| r.fingerprint == fingerprint) {
                    keep.insert(id.clone(), r);
                    continue;
                }
                let initial = initial_state(s, be.disabled);
                let job = match (CheckSpec::for_server(be, s), &s.check) {
                    (Some(spec), Some(settings)) => Some(task::ServerTask {
                        id: id.clone(),
                        settings: settings.clone(),
                        log_health_checks: be.log_health_checks,
                        log: log.clone(),
                        spread,
                        first_delay: Duration::ZERO,
                        maint: fingerprint.disabled,
                        probe: (self.probes)(spec),
                        alive: Arc::new(AtomicBool::new(true)),
                    }),
                    _ => None,
                };
                keep.insert(
                    id.clone(),
                    Running {
                        fingerprint,
                        task: None,
                    },
                );
                fresh.push((id, initial, job));
            }
        }
        // What is left was removed or changed: stop those tasks.
        for (_, r) in self.servers.drain() {
            if let Some(job) = r.task {
                job.stop();
            }
        }

        // One publication: the weights and backup flags of kept servers,
        // the fresh states, and nothing of removed servers.
        let restarted: HashSet<&ServerId> = fresh.iter().map(|f| &f.0).collect();
        self.tx.send_modify(|snap| {
            let mut map: BTreeMap<ServerId, ServerState> = BTreeMap::new();
            for be in &config.backends {
                for s in &be.servers {
                    let id = ServerId::new(&be.name, &s.name);
                    if let Some(mut st) = snap.get(&id).cloned().filter(|_| !restarted.contains(&id)) {
                        // A runtime weight stays unless the configured one changed.
                        let configured = u32::from(s.weight);
                        if configured != st.initial_weight {
                            st.weight = configured;
                            st.initial_weight = configured;
                        }
                        st.backup = s.backup;
                        let status = task::with_weight(st.status, st.effective_weight());
                        task::set_status(&mut st, status);
                        map.insert(id, st);
                    }
                }
            }
            for (id, st, _) in &fresh {
                map.insert(id.clone(), st.clone());
            }
            *snap = Arc::new(map);
        });

        let mut jobs: Vec<(ServerId, task::ServerTask)> = fresh
            .into_iter()
            .filter_map(|(id, _, job)| job.map(|j| (id, j)))
            .collect();
        stagger(&mut jobs, spread);
        for (id, job) in jobs {
            let (admin, admin_rx) = watch::channel(task::Admin {
                maint: job.maint,
                ..Default::default()
            });
            let alive = job.alive.clone();
            let handle = tokio::spawn(task::run(job, self.tx.clone(), admin_rx));
            if let Some(r) = keep.get_mut(&id) {
                r.task = Some(Job { handle, admin, alive });
            }
        }
        self.servers = keep;
        self.logs = logs;
    }

    /// Puts a server into maintenance (which also ends drain) or takes it
    /// out, as HAProxy's `set server be/s state maint|ready`: checks pause in
    /// MAINT, and on leaving it a checked server restarts UP with a check at
    /// once. False if unknown.
    pub fn set_maint(&self, id: &ServerId, maint: bool) -> bool {
        let (Some(r), Some(log)) = (
            self.servers.get(id),
            self.logs.get(&id.backend).map(report::SharedLog::get),
        ) else {
            return false;
        };
        match &r.task {
            // Only a real change wakes the task (a wake-up restarts its wait).
            Some(job) => self.order(id, job, |v, _| std::mem::replace(&mut v.maint, maint) != maint),
            None => task::set_unchecked_maint(&self.tx, id, maint, &log),
        }
        true
    }

    /// Sends a check task an order (`change` says whether it changed
    /// anything), numbered so that [`Monitor::settle`] can wait for it.
    fn order(&self, id: &ServerId, job: &Job, change: impl FnOnce(&mut task::Admin, u64) -> bool) {
        let seq = self.admin_seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let sent = job.admin.send_if_modified(|v| {
            let changed = change(v, seq);
            if changed {
                v.seq = seq;
            }
            changed
        });
        if sent {
            self.unsettled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((id.clone(), seq));
        }
    }

    /// Waits (at most a second) until the check tasks have taken in the
    /// orders sent so far, so that the runtime API's next command sees them
    /// done, as HAProxy's CLI does (`set server be/s health down; show stat`
    /// shows DOWN). Orders to unchecked servers are done at once.
    pub async fn settle(&self) {
        let orders = std::mem::take(&mut *self.unsettled.lock().unwrap_or_else(|e| e.into_inner()));
        if orders.is_empty() {
            return;
        }
        let mut rx = self.tx.subscribe();
        let all = rx.wait_for(|snap| {
            orders
                .iter()
                .all(|(id, seq)| snap.get(id).is_none_or(|st| st.admin_seq >= *seq))
        });
        if tokio::time::timeout(Duration::from_secs(1), all).await.is_err() {
            tracing::debug!("a check task took more than 1 s to take in a runtime order");
        }
    }

    /// Changes a server's state for the runtime API and logs it; `log`
    /// says whether HAProxy would have: None never, else the reason.
    fn admin_update(
        &self,
        id: &ServerId,
        f: impl FnOnce(&mut ServerState),
        log: impl FnOnce(&report::Change) -> Option<&'static str>,
    ) -> bool {
        let Some(bl) = self
            .logs
            .get(&id.backend)
            .filter(|_| self.servers.contains_key(id))
            .map(report::SharedLog::get)
        else {
            return false;
        };
        match task::runtime_update(&self.tx, id, f) {
            Some(c) => {
                if let Some(reason) = log(&c) {
                    bl.report(id, &c, reason);
                }
                true
            }
            None => false,
        }
    }

    /// `set server B/S state ready|drain|maint`, in HAProxy's order
    /// (srv_adm_set_*): a server leaving maintenance for DRAIN never shows
    /// READY in between, and one drained then put in maintenance says only
    /// that it goes DOWN for maintenance (entering it ends the drain
    /// silently). False if unknown.
    pub fn set_state(&self, id: &ServerId, state: crate::runtime::AdminState) -> bool {
        use crate::runtime::AdminState;
        match state {
            AdminState::Ready => self.set_maint(id, false) && self.set_drain(id, false),
            AdminState::Drain => self.set_drain(id, true) && self.set_maint(id, false),
            AdminState::Maint => self.set_maint(id, true),
        }
    }

    /// `set server B/S weight`: the weight traffic follows from now on (the
    /// configured one stays the initial weight). HAProxy logs nothing for it
    /// but what it causes: the backend left without a server, a drained
    /// server "remains in forced drain mode". False if unknown.
    pub fn set_weight(&self, id: &ServerId, weight: u32) -> bool {
        self.admin_update(id, |st| st.weight = weight, |_| Some(""))
    }

    /// `set server B/S state drain` (true) or its end (false). In
    /// maintenance the flag is kept silently for when it ends. False if
    /// unknown.
    pub fn set_drain(&self, id: &ServerId, drain: bool) -> bool {
        self.admin_update(
            id,
            |st| st.drain = drain,
            |c| (c.old.drain != c.new.drain).then_some(""),
        )
    }

    /// `enable|disable health B/S`: checks resume or pause; the state
    /// stays, and HAProxy logs nothing. False if unknown.
    pub fn set_checks(&self, id: &ServerId, enabled: bool) -> bool {
        let Some(r) = self.servers.get(id) else {
            return false;
        };
        if let Some(job) = &r.task {
            self.order(id, job, |v, _| {
                std::mem::replace(&mut v.checks_off, !enabled) == enabled
            });
        }
        task::runtime_update(&self.tx, id, |st| st.checks_enabled = enabled).is_some()
    }

    /// `set server B/S health up|stopping|down`: the check counter is set
    /// as if the checks had said so; the next check goes on from there. On a
    /// server in maintenance it changes nothing. False if unknown.
    pub fn force_health(&self, id: &ServerId, health: ForcedHealth) -> bool {
        let Some(r) = self.servers.get(id) else {
            return false;
        };
        match &r.task {
            Some(job) => {
                self.order(id, job, |v, seq| {
                    v.forced = Some((seq, health));
                    true
                });
                true
            }
            None => self.admin_update(
                id,
                |st| {
                    if st.status != Status::Maint {
                        let forced = match health {
                            ForcedHealth::Up => Status::Up,
                            ForcedHealth::Stopping => Status::Nolb,
                            ForcedHealth::Down => Status::Down,
                        };
                        task::set_status(st, forced);
                    }
                },
                |c| task::op_changed(c).then_some(task::FORCED_REASON),
            ),
        }
    }

    /// Stops every check task; the last snapshot stays readable.
    pub fn stop(&mut self) {
        for r in self.servers.values_mut() {
            if let Some(job) = r.task.take() {
                job.stop();
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// HAProxy's `start_checks()`: the n-th of N new checks first runs after
/// `max(mininter, its interval) * n / N`, mininter being the smallest
/// interval of at least 1s, so checks don't fire in lockstep.
fn stagger(jobs: &mut [(ServerId, task::ServerTask)], spread: u32) {
    let first_interval = |t: &task::ServerTask| {
        let s = &t.settings;
        state::Health::starting(s.rise, s.fall).interval(s.inter, s.fastinter, s.downinter)
    };
    let min = jobs
        .iter()
        .map(|(_, t)| first_interval(t))
        .filter(|i| *i >= Duration::from_secs(1))
        .min()
        .unwrap_or(Duration::ZERO);
    let n = u32::try_from(jobs.len()).unwrap_or(u32::MAX).max(1);
    for (pos, (id, t)) in jobs.iter_mut().enumerate() {
        let own = min.max(first_interval(t));
        let own = state::spread(own, spread, task::random(id));
        t.first_delay = own * u32::try_from(pos).unwrap_or(u32::MAX) / n;
    }
}

#[cfg(test)]
mod tests;

//! A backend at run time: its servers, their live connection counts, the
//! algorithm's state and the wait queue, all under one short-held lock.
//!
//! A session gets a [`SlotGuard`] (a reserved connection slot on one server)
//! from [`BackendRt::acquire`], directly or after queueing; dropping the guard
//! frees the slot and hands it to the oldest eligible waiter at once, so a
//! queued session never waits for a slot that is free.
use std::{
    net::IpAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::sync::{oneshot, watch};

use super::{
    ServerAvailability,
    queue::{Grant, Position, Queue},
    select::{self, Candidate, Consistent, LeastConn, Rng, SmoothRr},
    stats::{BackendStats, Gauge, ServerCounters, ServerStats},
};
use crate::config::{Backend, BackendTimeouts, Balance, HashType, OnMarkedDown, PortSpec, ProxyProtocol};

/// Why a session closed from outside: HAProxy's termination letters.
pub const KILL_DOWN: u8 = b'D';
pub const KILL_UP: u8 = b'U';

pub struct ServerRt {
    /// Shared, not copied: every session's log record and `show sess` line names it.
    pub name: Arc<str>,
    pub addr: IpAddr,
    pub port: PortSpec,
    pub config_weight: u32,
    pub backup: bool,
    /// `disabled` in the config: in maintenance whatever the health says.
    pub disabled: bool,
    /// None (or `maxconn 0`): unlimited.
    pub maxconn: Option<u32>,
    /// `maxqueue` (not enforced; `connslots` reads it).
    pub maxqueue: Option<u32>,
    pub send_proxy: Option<ProxyProtocol>,
    pub shutdown_on_down: bool,
    pub counters: Arc<ServerCounters>,
    /// Bumped to close this server's sessions; the value is the letter.
    pub kill: watch::Sender<(u64, u8)>,
}

impl ServerRt {
    /// The port to connect to: fixed, or the client's destination port mapped.
    pub fn port_for(&self, dst_port: u16) -> Option<u16> {
        match self.port {
            PortSpec::Fixed(p) => Some(p),
            PortSpec::Offset(off) => u16::try_from(i32::from(dst_port) + off).ok().filter(|p| *p != 0),
        }
    }
}

struct State {
    cur: Vec<u32>,
    rr: SmoothRr,
    lc: LeastConn,
    consistent: Consistent,
    rng: Rng,
    queue: Queue,
    /// Usability as last seen by [`BackendRt::refresh`], to spot transitions.
    last_usable: Vec<bool>,
    /// `recalls_backups` as last seen, to close the backups' sessions once.
    recalled: bool,
    /// Each server's (up, live weight) from the `ServerAvailability`, read
    /// again only when its version moves: a pick reads this, not a map keyed
    /// by names.
    avail: Vec<(bool, u32)>,
    avail_version: Option<u64>,
}

pub struct BackendRt {
    /// Shared, not copied: every session's log record names it.
    pub name: Arc<str>,
    pub balance: Balance,
    pub hash_type: HashType,
    pub retries: u32,
    /// `option redispatch [<interval>]`; None when off.
    pub redispatch: Option<i64>,
    pub timeouts: BackendTimeouts,
    pub tcpka: bool,
    pub servers: Vec<ServerRt>,
    names: Vec<String>,
    avail: Arc<dyn ServerAvailability>,
    state: Mutex<State>,
    /// Sessions on the backend, queued ones included (beconn).
    pub beconn: Gauge,
    pub queued_any: Gauge,
    pub stot: AtomicU64,
    pub nosrv: AtomicU64,
    pub queue_timeouts: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireError {
    /// No usable server at all.
    NoServer,
    /// Waited in the queue past `timeout queue`.
    QueueTimeout,
}

/// Queue figures for the log line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Queued {
    /// The session went through a queue (else Tw is 0).
    pub waited: bool,
    pub srv_queue: u64,
    pub backend_queue: u64,
}

/// A reserved slot on one server; dropping it frees the slot.
pub struct SlotGuard {
    be: Arc<BackendRt>,
    pub idx: usize,
}

impl SlotGuard {
    pub fn server(&self) -> &ServerRt {
        &self.be.servers[self.idx]
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut st = self.be.lock();
        self.be.release_locked(&mut st, self.idx);
    }
}

/// A place in the queue. Dropped before its grant was taken (timeout, task
/// cancelled), it leaves the queue or gives back the slot it was granted, so
/// no slot leaks whatever the session does.
struct Ticket {
    be: Arc<BackendRt>,
    id: u64,
    rx: oneshot::Receiver<Grant>,
    done: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.be.lock();
        match st.queue.remove(self.id) {
            Some(target) => self.be.dequeued(target),
            // Already served: the grant is in the channel (sent under the lock).
            None => {
                if let Ok(Grant::Server(i)) = self.rx.try_recv() {
                    self.be.release_locked(&mut st, i);
                }
            }
        }
    }
}

enum Pick {
    Server(usize),
    /// Every candidate is full: wait, for this server or any.
    Full(Option<usize>),
    None,
}

impl BackendRt {
    pub fn new(be: &Backend, avail: Arc<dyn ServerAvailability>, seed: u64) -> BackendRt {
        let servers: Vec<ServerRt> = be
            .servers
            .iter()
            .map(|s| ServerRt {
                name: s.name.as_str().into(),
                addr: s.addr,
                port: s.port,
                config_weight: u32::from(s.weight),
                backup: s.backup,
                disabled: s.disabled,
                maxconn: s.maxconn.filter(|m| *m > 0),
                maxqueue: s.maxqueue.filter(|m| *m > 0),
                send_proxy: s.send_proxy,
                shutdown_on_down: s.on_marked_down == Some(OnMarkedDown::ShutdownSessions),
                counters: Arc::new(ServerCounters::default()),
                kill: watch::channel((0, 0)).0,
            })
            .collect();
        let n = servers.len();
        let mut rt = BackendRt {
            name: be.name.as_str().into(),
            balance: be.balance,
            hash_type: be.hash_type,
            retries: be.retries,
            redispatch: be.redispatch,
            timeouts: be.timeouts.clone(),
            tcpka: be.tcpka,
            names: servers.iter().map(|s| s.name.to_string()).collect(),
            servers,
            avail,
            state: Mutex::new(State {
                cur: vec![0; n],
                rr: SmoothRr::default(),
                lc: LeastConn::default(),
                consistent: Consistent::default(),
                rng: Rng::new(seed),
                queue: Queue::default(),
                last_usable: vec![false; n],
                recalled: false,
                avail: vec![(false, 0); n],
                avail_version: None,
            }),
            beconn: Gauge::default(),
            queued_any: Gauge::default(),
            stot: AtomicU64::new(0),
            nosrv: AtomicU64::new(0),
            queue_timeouts: AtomicU64::new(0),
        };
        if be.disabled {
            // A disabled backend has no server to offer.
            rt.servers.iter_mut().for_each(|s| s.config_weight = 0);
        }
        let mut st = rt.lock();
        st.last_usable = (0..n).map(|i| rt.usable(&st, i)).collect();
        drop(st);
        rt
    }

    /// A poisoned lock only means a panic elsewhere while holding it; the
    /// counts it protects are still the best we have. Whoever holds the state
    /// sees the servers' availability as of now.
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let version = self.avail.version();
        if version.is_none() || version != st.avail_version {
            for (i, s) in self.servers.iter().enumerate() {
                st.avail[i] = (
                    self.avail.usable(&self.name, &s.name),
                    self.avail.weight(&self.name, &s.name).unwrap_or(s.config_weight),
                );
            }
            st.avail_version = version;
        }
        st
    }

    /// The weight the algorithm uses now: the effective one the health
    /// state hands over, except that static-rr keeps the configured one.
    fn weight(&self, st: &State, i: usize) -> u32 {
        let s = &self.servers[i];
        if matches!(self.balance, Balance::StaticRr) && st.avail[i].1 > 0 {
            return s.config_weight;
        }
        st.avail[i].1
    }

    /// Up and with an effective weight. The health state already gave 0 to
    /// a draining server and to the backups that must wait
    /// (`health::effective_weights`, the one place of that rule).
    fn usable(&self, st: &State, i: usize) -> bool {
        !self.servers[i].disabled && st.avail[i].0 && st.avail[i].1 > 0
    }

    fn full(&self, st: &State, i: usize) -> bool {
        self.servers[i].maxconn.is_some_and(|m| st.cur[i] >= m)
    }

    /// The servers the algorithm chooses from: the usable ones (which are
    /// the backups only when no active server is).
    fn pool(&self, st: &State) -> Vec<Candidate> {
        (0..self.servers.len())
            .filter(|&i| self.usable(st, i))
            .map(|i| Candidate {
                idx: i,
                weight: self.weight(st, i),
                cur: st.cur[i],
            })
            .collect()
    }

    fn pick(&self, st: &mut State, client: IpAddr, exclude: Option<usize>) -> Pick {
        let mut pool = self.pool(st);
        // Redispatch: anything but the server that just failed, if there is another.
        if let Some(x) = exclude
            && pool.iter().any(|c| c.idx != x)
        {
            pool.retain(|c| c.idx != x);
        }
        if pool.is_empty() {
            return Pick::None;
        }
        if matches!(self.balance, Balance::Source) {
            // Deterministic: the hash decides, full or not; a full server's
            // clients wait in its own queue.
            let h = select::source_hash(client);
            let chosen = match self.hash_type {
                HashType::MapBased => select::map_based(&pool, h),
                HashType::Consistent => st.consistent.pick(&self.names, &pool, h),
            };
            return match chosen {
                Some(i) if self.full(st, i) => Pick::Full(Some(i)),
                Some(i) => Pick::Server(i),
                None => Pick::None,
            };
        }
        let free: Vec<Candidate> = pool.iter().copied().filter(|c| !self.full(st, c.idx)).collect();
        if free.is_empty() {
            return Pick::Full(None);
        }
        let chosen = match self.balance {
            Balance::RoundRobin | Balance::Layer7 | Balance::StaticRr | Balance::Source => st.rr.pick(&free),
            Balance::LeastConn => st.lc.pick(&free),
            Balance::First => select::first(&free),
            Balance::Random(draws) => select::random(&free, draws, &mut st.rng),
        };
        chosen.map_or(Pick::None, Pick::Server)
    }

    fn take_slot(&self, st: &mut State, i: usize) {
        st.cur[i] += 1;
        let c = &self.servers[i].counters;
        c.scur.inc();
        c.stot.fetch_add(1, Relaxed);
    }

    fn release_locked(&self, st: &mut State, i: usize) {
        st.cur[i] = st.cur[i].saturating_sub(1);
        self.servers[i].counters.scur.dec();
        self.dispatch(st, i);
    }

    fn dequeued(&self, target: Option<usize>) {
        match target {
            Some(t) => self.servers[t].counters.qcur.dec(),
            None => self.queued_any.dec(),
        }
    }

    /// Gives free slots of server `i` to the oldest eligible waiters.
    fn dispatch(&self, st: &mut State, i: usize) {
        if !self.usable(st, i) {
            return;
        }
        let any_ok = self.pool(st).iter().any(|c| c.idx == i);
        while !self.full(st, i) {
            let Some(w) = st.queue.pop_for(i, any_ok) else {
                break;
            };
            self.dequeued(w.target);
            self.take_slot(st, i);
            if w.tx.send(Grant::Server(i)).is_err() {
                // The waiter left between its timeout and its removal.
                st.cur[i] = st.cur[i].saturating_sub(1);
                self.servers[i].counters.scur.dec();
                self.servers[i].counters.stot.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Gets a slot on a server, waiting in the queue if every candidate is
    /// full. `exclude`: the server a redispatch moves away from.
    pub async fn acquire(
        self: &Arc<Self>,
        client: IpAddr,
        exclude: Option<usize>,
    ) -> Result<(SlotGuard, Queued), AcquireError> {
        let mut queued = Queued::default();
        // The queue timeout counts from the first time in a queue, across repicks.
        let deadline = self
            .timeouts
            .queue
            .or(self.timeouts.connect)
            .filter(|d| !d.is_zero())
            .map(|d| tokio::time::Instant::now() + d);
        loop {
            let (mut ticket, pos, target) = {
                let mut st = self.lock();
                match self.pick(&mut st, client, exclude) {
                    Pick::None => return Err(AcquireError::NoServer),
                    Pick::Server(i) => {
                        self.take_slot(&mut st, i);
                        drop(st);
                        return Ok(self.granted(i, queued));
                    }
                    Pick::Full(target) => {
                        let (id, rx, pos) = st.queue.push(target);
                        match target {
                            Some(t) => self.servers[t].counters.qcur.inc(),
                            None => self.queued_any.inc(),
                        };
                        let ticket = Ticket {
                            be: self.clone(),
                            id,
                            rx,
                            done: false,
                        };
                        (ticket, pos, target)
                    }
                }
            };
            queued.waited = true;
            record_position(&mut queued, target, pos);
            let got = match deadline {
                Some(d) => tokio::time::timeout_at(d, &mut ticket.rx).await,
                None => Ok((&mut ticket.rx).await),
            };
            match got {
                Ok(Ok(Grant::Server(i))) => {
                    ticket.done = true;
                    return Ok(self.granted(i, queued));
                }
                // Repick: the bound server went down. A closed channel cannot
                // happen while the backend lives; choosing again is safe.
                Ok(Ok(Grant::Repick)) | Ok(Err(_)) => {
                    ticket.done = true;
                    continue;
                }
                Err(_elapsed) => {
                    // Dropping the ticket leaves the queue, or, if the grant
                    // raced the timeout, takes the slot after all.
                    let mut st = self.lock();
                    if let Some(t) = st.queue.remove(ticket.id) {
                        self.dequeued(t);
                        ticket.done = true;
                        self.queue_timeouts.fetch_add(1, Relaxed);
                        return Err(AcquireError::QueueTimeout);
                    }
                    ticket.done = true;
                    if let Ok(Grant::Server(i)) = ticket.rx.try_recv() {
                        drop(st);
                        return Ok(self.granted(i, queued));
                    }
                    drop(st);
                    continue;
                }
            }
        }
    }

    /// A slot on server `i` is this session's (already counted in `cur`).
    fn granted(self: &Arc<Self>, i: usize, queued: Queued) -> (SlotGuard, Queued) {
        self.stot.fetch_add(1, Relaxed);
        (
            SlotGuard {
                be: self.clone(),
                idx: i,
            },
            queued,
        )
    }

    /// Re-reads server availability: wakes waiters that can now be served,
    /// sends waiters bound to a server that went down to choose again, and
    /// closes sessions as `on-marked-down` / `on-marked-up` ask.
    pub fn refresh(&self) {
        let mut st = self.lock();
        let now: Vec<bool> = (0..self.servers.len()).map(|i| self.usable(&st, i)).collect();
        let up_now: Vec<bool> = st.avail.iter().map(|a| a.0).collect();
        for (i, (&was, &is)) in st.last_usable.clone().iter().zip(&now).enumerate() {
            let s = &self.servers[i];
            if was && !is {
                // Sessions go only when the server went down, not when it
                // drains or a backup is relieved by an active server.
                if s.shutdown_on_down && !up_now[i] {
                    kill(s, KILL_DOWN);
                }
                for w in st.queue.drain_bound_to(i) {
                    s.counters.qcur.dec();
                    let _ = w.tx.send(Grant::Repick);
                }
            }
        }
        // The health state's rule (`health::recalls_backups`), acted on when it turns true.
        let recall = self.avail.recalls_backups(&self.name);
        if recall && !st.recalled {
            for s in self.servers.iter().filter(|s| s.backup) {
                kill(s, KILL_UP);
            }
        }
        st.recalled = recall;
        st.last_usable = now;
        for i in 0..self.servers.len() {
            self.dispatch(&mut st, i);
        }
    }

    /// HAProxy's `nbsrv`: the usable active servers, or with none, the usable backups.
    pub fn nbsrv(&self) -> u32 {
        let st = self.lock();
        let count = |backup: bool| {
            (0..self.servers.len())
                .filter(|&i| self.servers[i].backup == backup && self.usable(&st, i))
                .count() as u32
        };
        crate::health::nbsrv_of(count(false), count(true))
    }

    /// HAProxy's `connslots`: over the servers not down, free connections
    /// and queue places (`maxconn - cur + maxqueue - queued`); -1 as soon as
    /// one has no `maxconn` or no `maxqueue`.
    pub fn connslots(&self) -> i64 {
        let st = self.lock();
        let mut total = 0i64;
        for (i, s) in self.servers.iter().enumerate() {
            let up = st.avail.get(i).is_some_and(|a| a.0) && !s.disabled;
            if !up {
                continue;
            }
            let (Some(maxconn), Some(maxqueue)) = (s.maxconn, s.maxqueue) else {
                return -1;
            };
            let cur = i64::from(st.cur.get(i).copied().unwrap_or(0));
            total += i64::from(maxconn) - cur + i64::from(maxqueue) - s.counters.qcur.get() as i64;
        }
        total
    }

    /// Closes every session of every server (shutdown).
    pub fn kill_all(&self, letter: u8) {
        for s in &self.servers {
            kill(s, letter);
        }
    }

    pub fn stats(&self) -> BackendStats {
        let st = self.lock();
        let servers: Vec<ServerStats> = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let c = &s.counters;
                ServerStats {
                    name: s.name.to_string(),
                    usable: self.usable(&st, i),
                    backup: s.backup,
                    weight: self.weight(&st, i),
                    maxconn: s.maxconn,
                    scur: c.scur.get(),
                    smax: c.scur.max(),
                    qcur: c.qcur.get(),
                    stot: c.stot.load(Relaxed),
                    bin: c.bin.load(Relaxed),
                    bout: c.bout.load(Relaxed),
                    econ: c.econ.load(Relaxed),
                    wretr: c.wretr.load(Relaxed),
                    wredis: c.wredis.load(Relaxed),
                    cli_abrt: c.cli_abrt.load(Relaxed),
                    srv_abrt: c.srv_abrt.load(Relaxed),
                    killed: c.killed.load(Relaxed),
                }
            })
            .collect();
        drop(st);
        let sum = |f: fn(&ServerStats) -> u64| servers.iter().map(f).sum::<u64>();
        BackendStats {
            name: self.name.to_string(),
            scur: self.beconn.get(),
            qcur: self.queued_any.get() + sum(|s| s.qcur),
            stot: self.stot.load(Relaxed),
            bin: sum(|s| s.bin),
            bout: sum(|s| s.bout),
            econ: sum(|s| s.econ),
            wretr: sum(|s| s.wretr),
            wredis: sum(|s| s.wredis),
            nosrv: self.nosrv.load(Relaxed),
            queue_timeouts: self.queue_timeouts.load(Relaxed),
            servers,
        }
    }

    /// Queue lengths now, for the log line's srv_queue / backend_queue.
    pub fn connections_on(&self, i: usize) -> u64 {
        u64::from(self.lock().cur.get(i).copied().unwrap_or(0))
    }

    /// After the `retries_done`-th failed connect to server `idx`: whether to
    /// move to another server rather than retry this one. HAProxy 2.6's rule
    /// (stream.c, `sess_update_st_cer`): with `option redispatch`, when the
    /// server is down, on the retries its interval names (the last one by
    /// default), or at once on every retry when the algorithm does not hash
    /// and more than one active server is up. Checked against HAProxy 2.6
    /// itself: `balance first` with a dead and a live server answers at once
    /// with `wredis` 1 and no retry. Never when there is nowhere else to go.
    pub fn redispatches_now(&self, retries_done: u32, idx: usize) -> bool {
        let Some(after) = self.redispatch else {
            return false;
        };
        let st = self.lock();
        if !self.pool(&st).iter().any(|c| c.idx != idx) {
            return false;
        }
        let done = i64::from(retries_done);
        let every = if after > 0 {
            after
        } else {
            i64::from(self.retries) + 1 + after
        };
        let hashes = matches!(self.balance, Balance::Source | Balance::Random(_) | Balance::Layer7);
        let active_up = (0..self.servers.len())
            .filter(|&i| !self.servers[i].backup && self.usable(&st, i))
            .count();
        !self.usable(&st, idx) || (every > 0 && done % every == 0) || (!hashes && active_up > 1)
    }

    /// The `timeout queue` fallback HAProxy uses, for callers that log it.
    pub fn queue_timeout(&self) -> Option<Duration> {
        self.timeouts.queue.or(self.timeouts.connect)
    }
}

fn record_position(q: &mut Queued, target: Option<usize>, pos: Position) {
    match target {
        Some(_) => q.srv_queue = q.srv_queue.max(pos.ahead),
        None => q.backend_queue = q.backend_queue.max(pos.ahead),
    }
}

fn kill(s: &ServerRt, letter: u8) {
    s.kill.send_modify(|(generation, l)| {
        *generation += 1;
        *l = letter;
    });
}

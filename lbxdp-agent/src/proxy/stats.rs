//! The proxy's counters: live atomics updated by the sessions, and the
//! serializable snapshot ([`ProxyStats`]) the agent prints or serves as JSON.
//! Names follow HAProxy's `show stat` columns where one exists (scur, stot,
//! bin, bout, econ, wretr, wredis, qcur).
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// A gauge that counts up and down; its high-water mark is kept too.
#[derive(Debug, Default)]
pub struct Gauge {
    cur: AtomicU64,
    max: AtomicU64,
}

impl Gauge {
    pub fn inc(&self) -> u64 {
        let now = self.cur.fetch_add(1, Relaxed) + 1;
        self.max.fetch_max(now, Relaxed);
        now
    }
    pub fn dec(&self) {
        // Saturating: a bug elsewhere must not wrap the gauge to 2^64.
        let _ = self.cur.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
    }
    pub fn get(&self) -> u64 {
        self.cur.load(Relaxed)
    }
    pub fn max(&self) -> u64 {
        self.max.load(Relaxed)
    }
}

/// Counters of one server (and, summed, of a backend).
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Sessions on the server now, connecting included.
    pub scur: Gauge,
    /// Sessions waiting in the queue for this server.
    pub qcur: Gauge,
    /// Sessions ever sent to the server.
    pub stot: AtomicU64,
    /// Bytes from clients to the server.
    pub bin: AtomicU64,
    /// Bytes from the server to clients.
    pub bout: AtomicU64,
    /// Failed connection attempts.
    pub econ: AtomicU64,
    /// Connection retries.
    pub wretr: AtomicU64,
    /// Sessions moved to another server on their last retry.
    pub wredis: AtomicU64,
    /// Sessions the client aborted (reset, or client timeout).
    pub cli_abrt: AtomicU64,
    /// Sessions the server aborted (reset, or server timeout).
    pub srv_abrt: AtomicU64,
    /// Sessions closed because the server went down (`on-marked-down`) or an
    /// active server came back (`on-marked-up`).
    pub killed: AtomicU64,
}

impl ServerCounters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
}

/// Counters of one frontend.
#[derive(Debug, Default)]
pub struct FrontendCounters {
    pub scur: Gauge,
    pub stot: AtomicU64,
    pub bin: AtomicU64,
    pub bout: AtomicU64,
    /// Connections refused: no backend, no server, queue timeout.
    pub denied: AtomicU64,
    /// Connections a `tcp-request connection reject|silent-drop` rule closed (HAProxy's `dcon`).
    pub denied_conn: AtomicU64,
    /// accept() errors (EMFILE and the like).
    pub accept_errors: AtomicU64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServerStats {
    pub name: String,
    pub usable: bool,
    pub backup: bool,
    pub weight: u32,
    pub maxconn: Option<u32>,
    pub scur: u64,
    pub smax: u64,
    pub qcur: u64,
    pub stot: u64,
    pub bin: u64,
    pub bout: u64,
    pub econ: u64,
    pub wretr: u64,
    pub wredis: u64,
    pub cli_abrt: u64,
    pub srv_abrt: u64,
    pub killed: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BackendStats {
    pub name: String,
    /// Sessions on the backend now, queued ones included (HAProxy's beconn).
    pub scur: u64,
    /// Sessions waiting in the backend's queue.
    pub qcur: u64,
    pub stot: u64,
    pub bin: u64,
    pub bout: u64,
    pub econ: u64,
    pub wretr: u64,
    pub wredis: u64,
    /// Sessions that found no usable server.
    pub nosrv: u64,
    /// Sessions that waited longer than `timeout queue`.
    pub queue_timeouts: u64,
    pub servers: Vec<ServerStats>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FrontendStats {
    pub name: String,
    pub scur: u64,
    pub smax: u64,
    pub stot: u64,
    pub bin: u64,
    pub bout: u64,
    pub denied: u64,
    pub denied_conn: u64,
    pub accept_errors: u64,
}

/// The whole proxy at one instant (each counter read once, not atomically
/// together: totals can be off by the sessions that moved meanwhile).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProxyStats {
    /// Sessions open now, process-wide (HAProxy's actconn).
    pub actconn: u64,
    pub cum_conns: u64,
    pub frontends: Vec<FrontendStats>,
    pub backends: Vec<BackendStats>,
}

impl ProxyStats {
    pub fn server(&self, backend: &str, server: &str) -> Option<&ServerStats> {
        self.backends
            .iter()
            .find(|b| b.name == backend)?
            .servers
            .iter()
            .find(|s| s.name == server)
    }

    pub fn frontend(&self, name: &str) -> Option<&FrontendStats> {
        self.frontends.iter().find(|f| f.name == name)
    }
}

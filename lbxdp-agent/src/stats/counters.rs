//! What an engine counts, in HAProxy's terms, before it becomes rows of the
//! stats table. Each engine fills what it can know; None is a column that
//! mode can't know, shown empty (never a made-up 0).
use std::collections::HashMap;

/// Counters of one frontend (HAProxy's FRONTEND row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontendCounters {
    /// Sessions now (XDP: flows in the flow table for this frontend, when known).
    pub scur: Option<u64>,
    pub smax: Option<u64>,
    /// Sessions ever accepted (XDP: new flows).
    pub stot: Option<u64>,
    pub bin: Option<u64>,
    pub bout: Option<u64>,
    /// Requests or connections denied (proxy: refused for want of a server).
    pub dreq: Option<u64>,
    /// Connections closed by a `tcp-request connection` rule (HAProxy's `dcon`).
    pub dcon: Option<u64>,
    /// Request errors (XDP: packets dropped for want of a server, port, flow, neighbour).
    pub ereq: Option<u64>,
    /// Session rate over the last second, and its max.
    pub rate: Option<u64>,
    pub rate_max: Option<u64>,
}

/// Counters of one server (its row), and summed, of its backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerCounters {
    pub qcur: Option<u64>,
    pub qmax: Option<u64>,
    pub scur: Option<u64>,
    pub smax: Option<u64>,
    /// Sessions ever sent to it (XDP: new flows).
    pub stot: Option<u64>,
    /// Times the balancer picked it (XDP: new flows, as stot).
    pub lbtot: Option<u64>,
    pub bin: Option<u64>,
    pub bout: Option<u64>,
    pub econ: Option<u64>,
    pub eresp: Option<u64>,
    pub wretr: Option<u64>,
    pub wredis: Option<u64>,
    pub cli_abrt: Option<u64>,
    pub srv_abrt: Option<u64>,
    pub rate: Option<u64>,
    pub rate_max: Option<u64>,
    /// Seconds since the last session it was given; None: never.
    pub lastsess: Option<u64>,
}

/// Counters of a backend beyond the sum of its servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendCounters {
    pub qcur: Option<u64>,
    pub qmax: Option<u64>,
    /// The backend's own maxima (its servers' don't add up to them).
    pub smax: Option<u64>,
    pub rate_max: Option<u64>,
    /// Sessions that found no server (XDP: packets dropped for want of one).
    pub nosrv: Option<u64>,
}

/// XDP-only figures, for lbxdp's own Prometheus metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Packets by the action the program took: "tx", "redirect", "pass", "drop".
    pub actions: Vec<(&'static str, u64)>,
    /// Dropped packets by reason ("no_server", "no_port", "no_flow", "no_neigh", "too_big").
    pub drops: Vec<(&'static str, u64)>,
    /// Packets seen, by protocol ("ipv4", "tcp", ...).
    pub protocols: Vec<(&'static str, u64)>,
}

/// One engine's counters at one instant, keyed by names from the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub frontends: HashMap<String, FrontendCounters>,
    pub backends: HashMap<String, BackendCounters>,
    /// By (backend, server).
    pub servers: HashMap<(String, String), ServerCounters>,
    /// Sessions open now, process-wide (HAProxy's CurrConns).
    pub current_conns: Option<u64>,
    /// Sessions since start (HAProxy's CumConns).
    pub cum_conns: Option<u64>,
    pub xdp: Option<XdpCounters>,
}

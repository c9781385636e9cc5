//! The resolved configuration: what the datapath and the proxy read. Every
//! default is applied, every name resolved, every time a Duration.
use std::{net::IpAddr, ops::RangeInclusive, time::Duration};

use super::diag::Origin;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub global: Global,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
}

impl Config {
    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| b.name == name)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Global {
    pub maxconn: Option<u32>,
    pub daemon: bool,
    pub master_worker: bool,
    pub pidfile: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub chroot: Option<String>,
    pub logs: Vec<LogTarget>,
    pub stats_sockets: Vec<StatsSocket>,
    pub stats_timeout: Option<Duration>,
    pub nbthread: Option<u32>,
    pub node: Option<String>,
    pub description: Option<String>,
    /// `spread-checks`: each check interval is moved by up to this percent
    /// (0..=50) either way, so checks drift apart; None or 0 keeps them exact.
    pub spread_checks: Option<u32>,
    /// Things HAProxy checks against the machine at start (users, groups,
    /// certificate files); the I/O layer checks them, not this pure module.
    pub env_refs: Vec<EnvRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvRefKind {
    User,
    Group,
    File,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRef {
    pub kind: EnvRefKind,
    pub value: String,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    /// As written: `127.0.0.1`, `127.0.0.1:514`, `/dev/log`, `stdout`, ...
    pub address: String,
    pub facility: String,
    pub level: Option<String>,
    pub min_level: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSocket {
    pub address: String,
    /// Octal permission bits from `mode`.
    pub mode: Option<u32>,
    pub level: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Tcp,
    /// Accepted and balanced at layer 4, with a warning.
    Http,
}

/// One listening address: `ip` None is HAProxy's `*` / empty address (any IPv4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindAddr {
    pub ip: Option<IpAddr>,
    pub ports: RangeInclusive<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub addr: BindAddr,
    pub interface: Option<String>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frontend {
    pub name: String,
    pub mode: Mode,
    pub binds: Vec<Bind>,
    /// The backend connections go to: the first `use_backend` without a
    /// condition, else `default_backend`, else the listen section itself.
    /// None: HAProxy would refuse the connections.
    pub backend: Option<String>,
    pub maxconn: Option<u32>,
    pub timeout_client: Option<Duration>,
    pub timeout_client_fin: Option<Duration>,
    pub tcplog: bool,
    pub dontlognull: bool,
    pub tcpka: bool,
    pub logs: Vec<LogTarget>,
    pub disabled: bool,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    #[default]
    RoundRobin,
    StaticRr,
    LeastConn,
    First,
    Source,
    /// `random(draws)`; plain `random` is 2 draws.
    Random(u32),
    /// A layer-7 algorithm (uri, hdr, ...): HAProxy itself falls back to
    /// round robin in TCP mode, and so does lbxdp.
    Layer7,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashType {
    #[default]
    MapBased,
    Consistent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpCheckStep {
    Connect {
        port: Option<u16>,
        addr: Option<IpAddr>,
        send_proxy: bool,
    },
    Send(Vec<u8>),
    Expect {
        negate: bool,
        kind: ExpectKind,
        pattern: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectKind {
    String,
    Rstring,
    Binary,
    Rbinary,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HealthCheck {
    /// A TCP connect, HAProxy's default.
    #[default]
    Connect,
    TcpCheck(Vec<TcpCheckStep>),
    Http {
        method: String,
        uri: String,
        version: String,
        /// `http-check expect [!] status`: None accepts 2xx and 3xx, as HAProxy does.
        expect_status: Option<StatusExpect>,
    },
}

/// `http-check expect [!] status <codes>`, codes as in "200,301,400-499".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusExpect {
    pub negate: bool,
    pub codes: String,
}

impl StatusExpect {
    pub fn matches(&self, code: u16) -> bool {
        let listed = self.codes.split(',').any(|part| {
            let part = part.trim();
            match part.split_once('-') {
                Some((a, b)) => match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
                    (Ok(a), Ok(b)) => (a..=b).contains(&code),
                    _ => false,
                },
                None => part.parse::<u16>() == Ok(code),
            }
        });
        listed != self.negate
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSettings {
    pub inter: Duration,
    pub fastinter: Duration,
    pub downinter: Duration,
    pub rise: u32,
    pub fall: u32,
    pub port: Option<u16>,
    pub addr: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    V1,
    V2,
}

/// `on-marked-down shutdown-sessions`: a server marked DOWN by its checks
/// has its established connections closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMarkedDown {
    ShutdownSessions,
}

/// `on-marked-up shutdown-backup-sessions`: a server marked UP closes the
/// backup servers' connections, so traffic moves back at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMarkedUp {
    ShutdownBackupSessions,
}

/// The server's port. HAProxy's `addr` alone or `addr:+N` / `addr:-N` map
/// the port the client connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSpec {
    Fixed(u16),
    Offset(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub addr: IpAddr,
    pub port: PortSpec,
    pub weight: u16,
    pub check: Option<CheckSettings>,
    pub backup: bool,
    pub disabled: bool,
    pub maxconn: Option<u32>,
    pub send_proxy: Option<ProxyProtocol>,
    pub on_marked_down: Option<OnMarkedDown>,
    pub on_marked_up: Option<OnMarkedUp>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct BackendTimeouts {
    pub connect: Option<Duration>,
    pub server: Option<Duration>,
    pub queue: Option<Duration>,
    pub check: Option<Duration>,
    pub tunnel: Option<Duration>,
    pub server_fin: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub name: String,
    pub mode: Mode,
    pub balance: Balance,
    pub hash_type: HashType,
    pub servers: Vec<Server>,
    pub health_check: HealthCheck,
    pub timeouts: BackendTimeouts,
    pub fullconn: Option<u32>,
    /// HAProxy's default is 3.
    pub retries: u32,
    /// `option redispatch [<interval>]`: None when off, else the interval
    /// (HAProxy's default -1: the last retry).
    pub redispatch: Option<i64>,
    /// `option allbackups`: with no active server up, every backup takes
    /// traffic, not only the first one.
    pub allbackups: bool,
    pub log_health_checks: bool,
    pub tcpka: bool,
    pub logs: Vec<LogTarget>,
    pub disabled: bool,
    pub origin: Origin,
}

//! The resolved configuration: what the datapath and the proxy read. Every
//! default is applied, every name resolved, every time a Duration.
use std::{net::IpAddr, ops::RangeInclusive, time::Duration};

use super::{
    acl::{Acl, SwitchRule, TcpRule},
    diag::{Diag, Origin},
};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub global: Global,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
    /// What the configuration asks for that lbxdp doesn't do (TLS, PROXY
    /// protocol from clients, transparent or interface-bound sources). HAProxy
    /// accepts these, so `-c` stays valid and warns; the agent refuses to run
    /// a configuration where this isn't empty. Each place is listed once.
    pub refused: Vec<Refusal>,
    /// The files `acl ... -f FILE` read, as written: a reload reads them again.
    pub pattern_files: Vec<String>,
    /// HAProxy's pattern references (`show acl`), by id.
    pub pattern_refs: Vec<super::patref::PatRef>,
    /// The stick tables (`stick-table` in a frontend, backend or listen,
    /// named after it), in the order they were declared.
    pub tables: Vec<super::stick::StickTable>,
    /// `bind` lines of the frontends and listens, and global `stats socket`
    /// lines (HAProxy's CLI listens on them). With none, HAProxy's
    /// `-c` says the file has no error but will not start, and exits 2;
    /// the agent, as HAProxy, refuses to run it.
    pub listeners: usize,
}

/// The refusals `-c` and the agent print one by one; a generated config with
/// `ssl` on thousands of server lines gets these and one line for the rest.
pub const REFUSALS_SHOWN: usize = 100;

impl Config {
    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| b.name == name)
    }

    pub fn table(&self, name: &str) -> Option<&super::stick::StickTable> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// `-c`: a `[WARNING] file:line:` per refused place (HAProxy's verdict stands).
    pub fn refusal_warnings(&self) -> Vec<Diag> {
        self.refusal_diags(
            Refusal::check_warning,
            Diag::warning,
            "lbxdp-agent will refuse to run this configuration",
        )
    }

    /// The running agent: an `[ALERT] file:line:` per refused place.
    pub fn refusal_alerts(&self) -> Vec<Diag> {
        self.refusal_diags(
            Refusal::run_alert,
            Diag::alert,
            "lbxdp-agent refuses to run this configuration",
        )
    }

    fn refusal_diags(&self, each: fn(&Refusal) -> Diag, rest: fn(&Origin, String) -> Diag, verdict: &str) -> Vec<Diag> {
        let mut out: Vec<Diag> = self.refused.iter().take(REFUSALS_SHOWN).map(each).collect();
        if let Some(first) = self.refused.get(REFUSALS_SHOWN) {
            let more = self.refused.len() - REFUSALS_SHOWN;
            out.push(rest(
                &first.origin,
                format!(
                    "and {more} more place(s) from here on ask for what lbxdp doesn't do (TLS, the PROXY protocol \
                     from clients, 'usesrc', 'interface', stats options); {verdict}"
                ),
            ));
        }
        out
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Global {
    pub maxconn: Option<u32>,
    pub daemon: bool,
    /// `master-worker`: the agent runs as a master that supervises a worker
    /// (see `master`).
    pub master_worker: bool,
    /// `master-worker no-exit-on-failure`: the master stays when its last
    /// worker dies, instead of leaving with the worker's code.
    pub master_no_exit_on_failure: bool,
    /// How long a soft stop (SIGUSR1, a takeover's -sf) waits for the open
    /// sessions before closing them; None: as long as they last.
    pub hard_stop_after: Option<Duration>,
    pub pidfile: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub chroot: Option<String>,
    pub logs: Vec<LogTarget>,
    /// `log-tag`: the syslog tag of every proxy without its own.
    pub log_tag: Option<String>,
    pub log_send_hostname: Option<LogHostname>,
    pub stats_sockets: Vec<StatsSocket>,
    pub stats_timeout: Option<Duration>,
    /// `stats maxconn`: clients the stats sockets serve at once. None when
    /// unset; the listener applies HAProxy's default of 10.
    pub stats_maxconn: Option<u32>,
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

/// One `log` line: `log <address> [len N] [format F] [sample R:S] <facility> [level [minlevel]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    /// As written: `127.0.0.1`, `127.0.0.1:514`, `/dev/log`, `stdout`, ...
    pub address: String,
    /// `len`: the longest line sent, header included (80..=65535).
    pub max_len: usize,
    pub format: LogFormat,
    pub sample: Option<LogSample>,
    pub facility: String,
    pub level: Option<String>,
    pub min_level: Option<String>,
    /// The proxy's `log-tag`, else the global one; None sends lbxdp's own
    /// name. Filled in when resolving, since a proxy's tag applies to the
    /// targets it takes from `log global` too.
    pub tag: Option<String>,
    /// Global `log-send-hostname`, filled in when resolving.
    pub hostname: Option<LogHostname>,
}

/// HAProxy's `len` default (MAX_SYSLOG_LEN).
pub const DEFAULT_LOG_LEN: usize = 1024;

/// `log ... format <F>`; `Unspec` is HAProxy's default when none is given:
/// `local`, or `rfc3164` once a host name is to be sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Unspec,
    Local,
    Rfc3164,
    Rfc5424,
    Priority,
    Short,
    Timed,
    Iso,
    Raw,
}

impl LogFormat {
    pub fn from_name(name: &str) -> Option<LogFormat> {
        Some(match name {
            "local" => LogFormat::Local,
            "rfc3164" => LogFormat::Rfc3164,
            "rfc5424" => LogFormat::Rfc5424,
            "priority" => LogFormat::Priority,
            "short" => LogFormat::Short,
            "timed" => LogFormat::Timed,
            "iso" => LogFormat::Iso,
            "raw" => LogFormat::Raw,
            _ => return None,
        })
    }
}

/// `sample <ranges>:<size>`: of each run of `size` lines, only those whose
/// 1-based position falls in one of `ranges` are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSample {
    /// Inclusive (low, high), 1-based, in HAProxy's order (sorted, not overlapping).
    pub ranges: Vec<(u32, u32)>,
    pub size: u32,
}

/// `log-send-hostname [name]`: without a name, the machine's host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogHostname {
    Machine,
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSocket {
    /// As written: a path (`/var/lib/haproxy/stats`, `unix@/x`) or an
    /// address (`ipv4@127.0.0.1:9999`, `127.0.0.1:9999`, `:9999`).
    pub address: String,
    /// Octal permission bits from `mode`.
    pub mode: Option<u32>,
    /// `user`/`uid`, `group`/`gid`: the socket file's owner.
    pub user: Option<String>,
    pub group: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `level`; HAProxy's default is `operator`.
    pub level: CliLevel,
    /// `maxconn` on the socket line: clients served at once. None when unset
    /// or 0, which HAProxy reads as unset (`stats maxconn` then applies).
    pub maxconn: Option<u32>,
    pub origin: Origin,
}

impl StatsSocket {
    /// An admin-level socket at `address` with no other option: what the
    /// agent opens for its own use (a master's line to its worker, the
    /// master CLI before its `-S` options).
    pub fn admin(address: impl Into<String>, origin: Origin) -> Self {
        Self {
            address: address.into(),
            mode: None,
            user: None,
            group: None,
            uid: None,
            gid: None,
            level: CliLevel::Admin,
            maxconn: None,
            origin,
        }
    }
}

/// The runtime API's access levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum CliLevel {
    User,
    #[default]
    Operator,
    Admin,
}

/// A `mode http` frontend or listen the agent serves itself: HAProxy's
/// stats page (`stats enable`, `stats uri`, ...) and/or its Prometheus
/// exporter (`http-request use-service prometheus-exporter if { path P }`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsPage {
    /// `stats enable` (or any other `stats` keyword, which implies it).
    pub enabled: bool,
    /// `stats uri`; HAProxy's default is `/haproxy?stats`.
    pub uri: String,
    /// `stats refresh`: the page reloads itself this often.
    pub refresh: Option<Duration>,
    /// `stats auth user:password`, each one.
    pub auth: Vec<(String, String)>,
    /// `stats realm`; HAProxy's default is "HAProxy Statistics".
    pub realm: String,
    /// `stats admin if <cond>`: the condition, when it is one lbxdp can
    /// decide (`TRUE`, `LOCALHOST`, `{ src ... }`); admin actions only then.
    pub admin: Option<AdminCond>,
    /// `stats hide-version`.
    pub hide_version: bool,
    /// `stats show-node [name]`, `stats show-desc [text]`, `stats show-legends`.
    /// Without an argument: the global `node` / `description`; an empty
    /// string means the global one is unset too (HAProxy then shows the
    /// host name for the node, nothing for the description).
    pub show_node: Option<String>,
    pub show_desc: Option<String>,
    pub show_legends: bool,
    /// The path `http-request use-service prometheus-exporter if { path P }` serves.
    pub prometheus_path: Option<String>,
}

/// Who may use the stats page's admin actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCond {
    /// `if TRUE`, or any condition that always holds.
    Always,
    /// `if LOCALHOST`: clients from 127.0.0.0/8 or ::1.
    Localhost,
    /// `if { src NET ... }`: clients from these networks (address, prefix length).
    Src(Vec<(IpAddr, u8)>),
    /// `unless`-negated form of the above.
    Not(Box<AdminCond>),
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
    /// HAProxy's proxy id (`id`, else assigned as HAProxy does): `show stat`'s iid.
    pub id: u32,
    pub mode: Mode,
    pub binds: Vec<Bind>,
    /// The backend connections go to when no rule of `switching` applies:
    /// the first `use_backend` without a condition, else `default_backend`,
    /// else the listen section itself. None: HAProxy would refuse the connections.
    pub backend: Option<String>,
    /// `use_backend B if|unless COND` before the first unconditional one, in
    /// order: the first that holds picks the backend.
    pub switching: Vec<SwitchRule>,
    /// `tcp-request connection` rules, in order: the first that applies
    /// decides, before any server is connected to.
    pub tcp_rules: Vec<TcpRule>,
    /// The ACLs the conditions of `switching` and `tcp_rules` point into.
    pub acls: Vec<Acl>,
    pub maxconn: Option<u32>,
    pub timeout_client: Option<Duration>,
    pub timeout_client_fin: Option<Duration>,
    pub tcplog: bool,
    pub dontlognull: bool,
    pub tcpka: bool,
    pub logs: Vec<LogTarget>,
    pub disabled: bool,
    /// Set when the agent serves this section itself (a `mode http` stats
    /// page or Prometheus exporter): neither XDP nor the proxy forwards it.
    pub stats_page: Option<StatsPage>,
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
    /// The port of `addr IP:PORT`: checked when `port` isn't given, before
    /// the server's own port (HAProxy's `srv_check_healthcheck_port()`).
    pub addr_port: Option<u16>,
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

/// `source <addr>[:<port>[-<port>]]` (server, `default-server`, `backend`,
/// `defaults`): the address the balancer connects to the server from.
/// `*` or an empty address is 0.0.0.0 (`::` with `ipv6@`): any local address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAddr {
    pub addr: IpAddr,
    /// None: any port (none written, or port 0). One port is `p..=p`; a range
    /// only comes from a `server`/`default-server` line (HAProxy allows none
    /// in a proxy's `source`) and may start at 0, as HAProxy accepts.
    pub ports: Option<RangeInclusive<u16>>,
}

/// Why a configuration is refused at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unsupported {
    /// `ssl`, `crt`, `crt-list`, `verify`, `ca-file` on `bind`, `server`, `default-server`.
    Tls,
    /// `accept-proxy` on `bind`: the PROXY protocol on the receiving side.
    AcceptProxy,
    /// `source ... usesrc ...`: connecting from a non-local (client's) address.
    Usesrc,
    /// `source ... interface ...`: server connections bound to an interface.
    SourceInterface,
    /// An option on a `stats socket` line the agent's socket can't honour
    /// (`expose-fd listeners`, `process`, `severity-output`, `interface`, ...).
    StatsSocket,
    /// A stats page feature lbxdp's page doesn't have: `stats scope`,
    /// `stats http-request`, a second exporter path.
    StatsPage,
    /// A stats page in a section that forwards traffic too, or a backend's:
    /// HAProxy splits the requests by URI, a layer-4 balancer can't.
    StatsBesideTraffic,
    /// A condition on `stats admin` or on the Prometheus exporter's rule
    /// that lbxdp can't decide: lbxdp knows `TRUE`, `FALSE`, `LOCALHOST`,
    /// `{ src ... }` (admin) and `{ path P }` (exporter).
    Condition,
    /// A rule's condition that needs more than layer 4 (HTTP, payload, TLS,
    /// a converter): lbxdp's rules see addresses, ports and server health.
    NotLayer4,
    /// `stick-table`, `track-sc*`, stick counters (`sc0_conn_rate`, ...).
    StickTables,
    /// A `tcp-request` action lbxdp doesn't do (`set-mark`, `capture`, a
    /// `content`/`session` rule other than `accept`, ...).
    Action,
    /// `use_backend %[...]`: a backend named per connection by a sample expression.
    DynamicBackend,
}

/// One place in the configuration that asks for something lbxdp doesn't do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Refusal {
    pub origin: Origin,
    /// The directive, as diagnostics name it: `bind :443`, `server be/s1`,
    /// `default-server`, `source 198.18.0.9`.
    pub directive: String,
    /// The keyword on that line: `ssl`, `accept-proxy`, `usesrc`, ...
    pub keyword: String,
    pub what: Unsupported,
}

impl Refusal {
    fn describe(&self) -> String {
        let (feature, not_yet) = match self.what {
            Unsupported::Tls => ("TLS", "which lbxdp doesn't do yet"),
            Unsupported::AcceptProxy => ("the PROXY protocol from clients", "which lbxdp doesn't read yet"),
            Unsupported::Usesrc => ("a transparent source address", "which lbxdp can't apply"),
            Unsupported::SourceInterface => ("server connections bound to an interface", "which lbxdp can't apply"),
            Unsupported::StatsSocket => ("a stats socket option", "which lbxdp's stats socket can't honour"),
            Unsupported::StatsPage => ("a stats page feature", "which lbxdp's stats page doesn't have"),
            Unsupported::StatsBesideTraffic => (
                "a stats page where traffic is forwarded too",
                "which lbxdp can't split from the traffic by URI",
            ),
            Unsupported::Condition => ("a condition", "which lbxdp can't decide"),
            Unsupported::NotLayer4 => ("a fetch that isn't layer 4", "which lbxdp's rules can't evaluate"),
            Unsupported::StickTables => ("stick tables or counters", "which lbxdp doesn't support yet"),
            Unsupported::Action => ("a rule action", "which lbxdp doesn't support yet"),
            Unsupported::DynamicBackend => (
                "a backend named by a sample expression",
                "which lbxdp doesn't support yet",
            ),
        };
        format!("'{}': '{}' asks for {feature}, {not_yet}", self.directive, self.keyword)
    }

    /// What `-c` prints: HAProxy's verdict stands, with this warning.
    pub fn check_warning(&self) -> Diag {
        Diag::warning(
            &self.origin,
            format!("{}; lbxdp-agent will refuse to run this configuration", self.describe()),
        )
    }

    /// What the agent prints when it refuses to start (or to reload).
    pub fn run_alert(&self) -> Diag {
        let instead = match self.what {
            Unsupported::Tls => "serve plaintext where TLS is asked for",
            Unsupported::AcceptProxy => "pass the clients' PROXY headers to the servers as data",
            Unsupported::Usesrc => "connect to the servers from another address than the one asked for",
            Unsupported::SourceInterface => "connect to the servers through another interface than the one asked for",
            Unsupported::StatsSocket => "open a stats socket other than the one asked for",
            Unsupported::StatsPage => "serve a stats page other than the one asked for",
            Unsupported::StatsBesideTraffic => "serve the stats page or the traffic, not both",
            Unsupported::Condition => "guess who the condition lets in",
            Unsupported::NotLayer4 | Unsupported::StickTables | Unsupported::Action | Unsupported::DynamicBackend => {
                "skip the rule"
            }
        };
        Diag::alert(
            &self.origin,
            format!(
                "{}; lbxdp-agent refuses to run this configuration rather than {instead}",
                self.describe()
            ),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    /// HAProxy's server id within its backend (`id`, else 1, 2, ...): `show stat`'s sid.
    pub id: u32,
    pub addr: IpAddr,
    pub port: PortSpec,
    pub weight: u16,
    pub check: Option<CheckSettings>,
    pub backup: bool,
    pub disabled: bool,
    pub maxconn: Option<u32>,
    /// `maxqueue`, which lbxdp doesn't enforce: `connslots` reads it.
    pub maxqueue: Option<u32>,
    pub send_proxy: Option<ProxyProtocol>,
    pub on_marked_down: Option<OnMarkedDown>,
    pub on_marked_up: Option<OnMarkedUp>,
    /// The address to connect from: the server line's `source`, else its
    /// `default-server`'s, else the backend's, else its `defaults`' (HAProxy's
    /// order: a server-level source wins over the proxy's).
    pub source: Option<SourceAddr>,
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
    /// HAProxy's proxy id (a listen section's frontend and backend share it).
    pub id: u32,
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

//! Prometheus text exposition (format 0.0.4) with the names, HELP and TYPE
//! lines of HAProxy 2.6's built-in exporter, plus lbxdp's own XDP metrics.
//! Only what is known is exposed: an empty cell gives no sample.
//!
//! The `prometheus-client` crate writes OpenMetrics (`# EOF`, counters
//! named without `_total` in TYPE lines), not HAProxy's layout, so the
//! text is written here.
use std::fmt::Write;

use super::{
    counters::XdpCounters,
    info::Info,
    table::{Cell, Row, RowKind, StatsTable},
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// How a metric's value comes out of its row.
#[derive(Clone, Copy)]
enum Source {
    Column(&'static str),
    /// A column in milliseconds, exposed in seconds.
    Millis(&'static str),
    /// One sample per state label, 1 for the row's state.
    Status,
    /// One sample per check result label (servers with checks on).
    CheckStatus,
    /// Counts of the backend's servers per state label.
    AggServerStatus,
    /// Counts of the backend's servers per check result label.
    AggCheckStatus,
}

use Kind::{Counter, Gauge};
use Source::{AggCheckStatus, AggServerStatus, CheckStatus, Column, Millis, Status};

type Spec = (&'static str, &'static str, Kind, Source);

const STATUS_HELP: &str = "Current status of the service, per state label value.";

const FRONTEND: &[Spec] = &[
    (
        "current_sessions",
        "Number of current sessions on the frontend, backend or server",
        Gauge,
        Column("scur"),
    ),
    (
        "max_sessions",
        "Highest value of current sessions encountered since process started",
        Gauge,
        Column("smax"),
    ),
    (
        "limit_sessions",
        "Frontend/listener/server's maxconn, backend's fullconn",
        Gauge,
        Column("slim"),
    ),
    (
        "sessions_total",
        "Total number of sessions since process started",
        Counter,
        Column("stot"),
    ),
    (
        "bytes_in_total",
        "Total number of request bytes since process started",
        Counter,
        Column("bin"),
    ),
    (
        "bytes_out_total",
        "Total number of response bytes since process started",
        Counter,
        Column("bout"),
    ),
    (
        "requests_denied_total",
        "Total number of denied requests since process started",
        Counter,
        Column("dreq"),
    ),
    (
        "responses_denied_total",
        "Total number of denied responses since process started",
        Counter,
        Column("dresp"),
    ),
    (
        "request_errors_total",
        "Total number of invalid requests since process started",
        Counter,
        Column("ereq"),
    ),
    ("status", STATUS_HELP, Gauge, Status),
    (
        "limit_session_rate",
        "Limit on the number of sessions accepted in a second (frontend only, 'rate-limit sessions' setting)",
        Gauge,
        Column("rate_lim"),
    ),
    (
        "max_session_rate",
        "Highest value of sessions per second observed since the worker process started",
        Gauge,
        Column("rate_max"),
    ),
    (
        "connections_rate_max",
        "Highest value of connections per second observed since the worker process started",
        Gauge,
        Column("conn_rate_max"),
    ),
    (
        "connections_total",
        "Total number of new connections accepted on this frontend since the worker process started",
        Counter,
        Column("conn_tot"),
    ),
    (
        "denied_connections_total",
        "Total number of incoming connections blocked on a listener/frontend by a tcp-request connection rule since the worker process started",
        Counter,
        Column("dcon"),
    ),
    (
        "denied_sessions_total",
        "Total number of incoming sessions blocked on a listener/frontend by a tcp-request connection rule since the worker process started",
        Counter,
        Column("dses"),
    ),
];

const QCUR: Spec = (
    "current_queue",
    "Number of current queued connections",
    Gauge,
    Column("qcur"),
);
const QMAX: Spec = (
    "max_queue",
    "Highest value of queued connections encountered since process started",
    Gauge,
    Column("qmax"),
);
const ECON: Spec = (
    "connection_errors_total",
    "Total number of failed connections to server since the worker process started",
    Counter,
    Column("econ"),
);
const ERESP: Spec = (
    "response_errors_total",
    "Total number of invalid responses since the worker process started",
    Counter,
    Column("eresp"),
);
const WRETR: Spec = (
    "retry_warnings_total",
    "Total number of server connection retries since the worker process started",
    Counter,
    Column("wretr"),
);
const WREDIS: Spec = (
    "redispatch_warnings_total",
    "Total number of server redispatches due to connection failures since the worker process started",
    Counter,
    Column("wredis"),
);
const WEIGHT: Spec = (
    "weight",
    "Server's effective weight, or sum of active servers' effective weights for a backend",
    Gauge,
    Column("weight"),
);
const CHKDOWN: Spec = (
    "check_up_down_total",
    "Total number of failed checks causing UP to DOWN server transitions, per server/backend, since the worker process started",
    Counter,
    Column("chkdown"),
);
const LASTCHG: Spec = (
    "check_last_change_seconds",
    "How long ago the last server state changed, in seconds",
    Gauge,
    Column("lastchg"),
);
const DOWNTIME: Spec = (
    "downtime_seconds_total",
    "Total time spent in DOWN state, for server or backend",
    Counter,
    Column("downtime"),
);
const LBTOT: Spec = (
    "loadbalanced_total",
    "Total number of requests routed by load balancing since the worker process started (ignores queue pop and stickiness)",
    Counter,
    Column("lbtot"),
);
const RATE_MAX: Spec = (
    "max_session_rate",
    "Highest value of sessions per second observed since the worker process started",
    Gauge,
    Column("rate_max"),
);
const CLI_ABRT: Spec = (
    "client_aborts_total",
    "Total number of requests or connections aborted by the client since the worker process started",
    Counter,
    Column("cli_abrt"),
);
const SRV_ABRT: Spec = (
    "server_aborts_total",
    "Total number of requests or connections aborted by the server since the worker process started",
    Counter,
    Column("srv_abrt"),
);
const LASTSESS: Spec = (
    "last_session_seconds",
    "How long ago some traffic was seen on this object on this worker process, in seconds",
    Gauge,
    Column("lastsess"),
);
const UWEIGHT: Spec = (
    "uweight",
    "Server's user weight, or sum of active servers' user weights for a backend",
    Gauge,
    Column("uweight"),
);
const SCUR: Spec = FRONTEND[0];
const SMAX: Spec = FRONTEND[1];
const SLIM: Spec = FRONTEND[2];
const STOT: Spec = FRONTEND[3];
const BIN: Spec = FRONTEND[4];
const BOUT: Spec = FRONTEND[5];
const DREQ: Spec = FRONTEND[6];
const DRESP: Spec = FRONTEND[7];
const STATUS: Spec = FRONTEND[9];

const BACKEND: &[Spec] = &[
    QCUR,
    QMAX,
    SCUR,
    SMAX,
    SLIM,
    STOT,
    BIN,
    BOUT,
    DREQ,
    DRESP,
    ECON,
    ERESP,
    WRETR,
    WREDIS,
    STATUS,
    WEIGHT,
    (
        "active_servers",
        "Total number of active UP servers with a non-zero weight",
        Gauge,
        Column("act"),
    ),
    (
        "backup_servers",
        "Total number of backup UP servers with a non-zero weight",
        Gauge,
        Column("bck"),
    ),
    CHKDOWN,
    LASTCHG,
    DOWNTIME,
    LBTOT,
    RATE_MAX,
    CLI_ABRT,
    SRV_ABRT,
    LASTSESS,
    UWEIGHT,
    (
        "agg_server_status",
        "Backend's aggregated gauge of servers' status",
        Gauge,
        AggServerStatus,
    ),
    (
        "agg_check_status",
        "Backend's aggregated gauge of servers' state check status",
        Gauge,
        AggCheckStatus,
    ),
];

const SERVER: &[Spec] = &[
    QCUR,
    QMAX,
    SCUR,
    SMAX,
    SLIM,
    STOT,
    BIN,
    BOUT,
    DRESP,
    ECON,
    ERESP,
    WRETR,
    WREDIS,
    STATUS,
    WEIGHT,
    (
        "check_failures_total",
        "Total number of failed individual health checks per server/backend, since the worker process started",
        Counter,
        Column("chkfail"),
    ),
    CHKDOWN,
    LASTCHG,
    DOWNTIME,
    (
        "queue_limit",
        "Limit on the number of connections in queue, for servers only (maxqueue argument)",
        Gauge,
        Column("qlimit"),
    ),
    LBTOT,
    RATE_MAX,
    (
        "check_status",
        "Status of last health check, per state label value.",
        Gauge,
        CheckStatus,
    ),
    (
        "check_code",
        "layer5-7 code, if available of the last health check.",
        Gauge,
        Column("check_code"),
    ),
    (
        "check_duration_seconds",
        "Total duration of the latest server health check, in seconds.",
        Gauge,
        Millis("check_duration"),
    ),
    CLI_ABRT,
    SRV_ABRT,
    LASTSESS,
    UWEIGHT,
];

/// HAProxy's server state labels (`promex_srv_st`), in its order.
const SERVER_STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];

/// The check results HAProxy's exporter lists (those that end a check).
const CHECK_STATES: [&str; 16] = [
    "HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7TOUT", "L7RSP", "L7OK", "L7OKC",
    "L7STS", "PROCERR", "PROCTOUT", "PROCOK",
];

/// HAProxy's `promex_srv_status()`, from the status column.
fn server_state(row: &Row) -> &'static str {
    let s = row.text("status").unwrap_or_default();
    if s.starts_with("MAINT") {
        "MAINT"
    } else if s.starts_with("DRAIN") {
        "DRAIN"
    } else if s.starts_with("NOLB") {
        "NOLB"
    } else if s.starts_with("DOWN") {
        "DOWN"
    } else {
        "UP"
    }
}

/// A label value in the text format: backslash, quote and newline escaped.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// One metric family: its HELP and TYPE lines once, then its samples;
/// nothing at all when it has no sample.
struct Family {
    name: String,
    help: &'static str,
    kind: Kind,
    samples: Vec<(String, String)>,
}

impl Family {
    fn new(name: String, help: &'static str, kind: Kind) -> Self {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: String, value: impl ToString) {
        self.samples.push((labels, value.to_string()));
    }

    fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind.as_str());
        for (l, v) in &self.samples {
            let _ = writeln!(out, "{}{l} {v}", self.name);
        }
    }
}

fn process(info: &Info, out: &mut String) {
    fn one(out: &mut String, name: &str, help: &'static str, kind: Kind, value: Option<u64>) {
        let mut f = Family::new(format!("haproxy_process_{name}"), help, kind);
        if let Some(v) = value {
            f.push(String::new(), v);
        }
        f.write(out);
    }
    one(
        out,
        "nbthread",
        "Number of started threads (global.nbthread)",
        Gauge,
        Some(info.nbthread.into()),
    );
    one(
        out,
        "nbproc",
        "Number of started worker processes (historical, always 1)",
        Gauge,
        Some(1),
    );
    one(
        out,
        "relative_process_id",
        "Relative worker process number (1)",
        Gauge,
        Some(1),
    );
    one(
        out,
        "uptime_seconds",
        "How long ago this worker process was started (seconds)",
        Gauge,
        Some(info.uptime.as_secs()),
    );
    one(
        out,
        "max_fds",
        "Hard limit on the number of per-process file descriptors",
        Gauge,
        info.ulimit_n,
    );
    one(
        out,
        "max_sockets",
        "Hard limit on the number of per-process sockets",
        Gauge,
        info.maxsock,
    );
    one(
        out,
        "max_connections",
        "Hard limit on the number of per-process connections (configured or imposed by Ulimit-n)",
        Gauge,
        info.maxconn,
    );
    one(
        out,
        "hard_max_connections",
        "Hard limit on the number of per-process connections (imposed by Memmax_MB or Ulimit-n)",
        Gauge,
        info.hard_maxconn,
    );
    one(
        out,
        "current_connections",
        "Current number of connections on this worker process",
        Gauge,
        info.curr_conns,
    );
    one(
        out,
        "connections_total",
        "Total number of connections on this worker process since started",
        Counter,
        info.cum_conns,
    );
    one(
        out,
        "current_connection_rate",
        "Number of front connections created on this worker process over the last second",
        Gauge,
        info.conn_rate,
    );
    one(
        out,
        "max_connection_rate",
        "Highest ConnRate reached on this worker process since started (in connections per second)",
        Gauge,
        info.max_conn_rate,
    );
    one(
        out,
        "current_session_rate",
        "Number of sessions created on this worker process over the last second",
        Gauge,
        info.sess_rate,
    );
    one(
        out,
        "max_session_rate",
        "Highest SessRate reached on this worker process since started (in sessions per second)",
        Gauge,
        info.max_sess_rate,
    );
    one(
        out,
        "current_tasks",
        "Total number of tasks in the current worker process (active + sleeping)",
        Gauge,
        info.tasks,
    );
    one(
        out,
        "current_run_queue",
        "Total number of active tasks+tasklets in the current worker process",
        Gauge,
        info.run_queue,
    );
    one(
        out,
        "idle_time_percent",
        "Percentage of last second spent waiting in the current worker thread",
        Gauge,
        info.idle_pct,
    );
    one(
        out,
        "stopping",
        "1 if the worker process is currently stopping, otherwise zero",
        Gauge,
        Some(u64::from(info.stopping)),
    );
    one(
        out,
        "jobs",
        "Current number of active jobs on the current worker process (frontend connections, master connections, listeners)",
        Gauge,
        info.jobs,
    );
    one(
        out,
        "listeners",
        "Current number of active listeners on the current worker process",
        Gauge,
        info.listeners,
    );
    one(
        out,
        "bytes_out_total",
        "Total number of bytes emitted by current worker process since started",
        Counter,
        info.bytes_out,
    );
    let mut build = Family::new("haproxy_process_build_info".into(), "Build info", Gauge);
    build.push(labels(&[("version", &info.version)]), 1);
    build.write(out);
    one(
        out,
        "start_time_seconds",
        "Start time in seconds",
        Gauge,
        Some(info.start_time),
    );
}

fn cell_value(cell: &Cell) -> Option<i64> {
    match cell {
        Cell::Int(v) => Some(*v),
        _ => None,
    }
}

fn scope(table: &StatsTable, kind: RowKind, specs: &[Spec], out: &mut String) {
    let prefix = match kind {
        RowKind::Frontend => "haproxy_frontend_",
        RowKind::Backend => "haproxy_backend_",
        RowKind::Server => "haproxy_server_",
    };
    let rows: Vec<&Row> = table.rows.iter().filter(|r| r.kind == kind).collect();
    for (name, help, k, source) in specs {
        let mut f = Family::new(format!("{prefix}{name}"), help, *k);
        for row in &rows {
            let mut base: Vec<(&str, &str)> = vec![("proxy", row.pxname())];
            if kind == RowKind::Server {
                base.push(("server", row.svname()));
            }
            let with_state = |state: &str| {
                let mut l = base.clone();
                l.push(("state", state));
                labels(&l)
            };
            match source {
                Column(c) => {
                    if let Some(v) = cell_value(row.get(c)) {
                        f.push(labels(&base), v);
                    }
                }
                Millis(c) => {
                    if let Some(v) = cell_value(row.get(c)) {
                        f.push(labels(&base), format!("{:.6}", v as f64 / 1000.0));
                    }
                }
                Status => match kind {
                    RowKind::Server => {
                        let now = server_state(row);
                        for s in SERVER_STATES {
                            f.push(with_state(s), u8::from(s == now));
                        }
                    }
                    _ => {
                        let text = row.text("status").unwrap_or_default();
                        let up = text == "OPEN" || text.starts_with("UP");
                        f.push(with_state("DOWN"), u8::from(!up));
                        f.push(with_state("UP"), u8::from(up));
                    }
                },
                CheckStatus => {
                    // Only servers whose checks run (HAProxy's ENABLED, not PAUSED).
                    if let Some(now) = row.text("check_status") {
                        for s in CHECK_STATES {
                            f.push(with_state(s), u8::from(s == now));
                        }
                    }
                }
                AggServerStatus => {
                    let servers = servers_of(table, row.pxname());
                    for s in SERVER_STATES {
                        let n = servers.iter().filter(|r| server_state(r) == s).count();
                        f.push(with_state(s), n);
                    }
                }
                AggCheckStatus => {
                    let servers = servers_of(table, row.pxname());
                    for s in CHECK_STATES {
                        let n = servers.iter().filter(|r| r.text("check_status") == Some(s)).count();
                        f.push(with_state(s), n);
                    }
                }
            }
        }
        f.write(out);
    }
}

/// The server rows of one backend.
fn servers_of<'a>(table: &'a StatsTable, backend: &str) -> Vec<&'a Row> {
    table
        .rows
        .iter()
        .filter(|r| r.kind == RowKind::Server && r.pxname() == backend)
        .collect()
}

/// A metric family of lbxdp's own: name, help, label, and the samples by label value.
type OwnFamily<'a> = (&'static str, &'static str, &'static str, &'a [(&'static str, u64)]);

fn xdp(x: &XdpCounters, out: &mut String) {
    let families: [OwnFamily<'_>; 3] = [
        (
            "lbxdp_xdp_packets_total",
            "Packets the XDP program handled, by the action it took",
            "action",
            &x.actions,
        ),
        (
            "lbxdp_xdp_dropped_packets_total",
            "Packets the XDP program dropped, by reason",
            "reason",
            &x.drops,
        ),
        (
            "lbxdp_xdp_protocol_packets_total",
            "Packets the XDP program saw, by protocol",
            "protocol",
            &x.protocols,
        ),
    ];
    for (name, help, label, samples) in families {
        let mut f = Family::new(name.into(), help, Counter);
        for (value, n) in samples {
            f.push(labels(&[(label, value)]), n);
        }
        f.write(out);
    }
}

/// The whole exposition: process, frontends, backends, servers, then
/// lbxdp's XDP counters when the engine is XDP.
pub fn exposition(table: &StatsTable, info: &Info, xdp_counters: Option<&XdpCounters>) -> String {
    let mut out = String::new();
    process(info, &mut out);
    scope(table, RowKind::Frontend, FRONTEND, &mut out);
    scope(table, RowKind::Backend, BACKEND, &mut out);
    scope(table, RowKind::Server, SERVER, &mut out);
    if let Some(x) = xdp_counters {
        xdp(x, &mut out);
    }
    out
}

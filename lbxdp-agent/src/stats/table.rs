//! The stats table: HAProxy 2.6's `show stat` rows and columns, built from
//! the config, the health state and an engine's counters.
use std::{collections::BTreeMap, net::IpAddr, time::Instant};

use serde_json::{Map, Value};

use super::{
    columns::{COLUMNS, MODULES_FROM, index},
    counters::{Counters, ServerCounters},
};
use crate::{
    config::{Backend, Balance, Config, Frontend, Mode, PortSpec, Server},
    health::{ServerId, ServerState, Status},
};

/// One cell: empty when unknown (or when HAProxy leaves it empty).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cell {
    #[default]
    Empty,
    Int(i64),
    Text(String),
}

impl From<u64> for Cell {
    fn from(v: u64) -> Self {
        Cell::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<u32> for Cell {
    fn from(v: u32) -> Self {
        Cell::Int(i64::from(v))
    }
}

impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Cell::Int(v)
    }
}

impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(v.to_string())
    }
}

impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(v)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Empty, Into::into)
    }
}

/// HAProxy's row types (`type` column 0, 1, 2; `show stat` type bits 1, 2, 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Frontend,
    Backend,
    Server,
}

impl RowKind {
    pub fn code(self) -> u32 {
        match self {
            RowKind::Frontend => 0,
            RowKind::Backend => 1,
            RowKind::Server => 2,
        }
    }

    pub fn bit(self) -> i64 {
        1 << self.code()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: RowKind,
    cells: Vec<Cell>,
}

impl Row {
    fn new(kind: RowKind, pxname: &str, svname: &str) -> Self {
        let mut row = Row {
            kind,
            cells: vec![Cell::Empty; COLUMNS.len()],
        };
        row.set("pxname", pxname);
        row.set("svname", svname);
        row.set("pid", 1u32);
        row.set("type", kind.code());
        row.set("-", "-");
        // lbxdp does no TLS: the ssl module's counters are zero, as HAProxy
        // shows them on every row.
        for c in ["ssl_sess", "ssl_reused_sess", "ssl_failed_handshake"] {
            row.set(c, 0u32);
        }
        row
    }

    /// The cell of a column; Empty for a name HAProxy doesn't have.
    pub fn get(&self, column: &str) -> &Cell {
        static EMPTY: Cell = Cell::Empty;
        index(column).and_then(|i| self.cells.get(i)).unwrap_or(&EMPTY)
    }

    pub fn int(&self, column: &str) -> Option<i64> {
        match self.get(column) {
            Cell::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub fn text(&self, column: &str) -> Option<&str> {
        match self.get(column) {
            Cell::Text(v) => Some(v),
            _ => None,
        }
    }

    pub fn pxname(&self) -> &str {
        self.text("pxname").unwrap_or_default()
    }

    pub fn svname(&self) -> &str {
        self.text("svname").unwrap_or_default()
    }

    /// The cells in HAProxy's column order.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    fn set(&mut self, column: &str, value: impl Into<Cell>) {
        let i = index(column);
        debug_assert!(i.is_some(), "no such column: {column}");
        if let Some(cell) = i.and_then(|i| self.cells.get_mut(i)) {
            *cell = value.into();
        }
    }

    fn zero(&mut self, columns: &[&str]) {
        for c in columns {
            self.set(c, 0u32);
        }
    }
}

/// The stats of a whole configuration at one instant, rows in HAProxy's
/// order: per proxy in config order its FRONTEND, its servers, its BACKEND.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsTable {
    pub rows: Vec<Row>,
}

/// A proxy in declaration order; a listen section is both.
enum Section<'a> {
    Frontend(&'a Frontend),
    Backend(&'a Backend),
}

impl StatsTable {
    pub fn build(
        config: &Config,
        health: &BTreeMap<ServerId, ServerState>,
        counters: &Counters,
        now: Instant,
    ) -> StatsTable {
        let mut rows = Vec::new();
        for section in sections(config) {
            match section {
                Section::Frontend(f) => rows.push(frontend_row(config, f, counters)),
                Section::Backend(b) => {
                    let servers: Vec<Row> = b
                        .servers
                        .iter()
                        .map(|s| {
                            let st = state_of(health, b, s);
                            let c = counters.servers.get(&(b.name.clone(), s.name.clone()));
                            server_row(b, s, &st, c, now)
                        })
                        .collect();
                    let backend = backend_row(config, b, health, counters, &servers, now);
                    rows.extend(servers);
                    rows.push(backend);
                }
            }
        }
        StatsTable { rows }
    }

    /// An array of objects, column name to number or string, empty cells
    /// left out: the agent's final report.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    let mut m = Map::new();
                    for (name, cell) in COLUMNS.iter().zip(row.cells()) {
                        match cell {
                            Cell::Empty => {}
                            Cell::Int(v) => {
                                m.insert((*name).to_string(), Value::from(*v));
                            }
                            Cell::Text(t) => {
                                m.insert((*name).to_string(), Value::from(t.clone()));
                            }
                        }
                    }
                    Value::Object(m)
                })
                .collect(),
        )
    }
}

/// Frontends and backends merged back into declaration order; disabled
/// proxies are left out, as HAProxy's `show stat` leaves them out.
fn sections(config: &Config) -> Vec<Section<'_>> {
    let mut files: Vec<&str> = Vec::new();
    let origins = config
        .frontends
        .iter()
        .map(|f| &f.origin)
        .chain(config.backends.iter().map(|b| &b.origin));
    for o in origins {
        if !files.contains(&o.file.as_str()) {
            files.push(&o.file);
        }
    }
    let rank = |o: &crate::config::Origin| (files.iter().position(|f| *f == o.file).unwrap_or(usize::MAX), o.line);
    let mut all: Vec<((usize, usize), u8, Section<'_>)> = Vec::new();
    for f in config.frontends.iter().filter(|f| !f.disabled) {
        all.push((rank(&f.origin), 0, Section::Frontend(f)));
    }
    for b in config.backends.iter().filter(|b| !b.disabled) {
        all.push((rank(&b.origin), 1, Section::Backend(b)));
    }
    // Stable: a listen section's frontend (0) comes before its backend (1).
    all.sort_by_key(|(r, k, _)| (*r, *k));
    all.into_iter().map(|(_, _, s)| s).collect()
}

/// The server's published state, or the one it starts with (health's own rule).
fn state_of(health: &BTreeMap<ServerId, ServerState>, b: &Backend, s: &Server) -> ServerState {
    health
        .get(&ServerId::new(&b.name, &s.name))
        .cloned()
        .unwrap_or_else(|| crate::health::initial_state(s, b.disabled))
}

fn mode_str(mode: Mode) -> &'static str {
    match mode {
        Mode::Tcp => "tcp",
        Mode::Http => "http",
    }
}

/// HAProxy's `backend_lb_algo_str()`. Layer-7 algorithms fall back to round
/// robin in TCP mode, in HAProxy as in lbxdp.
pub fn algo_str(balance: Balance) -> &'static str {
    match balance {
        Balance::RoundRobin | Balance::Layer7 => "roundrobin",
        Balance::StaticRr => "static-rr",
        Balance::LeastConn => "leastconn",
        Balance::First => "first",
        Balance::Source => "source",
        Balance::Random(_) => "random",
    }
}

fn frontend_row(config: &Config, f: &Frontend, counters: &Counters) -> Row {
    let mut row = Row::new(RowKind::Frontend, &f.name, "FRONTEND");
    let c = counters.frontends.get(&f.name).cloned().unwrap_or_default();
    row.set("scur", c.scur);
    row.set("smax", c.smax);
    row.set("slim", f.maxconn.or(config.global.maxconn));
    row.set("stot", c.stot);
    row.set("bin", c.bin);
    row.set("bout", c.bout);
    row.set("dreq", c.dreq);
    row.set("dcon", c.dcon.unwrap_or(0));
    row.set("ereq", c.ereq);
    row.set("status", "OPEN");
    row.set("iid", f.id);
    row.set("sid", 0u32);
    row.set("rate", c.rate);
    row.set("rate_max", c.rate_max);
    row.set("mode", mode_str(f.mode));
    // lbxdp accepts a session per connection: HAProxy's connection counters
    // are the session ones.
    row.set("conn_rate", c.rate);
    row.set("conn_rate_max", c.rate_max);
    // HAProxy's connection total counts those a tcp-request rule closed too.
    row.set("conn_tot", c.stot.map(|s| s + c.dcon.unwrap_or(0)));
    // Features lbxdp doesn't have (response rules, compression, header
    // rewrites, tcp-request session rules, rate limits) never count: their
    // zeros are known, as HAProxy shows them.
    row.zero(&[
        "dresp", "rate_lim", "comp_in", "comp_out", "comp_byp", "comp_rsp", "dses", "wrew",
    ]);
    if f.mode == Mode::Tcp {
        row.zero(&["req_rate", "req_rate_max", "req_tot"]);
    }
    for c in &COLUMNS[MODULES_FROM..] {
        row.set(c, 0u32);
    }
    row
}

fn fmt_addr(ip: IpAddr, port: PortSpec) -> String {
    let port = match port {
        PortSpec::Fixed(p) => i64::from(p),
        PortSpec::Offset(o) => i64::from(o),
    };
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// HAProxy's check flags: CHK_ST_ENABLED (checks configured and not
/// disabled at runtime), and not paused by maintenance.
fn checks_on(st: &ServerState) -> bool {
    st.checked && st.checks_enabled
}

fn checks_shown(st: &ServerState) -> bool {
    checks_on(st) && st.status != Status::Maint
}

/// The `status` column, as HAProxy's `srv_hlt_st` spells it.
pub fn server_status(st: &ServerState) -> String {
    let counter = st.health.filter(|_| checks_on(st));
    match st.status {
        Status::Maint => "MAINT".into(),
        Status::Nolb => "NOLB".into(),
        Status::Up | Status::GoingDown { .. } | Status::Drain => {
            let going_down = match (counter, st.status) {
                (Some(h), _) => h.health + 1 < h.rise + h.fall,
                (None, Status::GoingDown { .. }) => checks_on(st),
                _ => false,
            };
            let steps = match (counter, st.status) {
                (Some(h), _) => format!("{}/{}", (h.health + 1).saturating_sub(h.rise), h.fall),
                (None, Status::GoingDown { remaining, fall }) => format!("{remaining}/{fall}"),
                _ => String::new(),
            };
            match (st.drain, going_down) {
                (true, true) => format!("DRAIN {steps}"),
                (true, false) => "DRAIN".into(),
                (false, true) => format!("UP {steps}"),
                (false, false) if checks_on(st) => "UP".into(),
                (false, false) => "no check".into(),
            }
        }
        Status::Down => "DOWN".into(),
        Status::GoingUp { passed, rise } if checks_on(st) => match counter {
            Some(h) => format!("DOWN {}/{}", h.health, h.rise),
            None => format!("DOWN {passed}/{rise}"),
        },
        Status::GoingUp { .. } => "DOWN".into(),
    }
}

/// `Layer4 connection problem, info: "Connection refused"` → the info part,
/// which HAProxy's `last_chk` column shows alone.
fn last_chk(reason: &str) -> Option<&str> {
    let (_, info) = reason.split_once("info: \"")?;
    info.strip_suffix('"')
}

fn secs_since(then: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(then).as_secs()
}

fn server_row(b: &Backend, s: &Server, st: &ServerState, c: Option<&ServerCounters>, now: Instant) -> Row {
    let mut row = Row::new(RowKind::Server, &b.name, &s.name);
    let c = c.cloned().unwrap_or_default();
    row.set("qcur", c.qcur);
    row.set("qmax", c.qmax);
    row.set("scur", c.scur);
    row.set("smax", c.smax);
    row.set("slim", s.maxconn);
    row.set("stot", c.stot);
    row.set("bin", c.bin);
    row.set("bout", c.bout);
    row.set("econ", c.econ);
    row.set("eresp", c.eresp);
    row.set("wretr", c.wretr);
    row.set("wredis", c.wredis);
    row.set("status", server_status(st));
    // HAProxy's `weight` is the server's own (user) weight whatever its
    // state: a DOWN, MAINT or DRAIN server keeps it.
    row.set("weight", st.weight);
    row.set("uweight", st.weight);
    row.set("act", u32::from(!st.backup));
    row.set("bck", u32::from(st.backup));
    if checks_on(st) {
        row.set("chkfail", st.check_failures);
        row.set("chkdown", st.marked_down);
        // Only exact when it was never down: lbxdp keeps no downtime total.
        if st.marked_down == 0 {
            row.set("downtime", 0u32);
        }
    }
    row.set("lastchg", secs_since(st.since, now));
    row.set("iid", b.id);
    row.set("sid", s.id);
    row.set("lbtot", c.lbtot);
    row.set("rate", c.rate);
    row.set("rate_max", c.rate_max);
    if checks_shown(st) {
        let (status, desc) = st
            .last_check
            .as_ref()
            .map_or(("INI", "Initializing"), |l| (l.status, l.desc));
        row.set("check_status", status);
        row.set("check_desc", desc);
        if let Some(l) = &st.last_check {
            row.set("check_code", l.code.map(u32::from));
            row.set(
                "check_duration",
                u64::try_from(l.duration.as_millis()).unwrap_or(u64::MAX),
            );
        }
        row.set("last_chk", st.last_reason.as_deref().and_then(last_chk));
        if let Some(h) = st.health {
            row.set("check_rise", h.rise);
            row.set("check_fall", h.fall);
            row.set("check_health", h.health);
        }
    }
    row.set("cli_abrt", c.cli_abrt);
    row.set("srv_abrt", c.srv_abrt);
    // HAProxy's -1: no session yet (known only where sessions are counted).
    row.set(
        "lastsess",
        match (c.lastsess, c.stot) {
            (Some(v), _) => Cell::from(v),
            (None, Some(_)) => Cell::Int(-1),
            (None, None) => Cell::Empty,
        },
    );
    row.set("addr", fmt_addr(s.addr, s.port));
    row.set("mode", mode_str(b.mode));
    row.zero(&["dresp", "wrew", "reuse", "srv_icur", "idle_conn_cur", "safe_conn_cur"]);
    row
}

/// Sums a column over rows; Empty when no row knows it.
fn sum(rows: &[Row], column: &str) -> Option<i64> {
    rows.iter()
        .filter_map(|r| r.int(column))
        .reduce(|a, b| a.saturating_add(b))
}

/// HAProxy's default `fullconn`: a tenth of the maxconn of the frontends
/// that lead to the backend, rounded up.
fn fullconn(config: &Config, b: &Backend) -> Option<u32> {
    if let Some(f) = b.fullconn {
        return Some(f);
    }
    let total: Option<u64> = config
        .frontends
        .iter()
        .filter(|f| f.backend.as_deref() == Some(b.name.as_str()))
        .map(|f| f.maxconn.or(config.global.maxconn).map(u64::from))
        .sum();
    total.map(|t| u32::try_from(t.div_ceil(10).max(1)).unwrap_or(u32::MAX))
}

fn backend_row(
    config: &Config,
    b: &Backend,
    health: &BTreeMap<ServerId, ServerState>,
    counters: &Counters,
    servers: &[Row],
    now: Instant,
) -> Row {
    let mut row = Row::new(RowKind::Backend, &b.name, "BACKEND");
    let bc = counters.backends.get(&b.name).cloned().unwrap_or_default();
    let states: Vec<ServerState> = b.servers.iter().map(|s| state_of(health, b, s)).collect();
    for col in [
        "scur", "stot", "bin", "bout", "econ", "eresp", "wretr", "wredis", "lbtot", "cli_abrt", "srv_abrt", "rate",
    ] {
        row.set(col, sum(servers, col));
    }
    // Maxima don't add up: only the engine knows the backend's own.
    row.set("smax", bc.smax);
    row.set("rate_max", bc.rate_max);
    row.set("qcur", bc.qcur);
    row.set("qmax", bc.qmax);
    row.set("slim", fullconn(config, b));
    // Sessions that found no server are refused, as HAProxy's denied requests.
    row.set("dreq", bc.nosrv);
    let (act, bck): (Vec<&ServerState>, Vec<&ServerState>) =
        states.iter().filter(|s| s.takes_traffic()).partition(|s| !s.backup);
    let in_use = if act.is_empty() { &bck } else { &act };
    let weight: u64 = in_use.iter().map(|s| u64::from(s.effective_weight())).sum();
    let up = weight > 0 || b.servers.is_empty();
    row.set("status", if up { "UP" } else { "DOWN" });
    row.set("weight", weight);
    row.set("uweight", weight);
    row.set("act", act.len() as u64);
    row.set("bck", bck.len() as u64);
    // HAProxy's last backend change: when DOWN, the last server change
    // took it there; when UP, the oldest of its usable servers has kept it up.
    let lastchg = if up {
        in_use.iter().map(|s| secs_since(s.since, now)).max()
    } else {
        states.iter().map(|s| secs_since(s.since, now)).min()
    };
    row.set("lastchg", lastchg.unwrap_or(0));
    row.set("iid", b.id);
    row.set("sid", 0u32);
    let lastsess = servers
        .iter()
        .filter_map(|r| r.int("lastsess"))
        .filter(|v| *v >= 0)
        .min();
    row.set(
        "lastsess",
        match lastsess {
            Some(v) => Cell::Int(v),
            None if sum(servers, "stot").is_some() => Cell::Int(-1),
            None => Cell::Empty,
        },
    );
    row.set("mode", mode_str(b.mode));
    row.set("algo", algo_str(b.balance));
    row.zero(&[
        "dresp",
        "comp_in",
        "comp_out",
        "comp_byp",
        "comp_rsp",
        "wrew",
        "reuse",
        "agg_server_status",
        "agg_server_check_status",
        "agg_check_status",
    ]);
    for c in &COLUMNS[MODULES_FROM..] {
        row.set(c, 0u32);
    }
    row
}

//! What the runtime API (stats socket, stats page) asks the agent loop, and
//! what it answers. The listeners parse text into a [`Command`]; the loop,
//! which owns the health state, the engine and the stats, executes it.
use tokio::sync::oneshot;

use crate::health::ServerId;

/// `set server B/S state ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Ready,
    Drain,
    Maint,
}

/// `set server B/S health ...`: forces the check counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForcedHealth {
    Up,
    Stopping,
    Down,
}

/// `set server B/S weight W[%]`, `set weight B/S W[%]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    Absolute(u32),
    /// Percent of the initial (configured) weight.
    Percent(u32),
}

/// `show stat [<iid> <type> <sid>] [up] [no-maint]`: -1 is "any"; type is a
/// bit mask (1 frontends, 2 backends, 4 servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFilter {
    pub iid: i64,
    pub types: i64,
    pub sid: i64,
    /// `up`: servers not UP are left out (the page's `;up`).
    pub hide_down: bool,
    /// `no-maint`: servers in maintenance are left out.
    pub hide_maint: bool,
}

impl Default for StatFilter {
    fn default() -> Self {
        Self {
            iid: -1,
            types: -1,
            sid: -1,
            hide_down: false,
            hide_maint: false,
        }
    }
}

/// `show table` / `clear table`, checked against the configuration's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRequest {
    pub clear: bool,
    /// None: `show table`, every table's header.
    pub name: Option<String>,
    pub select: crate::stick::Select,
    /// The client's level lets it see entries (operator and up); else a
    /// named table shows its header and HAProxy's notice.
    pub contents: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    ShowInfo,
    ShowStat(StatFilter),
    /// `show servers state [backend]`.
    ShowServersState(Option<String>),
    ShowBackend,
    /// `show sess`: the proxy's sessions (XDP mode has none to list).
    ShowSess,
    /// `show table [NAME [key K | data.* OP V ...]]`, `clear table NAME [...]`.
    Table(TableRequest),
    /// `show acl [<acl>]`, `add acl`, `del acl`, `clear acl`.
    Acl(super::acl::AclRequest),
    /// `set server B/S state`, `disable server` (maint), `enable server` (ready).
    SetState(ServerId, AdminState),
    SetWeight(ServerId, Weight),
    GetWeight(ServerId),
    /// `enable health B/S` (true), `disable health B/S` (false).
    SetChecks(ServerId, bool),
    SetHealth(ServerId, ForcedHealth),
    /// Prometheus exposition text (HAProxy's exporter names and lbxdp's own).
    Prometheus,
    /// The stats page of the `mode http` section named here, as HTML; `admin`
    /// when this client may use the admin actions; `notice` is the outcome of
    /// the last admin action, HAProxy's `;st=` code (`DONE`, `PART`, `ERRP`,
    /// `NONE`, `DENY`, `EXCD`, `UNKN`): `http::status_notice()` gives the
    /// class and text HAProxy shows at the top of the page for it.
    StatsPage {
        section: String,
        admin: bool,
        notice: Option<String>,
    },
}

/// A command and where its answer goes. Every request gets one reply.
#[derive(Debug)]
pub struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<String>,
}

/// The sending side the listeners hold.
pub type Sender = tokio::sync::mpsc::Sender<Request>;

/// Sends `command` to the loop and waits for its answer.
pub async fn ask(tx: &Sender, command: Command) -> String {
    let (reply, rx) = oneshot::channel();
    if tx.send(Request { command, reply }).await.is_err() {
        return "The agent is stopping.\n".into();
    }
    rx.await.unwrap_or_else(|_| "The agent is stopping.\n".into())
}

//! Stick tables and the counters rules read from them, as plain data: what
//! `stick-table` lines declare, what `track-sc*` and `sc-inc-gpc0` do, and
//! what the `sc*_` / `src_*` fetches read. The counting itself (rates,
//! expiry, eviction) is in `crate::stick`, shared by both datapaths.
use super::diag::Origin;

/// One `stick-table` line; HAProxy names the table after its proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickTable {
    pub name: String,
    pub key: StickKey,
    /// Entries at most; when full, the least recently touched unused ones
    /// make room (unless `nopurge`).
    pub size: u32,
    /// `expire`: an entry goes this long after its last touch, once no
    /// connection tracks it. None: never (HAProxy's default).
    pub expire_ms: Option<u32>,
    pub store: Store,
    /// `nopurge`: a full table refuses new entries instead of evicting.
    pub nopurge: bool,
    pub origin: Origin,
}

/// `type ip` (IPv4 addresses; IPv6 ones only when IPv4-mapped) or `type ipv6`
/// (IPv4 addresses as IPv4-mapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickKey {
    Ipv4,
    Ipv6,
}

impl StickKey {
    /// As `show table` names it.
    pub fn word(self) -> &'static str {
        match self {
            StickKey::Ipv4 => "ip",
            StickKey::Ipv6 => "ipv6",
        }
    }
}

/// What a `store` list keeps per entry; rates carry their period in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Store {
    pub gpc0: bool,
    pub gpc0_rate: Option<u32>,
    pub conn_cnt: bool,
    pub conn_rate: Option<u32>,
    pub conn_cur: bool,
}

/// The counter a fetch reads (or, for `inc_gpc0`, bumps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    ConnCur,
    ConnCnt,
    ConnRate,
    /// `*_get_gpc0`.
    Gpc0,
    Gpc0Rate,
    /// `*_inc_gpc0`: increments gpc0 (and gpc0_rate), returns the new value.
    IncGpc0,
}

/// Which entry a counter fetch reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StickRef {
    /// `scN_*` and `sc_*(N)`: the entry the connection tracks in slot N
    /// (0..=2; another N never is). With a table, the same key looked up in
    /// that table instead.
    Tracked { slot: u8, table: Option<String> },
    /// `src_*([table])`: the client's address looked up in the table (the
    /// current proxy's when not given).
    Src { table: String },
}

/// The slots `track-sc0` .. `track-sc2` fill (HAProxy's MAX_SESS_STKCTR).
pub const SLOTS: usize = 3;

/// HAProxy's data type names (`stktable_data_types`): these are known, and
/// lbxdp's tables store the first five at most.
pub const DATA_TYPES: &[&str] = &[
    "gpc0",
    "gpc0_rate",
    "conn_cnt",
    "conn_rate",
    "conn_cur",
    "server_id",
    "gpt0",
    "sess_cnt",
    "sess_rate",
    "http_req_cnt",
    "http_req_rate",
    "http_err_cnt",
    "http_err_rate",
    "bytes_in_cnt",
    "bytes_in_rate",
    "bytes_out_cnt",
    "bytes_out_rate",
    "gpc1",
    "gpc1_rate",
    "server_key",
    "http_fail_cnt",
    "http_fail_rate",
    "gpt",
    "gpc",
    "gpc_rate",
];

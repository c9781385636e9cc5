//! The seam between the agent loop and what forwards traffic: the XDP
//! datapath or the userspace proxy. The loop owns the health checks, the
//! runtime API and reloads; an engine only follows what it is told.
use std::future::Future;

use crate::{config::Config, health::Snapshot, stats::Counters};

pub trait Engine {
    /// A configuration checked against everything that can refuse it, not
    /// yet in force.
    type Prepared;

    /// Makes traffic follow a health snapshot (the runtime API's weights and
    /// states are in it too).
    fn apply_health(&mut self, config: &Config, snapshot: &Snapshot) -> anyhow::Result<()>;

    /// Validates `config` (maps' room, addresses, listeners) and leaves what
    /// runs untouched when it fails.
    fn prepare(&mut self, config: &Config) -> impl Future<Output = anyhow::Result<Self::Prepared>> + Send;

    /// Puts a prepared configuration in force, its servers as `snapshot` has them.
    fn commit(
        &mut self,
        prepared: Self::Prepared,
        config: &Config,
        snapshot: &Snapshot,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// The counters now, in HAProxy's terms.
    fn counters(&self) -> anyhow::Result<Counters>;

    /// `show sess`: the sessions this engine can list, one per line.
    fn sessions(&self) -> String;

    /// `show table`: the stick tables now, in the configuration's order, or
    /// only the one named. Err: this engine can't read them.
    fn stick_tables(&self, name: Option<&str>) -> anyhow::Result<Vec<crate::stick::Dump>>;

    /// `clear table NAME [key K | data.* OP V ...]`: drops the entries
    /// `select` picks that no connection uses; Ok(how many picked ones were
    /// in use and stay). Err: no such table, or this engine can't.
    fn clear_stick_table(&mut self, name: &str, select: &crate::stick::Select) -> anyhow::Result<usize>;

    /// `add acl`, `del acl`, `clear acl`: the address list of line `at.expr`
    /// of ACL `at.acl` of frontend `at.proxy` went from `old` to `new` (the
    /// configuration's shared [`crate::config::acl::Nets`] already hold
    /// `new`). Flows already open are left alone. Err: it couldn't follow.
    fn update_acl_list(
        &mut self,
        at: &crate::config::patref::ExprAt,
        old: &[(std::net::IpAddr, u8)],
        new: &[(std::net::IpAddr, u8)],
    ) -> anyhow::Result<()>;

    /// Whether address lists may hold IPv4 masks that aren't prefixes.
    fn takes_masks(&self) -> bool;

    /// Logs the counters (`--stats-interval`).
    fn log_counters(&self);

    /// What only this engine reports at exit (XDP: the interface and the
    /// packets by protocol), merged into the final report.
    fn final_extra(&self) -> serde_json::Value;
}

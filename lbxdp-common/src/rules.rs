//! A frontend's connection rules as the XDP program runs them: HAProxy's
//! `tcp-request connection` and `use_backend` rules compiled by the agent
//! into bit masks, decided on a flow's first packet only (a SYN, or a UDP
//! flow's first datagram), so established flows pay nothing for them.
//!
//! An expression is one fetch against one pattern (an address list or one
//! integer range); an ACL is the OR of some expressions; a rule's condition
//! is ORed suites of ANDed, possibly negated, ACLs. Conditions the datapath
//! can't see (`nbsrv`) are worked out by the agent and written as constants,
//! rewritten whenever they change.

use crate::freq::FreqCtr;

/// Expressions, ACLs and rules per frontend the program evaluates; the
/// agent refuses (with the config's place) a frontend that needs more.
pub const MAX_RULE_EXPRS: usize = 16;
pub const MAX_RULE_ACLS: usize = 16;
pub const MAX_RULES: usize = 16;
/// `track-sc` and `sc-inc-gpc0` rules per frontend.
pub const MAX_STICK_ACTIONS: usize = 4;
/// ORed suites per condition.
pub const MAX_RULE_SUITES: usize = 4;

/// `RuleExpr::kind`: never true (`always_false`, a fetch without patterns).
pub const EXPR_NEVER: u8 = 0;
/// Always true (`always_true`; a constant the agent worked out, such as `nbsrv(b) lt 1`).
pub const EXPR_ALWAYS: u8 = 1;
/// The client's address is in address set `set` (`NETS`).
pub const EXPR_SRC_NET: u8 = 2;
/// The address the client connected to is in set `set`.
pub const EXPR_DST_NET: u8 = 3;
/// The client's port is in `low..=high`.
pub const EXPR_SRC_PORT: u8 = 4;
/// The frontend's port is in `low..=high`.
pub const EXPR_DST_PORT: u8 = 5;

/// A stick counter of the entry tracked in slot `set` (`sc0_conn_rate`...):
/// `pad[0]` is the `STICK_*` counter. Fails (never matches) when the slot
/// tracks nothing or the table doesn't store the counter.
pub const EXPR_STICK_SLOT: u8 = 6;
/// A stick counter of the client's address in table `set` (`src_conn_rate`,
/// or with `pad[1]` = slot + 1, `sc_conn_rate(slot, table)`, which fails
/// when the slot tracks nothing): `pad[0]` is the counter; no entry reads 0.
pub const EXPR_STICK_SRC: u8 = 7;

/// Stick counters (`RuleExpr::pad[0]`).
pub const STICK_CONN_CUR: u8 = 0;
pub const STICK_CONN_CNT: u8 = 1;
pub const STICK_CONN_RATE: u8 = 2;
pub const STICK_GPC0: u8 = 3;
pub const STICK_GPC0_RATE: u8 = 4;

/// One fetch against one pattern.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleExpr {
    pub kind: u8,
    pub pad: [u8; 3],
    /// `EXPR_*_NET`: the address set.
    pub set: u32,
    /// `EXPR_*_PORT`: the inclusive range, host order.
    pub low: u32,
    pub high: u32,
}

/// One ANDed suite of a condition: the ACLs (bits of `Rules::acls`) that
/// must hold and those that must not.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleSuite {
    pub pos: u32,
    pub neg: u32,
}

/// `Rule::action`.
pub const RULE_ACCEPT: u8 = 0;
/// A TCP SYN is answered with a RST (HAProxy closes with no linger, a RST
/// too, once the handshake is done); a UDP datagram is dropped.
pub const RULE_REJECT: u8 = 1;
/// Dropped without an answer.
pub const RULE_SILENT_DROP: u8 = 2;
/// `use_backend`: the flow goes to `Rule::backend`.
pub const RULE_USE_BACKEND: u8 = 3;
/// `track-scN src [table T]`: `Rule::pad` = N, `Rule::backend[0]` = T's
/// index in `STICK_TABLES`; the rules go on.
pub const RULE_TRACK: u8 = 4;
/// `sc-inc-gpc0(N)`: `Rule::pad` = N; the rules go on.
pub const RULE_INC_GPC0: u8 = 5;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    pub action: u8,
    /// `unless`: the rule applies when the suites don't hold. A rule without
    /// a condition is `unless` with no suite.
    pub unless: u8,
    /// Suites in use.
    pub suites: u8,
    /// `RULE_TRACK` and `RULE_INC_GPC0`: the slot.
    pub pad: u8,
    /// `RULE_USE_BACKEND`: the `BACKENDS` index of the backend's IPv4 and
    /// IPv6 tables.
    pub backend: [u32; 2],
    pub suite: [RuleSuite; MAX_RULE_SUITES],
}

/// Value of `RULES`, indexed by the frontend's id; looked up only for a
/// frontend with `FRONTEND_RULES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub exprs: u32,
    pub acls: u32,
    /// `rule[..tcp]` are `tcp-request connection` rules (the first that
    /// applies decides), `rule[tcp..rules]` are `use_backend` rules (the
    /// first that applies picks the backend).
    pub tcp: u32,
    pub rules: u32,
    /// The expressions that read stick counters (bits of `expr`): worked
    /// out again after each `track-sc` or `sc-inc-gpc0`.
    pub stick: u32,
    pub pad: u32,
    pub expr: [RuleExpr; MAX_RULE_EXPRS],
    /// Per ACL, the expressions (bits of `expr`) it ORs.
    pub acl: [u32; MAX_RULE_ACLS],
    pub rule: [Rule; MAX_RULES],
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            exprs: 0,
            acls: 0,
            tcp: 0,
            rules: 0,
            stick: 0,
            pad: 0,
            expr: [RuleExpr::default(); MAX_RULE_EXPRS],
            acl: [0; MAX_RULE_ACLS],
            rule: [Rule::default(); MAX_RULES],
        }
    }
}

/// The key of `NETS`, an LPM trie: the set's id (big endian, so it is the
/// prefix's first 32 bits) and the address as IPv6, an IPv4 address mapped
/// (`::ffff:a.b.c.d`), as HAProxy matches both families against one list.
/// The LPM trie's prefix length comes before it (aya's `Key`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetKey {
    pub set: [u8; 4],
    pub addr: [u8; 16],
}

/// Bits of `NetKey` before the address.
pub const NET_SET_BITS: u32 = 32;

pub const RULES_MAP: &str = "RULES";
pub const NETS_MAP: &str = "NETS";
/// Address-list entries over all sets.
pub const DEFAULT_MAX_NETS: u32 = 1 << 18;

/// Stick tables (`STICK_TABLES` entries) the program keeps.
pub const MAX_STICK_TABLES: u32 = 254;
/// Slots `track-sc0`..`track-sc2` fill.
pub const STICK_SLOTS: usize = 3;

/// `StickTableConf::flags`: what the table stores, and its key type.
pub const STORE_CONN_CUR: u32 = 1;
pub const STORE_CONN_CNT: u32 = 2;
pub const STORE_GPC0: u32 = 4;
/// `type ipv6` (IPv4 clients are stored mapped); else `type ip` (IPv6
/// clients that aren't IPv4-mapped can't be tracked).
pub const STICK_KEY_IPV6: u32 = 8;

/// Value of `STICK_TABLES`, indexed by the table's id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StickTableConf {
    /// `expire`, 0 for never.
    pub expire_ms: u32,
    /// `conn_rate(P)` and `gpc0_rate(P)` periods; 0: not stored.
    pub conn_rate_ms: u32,
    pub gpc0_rate_ms: u32,
    pub flags: u32,
}

/// Key of `STICK`: the table and the client's address, IPv4 mapped.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StickKey {
    pub table: u32,
    pub addr: [u8; 16],
}

/// Value of `STICK`. Times are milliseconds of the coarse clock, as u32
/// (wrapping, as HAProxy's ticks do).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StickEntry {
    /// The last track or gpc0 change: the entry expires `expire_ms` later.
    pub touched_ms: u32,
    pub conn_cur: u32,
    pub conn_cnt: u32,
    pub gpc0: u32,
    pub conn_rate: FreqCtr,
    pub gpc0_rate: FreqCtr,
}

pub const STICK_TABLES_MAP: &str = "STICK_TABLES";
pub const STICK_MAP: &str = "STICK";
/// `STICK`'s entries over all tables, unless the agent sizes it from the
/// tables' `size` at start.
pub const DEFAULT_MAX_STICK: u32 = 1 << 16;

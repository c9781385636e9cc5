//! Access control as HAProxy 2.6 writes it: ACLs (`acl NAME FETCH [flags]
//! [operator] VALUE...` and anonymous `{ ... }` ones), the conditions rules
//! carry (`if`/`unless`, `!`, `||`, implicit AND), the rules lbxdp applies
//! (`tcp-request connection`, `use_backend ... if`), and their evaluation at
//! layer 4. Pure: the caller gives the connection's addresses and the
//! servers' health.
use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, RwLock},
};

use super::{
    diag::Origin,
    stick::{Counter, StickRef},
};

/// What an ACL looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    Src,
    Dst,
    SrcPort,
    DstPort,
    AlwaysTrue,
    AlwaysFalse,
    /// `nbsrv(backend)`: the backend's usable servers.
    NbSrv(String),
    /// `be_conn(backend)`: the backend's sessions now, queued ones included.
    BeConn(String),
    /// `fe_conn(frontend)`: the frontend's sessions now.
    FeConn(String),
    /// `connslots(backend)`: free connection and queue slots on the
    /// backend's running servers (HAProxy: -1 if one has no `maxconn` or
    /// no `maxqueue`).
    ConnSlots(String),
    /// A stick counter: `sc0_conn_rate`, `sc_get_gpc0(1,t)`, `src_conn_cur(t)`...
    Stick {
        from: StickRef,
        counter: Counter,
    },
    /// A fetch HAProxy knows that lbxdp doesn't evaluate, as written.
    Other {
        expr: String,
        why: Undecided,
    },
}

/// Why lbxdp can't evaluate a fetch or a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undecided {
    /// HTTP, payload, TLS or another fetch that needs more than the
    /// connection's addresses, or a converter, or a match method other than
    /// the fetch's own (`-m str` on `src`, ...).
    NotLayer4,
    /// Stick counters lbxdp doesn't keep (`sc0_http_req_rate`, `sc0_tracked`, ...).
    StickCounters,
}

/// `eq|ge|gt|le|lt VALUE` and `LOW:HIGH` ranges: an inclusive range, open
/// on a missing side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntRange {
    pub low: Option<i64>,
    pub high: Option<i64>,
}

impl IntRange {
    pub fn contains(&self, v: i64) -> bool {
        self.low.is_none_or(|l| v >= l) && self.high.is_none_or(|h| v <= h)
    }
}

/// Addresses and networks (address, prefix length), as written, and indexed
/// so that a long `-f` list costs a few hash lookups per connection, not a
/// scan: one per distinct prefix length.
///
/// Shared: clones of a configuration (the proxy's rules are one) see the
/// same set, so the runtime API's `add acl`/`del acl` reach every holder
/// with one [`Nets::replace`], and the next connection sees the change.
#[derive(Debug, Clone)]
pub struct Nets {
    live: Arc<RwLock<NetsIndex>>,
}

#[derive(Debug, Default)]
struct NetsIndex {
    list: Vec<(IpAddr, u8)>,
    /// Per prefix length (IPv4-mapped lengths for IPv4 networks, so one
    /// table serves both families), longest first, the masked networks.
    by_len: Vec<(u8, HashSet<u128>)>,
    /// IPv4 networks whose mask isn't a prefix (`10.0.0.0/255.0.255.0`),
    /// as (network, mask), matched bit by bit as HAProxy does. A longest
    /// prefix match (an LPM trie) can't hold them: see `non_contiguous`.
    masks: Vec<(u32, u32)>,
}

impl PartialEq for Nets {
    fn eq(&self, other: &Self) -> bool {
        // One set: equal, and its lock isn't taken twice by this thread
        // (which std's RwLock doesn't promise to allow).
        if Arc::ptr_eq(&self.live, &other.live) {
            return true;
        }
        let (a, b) = (self.read(), other.read());
        a.list == b.list && a.masks == b.masks
    }
}

impl Eq for Nets {}

/// An address as IPv6 (IPv4 mapped, as HAProxy compares across families).
fn as_v6(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().into(),
        IpAddr::V6(v6) => v6.into(),
    }
}

fn masked(a: u128, len: u8) -> u128 {
    match len {
        0 => 0,
        l if l >= 128 => a,
        l => a & !(u128::MAX >> l),
    }
}

impl NetsIndex {
    fn new(list: Vec<(IpAddr, u8)>, masks: Vec<(Ipv4Addr, Ipv4Addr)>) -> NetsIndex {
        let mut by_len: Vec<(u8, HashSet<u128>)> = Vec::new();
        for &(net, len) in &list {
            let len = match net {
                IpAddr::V4(_) => 96 + len.min(32),
                IpAddr::V6(_) => len.min(128),
            };
            let key = masked(as_v6(net), len);
            match by_len.iter_mut().find(|(l, _)| *l == len) {
                Some((_, set)) => {
                    set.insert(key);
                }
                None => by_len.push((len, HashSet::from([key]))),
            }
        }
        by_len.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
        let masks = masks
            .into_iter()
            .map(|(net, mask)| (u32::from(net) & u32::from(mask), u32::from(mask)))
            .collect();
        NetsIndex { list, by_len, masks }
    }
}

impl Nets {
    pub fn new(list: Vec<(IpAddr, u8)>) -> Nets {
        Nets::with_masks(list, Vec::new())
    }

    /// As `new`, with IPv4 networks whose mask isn't a prefix (network, mask).
    pub fn with_masks(list: Vec<(IpAddr, u8)>, masks: Vec<(Ipv4Addr, Ipv4Addr)>) -> Nets {
        Nets {
            live: Arc::new(RwLock::new(NetsIndex::new(list, masks))),
        }
    }

    /// A poisoned lock only means a panic elsewhere while it was held; the
    /// index is replaced whole, so what it holds is still consistent.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, NetsIndex> {
        self.live.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Puts these networks in place of the current ones, for every clone.
    pub fn replace(&self, list: Vec<(IpAddr, u8)>, masks: Vec<(Ipv4Addr, Ipv4Addr)>) {
        let index = NetsIndex::new(list, masks);
        *self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner) = index;
    }

    /// The networks whose mask isn't a prefix (network, mask): matched
    /// here, but beyond what a longest prefix match can hold.
    pub fn non_contiguous(&self) -> Vec<(u32, u32)> {
        self.read().masks.clone()
    }

    /// The networks as written (address, prefix length).
    pub fn list(&self) -> Vec<(IpAddr, u8)> {
        self.read().list.clone()
    }

    /// Whether `ip` is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let index = self.read();
        // An IPv4 /0 is every IPv4 address (the mapped range), not every address.
        let a = as_v6(ip);
        if index.by_len.iter().any(|(len, set)| set.contains(&masked(a, *len))) {
            return true;
        }
        let v4 = match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        };
        v4.is_some_and(|v4| index.masks.iter().any(|&(net, mask)| u32::from(v4) & mask == net))
    }
}

/// What the fetched value is matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patterns {
    /// `-m ip`: addresses and networks.
    Nets(Nets),
    /// `-m int`.
    Ints(Vec<IntRange>),
    /// No pattern on a boolean fetch, or `-m bool`: true when non-zero.
    Bool,
    /// No pattern on another fetch: HAProxy warns that it never matches.
    Nothing,
    /// A match lbxdp doesn't evaluate; the fetch says why.
    Other,
}

/// One `acl` line, or the inside of `{ ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclExpr {
    pub fetch: Fetch,
    pub patterns: Patterns,
    pub origin: Origin,
}

/// A named ACL (every line with its name: they are ORed) or an anonymous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// None for `{ ... }`.
    pub name: Option<String>,
    pub exprs: Vec<AclExpr>,
}

/// `[!]ACL` in a condition: an index into the frontend's `acls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    pub negate: bool,
    pub acl: usize,
}

/// `if|unless T1 T2 || T3 ...`: ORed suites of ANDed terms. No suite (an
/// empty `if`, which HAProxy accepts) never holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub unless: bool,
    pub suites: Vec<Vec<Term>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpAction {
    Accept,
    Reject,
    /// Close with no FIN and no answer (HAProxy: a reset, the socket lingers 0s).
    SilentDrop,
    /// `track-scN src [table T]` (slot N, table T, else the proxy's own): the
    /// client's address is counted in T and the connection goes on to the
    /// next rule. A slot already tracking keeps its entry.
    Track {
        slot: u8,
        table: String,
    },
    /// `sc-inc-gpc0(N)`: gpc0 (and gpc0_rate) of the entry slot N tracks go
    /// up by one; nothing if it tracks none. The next rule follows.
    IncGpc0 {
        slot: u8,
    },
}

impl TcpAction {
    /// Accept, reject and silent-drop end the rules; the others go on.
    pub fn is_final(&self) -> bool {
        matches!(self, TcpAction::Accept | TcpAction::Reject | TcpAction::SilentDrop)
    }
}

/// `tcp-request connection ACTION [if|unless COND]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRule {
    pub action: TcpAction,
    pub cond: Option<Cond>,
    pub origin: Origin,
}

/// `use_backend BACKEND if|unless COND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchRule {
    pub backend: String,
    pub cond: Cond,
    pub origin: Origin,
}

/// What a condition is evaluated on.
pub trait Facts {
    /// The client's address and port.
    fn src(&self) -> SocketAddr;
    /// The address and port the client connected to.
    fn dst(&self) -> SocketAddr;
    /// The backend's usable servers (HAProxy's `nbsrv`).
    fn nbsrv(&self, backend: &str) -> u32;
    /// `be_conn`, `fe_conn`, `connslots`: None where the mode can't know them
    /// (the fetch fails).
    fn be_conn(&self, _backend: &str) -> Option<i64> {
        None
    }
    fn fe_conn(&self, _frontend: &str) -> Option<i64> {
        None
    }
    fn connslots(&self, _backend: &str) -> Option<i64> {
        None
    }
    /// A stick counter's value, None when HAProxy's fetch fails (nothing
    /// tracked in the slot, the counter not stored, ...). `inc_gpc0` counts.
    fn stick(&self, _from: &StickRef, _counter: Counter) -> Option<i64> {
        None
    }
}

impl AclExpr {
    /// Whether it matches; None: lbxdp can't tell (see `Fetch::Other`).
    fn matches(&self, f: &dyn Facts) -> Option<bool> {
        let value = match &self.fetch {
            Fetch::Src => Value::Ip(f.src().ip()),
            Fetch::Dst => Value::Ip(f.dst().ip()),
            Fetch::SrcPort => Value::Int(f.src().port().into()),
            Fetch::DstPort => Value::Int(f.dst().port().into()),
            Fetch::AlwaysTrue => Value::Int(1),
            Fetch::AlwaysFalse => Value::Int(0),
            Fetch::NbSrv(b) => Value::Int(f.nbsrv(b).into()),
            Fetch::BeConn(b) => Value::from(f.be_conn(b)),
            Fetch::FeConn(fe) => Value::from(f.fe_conn(fe)),
            Fetch::ConnSlots(b) => Value::from(f.connslots(b)),
            Fetch::Stick { from, counter } => Value::from(f.stick(from, *counter)),
            Fetch::Other { .. } => return None,
        };
        // A failed fetch matches nothing (and `!` of it holds, as in HAProxy).
        if matches!(value, Value::Failed) {
            return Some(false);
        }
        Some(match (&self.patterns, value) {
            (Patterns::Nets(nets), Value::Ip(ip)) => nets.contains(ip),
            (Patterns::Ints(ranges), Value::Int(v)) => ranges.iter().any(|r| r.contains(v)),
            (Patterns::Bool, Value::Int(v)) => v != 0,
            (Patterns::Nothing, _) => false,
            _ => return None,
        })
    }
}

enum Value {
    Ip(IpAddr),
    Int(i64),
    /// The sample fetch failed.
    Failed,
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Value {
        v.map_or(Value::Failed, Value::Int)
    }
}

impl Acl {
    /// Lines of one name are ORed, as in HAProxy: the first that matches
    /// ends it (a later `inc_gpc0` doesn't count).
    fn matches(&self, f: &dyn Facts) -> Option<bool> {
        for e in &self.exprs {
            if e.matches(f)? {
                return Some(true);
            }
        }
        Some(false)
    }

    /// The first thing in it lbxdp can't evaluate: (fetch as written, why).
    pub fn undecided(&self) -> Option<(&str, Undecided)> {
        self.exprs.iter().find_map(|e| match &e.fetch {
            Fetch::Other { expr, why } => Some((expr.as_str(), *why)),
            _ if e.patterns == Patterns::Other => Some(("-m", Undecided::NotLayer4)),
            _ => None,
        })
    }
}

impl Cond {
    /// Whether the rule applies. `acls` is the frontend's list the terms
    /// point into. A condition `undecided` finds something in is refused
    /// when the configuration is read, so it never gets here; if one does,
    /// it doesn't hold.
    pub fn holds(&self, acls: &[Acl], f: &dyn Facts) -> bool {
        let met = self.suites.iter().any(|suite| {
            suite.iter().all(|t| {
                acls.get(t.acl)
                    .and_then(|a| a.matches(f))
                    .is_some_and(|m| m != t.negate)
            })
        });
        met != self.unless
    }

    /// The first ACL in it lbxdp can't evaluate.
    pub fn undecided<'a>(&self, acls: &'a [Acl]) -> Option<(&'a str, Undecided)> {
        self.suites
            .iter()
            .flatten()
            .find_map(|t| acls.get(t.acl).and_then(Acl::undecided))
    }

    /// The backends `nbsrv` looks at.
    pub fn backends<'a>(&self, acls: &'a [Acl]) -> Vec<&'a str> {
        self.suites
            .iter()
            .flatten()
            .filter_map(|t| acls.get(t.acl))
            .flat_map(|a| &a.exprs)
            .filter_map(|e| match &e.fetch {
                Fetch::NbSrv(b) | Fetch::BeConn(b) | Fetch::ConnSlots(b) => Some(b.as_str()),
                _ => None,
            })
            .collect()
    }
}

impl Fetch {
    /// Fills in the proxy a fetch names when its argument was left out
    /// (HAProxy takes the current one).
    pub(super) fn default_proxy(&mut self, current: &str) {
        match self {
            Fetch::NbSrv(p) | Fetch::BeConn(p) | Fetch::FeConn(p) | Fetch::ConnSlots(p) if p.is_empty() => {
                current.clone_into(p);
            }
            Fetch::Stick {
                from: StickRef::Src { table },
                ..
            } if table.is_empty() => current.clone_into(table),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct F {
        src: SocketAddr,
        dst: SocketAddr,
        up: u32,
    }

    impl Facts for F {
        fn src(&self) -> SocketAddr {
            self.src
        }
        fn dst(&self) -> SocketAddr {
            self.dst
        }
        fn nbsrv(&self, backend: &str) -> u32 {
            if backend == "main" { self.up } else { 9 }
        }
    }

    fn at() -> Origin {
        Origin::new("t.cfg", 1)
    }

    fn acl(fetch: Fetch, patterns: Patterns) -> Acl {
        Acl {
            name: None,
            exprs: vec![AclExpr {
                fetch,
                patterns,
                origin: at(),
            }],
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn in_net(a: IpAddr, net: (IpAddr, u8)) -> bool {
        Nets::new(vec![net]).contains(a)
    }

    #[test]
    fn networks_match_both_families_and_mapped_addresses() {
        assert!(in_net(ip("10.1.2.3"), (ip("10.0.0.0"), 8)));
        assert!(!in_net(ip("11.1.2.3"), (ip("10.0.0.0"), 8)));
        assert!(in_net(ip("::ffff:10.1.2.3"), (ip("10.0.0.0"), 8)));
        assert!(in_net(ip("10.1.2.3"), (ip("::ffff:10.0.0.0"), 104)));
        assert!(in_net(ip("2001:db8::1"), (ip("2001:db8::"), 32)));
        assert!(!in_net(ip("2001:db9::1"), (ip("2001:db8::"), 32)));
        assert!(in_net(ip("1.2.3.4"), (ip("0.0.0.0"), 0)));
        assert!(!in_net(ip("2001:db8::1"), (ip("0.0.0.0"), 0)));
        assert!(in_net(ip("2001:db8::1"), (ip("::"), 0)));
        assert!(in_net(ip("1.2.3.4"), (ip("::"), 0)));
        assert!(in_net(ip("1.2.3.4"), (ip("1.2.3.4"), 32)));
        assert!(!in_net(ip("1.2.3.5"), (ip("1.2.3.4"), 32)));
        // Many networks of a few lengths: each length is one lookup.
        let many = Nets::new(
            (0..=255u8)
                .map(|i| (IpAddr::from([10, i, 0, 0]), 16))
                .chain([(ip("192.0.2.7"), 32)])
                .collect(),
        );
        assert!(many.contains(ip("10.200.3.4")));
        assert!(many.contains(ip("192.0.2.7")));
        assert!(!many.contains(ip("192.0.2.8")));
        assert!(!many.contains(ip("11.0.0.1")));
        // HAProxy takes masks that aren't prefixes, and matches them bit by bit.
        let odd = Nets::with_masks(
            vec![],
            vec![("10.0.0.0".parse().unwrap(), "255.0.255.0".parse().unwrap())],
        );
        assert!(odd.contains(ip("10.7.0.9")));
        assert!(odd.contains(ip("::ffff:10.200.0.1")));
        assert!(!odd.contains(ip("10.7.1.9")));
        assert!(!odd.contains(ip("11.7.0.9")));
        assert_eq!(odd.non_contiguous(), [(0x0a00_0000, 0xff00_ff00)]);
        // A replacement reaches every clone.
        let shared = many.clone();
        many.replace(vec![(ip("11.0.0.0"), 8)], vec![]);
        assert!(shared.contains(ip("11.0.0.1")));
        assert!(!shared.contains(ip("10.200.3.4")));
    }

    #[test]
    fn conditions_or_suites_and_terms_and_negate() {
        let acls = vec![
            acl(Fetch::Src, Patterns::Nets(Nets::new(vec![(ip("198.18.0.0"), 24)]))),
            acl(
                Fetch::DstPort,
                Patterns::Ints(vec![IntRange {
                    low: Some(8000),
                    high: Some(8099),
                }]),
            ),
            acl(
                Fetch::NbSrv("main".into()),
                Patterns::Ints(vec![IntRange {
                    low: None,
                    high: Some(0),
                }]),
            ),
            acl(Fetch::AlwaysTrue, Patterns::Bool),
            acl(Fetch::SrcPort, Patterns::Nothing),
        ];
        let f = |src: &str, dport: u16, up: u32| F {
            src: SocketAddr::new(ip(src), 40000),
            dst: SocketAddr::new(ip("198.18.1.1"), dport),
            up,
        };
        let t = |acl, negate| Term { negate, acl };
        // src AND dst_port || nbsrv(main) lt 1
        let c = Cond {
            unless: false,
            suites: vec![vec![t(0, false), t(1, false)], vec![t(2, false)]],
        };
        assert!(c.holds(&acls, &f("198.18.0.9", 8080, 1)));
        assert!(!c.holds(&acls, &f("198.18.0.9", 80, 1)));
        assert!(!c.holds(&acls, &f("198.18.5.9", 8080, 1)));
        assert!(c.holds(&acls, &f("198.18.5.9", 80, 0)));
        let unless = Cond {
            unless: true,
            ..c.clone()
        };
        assert!(!unless.holds(&acls, &f("198.18.0.9", 8080, 1)));
        let not = Cond {
            unless: false,
            suites: vec![vec![t(0, true), t(3, false)]],
        };
        assert!(not.holds(&acls, &f("203.0.113.1", 80, 1)));
        assert!(!not.holds(&acls, &f("198.18.0.1", 80, 1)));
        let never = Cond {
            unless: false,
            suites: vec![vec![t(4, false)]],
        };
        assert!(!never.holds(&acls, &f("198.18.0.1", 80, 1)));
        let empty = Cond {
            unless: false,
            suites: vec![],
        };
        assert!(!empty.holds(&acls, &f("198.18.0.1", 80, 1)));
        assert_eq!(c.backends(&acls), ["main"]);
        assert_eq!(c.undecided(&acls), None);
    }

    /// Counters from a table: slot 0 tracks a connection rate of 5, slot 1
    /// tracks nothing (its fetches fail), `inc_gpc0` counts its calls.
    struct Counters(std::cell::Cell<i64>);

    impl Facts for Counters {
        fn src(&self) -> SocketAddr {
            SocketAddr::new(ip("192.0.2.1"), 1)
        }
        fn dst(&self) -> SocketAddr {
            SocketAddr::new(ip("192.0.2.2"), 80)
        }
        fn nbsrv(&self, _: &str) -> u32 {
            1
        }
        fn stick(&self, from: &StickRef, counter: Counter) -> Option<i64> {
            match (from, counter) {
                (StickRef::Tracked { slot: 0, .. }, Counter::ConnRate) => Some(5),
                (StickRef::Tracked { slot: 0, .. }, Counter::IncGpc0) => {
                    self.0.set(self.0.get() + 1);
                    Some(self.0.get())
                }
                _ => None,
            }
        }
    }

    #[test]
    fn a_failed_fetch_matches_nothing_and_its_negation_holds() {
        let gt = |n: i64| {
            Patterns::Ints(vec![IntRange {
                low: Some(n + 1),
                high: None,
            }])
        };
        let sc = |slot, counter| Fetch::Stick {
            from: StickRef::Tracked { slot, table: None },
            counter,
        };
        let acls = vec![
            acl(sc(0, Counter::ConnRate), gt(3)),
            acl(sc(1, Counter::ConnRate), gt(3)),
            acl(sc(0, Counter::IncGpc0), gt(100)),
        ];
        let f = Counters(std::cell::Cell::new(0));
        let t = |acl, negate| Term { negate, acl };
        let cond = |terms: Vec<Term>| Cond {
            unless: false,
            suites: vec![terms],
        };
        assert!(cond(vec![t(0, false)]).holds(&acls, &f));
        assert!(!cond(vec![t(1, false)]).holds(&acls, &f));
        assert!(cond(vec![t(1, true)]).holds(&acls, &f));
        // `unless` of a failed fetch holds too.
        let unless = Cond {
            unless: true,
            suites: vec![vec![t(1, false)]],
        };
        assert!(unless.holds(&acls, &f));
        // AND stops at the first term that fails: inc_gpc0 isn't reached.
        assert!(!cond(vec![t(1, false), t(2, false)]).holds(&acls, &f));
        assert_eq!(f.0.get(), 0);
        assert!(!cond(vec![t(0, false), t(2, false)]).holds(&acls, &f));
        assert_eq!(f.0.get(), 1);
    }

    #[test]
    fn lines_of_one_name_are_ored_and_other_fetches_are_undecided() {
        let mut a = acl(
            Fetch::SrcPort,
            Patterns::Ints(vec![IntRange {
                low: Some(5),
                high: Some(5),
            }]),
        );
        a.exprs.push(AclExpr {
            fetch: Fetch::Src,
            patterns: Patterns::Nets(Nets::new(vec![(ip("192.0.2.1"), 32)])),
            origin: at(),
        });
        let f = F {
            src: SocketAddr::new(ip("192.0.2.1"), 7),
            dst: SocketAddr::new(ip("192.0.2.2"), 80),
            up: 1,
        };
        assert_eq!(a.matches(&f), Some(true));
        let other = acl(
            Fetch::Other {
                expr: "path_beg".into(),
                why: Undecided::NotLayer4,
            },
            Patterns::Other,
        );
        assert_eq!(other.matches(&f), None);
        assert_eq!(other.undecided(), Some(("path_beg", Undecided::NotLayer4)));
    }
}

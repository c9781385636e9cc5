//! A frontend's `tcp-request connection` and `use_backend ... if` rules in
//! the proxy: evaluated on each accepted connection, before any server is
//! connected to, with `nbsrv`, `be_conn`, `connslots` read from the
//! backends, `fe_conn` from the frontends, and the stick counters from the
//! proxy's tables.
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use super::{backend::BackendRt, stats::FrontendCounters, tables::Tables};
use crate::config::{
    Frontend,
    acl::{Acl, Cond, Facts, TcpAction, TcpRule},
    stick::{Counter, SLOTS, StickRef},
};

pub(crate) struct Rules {
    /// The frontend's own name: its `fe_conn` counts the connection being
    /// accepted, as HAProxy's does (feconn goes up before the rules run).
    name: String,
    acls: Vec<Acl>,
    tcp: Vec<TcpRule>,
    /// `use_backend` rules with their backend, in order.
    switching: Vec<(Cond, Arc<BackendRt>)>,
    /// The backends `nbsrv`, `be_conn` and `connslots` ask about.
    backends: HashMap<String, Arc<BackendRt>>,
    /// Every frontend's counters, for `fe_conn`.
    frontends: HashMap<String, Arc<FrontendCounters>>,
    tables: Arc<Tables>,
}

/// The entries a connection tracks (`track-sc0` .. `track-sc2`); dropped
/// when the connection ends, which gives their conn_cur back.
#[derive(Default)]
pub(crate) struct Tracked {
    slots: [Option<(Arc<super::tables::TableRt>, IpAddr)>; SLOTS],
}

impl Drop for Tracked {
    fn drop(&mut self) {
        for (t, key) in self.slots.iter_mut().filter_map(Option::take) {
            t.release(key);
        }
    }
}

struct Conn<'a> {
    src: SocketAddr,
    dst: SocketAddr,
    rules: &'a Rules,
    tracked: &'a Tracked,
    /// At accept time: the own frontend's gauge doesn't count this one yet.
    accepting: bool,
}

impl Facts for Conn<'_> {
    fn src(&self) -> SocketAddr {
        self.src
    }
    fn dst(&self) -> SocketAddr {
        self.dst
    }
    fn nbsrv(&self, backend: &str) -> u32 {
        self.rules.backends.get(backend).map_or(0, |b| b.nbsrv())
    }
    fn be_conn(&self, backend: &str) -> Option<i64> {
        self.rules.backends.get(backend).map(|b| b.beconn.get() as i64)
    }
    fn fe_conn(&self, frontend: &str) -> Option<i64> {
        let c = self.rules.frontends.get(frontend)?;
        let pending = i64::from(self.accepting && frontend == self.rules.name);
        Some(c.scur.get() as i64 + pending)
    }
    fn connslots(&self, backend: &str) -> Option<i64> {
        self.rules.backends.get(backend).map(|b| b.connslots())
    }
    fn stick(&self, from: &StickRef, counter: Counter) -> Option<i64> {
        let tables = &self.rules.tables;
        match from {
            StickRef::Tracked { slot, table } => {
                let (t, key) = self.tracked.slots.get(usize::from(*slot))?.as_ref()?;
                match table {
                    None => t.counter(*key, counter, false),
                    // The same key in another table: never created there.
                    Some(other) => {
                        let o = tables.get(other)?;
                        if o.def.key != t.def.key {
                            return Some(0);
                        }
                        o.counter(*key, counter, false)
                    }
                }
            }
            StickRef::Src { table } => {
                let t = tables.get(table)?;
                let key = t.key(self.src.ip())?;
                t.counter(key, counter, counter == Counter::IncGpc0)
            }
        }
    }
}

impl Rules {
    pub(crate) fn new(
        f: &Frontend,
        by_name: &HashMap<&str, &Arc<BackendRt>>,
        frontends: &HashMap<String, Arc<FrontendCounters>>,
        tables: &Arc<Tables>,
    ) -> Rules {
        let conds = f
            .tcp_rules
            .iter()
            .filter_map(|r| r.cond.as_ref())
            .chain(f.switching.iter().map(|r| &r.cond));
        let backends = conds
            .flat_map(|c| c.backends(&f.acls))
            .filter_map(|n| by_name.get(n).map(|b| (n.to_string(), (*b).clone())))
            .collect();
        Rules {
            name: f.name.clone(),
            acls: f.acls.clone(),
            tcp: f.tcp_rules.clone(),
            // The configuration resolved every name; a rule whose backend
            // isn't running can't be one HAProxy would have accepted.
            switching: f
                .switching
                .iter()
                .filter_map(|r| by_name.get(r.backend.as_str()).map(|b| (r.cond.clone(), (*b).clone())))
                .collect(),
            backends,
            frontends: frontends.clone(),
            tables: tables.clone(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.switching.is_empty()
    }

    /// The `tcp-request connection` rules in order: tracking and counting
    /// actions apply and go on, the first accept, reject or silent-drop that
    /// applies decides; none accepts, as in HAProxy. The entries tracked go
    /// with the connection (a refused one gives them back at once).
    pub(crate) fn on_accept(&self, src: SocketAddr, dst: SocketAddr) -> (TcpAction, Tracked) {
        let mut tracked = Tracked::default();
        for r in &self.tcp {
            let holds = {
                let facts = Conn {
                    src,
                    dst,
                    rules: self,
                    tracked: &tracked,
                    accepting: true,
                };
                r.cond.as_ref().is_none_or(|c| c.holds(&self.acls, &facts))
            };
            if !holds {
                continue;
            }
            match &r.action {
                TcpAction::Track { slot, table } => {
                    let Some(s) = tracked.slots.get_mut(usize::from(*slot)) else {
                        continue;
                    };
                    // Only the first tracking of a slot applies.
                    if s.is_none()
                        && let Some(t) = self.tables.get(table)
                        && let Some(key) = t.track(src.ip())
                    {
                        *s = Some((t.clone(), key));
                    }
                }
                TcpAction::IncGpc0 { slot } => {
                    if let Some(Some((t, key))) = tracked.slots.get(usize::from(*slot)) {
                        t.counter(*key, Counter::IncGpc0, false);
                    }
                }
                action => return (action.clone(), tracked),
            }
        }
        (TcpAction::Accept, tracked)
    }

    /// The backend of the first `use_backend` rule that holds; None: the
    /// frontend's own (`default_backend`).
    pub(crate) fn backend(&self, src: SocketAddr, dst: SocketAddr, tracked: &Tracked) -> Option<Arc<BackendRt>> {
        let facts = Conn {
            src,
            dst,
            rules: self,
            tracked,
            accepting: false,
        };
        self.switching
            .iter()
            .find(|(c, _)| c.holds(&self.acls, &facts))
            .map(|(_, b)| b.clone())
    }
}

//! A frontend's `tcp-request connection` and `use_backend ... if` rules in
//! the proxy: evaluated on each accepted connection, before any server is
//! connected to, with `nbsrv` read from the backends' health.
use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use super::backend::BackendRt;
use crate::config::{
    Frontend,
    acl::{Acl, Cond, Facts, TcpAction, TcpRule},
};

pub(crate) struct Rules {
    acls: Vec<Acl>,
    tcp: Vec<TcpRule>,
    /// `use_backend` rules with their backend, in order.
    switching: Vec<(Cond, Arc<BackendRt>)>,
    /// The backends `nbsrv` asks about.
    nbsrv: HashMap<String, Arc<BackendRt>>,
}

struct Conn<'a> {
    src: SocketAddr,
    dst: SocketAddr,
    nbsrv: &'a HashMap<String, Arc<BackendRt>>,
}

impl Facts for Conn<'_> {
    fn src(&self) -> SocketAddr {
        self.src
    }
    fn dst(&self) -> SocketAddr {
        self.dst
    }
    fn nbsrv(&self, backend: &str) -> u32 {
        self.nbsrv.get(backend).map_or(0, |b| b.nbsrv())
    }
}

impl Rules {
    pub(crate) fn new(f: &Frontend, by_name: &HashMap<&str, &Arc<BackendRt>>) -> Rules {
        let conds = f
            .tcp_rules
            .iter()
            .filter_map(|r| r.cond.as_ref())
            .chain(f.switching.iter().map(|r| &r.cond));
        let nbsrv = conds
            .flat_map(|c| c.backends(&f.acls))
            .filter_map(|n| by_name.get(n).map(|b| (n.to_string(), (*b).clone())))
            .collect();
        Rules {
            acls: f.acls.clone(),
            tcp: f.tcp_rules.clone(),
            // The configuration resolved every name; a rule whose backend
            // isn't running can't be one HAProxy would have accepted.
            switching: f
                .switching
                .iter()
                .filter_map(|r| by_name.get(r.backend.as_str()).map(|b| (r.cond.clone(), (*b).clone())))
                .collect(),
            nbsrv,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.switching.is_empty()
    }

    fn conn(&self, src: SocketAddr, dst: SocketAddr) -> Conn<'_> {
        Conn {
            src,
            dst,
            nbsrv: &self.nbsrv,
        }
    }

    /// The `tcp-request connection` verdict: the first rule that applies
    /// decides; none accepts, as in HAProxy.
    pub(crate) fn on_accept(&self, src: SocketAddr, dst: SocketAddr) -> TcpAction {
        let facts = self.conn(src, dst);
        self.tcp
            .iter()
            .find(|r| r.cond.as_ref().is_none_or(|c| c.holds(&self.acls, &facts)))
            .map_or(TcpAction::Accept, |r| r.action)
    }

    /// The backend of the first `use_backend` rule that holds; None: the
    /// frontend's own (`default_backend`).
    pub(crate) fn backend(&self, src: SocketAddr, dst: SocketAddr) -> Option<Arc<BackendRt>> {
        let facts = self.conn(src, dst);
        self.switching
            .iter()
            .find(|(c, _)| c.holds(&self.acls, &facts))
            .map(|(_, b)| b.clone())
    }
}

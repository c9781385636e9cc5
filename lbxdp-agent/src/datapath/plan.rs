//! What the datapath will hold, worked out from the resolved config: pure,
//! so the mapping from haproxy.cfg to frontends, backends and servers is
//! tested without a kernel.
use std::net::IpAddr;

use super::rules::PlanRules;
use crate::config::{Config, PortSpec, stick::StickTable};

/// Bind ports per frontend that we expand into XDP frontends; a wider range
/// would fill the frontend map with one entry per port.
pub const MAX_PORTS_PER_BIND: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub frontends: Vec<PlanFrontend>,
    pub backends: Vec<PlanBackend>,
    /// Things the datapath does differently from HAProxy, to log once.
    pub notes: Vec<String>,
    /// Settings of the config XDP mode doesn't apply (the proxy does), each
    /// with its section's place: said as warnings, never dropped silently.
    pub unapplied: Vec<String>,
    /// Every stick table of the config (`show table` lists unused ones too).
    pub tables: Vec<StickTable>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanFrontend {
    pub name: String,
    /// Index into `FRONTEND_STATS`.
    pub id: u32,
    /// (VIP, port) pairs, wildcards already expanded to the LB's addresses.
    pub vips: Vec<(IpAddr, u16)>,
    /// Index into `Plan::backends`.
    pub backend: u32,
    /// Its `tcp-request connection` and `use_backend` rules, if any.
    pub rules: Option<PlanRules>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanBackend {
    /// Indices into `BACKENDS` of its IPv4 and its IPv6 table (the balancer
    /// keeps them stable across reloads). XDP doesn't translate between
    /// families, so a VIP uses the table of its own family.
    pub ids: [u32; 2],
    pub name: String,
    pub servers: Vec<PlanServer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanServer {
    /// Index into `SERVERS` (unique over all backends).
    pub id: u32,
    pub name: String,
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub backup: bool,
    pub disabled: bool,
    /// HAProxy's `source`: the full-NAT address towards this server (None:
    /// the LB's address in the server's subnet).
    pub source: Option<IpAddr>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("{origin}: frontend {frontend} has no backend to send connections to")]
    NoBackend { frontend: String, origin: String },
    #[error("{origin}: frontend {frontend}: port range {first}-{last} is wider than {MAX_PORTS_PER_BIND} ports")]
    RangeTooWide {
        frontend: String,
        origin: String,
        first: u16,
        last: u16,
    },
    #[error(
        "{origin}: server {backend}/{server} has no fixed port, and its backend serves ports {ports:?}: \
         lbxdp needs one port per server"
    )]
    AmbiguousPort {
        backend: String,
        server: String,
        origin: String,
        ports: Vec<u16>,
    },
    #[error(
        "{origin}: server {backend}/{server}: 'source' with a port range: XDP full NAT takes its source ports from \
         the range the kernel leaves free (see the log), not per server; give the address alone"
    )]
    SourcePorts {
        backend: String,
        server: String,
        origin: String,
    },
    #[error("{origin}: server {backend}/{server}: port {port} + offset is out of range")]
    PortOutOfRange {
        backend: String,
        server: String,
        origin: String,
        port: u16,
    },
    #[error(
        "{origin}: frontend {frontend} listens on {vip}, but backend {backend} has no server of that address \
         family: lbxdp does not translate between IPv4 and IPv6"
    )]
    NoServerOfFamily {
        frontend: String,
        backend: String,
        vip: IpAddr,
        origin: String,
    },
    #[error(
        "{origin}: frontend {frontend}: {what}: more than the XDP program evaluates per frontend (the userspace \
         proxy has no such limit: --mode proxy, or --mode auto)"
    )]
    RuleLimit {
        frontend: String,
        origin: String,
        what: String,
    },
    #[error("{origin}: {what}: XDP mode can't apply it (the userspace proxy does: --mode proxy, or --mode auto)")]
    NotInXdp { origin: String, what: String },
    #[error("no frontend to balance: the config has none, or all are disabled")]
    Empty,
}

/// `local` lists the LB's own addresses, for `*:PORT` and `[::]:PORT` binds.
pub fn plan(config: &Config, local: &[IpAddr]) -> Result<Plan, PlanError> {
    let mut notes = Vec::new();
    let mut unapplied = Vec::new();
    let mut backends: Vec<PlanBackend> = Vec::new();
    let mut frontends = Vec::new();
    let mut next_server = 0u32;

    for fe in config
        .frontends
        .iter()
        .filter(|f| !f.disabled && f.stats_page.is_none())
    {
        let origin = fe.origin.to_string();
        let Some(be_name) = fe.backend.as_deref() else {
            return Err(PlanError::NoBackend {
                frontend: fe.name.clone(),
                origin,
            });
        };
        let Some(be) = config.backend(be_name) else {
            return Err(PlanError::NoBackend {
                frontend: fe.name.clone(),
                origin,
            });
        };
        let mut vips = Vec::new();
        let mut explicit = Vec::new();
        for bind in &fe.binds {
            let (first, last) = (*bind.addr.ports.start(), *bind.addr.ports.end());
            if usize::from(last - first) >= MAX_PORTS_PER_BIND {
                return Err(PlanError::RangeTooWide {
                    frontend: fe.name.clone(),
                    origin,
                    first,
                    last,
                });
            }
            if let Some(ip) = bind.addr.ip.filter(|ip| !ip.is_unspecified()) {
                explicit.push(ip);
            }
            let addrs: Vec<IpAddr> = match bind.addr.ip {
                Some(ip) if ip.is_unspecified() => {
                    local.iter().copied().filter(|l| l.is_ipv4() == ip.is_ipv4()).collect()
                }
                Some(ip) => vec![ip],
                None => local.iter().copied().filter(IpAddr::is_ipv4).collect(),
            };
            for ip in addrs {
                for port in first..=last {
                    if !vips.contains(&(ip, port)) {
                        vips.push((ip, port));
                    }
                }
            }
        }
        let ports: Vec<u16> = {
            let mut p: Vec<u16> = vips.iter().map(|v| v.1).collect();
            p.sort_unstable();
            p.dedup();
            p
        };
        let mut b = Backends {
            list: &mut backends,
            next_server: &mut next_server,
            notes: &mut notes,
        };
        let backend = b.index(be, &ports)?;
        // `use_backend` targets are balanced to as well; the configuration
        // resolved their names, so each has a backend.
        let mut missing = None;
        let rules = PlanRules::compile(fe, |name| match config.backend(name) {
            Some(target) => b.index(target, &ports).unwrap_or_else(|e| {
                missing.get_or_insert(e);
                backend
            }),
            None => backend,
        })
        .map_err(|e| match e.limit {
            true => PlanError::RuleLimit {
                frontend: fe.name.clone(),
                origin: e.origin,
                what: e.what,
            },
            false => PlanError::NotInXdp {
                origin: e.origin,
                what: format!("frontend {}: {}", fe.name, e.what),
            },
        })?;
        if let Some(e) = missing {
            return Err(e);
        }
        let servers = &backends[backend].servers;
        let family_served = |ip: &IpAddr| servers.iter().any(|s| s.addr.is_ipv4() == ip.is_ipv4());
        // A wildcard bind covers the families the backend can serve; a named
        // address of another family is a mistake worth stopping for.
        vips.retain(|(ip, _)| family_served(ip) || explicit.contains(ip));
        if let Some(&(vip, _)) = vips.iter().find(|(ip, _)| !family_served(ip)) {
            return Err(PlanError::NoServerOfFamily {
                frontend: fe.name.clone(),
                backend: be.name.clone(),
                vip,
                origin: fe.origin.to_string(),
            });
        }
        for what in proxy_only(fe, be) {
            if !unapplied.contains(&what) {
                unapplied.push(what);
            }
        }
        frontends.push(PlanFrontend {
            name: fe.name.clone(),
            id: frontends.len() as u32,
            vips,
            backend: backend as u32,
            rules,
        });
    }
    if frontends.is_empty() {
        return Err(PlanError::Empty);
    }
    // One LRU map holds every table's entries: it always makes room.
    if let Some(t) = config.tables.iter().find(|t| t.nopurge) {
        return Err(PlanError::NotInXdp {
            origin: t.origin.to_string(),
            what: format!(
                "stick-table {}: 'nopurge' (XDP tables drop their least recently used entries when full)",
                t.name
            ),
        });
    }
    Ok(Plan {
        frontends,
        backends,
        notes,
        unapplied,
        tables: config.tables.clone(),
    })
}

/// The plan's backends as frontends reach them, each planned once.
struct Backends<'a> {
    list: &'a mut Vec<PlanBackend>,
    next_server: &'a mut u32,
    notes: &'a mut Vec<String>,
}

impl Backends<'_> {
    /// `be`'s index in the plan, planning it on first use; `ports` are the
    /// frontend's, for servers with a port offset.
    fn index(&mut self, be: &crate::config::Backend, ports: &[u16]) -> Result<usize, PlanError> {
        if let Some(i) = self.list.iter().position(|b| b.name == be.name) {
            return Ok(i);
        }
        let mut servers = Vec::new();
        for s in &be.servers {
            let origin = s.origin.to_string();
            let port = match s.port {
                PortSpec::Fixed(p) => p,
                PortSpec::Offset(off) => {
                    let [p] = ports[..] else {
                        return Err(PlanError::AmbiguousPort {
                            backend: be.name.clone(),
                            server: s.name.clone(),
                            origin,
                            ports: ports.to_vec(),
                        });
                    };
                    u16::try_from(i32::from(p) + off)
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| PlanError::PortOutOfRange {
                            backend: be.name.clone(),
                            server: s.name.clone(),
                            origin: origin.clone(),
                            port: p,
                        })?
                }
            };
            let source = match &s.source {
                Some(src) if src.ports.is_some() => {
                    return Err(PlanError::SourcePorts {
                        backend: be.name.clone(),
                        server: s.name.clone(),
                        origin,
                    });
                }
                Some(src) if !src.addr.is_unspecified() => Some(src.addr),
                _ => None,
            };
            servers.push(PlanServer {
                id: *self.next_server,
                name: s.name.clone(),
                addr: s.addr,
                port,
                weight: u32::from(s.weight),
                backup: s.backup,
                disabled: s.disabled,
                source,
            });
            *self.next_server += 1;
        }
        if !matches!(
            be.balance,
            crate::config::Balance::Source | crate::config::Balance::RoundRobin
        ) {
            self.notes.push(format!(
                "backend {}: balance {:?} is done as a weighted consistent hash per connection (Maglev)",
                be.name, be.balance
            ));
        }
        let n = self.list.len() as u32;
        self.list.push(PlanBackend {
            ids: [2 * n, 2 * n + 1],
            name: be.name.clone(),
            servers,
        });
        Ok(self.list.len() - 1)
    }
}

/// What the userspace proxy applies for `fe` and `be` and the datapath
/// can't: it forwards packets of flows, it holds no sessions.
fn proxy_only(fe: &crate::config::Frontend, be: &crate::config::Backend) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = fe.maxconn {
        out.push(format!(
            "{}: frontend {}: 'maxconn {n}' is not enforced in XDP mode (--mode proxy enforces it)",
            fe.origin, fe.name
        ));
    }
    if fe.tcplog && !fe.logs.is_empty() {
        out.push(format!(
            "{}: frontend {}: 'option tcplog': XDP mode logs no line per connection (health, runtime API \
             and stop lines are logged)",
            fe.origin, fe.name
        ));
    }
    if fe.timeout_client.is_some() || be.timeouts.server.is_some() {
        out.push(format!(
            "{}: frontend {}: 'timeout client/server' don't age XDP flows: an idle flow is kept up to 1 h \
             (the flow table evicts the least recently used first), 10 s after FIN/RST",
            fe.origin, fe.name
        ));
    }
    if be.redispatch.is_some() {
        out.push(format!(
            "{}: backend {}: 'option redispatch' and 'retries' are the proxy's: in XDP mode a connection \
             refused by its server is not retried on another",
            be.origin, be.name
        ));
    }
    out
}

/// 0 for IPv4, 1 for IPv6: the index into `PlanBackend::ids`.
pub fn family_index(ip: IpAddr) -> usize {
    usize::from(ip.is_ipv6())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    fn cfg(text: &str) -> Config {
        match parse_str("t.cfg", text) {
            Ok((c, _)) => c,
            Err(d) => panic!("config rejected: {d:?}"),
        }
    }

    const SEED: &str = "defaults\n mode tcp\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n\
        frontend web\n bind 198.18.0.2:80\n default_backend be\n\
        backend be\n server web1 198.18.0.101:80 check weight 1\n server web2 198.18.0.102:8080 weight 3\n \
        server web3 198.18.0.103 backup\n";

    #[test]
    fn seed_like_config_gives_one_frontend_and_its_servers() {
        let p = plan(&cfg(SEED), &[]).expect("plan");
        assert_eq!(p.frontends.len(), 1);
        assert_eq!(p.frontends[0].vips, vec![("198.18.0.2".parse().unwrap(), 80)]);
        let be = &p.backends[0];
        assert_eq!(
            be.servers.iter().map(|s| (s.id, s.port, s.weight)).collect::<Vec<_>>(),
            [(0, 80, 1), (1, 8080, 3), (2, 80, 1)]
        );
        assert!(be.servers[2].backup);
    }

    #[test]
    fn what_only_the_proxy_applies_is_said_with_its_place() {
        let p = plan(&cfg(SEED), &[]).expect("plan");
        assert_eq!(p.unapplied.len(), 1, "{:?}", p.unapplied);
        assert!(p.unapplied[0].starts_with("t.cfg:6: frontend web: 'timeout client/server'"));
        let seed = "global\n log 127.0.0.1 local2\n\
            defaults\n mode tcp\n log global\n option tcplog\n option redispatch\n retries 3\n maxconn 3000\n\
            frontend nginx\n bind 198.18.0.2:80\n maxconn 2048\n default_backend be\n\
            frontend other\n bind 198.18.0.2:81\n default_backend be\n\
            backend be\n server m1 198.18.0.101:80\n";
        let p = plan(&cfg(seed), &[]).expect("plan");
        assert_eq!(
            p.unapplied
                .iter()
                .map(|u| u.split(" '").next().unwrap_or_default())
                .collect::<Vec<_>>(),
            [
                "t.cfg:10: frontend nginx:",
                "t.cfg:10: frontend nginx:",
                "t.cfg:17: backend be:",
                "t.cfg:14: frontend other:",
                "t.cfg:14: frontend other:",
            ],
            "{:#?}",
            p.unapplied
        );
        assert!(p.unapplied[0].contains("'maxconn 2048'"));
        // The backend's line comes once, not once per frontend.
        assert_eq!(p.unapplied.iter().filter(|u| u.contains("redispatch")).count(), 1);
    }

    #[test]
    fn wildcard_binds_take_the_lbs_addresses_of_their_family() {
        let text = SEED
            .replace("bind 198.18.0.2:80", "bind *:80\n bind [::]:81")
            .replace(".103 ", ".103:80 ");
        let local: Vec<IpAddr> = vec!["198.18.0.2".parse().unwrap(), "fd00:198:18::2".parse().unwrap()];
        // IPv4 servers only: the IPv6 wildcard has nothing to send to.
        let p = plan(&cfg(&text), &local).expect("plan");
        assert_eq!(p.frontends[0].vips, vec![(local[0], 80)]);
        let text = text.replace("server web3 198.18.0.103:80", "server web3 [fd00:198:18::103]:80");
        let p = plan(&cfg(&text), &local).expect("plan");
        assert_eq!(p.frontends[0].vips, vec![(local[0], 80), (local[1], 81)]);
    }

    #[test]
    fn a_vip_needs_a_server_of_its_family() {
        let text = SEED.replace("bind 198.18.0.2:80", "bind 198.18.0.2:80\n bind [fd00:198:18::2]:80");
        let err = plan(&cfg(&text), &[]);
        assert!(matches!(err, Err(PlanError::NoServerOfFamily { .. })), "{err:?}");
        let mixed = text.replace("server web3 198.18.0.103 backup", "server web3 [fd00:198:18::103]:80");
        let p = plan(&cfg(&mixed), &[]).expect("a mixed backend serves both families");
        assert_eq!(p.backends[0].ids, [0, 1]);
    }

    #[test]
    fn a_port_range_is_expanded_and_a_huge_one_refused() {
        let seed = SEED.replace(".103 ", ".103:80 ");
        let p = plan(&cfg(&seed.replace(":80\n default", ":80-82\n default")), &[]).expect("plan");
        assert_eq!(
            p.frontends[0].vips.iter().map(|v| v.1).collect::<Vec<_>>(),
            [80, 81, 82]
        );
        let err = plan(&cfg(&seed.replace(":80\n default", ":1-60000\n default")), &[]);
        assert!(matches!(err, Err(PlanError::RangeTooWide { .. })), "{err:?}");
        // A server without a port follows the client's port: fine for one port, not for three.
        let err = plan(&cfg(&SEED.replace(":80\n default", ":80-82\n default")), &[]);
        assert!(matches!(err, Err(PlanError::AmbiguousPort { .. })), "{err:?}");
    }

    #[test]
    fn rules_compile_and_their_backends_are_planned() {
        let text = SEED.replace(
            ":80\n default",
            ":80\n acl bad src 10.0.0.0/8 192.0.2.1\n acl hi dst_port 8000:8099 9000\n \
             tcp-request connection reject if bad !hi || { src_port 1 }\n \
             tcp-request connection silent-drop if { src 203.0.113.0/24 }\n \
             use_backend spare if { nbsrv(be) lt 1 }\n default",
        ) + "backend spare\n server s1 198.18.0.201:80\n";
        let p = plan(&cfg(&text), &[]).expect("plan");
        assert_eq!(
            p.backends.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
            ["be", "spare"]
        );
        assert_eq!(p.backends[1].servers[0].id, 3);
        let r = p.frontends[0].rules.as_ref().expect("rules");
        assert_eq!(r.tcp, 2);
        assert_eq!(r.rules.len(), 3);
        // bad (one list), hi (two ranges), { src_port 1 }, { src ... }, nbsrv.
        assert_eq!(r.lists.len(), 2);
        // Each list says which ACL line it holds, for `add acl`/`del acl`.
        assert_eq!(r.origins, [(0, 0), (3, 0)]);
        assert_eq!(r.exprs.len(), 6);
        assert_eq!(r.acls, [0b1, 0b110, 0b1000, 0b10000, 0b100000]);
        assert_eq!(r.rules[0].suites, [(0b1, 0b10), (0b100, 0)]);
        assert_eq!(r.rules[2].backend, Some(1));
        assert!(r.uses_nbsrv());
        let ids = |i: usize| [10 + i as u32, 20 + i as u32];
        let down = r.to_map(ids, &[7, 8], |_| 0, |_| 9);
        assert_eq!(down.rule[2].backend, [11, 21]);
        assert_eq!(down.expr[0].set, 7);
        assert_eq!((down.expr[1].low, down.expr[1].high), (8000, 8099));
        assert_eq!(down.expr[5].kind, lbxdp_common::EXPR_ALWAYS);
        assert_eq!(
            r.to_map(ids, &[7, 8], |_| 2, |_| 9).expr[5].kind,
            lbxdp_common::EXPR_NEVER
        );
        // More rules than the program takes: refused at the rule past the limit.
        let many: String = (0..17)
            .map(|i| format!(" tcp-request connection accept if {{ src_port {i} }}\n"))
            .collect();
        let text = SEED.replace(":80\n default", &format!(":80\n{many} default"));
        let err = plan(&cfg(&text), &[]);
        assert!(
            matches!(&err, Err(PlanError::RuleLimit { origin, .. }) if origin == "t.cfg:24"),
            "{err:?}"
        );
    }

    #[test]
    fn stick_rules_compile_and_what_xdp_cant_count_is_refused() {
        let table = " stick-table type ip size 1k expire 30s store conn_cur,conn_rate(10s),gpc0\n";
        let text = SEED.replace(
            ":80\n default",
            &format!(
                ":80\n{table} tcp-request connection track-sc1 src\n \
                 tcp-request connection sc-inc-gpc0(1) if {{ sc1_conn_rate gt 3 }}\n \
                 tcp-request connection reject if {{ sc1_get_gpc0 ge 1 }} || {{ src_conn_cur(web) 5:10 }}\n default"
            ),
        );
        let p = plan(&cfg(&text), &[]).expect("plan");
        assert_eq!(p.tables.len(), 1);
        let r = p.frontends[0].rules.as_ref().expect("rules");
        assert_eq!(r.tables().collect::<Vec<_>>(), ["web", "web"]);
        let m = r.to_map(|_| [0, 1], &[], |_| 0, |t| if t == "web" { 4 } else { 99 });
        assert_eq!(m.rule[0].action, lbxdp_common::RULE_TRACK);
        assert_eq!((m.rule[0].pad, m.rule[0].backend[0]), (1, 4));
        assert_eq!((m.rule[1].action, m.rule[1].pad), (lbxdp_common::RULE_INC_GPC0, 1));
        // sc1_conn_rate gt 3: slot 1, from 4 up.
        let e = m.expr[0];
        assert_eq!(
            (e.kind, e.set, e.pad[0], e.low, e.high),
            (
                lbxdp_common::EXPR_STICK_SLOT,
                1,
                lbxdp_common::STICK_CONN_RATE,
                4,
                u32::MAX
            )
        );
        // src_conn_cur(web) 5:10: the client in table 4.
        let e = m.expr[2];
        assert_eq!(
            (e.kind, e.set, e.pad, e.low, e.high),
            (
                lbxdp_common::EXPR_STICK_SRC,
                4,
                [lbxdp_common::STICK_CONN_CUR, 0, 0],
                5,
                10
            )
        );
        assert_eq!(m.stick, 0b111);
        // An incrementing fetch, or a session count, can't be done in XDP.
        for (cond, line) in [("{ sc1_inc_gpc0 gt 1 }", 10), ("{ be_conn(be) gt 1 }", 10)] {
            let text = SEED.replace(
                ":80\n default",
                &format!(":80\n{table} tcp-request connection track-sc1 src\n tcp-request connection reject if {cond}\n default"),
            );
            let err = plan(&cfg(&text), &[]);
            assert!(
                matches!(&err, Err(PlanError::NotInXdp { origin, .. }) if origin == &format!("t.cfg:{line}")),
                "{cond}: {err:?}"
            );
        }
        let masked = SEED.replace(
            ":80\n default",
            ":80\n tcp-request connection reject if { src 10.0.0.0/255.0.255.0 }\n default",
        );
        let err = plan(&cfg(&masked), &[]);
        assert!(
            matches!(&err, Err(PlanError::NotInXdp { origin, .. }) if origin == "t.cfg:8"),
            "{err:?}"
        );
        let err = plan(&cfg(&text.replace("expire 30s", "expire 30s nopurge")), &[]);
        assert!(matches!(&err, Err(PlanError::NotInXdp { .. })), "{err:?}");
    }
}

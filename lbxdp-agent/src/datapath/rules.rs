//! A frontend's `tcp-request connection` and `use_backend` rules compiled
//! for the XDP program (`lbxdp_common::Rules`). Pure: the plan keeps the
//! compiled form with the backends' plan indices and the address lists;
//! `PlanRules::to_map` then fills in the ids the balancer assigned, the
//! address sets' ids and the conditions only the agent can see (`nbsrv`),
//! which it writes again whenever the servers' health changes them.
use std::net::IpAddr;

use lbxdp_common::{
    EXPR_ALWAYS, EXPR_DST_NET, EXPR_DST_PORT, EXPR_NEVER, EXPR_SRC_NET, EXPR_SRC_PORT, EXPR_STICK_SLOT, EXPR_STICK_SRC,
    MAX_RULE_ACLS, MAX_RULE_EXPRS, MAX_RULE_SUITES, MAX_RULES, RULE_ACCEPT, RULE_INC_GPC0, RULE_REJECT,
    RULE_SILENT_DROP, RULE_TRACK, RULE_USE_BACKEND, Rule, RuleExpr, RuleSuite, Rules, STICK_CONN_CNT, STICK_CONN_CUR,
    STICK_CONN_RATE, STICK_GPC0, STICK_GPC0_RATE,
};

use crate::config::{
    Frontend,
    acl::{Cond, Fetch, IntRange, Patterns, TcpAction},
    stick::{Counter, StickRef},
};

/// One fetch against one pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanExpr {
    Never,
    Always,
    /// The client's (`src`) or the frontend's (`dst`) address is in
    /// `PlanRules::lists[list]`.
    Net {
        src: bool,
        list: usize,
    },
    Port {
        src: bool,
        low: u32,
        high: u32,
    },
    /// A stick counter (`STICK_*`) in `low..=high`: of the entry tracked in
    /// `slot`, or of the client in `table` (and then, with a slot, only
    /// while that slot tracks something).
    Stick {
        slot: Option<u8>,
        table: Option<String>,
        counter: u8,
        low: u32,
        high: u32,
    },
    /// `nbsrv(backend)` against the patterns, worked out by the agent.
    NbSrv {
        backend: String,
        patterns: Patterns,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanRule {
    pub action: u8,
    pub unless: bool,
    /// Per ORed suite, the ACLs (bits) that must hold and those that must not.
    pub suites: Vec<(u32, u32)>,
    /// `use_backend`: the backend's index in `Plan::backends`.
    pub backend: Option<usize>,
    /// `track-sc` and `sc-inc-gpc0`: the slot; `track-sc`: the table.
    pub slot: u8,
    pub table: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanRules {
    pub exprs: Vec<PlanExpr>,
    /// Per ACL, the expressions it ORs.
    pub acls: Vec<u32>,
    /// The `tcp-request connection` rules come first.
    pub tcp: usize,
    pub rules: Vec<PlanRule>,
    /// The address lists, one per `acl` line of addresses.
    pub lists: Vec<Vec<(IpAddr, u8)>>,
    /// Per list, where it came from: the ACL's index in the frontend's
    /// `acls` and the line's in the ACL, which the runtime API's `add acl`
    /// and `del acl` name (through the pattern references that feed it).
    pub origins: Vec<(usize, usize)>,
}

/// Why a frontend's rules don't fit the program, with the place to blame.
#[derive(Debug, Clone, PartialEq)]
pub struct TooMany {
    pub origin: String,
    pub what: String,
    /// A limit of the program's (else, something it can't do at all).
    pub limit: bool,
}

impl PlanRules {
    /// `backend` gives a `use_backend` target's index in the plan.
    pub fn compile(fe: &Frontend, mut backend: impl FnMut(&str) -> usize) -> Result<Option<PlanRules>, TooMany> {
        if fe.tcp_rules.is_empty() && fe.switching.is_empty() {
            return Ok(None);
        }
        let mut out = PlanRules {
            exprs: Vec::new(),
            acls: Vec::new(),
            tcp: fe.tcp_rules.len(),
            rules: Vec::new(),
            lists: Vec::new(),
            origins: Vec::new(),
        };
        // The frontend's ACLs that rules use, by their index in `fe.acls`.
        let mut used: Vec<usize> = Vec::new();
        let conds = fe
            .tcp_rules
            .iter()
            .map(|r| (r.cond.as_ref(), &r.origin, Some(&r.action), None))
            .chain(
                fe.switching
                    .iter()
                    .map(|r| (Some(&r.cond), &r.origin, None, Some(r.backend.as_str()))),
            );
        for (cond, origin, tcp_action, target) in conds {
            let too_many = |what: String| TooMany {
                origin: origin.to_string(),
                what,
                limit: true,
            };
            if out.rules.len() == MAX_RULES {
                return Err(too_many(format!(
                    "more than {MAX_RULES} tcp-request connection and use_backend rules"
                )));
            }
            let (unless, suites) = match cond {
                None => (true, Vec::new()),
                Some(Cond { unless, suites }) => {
                    if suites.len() > MAX_RULE_SUITES {
                        return Err(too_many(format!(
                            "a condition of more than {MAX_RULE_SUITES} '||' parts"
                        )));
                    }
                    let mut bits = Vec::new();
                    for suite in suites {
                        let (mut pos, mut neg) = (0u32, 0u32);
                        for t in suite {
                            let i = match used.iter().position(|u| *u == t.acl) {
                                Some(i) => i,
                                None => {
                                    if used.len() == MAX_RULE_ACLS {
                                        return Err(too_many(format!("rules that use more than {MAX_RULE_ACLS} ACLs")));
                                    }
                                    out.add_acl(fe, t.acl).map_err(|(what, limit)| TooMany {
                                        origin: origin.to_string(),
                                        what,
                                        limit,
                                    })?;
                                    used.push(t.acl);
                                    used.len() - 1
                                }
                            };
                            if t.negate {
                                neg |= 1 << i;
                            } else {
                                pos |= 1 << i;
                            }
                        }
                        bits.push((pos, neg));
                    }
                    (*unless, bits)
                }
            };
            let (action, slot, table) = match tcp_action {
                None => (RULE_USE_BACKEND, 0, None),
                Some(TcpAction::Accept) => (RULE_ACCEPT, 0, None),
                Some(TcpAction::Reject) => (RULE_REJECT, 0, None),
                Some(TcpAction::SilentDrop) => (RULE_SILENT_DROP, 0, None),
                Some(TcpAction::Track { slot, table }) => (RULE_TRACK, *slot, Some(table.clone())),
                Some(TcpAction::IncGpc0 { slot }) => (RULE_INC_GPC0, *slot, None),
            };
            out.rules.push(PlanRule {
                action,
                unless,
                suites,
                backend: target.map(&mut backend),
                slot,
                table,
            });
        }
        Ok(Some(out))
    }

    /// Adds `fe.acls[index]`: one expression per address list, per integer
    /// range, or per constant. Err: why not, and whether it's a limit.
    fn add_acl(&mut self, fe: &Frontend, index: usize) -> Result<(), (String, bool)> {
        let mut mask = 0u32;
        for (line, e) in fe
            .acls
            .get(index)
            .map(|a| a.exprs.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let mut exprs = Vec::new();
            match (&e.fetch, &e.patterns) {
                (Fetch::NbSrv(b), p) => exprs.push(PlanExpr::NbSrv {
                    backend: b.clone(),
                    patterns: p.clone(),
                }),
                (_, Patterns::Nothing) => exprs.push(PlanExpr::Never),
                (Fetch::BeConn(_) | Fetch::FeConn(_) | Fetch::ConnSlots(_), _) => {
                    return Err((
                        "be_conn, fe_conn and connslots count sessions, which XDP mode doesn't keep".into(),
                        false,
                    ));
                }
                (
                    Fetch::Stick {
                        counter: Counter::IncGpc0,
                        ..
                    },
                    _,
                ) => {
                    return Err((
                        "the *_inc_gpc0 fetches: XDP mode works a condition out whole, not term by term as \
                         HAProxy does, so it would count where HAProxy doesn't (the sc-inc-gpc0 action counts \
                         in both modes)"
                            .into(),
                        false,
                    ));
                }
                (Fetch::Stick { from, counter }, p) => {
                    let (slot, table) = match from {
                        StickRef::Tracked { slot, table } => (Some(*slot), table.clone()),
                        StickRef::Src { table } => (None, Some(table.clone())),
                    };
                    for (low, high) in ranges(p) {
                        exprs.push(match high {
                            None => PlanExpr::Never,
                            Some(high) => PlanExpr::Stick {
                                slot,
                                table: table.clone(),
                                counter: stick_counter(*counter),
                                low,
                                high,
                            },
                        });
                    }
                }
                (Fetch::AlwaysTrue, p) => exprs.push(constant(1, p)),
                (Fetch::AlwaysFalse, p) => exprs.push(constant(0, p)),
                (Fetch::Src | Fetch::Dst, Patterns::Nets(nets)) => {
                    if let Some(&(net, mask)) = nets.non_contiguous().first() {
                        return Err((
                            format!(
                                "{}/{}: a netmask that isn't a prefix (XDP looks addresses up by longest prefix)",
                                std::net::Ipv4Addr::from(net),
                                std::net::Ipv4Addr::from(mask)
                            ),
                            false,
                        ));
                    }
                    self.lists.push(nets.list());
                    self.origins.push((index, line));
                    exprs.push(PlanExpr::Net {
                        src: e.fetch == Fetch::Src,
                        list: self.lists.len() - 1,
                    });
                }
                (Fetch::SrcPort | Fetch::DstPort, p) => {
                    let src = e.fetch == Fetch::SrcPort;
                    for (low, high) in ranges(p) {
                        exprs.push(match high {
                            None => PlanExpr::Never,
                            Some(high) => PlanExpr::Port { src, low, high },
                        });
                    }
                }
                // The configuration refuses whatever else a rule could hold
                // (see `Cond::undecided`); should one get here, it never matches.
                _ => exprs.push(PlanExpr::Never),
            }
            for x in exprs {
                if self.exprs.len() == MAX_RULE_EXPRS {
                    return Err((
                        format!(
                            "ACLs of more than {MAX_RULE_EXPRS} fetch/pattern pairs in all (address lists count once)"
                        ),
                        true,
                    ));
                }
                self.exprs.push(x);
                mask |= 1 << (self.exprs.len() - 1);
            }
        }
        self.acls.push(mask);
        Ok(())
    }

    /// Whether the rules depend on servers' health.
    pub fn uses_nbsrv(&self) -> bool {
        self.exprs.iter().any(|e| matches!(e, PlanExpr::NbSrv { .. }))
    }

    /// The stick tables the rules use.
    pub fn tables(&self) -> impl Iterator<Item = &str> {
        let exprs = self.exprs.iter().filter_map(|e| match e {
            PlanExpr::Stick { table, .. } => table.as_deref(),
            _ => None,
        });
        exprs.chain(self.rules.iter().filter_map(|r| r.table.as_deref()))
    }

    /// The map value: `backend_ids(i)` gives plan backend `i`'s IPv4 and
    /// IPv6 `BACKENDS` indices, `sets[list]` the address set of each list,
    /// `nbsrv` a backend's usable servers now, `table_id` a stick table's
    /// index in `STICK_TABLES`.
    pub fn to_map(
        &self,
        backend_ids: impl Fn(usize) -> [u32; 2],
        sets: &[u32],
        nbsrv: impl Fn(&str) -> u32,
        table_id: impl Fn(&str) -> u32,
    ) -> Rules {
        let mut r = Rules {
            exprs: self.exprs.len() as u32,
            acls: self.acls.len() as u32,
            tcp: self.tcp as u32,
            rules: self.rules.len() as u32,
            ..Rules::default()
        };
        for (slot, e) in r.expr.iter_mut().zip(&self.exprs) {
            *slot = match e {
                PlanExpr::Never => expr(EXPR_NEVER),
                PlanExpr::Always => expr(EXPR_ALWAYS),
                PlanExpr::Net { src, list } => RuleExpr {
                    set: sets.get(*list).copied().unwrap_or(u32::MAX),
                    ..expr(if *src { EXPR_SRC_NET } else { EXPR_DST_NET })
                },
                PlanExpr::Port { src, low, high } => RuleExpr {
                    low: *low,
                    high: *high,
                    ..expr(if *src { EXPR_SRC_PORT } else { EXPR_DST_PORT })
                },
                PlanExpr::Stick {
                    slot,
                    table,
                    counter,
                    low,
                    high,
                } => {
                    let (kind, set, after) = match (slot, table) {
                        (Some(slot), None) => (EXPR_STICK_SLOT, u32::from(*slot), 0),
                        (slot, Some(t)) => (EXPR_STICK_SRC, table_id(t), slot.map_or(0, |s| s + 1)),
                        (None, None) => (EXPR_NEVER, 0, 0),
                    };
                    RuleExpr {
                        kind,
                        pad: [*counter, after, 0],
                        set,
                        low: *low,
                        high: *high,
                    }
                }
                PlanExpr::NbSrv { backend, patterns } => expr(if holds(nbsrv(backend).into(), patterns) {
                    EXPR_ALWAYS
                } else {
                    EXPR_NEVER
                }),
            };
        }
        r.stick = (self.exprs.iter().enumerate())
            .filter(|(_, e)| matches!(e, PlanExpr::Stick { .. }))
            .fold(0, |m, (i, _)| m | 1 << i);
        for (slot, mask) in r.acl.iter_mut().zip(&self.acls) {
            *slot = *mask;
        }
        for (slot, rule) in r.rule.iter_mut().zip(&self.rules) {
            let mut suite = [RuleSuite::default(); MAX_RULE_SUITES];
            for (s, (pos, neg)) in suite.iter_mut().zip(&rule.suites) {
                *s = RuleSuite { pos: *pos, neg: *neg };
            }
            *slot = Rule {
                action: rule.action,
                unless: u8::from(rule.unless),
                suites: rule.suites.len() as u8,
                pad: rule.slot,
                backend: match (&rule.table, rule.backend) {
                    (Some(t), _) => [table_id(t), u32::MAX],
                    (None, b) => b.map_or([u32::MAX; 2], &backend_ids),
                },
                suite,
            };
        }
        r
    }
}

fn expr(kind: u8) -> RuleExpr {
    RuleExpr {
        kind,
        ..RuleExpr::default()
    }
}

/// Whether a fetch's value matches the patterns (an integer or boolean fetch).
fn holds(value: i64, patterns: &Patterns) -> bool {
    match patterns {
        Patterns::Ints(ranges) => ranges.iter().any(|r| r.contains(value)),
        Patterns::Bool => value != 0,
        _ => false,
    }
}

/// A fetch whose value doesn't depend on the connection, matched now.
fn constant(value: i64, patterns: &Patterns) -> PlanExpr {
    if holds(value, patterns) {
        PlanExpr::Always
    } else {
        PlanExpr::Never
    }
}

/// Integer patterns as inclusive ranges of u32: (low, None) when nothing
/// non-negative fits. `-m bool`: true when not 0.
fn ranges(p: &Patterns) -> Vec<(u32, Option<u32>)> {
    let list = match p {
        Patterns::Ints(r) => r.clone(),
        _ => vec![IntRange {
            low: Some(1),
            high: None,
        }],
    };
    list.iter()
        .map(|r| {
            let low = r.low.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32;
            let high = r.high.unwrap_or(i64::MAX).clamp(-1, i64::from(u32::MAX));
            (low, (high >= i64::from(low)).then_some(high as u32))
        })
        .collect()
}

fn stick_counter(c: Counter) -> u8 {
    match c {
        Counter::ConnCur => STICK_CONN_CUR,
        Counter::ConnCnt => STICK_CONN_CNT,
        Counter::ConnRate => STICK_CONN_RATE,
        Counter::Gpc0 => STICK_GPC0,
        Counter::Gpc0Rate | Counter::IncGpc0 => STICK_GPC0_RATE,
    }
}

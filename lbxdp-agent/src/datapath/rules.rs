//! A frontend's `tcp-request connection` and `use_backend` rules compiled
//! for the XDP program (`lbxdp_common::Rules`). Pure: the plan keeps the
//! compiled form with the backends' plan indices and the address lists;
//! `PlanRules::to_map` then fills in the ids the balancer assigned, the
//! address sets' ids and the conditions only the agent can see (`nbsrv`),
//! which it writes again whenever the servers' health changes them.
use std::net::IpAddr;

use lbxdp_common::{
    EXPR_ALWAYS, EXPR_DST_NET, EXPR_DST_PORT, EXPR_NEVER, EXPR_SRC_NET, EXPR_SRC_PORT, MAX_RULE_ACLS, MAX_RULE_EXPRS,
    MAX_RULE_SUITES, MAX_RULES, RULE_ACCEPT, RULE_REJECT, RULE_SILENT_DROP, RULE_USE_BACKEND, Rule, RuleExpr,
    RuleSuite, Rules,
};

use crate::config::{
    Frontend,
    acl::{Cond, Fetch, IntRange, Patterns, TcpAction},
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
}

/// Why a frontend's rules don't fit the program, with the place to blame.
#[derive(Debug, Clone, PartialEq)]
pub struct TooMany {
    pub origin: String,
    pub what: String,
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
        };
        // The frontend's ACLs that rules use, by their index in `fe.acls`.
        let mut used: Vec<usize> = Vec::new();
        let conds = fe
            .tcp_rules
            .iter()
            .map(|r| (r.cond.as_ref(), &r.origin, rule_action(r.action), None))
            .chain(
                fe.switching
                    .iter()
                    .map(|r| (Some(&r.cond), &r.origin, RULE_USE_BACKEND, Some(r.backend.as_str()))),
            );
        for (cond, origin, action, target) in conds {
            let too_many = |what: String| TooMany {
                origin: origin.to_string(),
                what,
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
                                    out.add_acl(fe, t.acl).map_err(too_many)?;
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
            out.rules.push(PlanRule {
                action,
                unless,
                suites,
                backend: target.map(&mut backend),
            });
        }
        Ok(Some(out))
    }

    /// Adds `fe.acls[index]`: one expression per address list, per integer
    /// range, or per constant.
    fn add_acl(&mut self, fe: &Frontend, index: usize) -> Result<(), String> {
        let mut mask = 0u32;
        for e in fe.acls.get(index).map(|a| a.exprs.as_slice()).unwrap_or_default() {
            let mut exprs = Vec::new();
            match (&e.fetch, &e.patterns) {
                (Fetch::NbSrv(b), p) => exprs.push(PlanExpr::NbSrv {
                    backend: b.clone(),
                    patterns: p.clone(),
                }),
                (_, Patterns::Nothing) => exprs.push(PlanExpr::Never),
                (Fetch::AlwaysTrue, p) => exprs.push(constant(1, p)),
                (Fetch::AlwaysFalse, p) => exprs.push(constant(0, p)),
                (Fetch::Src | Fetch::Dst, Patterns::Nets(nets)) => {
                    self.lists.push(nets.list().to_vec());
                    exprs.push(PlanExpr::Net {
                        src: e.fetch == Fetch::Src,
                        list: self.lists.len() - 1,
                    });
                }
                (Fetch::SrcPort | Fetch::DstPort, p) => {
                    let src = e.fetch == Fetch::SrcPort;
                    let ranges = match p {
                        Patterns::Ints(r) => r.clone(),
                        // `-m bool`: a port is true when it isn't 0.
                        _ => vec![IntRange {
                            low: Some(1),
                            high: None,
                        }],
                    };
                    for r in ranges {
                        let low = r.low.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32;
                        let high = r.high.unwrap_or(i64::MAX).clamp(-1, i64::from(u32::MAX));
                        exprs.push(if high < i64::from(low) {
                            PlanExpr::Never
                        } else {
                            PlanExpr::Port {
                                src,
                                low,
                                high: high as u32,
                            }
                        });
                    }
                }
                // The configuration refuses whatever else a rule could hold
                // (see `Cond::undecided`); should one get here, it never matches.
                _ => exprs.push(PlanExpr::Never),
            }
            for x in exprs {
                if self.exprs.len() == MAX_RULE_EXPRS {
                    return Err(format!(
                        "ACLs of more than {MAX_RULE_EXPRS} fetch/pattern pairs in all (address lists count once)"
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

    /// The map value: `backend_ids(i)` gives plan backend `i`'s IPv4 and
    /// IPv6 `BACKENDS` indices, `sets[list]` the address set of each list,
    /// `nbsrv` a backend's usable servers now.
    pub fn to_map(&self, backend_ids: impl Fn(usize) -> [u32; 2], sets: &[u32], nbsrv: impl Fn(&str) -> u32) -> Rules {
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
                PlanExpr::NbSrv { backend, patterns } => expr(if holds(nbsrv(backend).into(), patterns) {
                    EXPR_ALWAYS
                } else {
                    EXPR_NEVER
                }),
            };
        }
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
                pad: 0,
                backend: rule.backend.map_or([u32::MAX; 2], &backend_ids),
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

fn rule_action(a: TcpAction) -> u8 {
    match a {
        TcpAction::Accept => RULE_ACCEPT,
        TcpAction::Reject => RULE_REJECT,
        TcpAction::SilentDrop => RULE_SILENT_DROP,
    }
}

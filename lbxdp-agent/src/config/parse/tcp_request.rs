//! `tcp-request connection|content|session ACTION [if|unless COND]` and
//! `tcp-request inspect-delay`, checked as HAProxy 2.6 checks them. lbxdp
//! keeps the `connection` rules it applies (accept, reject, silent-drop) and
//! refuses, with file:line, what it doesn't do yet.
use super::{ArgRef, Draft, Kind, Parser, RefKind, acl::RuleKind, arg, fetch::fetch_expr, refusal_at};
use crate::config::{
    acl::{TcpAction, TcpRule},
    diag::Origin,
    model::Unsupported,
    stick::SLOTS,
};

/// `tcp-request connection` actions HAProxy 2.6 knows besides accept,
/// reject, silent-drop and track-sc*: lbxdp doesn't do them yet.
const TCP_ACTIONS_OTHER: &[&str] = &[
    "capture",
    "expect-proxy",
    "expect-netscaler-cip",
    "sc-inc-gpc",
    "sc-inc-gpc0",
    "sc-inc-gpc1",
    "sc-set-gpt",
    "sc-set-gpt0",
    "set-var-fmt",
    "set-var",
    "unset-var",
    "set-dst",
    "set-dst-port",
    "set-mark",
    "set-src",
    "set-src-port",
    "set-tos",
    "do-resolve",
    "send-spoe-group",
    "set-priority-class",
    "set-priority-offset",
    "switch-mode",
    "use-service",
    "set-log-level",
    "set-nice",
    "lua",
    "close",
    "set-bandwidth-limit",
];

impl Parser<'_> {
    /// `tcp-request connection|content|session ACTION ... [if|unless COND]`, `tcp-request inspect-delay`.
    pub(super) fn tcp_request(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        let (kind, name) = (p.kind.word(), p.name.clone());
        let ruleset = arg(w, 1);
        if p.kind == Kind::Defaults {
            if p.name.is_empty() && !ruleset.is_empty() {
                self.diags.alert(
                    at,
                    format!("tcp-request {ruleset} is not allowed in anonymous 'defaults' sections"),
                );
                return;
            }
            p.defines_rules |= matches!(ruleset, "connection" | "content" | "session");
        }
        match ruleset {
            "" => {
                self.diags
                    .alert(at, format!("missing argument for 'tcp-request' in {kind} '{name}'"));
                return;
            }
            "inspect-delay" => {
                let bad = match crate::config::time::parse_ms(arg(w, 2)) {
                    Ok(t) if t.trailing_junk.is_none() => None,
                    Ok(t) => t.trailing_junk,
                    Err(crate::config::time::TimeError::BadChar(c)) => Some(c),
                    Err(_) => Some('\0'),
                };
                match bad {
                    None => self
                        .diags
                        .warn(at, "'tcp-request inspect-delay': parsed past, not applied by lbxdp"),
                    Some(c) => {
                        let which = if c == '\0' {
                            String::new()
                        } else {
                            format!(" (unexpected character '{c}')")
                        };
                        self.diags.alert(
                            at,
                            format!(
                                "'tcp-request inspect-delay' expects a positive delay in milliseconds, in {kind} \
                                 '{name}'{which}"
                            ),
                        );
                    }
                }
                return;
            }
            "connection" | "content" | "session" => {}
            other => {
                self.diags.alert(
                    at,
                    format!(
                        "'tcp-request' expects 'inspect-delay', 'connection', or 'content' in {kind} '{name}' (got \
                         '{other}')"
                    ),
                );
                return;
            }
        }
        if ruleset != "content" && p.kind == Kind::Backend {
            self.diags.alert(
                at,
                format!("tcp-request {ruleset} is not allowed because backend {name} is not a frontend"),
            );
            return;
        }
        let action = arg(w, 2);
        let rule = format!("tcp-request {ruleset} {action}");
        // Where the condition starts: after the action's own arguments.
        let (what, cond_at) = match action {
            "accept" => (Some(TcpAction::Accept), 3),
            "reject" => (Some(TcpAction::Reject), 3),
            "silent-drop" => (Some(TcpAction::SilentDrop), 3),
            a if a.strip_prefix("track-sc").is_some_and(|n| n.parse::<u32>().is_ok()) => {
                let n = a.trim_start_matches("track-sc");
                if n.parse::<u32>().is_ok_and(|n| n > 2) {
                    self.diags.alert(
                        at,
                        format!("'{rule}' : {n} track-sc number exceeding 2 (MAX_SESS_STKCTR-1) value"),
                    );
                    return;
                }
                let key = arg(w, 3);
                if key.is_empty() || key == "if" || key == "unless" {
                    self.diags.alert(at, format!("'{rule}' : missing fetch method"));
                    return;
                }
                if let Err(msg) = fetch_expr(key) {
                    self.diags.alert(at, format!("'{rule}' : {msg}"));
                    return;
                }
                let table = (arg(w, 4) == "table").then(|| arg(w, 5).to_string());
                let target = table.clone().unwrap_or_else(|| p.name.clone());
                p.arg_refs.push(ArgRef {
                    kind: RefKind::Track,
                    keyword: action.to_string(),
                    target: target.clone(),
                    origin: at.clone(),
                });
                let end = if table.is_some() { 6 } else { 4 };
                // lbxdp's tables are keyed by the client's address only.
                // Another key is refused below, with the other actions lbxdp doesn't do.
                if key != "src" {
                    (None, end)
                } else {
                    let slot = n.parse::<u8>().unwrap_or(0);
                    (Some(TcpAction::Track { slot, table: target }), end)
                }
            }
            a if a == "sc-inc-gpc0" || a.starts_with("sc-inc-gpc0(") => {
                let slot = match a.strip_prefix("sc-inc-gpc0") {
                    Some("") => Some(0),
                    Some(r) => r
                        .strip_prefix('(')
                        .and_then(|r| r.strip_suffix(')'))
                        .and_then(|n| n.parse::<u8>().ok()),
                    None => None,
                };
                match slot {
                    Some(slot) if usize::from(slot) < SLOTS => (Some(TcpAction::IncGpc0 { slot }), 3),
                    Some(_) => {
                        self.diags.alert(
                            at,
                            format!(
                                "'{rule}' : invalid stick table track ID. The max allowed ID is {}",
                                SLOTS - 1
                            ),
                        );
                        return;
                    }
                    None => {
                        self.diags.alert(
                            at,
                            format!("'{rule}' : invalid stick table track ID. Expects sc-inc-gpc0(<Track ID>)"),
                        );
                        return;
                    }
                }
            }
            a if TCP_ACTIONS_OTHER.contains(&a.split('(').next().unwrap_or(a)) => {
                let end = w
                    .iter()
                    .skip(3)
                    .position(|x| x == "if" || x == "unless")
                    .map_or(w.len(), |k| k + 3);
                (None, end)
            }
            other => {
                self.diags.alert(
                    at,
                    format!(
                        "'tcp-request {ruleset}' expects 'accept', 'reject', 'capture', 'expect-proxy', \
                         'expect-netscaler-cip', 'track-sc0' ... 'track-sc2', 'sc-inc-gpc(*)', 'sc-inc-gpc0(*)', \
                         'sc-inc-gpc1(*)', 'sc-set-gpt(*)', 'sc-set-gpt0(*)', 'set-var-fmt(*)', 'set-var(*)', \
                         'unset-var(*)', 'set-dst', 'set-dst-port', 'set-mark', 'set-src', 'set-src-port', \
                         'set-tos', 'silent-drop' in {kind} '{name}' (got '{other}')."
                    ),
                );
                return;
            }
        };
        let Ok(cond) = self.rule_cond(p, &w[cond_at.min(w.len())..], &RuleKind::Tcp(&rule), at) else {
            return;
        };
        if let Some(c) = &cond {
            let place = match (ruleset, p.kind) {
                ("connection", _) => (0, "frontend tcp-request connection rule"),
                ("session", _) => (1, "frontend tcp-request session rule"),
                (_, Kind::Backend) => (6, "backend tcp-request content rule"),
                _ => (2, "frontend tcp-request content rule"),
            };
            self.warn_never_match(p, c, place, &format!("tcp-request {ruleset}"), at);
        }
        let directive = rule.clone();
        match (ruleset, what) {
            ("connection", Some(action)) if action.is_final() || p.kind != Kind::Defaults => {
                if let Some(c) = &cond {
                    self.refuse_undecided(p, c, directive, at);
                }
                p.tcp_rules.push(TcpRule {
                    action,
                    cond,
                    origin: at.clone(),
                });
            }
            (_, Some(TcpAction::Accept)) => {
                self.diags
                    .warn(at, format!("'{rule}': parsed past, not applied by lbxdp"));
            }
            _ => {
                let why = if action.starts_with("track-sc") || action.starts_with("sc-") {
                    Unsupported::StickTables
                } else {
                    Unsupported::Action
                };
                self.out.refused.push(refusal_at(at, directive, action, why));
            }
        }
    }
}

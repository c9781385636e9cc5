//! The stats page a proxy serves (`stats ...`) and HAProxy's Prometheus
//! exporter (`http-request use-service prometheus-exporter if { path P }`).
use super::{Draft, Kind, Parser, arg, refusal_at};
use crate::config::{
    addr::parse_net,
    diag::Origin,
    model::{AdminCond, Refusal, StatsPage, Unsupported},
    time,
};

/// HAProxy's defaults for `stats uri` and `stats realm`.
const DEFAULT_URI: &str = "/haproxy?stats";
const DEFAULT_REALM: &str = "HAProxy Statistics";

const STATS_KEYWORDS: &str = "expects 'admin', 'uri', 'realm', 'auth', 'scope', 'enable', 'hide-version', 'show-node', 'show-desc' or \
     'show-legends'";

/// A section's `stats` settings, its own or its defaults'.
#[derive(Debug, Clone)]
pub(in crate::config) struct StatsDraft {
    pub(in crate::config) page: StatsPage,
    /// `show-node` / `show-desc` without an argument: the global one, which
    /// is known once every file is read.
    pub(in crate::config) node_from_global: bool,
    pub(in crate::config) desc_from_global: bool,
    /// The first `stats` line, where warnings and refusals point.
    pub(in crate::config) origin: Origin,
    /// `stats scope`, `stats http-request`, an undecidable `stats admin`.
    pub(in crate::config) refused: Vec<Refusal>,
    /// Copied from defaults: HAProxy drops the copy, and starts afresh, at
    /// a proxy's first own `stats` line (`uri_auth` detached from defaults).
    inherited: bool,
}

impl StatsDraft {
    fn new(origin: &Origin) -> Self {
        Self {
            page: StatsPage {
                enabled: true,
                uri: DEFAULT_URI.into(),
                realm: DEFAULT_REALM.into(),
                ..StatsPage::default()
            },
            node_from_global: false,
            desc_from_global: false,
            origin: origin.clone(),
            refused: Vec::new(),
            inherited: false,
        }
    }

    pub(super) fn inherited(self) -> Self {
        Self {
            inherited: true,
            ..self
        }
    }
}

/// A page or exporter with no `stats` line at all (`enabled` false).
pub(in crate::config) fn exporter_only() -> StatsPage {
    StatsPage {
        enabled: false,
        uri: DEFAULT_URI.into(),
        realm: DEFAULT_REALM.into(),
        ..StatsPage::default()
    }
}

impl Parser<'_> {
    pub(super) fn stats(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        let sub = arg(w, 1);
        let v = arg(w, 2);
        match sub {
            "" => {
                self.diags
                    .alert(at, format!("missing keyword in 'stats', {STATS_KEYWORDS}."));
                return;
            }
            "admin" | "uri" | "realm" | "auth" | "scope" | "enable" | "hide-version" | "show-node" | "show-desc"
            | "show-legends" | "refresh" | "http-request" => {}
            other => {
                self.diags
                    .alert(at, format!("unknown stats parameter '{other}', {STATS_KEYWORDS}."));
                return;
            }
        }
        if sub == "admin" && p.kind == Kind::Defaults {
            self.diags.alert(at, "'stats admin' not allowed in 'defaults' section.");
            return;
        }
        let needs = match sub {
            "uri" => Some("'uri' needs an URI prefix."),
            "realm" => Some("'realm' needs an realm name."),
            "auth" => Some("'auth' needs a user:password account."),
            "scope" => Some("'scope' needs a proxy name."),
            "refresh" => Some("'stats refresh' expects a delay (in seconds unless a unit is given)."),
            _ => None,
        };
        if let Some(msg) = needs.filter(|_| v.is_empty()) {
            self.diags.alert(at, msg);
            return;
        }
        // Parsed before the draft changes, so a bad line leaves it as it was.
        let refresh = match sub {
            "refresh" => {
                let with_unit = if v.bytes().all(|b| b.is_ascii_digit()) {
                    format!("{v}s")
                } else {
                    v.to_string()
                };
                match time::parse_ms(&with_unit) {
                    Ok(t) => Some(t.value),
                    Err(time::TimeError::BadChar(c)) => {
                        self.diags.alert(
                            at,
                            format!("unexpected character '{c}' in argument to stats refresh interval."),
                        );
                        return;
                    }
                    Err(e) => {
                        self.diags.alert(at, format!("'stats refresh {v}': {e}"));
                        return;
                    }
                }
            }
            _ => None,
        };
        let admin = match sub {
            "admin" => match admin_cond(&w[2..]) {
                Err(msg) => {
                    self.diags.alert(at, msg);
                    return;
                }
                Ok(c) => Some(c),
            },
            _ => None,
        };
        let own = p.kind == Kind::Defaults || p.stats.as_ref().is_some_and(|s| !s.inherited);
        let s = match &mut p.stats {
            Some(s) if own => s,
            slot => slot.insert(StatsDraft::new(at)),
        };
        s.inherited = false;
        let page = &mut s.page;
        match sub {
            "uri" => page.uri = v.to_string(),
            "realm" => page.realm = v.to_string(),
            "auth" => {
                // HAProxy takes a word without ':' as a user with an empty password.
                let (user, pass) = v.split_once(':').unwrap_or((v, ""));
                page.auth.push((user.to_string(), pass.to_string()));
            }
            "refresh" => page.refresh = refresh,
            "hide-version" => page.hide_version = true,
            "show-legends" => page.show_legends = true,
            "show-node" => {
                page.show_node = Some(v.to_string());
                s.node_from_global = v.is_empty();
            }
            "show-desc" => {
                page.show_desc = Some(v.to_string());
                s.desc_from_global = v.is_empty();
            }
            "admin" => match admin {
                Some(Some(c)) => page.admin = Some(c),
                _ => {
                    let directive = format!("stats admin {}", w[2..].join(" "));
                    s.refused
                        .push(refusal_at(at, directive, arg(w, 3), Unsupported::Condition));
                }
            },
            "scope" | "http-request" => {
                s.refused
                    .push(refusal_at(at, format!("stats {sub}"), sub, Unsupported::StatsPage));
            }
            _ => {}
        }
    }

    /// `http-request use-service prometheus-exporter if { path P }`: the one
    /// form of HAProxy's documented rule lbxdp serves; others are refused.
    pub(super) fn prometheus(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        let rest: Vec<&str> = w[3..].iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
        let directive = "http-request use-service prometheus-exporter".to_string();
        let path = match rest.as_slice() {
            ["if", "{", "path", path, "}"] => Some(*path),
            [] => None,
            [word, ..] if !matches!(*word, "if" | "unless") => {
                self.diags.alert(
                    at,
                    format!(
                        "error detected in proxy '{}' while parsing 'http-request use-service' rule : expects \
                         'if', 'unless' or nothing, got '{word}'",
                        p.name
                    ),
                );
                return;
            }
            _ => None,
        };
        match (path, &p.prometheus) {
            (Some(path), None) => p.prometheus = Some((path.to_string(), at.clone())),
            (Some(_), Some(_)) => {
                p.exporter_refused
                    .push(refusal_at(at, directive, "prometheus-exporter", Unsupported::StatsPage))
            }
            (None, _) => {
                let cond = if rest.is_empty() {
                    "(no condition)".to_string()
                } else {
                    rest.join(" ")
                };
                p.exporter_refused
                    .push(refusal_at(at, directive, &cond, Unsupported::Condition));
            }
        }
    }
}

/// `stats admin if|unless <cond>`. Ok(None): a condition lbxdp can't
/// decide (named ACLs, other fetches), refused at run time.
fn admin_cond(words: &[String]) -> Result<Option<AdminCond>, String> {
    let words: Vec<&str> = words.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
    let (negate, cond) = match words.split_first() {
        Some((&"if", rest)) if !rest.is_empty() => (false, rest),
        Some((&"unless", rest)) if !rest.is_empty() => (true, rest),
        _ => return Err("'stats admin' requires either 'if' or 'unless' followed by a condition.".into()),
    };
    let (not, term) = match cond {
        ["!", rest @ ..] => (true, rest.to_vec()),
        [first, rest @ ..] if first.len() > 1 && first.starts_with('!') => {
            let mut t = vec![&first[1..]];
            t.extend_from_slice(rest);
            (true, t)
        }
        _ => (false, cond.to_vec()),
    };
    let decided = match term.as_slice() {
        ["TRUE"] => AdminCond::Always,
        ["FALSE"] => AdminCond::Not(Box::new(AdminCond::Always)),
        ["LOCALHOST"] => AdminCond::Localhost,
        ["{", "src", nets @ .., "}"] if !nets.is_empty() => {
            let mut out = Vec::new();
            for n in nets {
                match parse_net(n) {
                    Some(net) => out.push(net),
                    None if n.starts_with('-') => return Ok(None),
                    None => {
                        return Err(format!(
                            "error detected while parsing a 'stats admin' rule : '{n}' is not a valid IPv4 or IPv6 \
                             address."
                        ));
                    }
                }
            }
            AdminCond::Src(out)
        }
        _ => return Ok(None),
    };
    let decided = if not {
        AdminCond::Not(Box::new(decided))
    } else {
        decided
    };
    Ok(Some(if negate {
        AdminCond::Not(Box::new(decided))
    } else {
        decided
    }))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn admin_conditions_lbxdp_decides() {
        assert_eq!(admin_cond(&words("if TRUE")), Ok(Some(AdminCond::Always)));
        assert_eq!(
            admin_cond(&words("unless LOCALHOST")),
            Ok(Some(AdminCond::Not(Box::new(AdminCond::Localhost))))
        );
        assert_eq!(
            admin_cond(&words("if !LOCALHOST")),
            Ok(Some(AdminCond::Not(Box::new(AdminCond::Localhost))))
        );
        let v4: IpAddr = "10.0.0.0".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            admin_cond(&words("if { src 10.0.0.0/255.0.0.0 ::1 }")),
            Ok(Some(AdminCond::Src(vec![(v4, 8), (v6, 128)])))
        );
        assert_eq!(admin_cond(&words("if is_admin")), Ok(None));
        assert_eq!(admin_cond(&words("if { src -f /etc/admins }")), Ok(None));
        assert!(admin_cond(&words("if { src foo }")).is_err());
        assert!(admin_cond(&words("when TRUE")).is_err());
        assert!(admin_cond(&[]).is_err());
        assert_eq!(parse_net("10.0.0.0/255.0.255.0"), None);
    }
}

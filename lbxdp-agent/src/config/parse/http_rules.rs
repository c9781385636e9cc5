//! `http-request`, `http-response`, `http-after-response`, `tcp-response
//! content`, `redirect` and `use-server` rules: lbxdp applies none of them
//! (HTTP, or not layer 4; the caller says so with a warning), but checks
//! their actions, sample expressions, log-format strings and conditions as
//! HAProxy 2.6 does, so that `-c` refuses what HAProxy refuses.
use super::{
    ArgRef, Draft, Kind, Parser, RefKind, SectionRef,
    acl::RuleKind,
    actions::{action_args, redirect_args},
    arg,
    rulesets::Ruleset,
    sample::{log_format, map_files, sample_expr},
};
use crate::config::{
    diag::Origin,
    model::{EnvRef, EnvRefKind, Mode},
};

/// The column of `haproxy -dKsmp` `use-server` conditions are checked against.
const USE_SERVER: (u32, &str) = (9, "backend use-server, balance or stick-match rule");

impl Parser<'_> {
    /// The map files a checked rule's converters name, and the files its
    /// `return`/`deny` answers with: HAProxy loads them
    /// while it parses, so `-c` fails when one is missing (checked with the
    /// machine, as certificates are).
    pub(super) fn note_map_files(&mut self, w: &[String], at: &Origin) {
        // `http-request return ... file F`, `deny errorfile F`: read at start too.
        let named = w
            .windows(2)
            .filter(|p| matches!(p[0].as_str(), "file" | "lf-file" | "errorfile"))
            .map(|p| p[1].clone());
        for file in w.iter().flat_map(|x| map_files(x)).chain(named).collect::<Vec<_>>() {
            self.out.global.env_refs.push(EnvRef {
                kind: EnvRefKind::File,
                value: file,
                origin: at.clone(),
            });
        }
    }

    /// `http-request|http-response|http-after-response ACTION [ARGS] [if|unless COND]`.
    /// False: an alert was raised.
    pub(super) fn http_rule(&mut self, p: &mut Draft, w: &[String], at: &Origin) -> bool {
        let set = match w[0].as_str() {
            "http-request" => Ruleset::HttpRequest,
            "http-response" => Ruleset::HttpResponse,
            _ => Ruleset::HttpAfterResponse,
        };
        if p.kind == Kind::Defaults && p.name.is_empty() {
            self.diags
                .alert(at, format!("'{}' not allowed in anonymous 'defaults' section.", w[0]));
            return false;
        }
        let action = arg(w, 1);
        if !set.knows(action) {
            self.diags.alert(at, set.unknown(action, p.kind, &p.name));
            return false;
        }
        if action == "normalize-uri" && !self.experimental {
            self.diags.alert(
                at,
                "'normalize-uri' action is experimental, must be allowed via a global \
                 'expose-experimental-directives'",
            );
            return false;
        }
        let rule = format!("{} {action}", set.word());
        let end = match action_args(set, (p.kind, p.mode == Mode::Http), &p.name, w, 1) {
            Ok(end) => end,
            Err(msg) => {
                let msg = msg.strip_suffix('.').unwrap_or(&msg);
                self.diags.alert(
                    at,
                    format!(
                        "error detected in {} '{}' while parsing '{rule}' rule : {msg}.",
                        p.kind.word(),
                        p.name
                    ),
                );
                return false;
            }
        };
        if action.starts_with("track-sc") {
            let table = (arg(w, 3) == "table").then(|| arg(w, 4).to_string());
            p.arg_refs.push(ArgRef {
                kind: RefKind::Track,
                keyword: action.to_string(),
                target: table.unwrap_or_else(|| p.name.clone()),
                origin: at.clone(),
            });
        }
        self.note_map_files(w, at);
        self.checked_cond(p, w, end, set.place(p.kind), &RuleKind::Http(&rule), at)
    }

    /// `log-format`, `log-format-sd`, `error-log-format`, `unique-id-format`
    /// (kept, and checked once the proxy's mode is known: see `finish`) and
    /// `capture` lines (checked now). False: an alert was raised.
    pub(super) fn format_directive(&mut self, p: &mut Draft, w: &[String], at: &Origin) -> bool {
        let k = w[0].as_str();
        if k != "capture" {
            p.log_formats.retain(|(kw, ..)| kw != k);
            p.log_formats.push((k.to_string(), arg(w, 1).to_string(), at.clone()));
            return true;
        }
        let (what, name) = (arg(w, 1), arg(w, 2));
        match what {
            "cookie" => true,
            "request" | "response" if name == "header" => {
                if arg(w, 3).is_empty() || arg(w, 4) != "len" || arg(w, 5).is_empty() {
                    self.diags.alert(
                        at,
                        format!("'capture {what}' expects 'header' <header_name> 'len' <len>."),
                    );
                    return false;
                }
                true
            }
            _ => {
                self.diags.alert(
                    at,
                    "'capture' expects 'cookie' or 'request header' or 'response header'.",
                );
                false
            }
        }
    }

    /// The `userlist`, `resolvers` and `cache` sections a line's rules
    /// name (`http_auth(users)`, `do-resolve(txn.ip,dns)`, `cache-use c`),
    /// looked up once every section is read (`finish`).
    pub(super) fn note_section_refs(&mut self, p: &Draft, w: &[String], at: &Origin) {
        let (kind, name) = (p.kind.word(), p.name.as_str());
        let mut refs = Vec::new();
        for (i, word) in w.iter().enumerate() {
            for fetch in ["http_auth", "http_auth_group"] {
                let mut rest = word.as_str();
                while let Some(pos) = rest.find(&format!("{fetch}(")) {
                    let inner = &rest[pos + fetch.len() + 1..];
                    let list = inner.split([')', ',']).next().unwrap_or("").trim();
                    // `http_auth(` inside `http_auth_group(` is the other one.
                    let whole_name = pos == 0 || !rest[..pos].ends_with('_');
                    if whole_name {
                        refs.push(SectionRef {
                            kind: "userlist",
                            name: list.to_string(),
                            missing: format!(
                                "unable to find userlist '{list}' referenced in arg 1 of ACL keyword '{fetch}' in \
                                 proxy '{name}'."
                            ),
                            origin: at.clone(),
                        });
                    }
                    rest = inner;
                }
            }
            if let Some(args) = word.strip_prefix("do-resolve(") {
                let resolvers = args.split([',', ')']).nth(1).unwrap_or("").trim();
                refs.push(SectionRef {
                    kind: "resolvers",
                    name: resolvers.to_string(),
                    missing: format!(
                        "Proxy '{name}': Can't find resolvers section '{resolvers}' for do-resolve action."
                    ),
                    origin: at.clone(),
                });
            }
            if matches!(word.as_str(), "cache-use" | "cache-store") && i > 0 {
                let cache = arg(w, i + 1);
                refs.push(SectionRef {
                    kind: "cache",
                    name: cache.to_string(),
                    missing: format!(
                        "{kind} '{name}': unable to find the cache '{cache}' referenced by the filter 'cache'."
                    ),
                    origin: at.clone(),
                });
            }
        }
        self.section_refs.extend(refs);
    }

    /// What HAProxy checks once every line is read: the log-format strings
    /// (`log-format` only where something logs: frontends and listens), own
    /// or from their defaults, against the proxy's final mode.
    pub(in crate::config) fn finish(&mut self) {
        for r in std::mem::take(&mut self.section_refs) {
            let found = self.other_sections.iter().any(|(k, n)| k == r.kind && *n == r.name);
            if !found {
                self.diags.alert(&r.origin, r.missing);
            }
        }
        let mut found = Vec::new();
        for p in &self.out.proxies {
            // Only what logs reads the log formats; ids and errors are made everywhere.
            let logs = |k: &str| matches!(k, "log-format" | "log-format-sd");
            for (k, text, at) in p.log_formats.iter().filter(|(k, ..)| p.kind.fe() || !logs(k)) {
                // Where HAProxy evaluates them (`haproxy -dKsmp` columns): the
                // logs, or the request's headers for the unique id.
                let (col, what) = match k.as_str() {
                    "unique-id-format" => (3, "unique-id"),
                    _ => (18, k.as_str()),
                };
                match log_format(text, col, p.mode == Mode::Http) {
                    Ok(()) => found.push((vec![text.clone()], at.clone(), None)),
                    Err(msg) => found.push((Vec::new(), at.clone(), Some(format!("failed to parse {what} : {msg}.")))),
                }
            }
        }
        for (words, at, alert) in found {
            match alert {
                Some(msg) if !self.diags.list.iter().any(|d| d.origin == at && d.message == msg) => {
                    self.diags.alert(&at, msg);
                }
                Some(_) => {}
                None => self.note_map_files(&words, &at),
            }
        }
    }

    /// The condition at `w[end..]` of a rule lbxdp doesn't apply: checked,
    /// with HAProxy's warnings about ACLs that can never match there.
    fn checked_cond(
        &mut self,
        p: &mut Draft,
        w: &[String],
        end: usize,
        place: (u32, &str),
        rule: &RuleKind<'_>,
        at: &Origin,
    ) -> bool {
        let Ok(cond) = self.rule_cond(p, &w[end.min(w.len())..], rule, at) else {
            return false;
        };
        if let Some(c) = &cond {
            self.warn_never_match(p, c, place, "", at);
        }
        true
    }

    /// `tcp-response content ACTION [ARGS] [if|unless COND]` (and
    /// `tcp-response inspect-delay`). False: an alert was raised.
    pub(super) fn tcp_response(&mut self, p: &mut Draft, w: &[String], at: &Origin) -> bool {
        let (kind, name) = (p.kind, p.name.clone());
        match arg(w, 1) {
            "inspect-delay" => return true,
            "content" => {}
            other => {
                self.diags.alert(
                    at,
                    format!(
                        "'tcp-response' expects 'inspect-delay' or 'content' in {} '{name}' (got '{other}')",
                        kind.word()
                    ),
                );
                return false;
            }
        }
        if !kind.be() || (kind == Kind::Defaults && name.is_empty()) {
            self.diags.alert(
                at,
                "tcp-response content is only allowed in 'backend' sections or 'defaults' section with a name",
            );
            return false;
        }
        let set = Ruleset::TcpResponse;
        let action = arg(w, 2);
        if !set.knows(action) {
            self.diags.alert(at, set.unknown(action, kind, &name));
            return false;
        }
        let end = match action_args(set, (kind, p.mode == Mode::Http), &name, w, 2) {
            Ok(end) => end,
            Err(msg) => {
                self.diags.alert(at, msg);
                return false;
            }
        };
        let rule = format!("{} {action}", set.word());
        self.note_map_files(w, at);
        self.checked_cond(p, w, end, set.place(kind), &RuleKind::Tcp(&rule), at)
    }

    /// `redirect location|prefix|scheme ... [if|unless COND]`. False: an alert was raised.
    pub(super) fn redirect(&mut self, p: &mut Draft, w: &[String], at: &Origin) -> bool {
        if p.kind == Kind::Defaults {
            self.diags.alert(at, "'redirect' not allowed in 'defaults' section.");
            return false;
        }
        let set = Ruleset::HttpRequest;
        let (col, _) = set.place(p.kind);
        let http = p.mode == Mode::Http;
        let end = match redirect_args(w, 1, &|t| log_format(t, col, http)) {
            Ok(end) => end,
            Err(msg) => {
                self.diags.alert(
                    at,
                    format!(
                        "error detected in {} '{}' while parsing redirect rule : {msg}.",
                        p.kind.word(),
                        p.name
                    ),
                );
                return false;
            }
        };
        let (kind, name) = (p.kind.word(), p.name.clone());
        self.checked_cond(p, w, end, set.place(p.kind), &RuleKind::Redirect(kind, &name), at)
    }

    /// `use-server SERVER if|unless COND`: the server is looked up when
    /// resolving. False: an alert was raised.
    pub(super) fn use_server(&mut self, p: &mut Draft, w: &[String], at: &Origin) -> bool {
        if p.kind == Kind::Defaults {
            self.diags.alert(at, "'use-server' not allowed in 'defaults' section.");
            return false;
        }
        self.lacks(p, false, true, "use-server", at);
        let server = arg(w, 1);
        if server.is_empty() {
            self.diags.alert(at, "'use-server' expects a server name.");
            return false;
        }
        if !matches!(arg(w, 2), "if" | "unless") {
            self.diags.alert(
                at,
                "'use-server' requires either 'if' or 'unless' followed by a condition.",
            );
            return false;
        }
        if !self.checked_cond(p, w, 2, USE_SERVER, &RuleKind::Switching, at) {
            return false;
        }
        if !server.contains("%[") {
            p.use_servers.push((server.to_string(), at.clone()));
        }
        true
    }

    /// `stick on|match|store-request|store-response PATTERN [table T] [if|unless COND]`
    /// in a backend: its pattern and condition, checked as HAProxy does.
    /// False: an alert was raised.
    pub(super) fn stick_rule(&mut self, p: &mut Draft, w: &[String], at: &Origin) -> bool {
        let how = arg(w, 1);
        if !matches!(how, "on" | "match" | "store-request" | "store-response") {
            self.diags.alert(at, "'stick' expects 'on', 'match', or 'store'.");
            return false;
        }
        let pattern = arg(w, 2);
        if pattern.is_empty() {
            self.diags.alert(at, "'stick' expects a fetch method.");
            return false;
        }
        // A stored response is read once the response is there; the others match requests.
        let (col, place) = if how == "store-response" {
            (14, "store-response")
        } else {
            (9, "stick on")
        };
        match sample_expr(pattern) {
            Err(msg) => {
                self.diags.alert(at, format!("'stick': {msg}"));
                return false;
            }
            Ok(usable) if usable & (1 << col) == 0 => {
                self.diags.alert(
                    at,
                    format!(
                        "'stick': fetch method '{pattern}' extracts information from '{}', none of which is \
                         available for '{place}'.",
                        super::sample::needs(usable)
                    ),
                );
                return false;
            }
            Ok(_) => {}
        }
        let mut i = 3;
        while i < w.len() {
            match w[i].as_str() {
                "table" => i += 2,
                "if" | "unless" => break,
                "" => i += 1,
                other => {
                    self.diags.alert(at, format!("'stick': unknown keyword '{other}'."));
                    return false;
                }
            }
        }
        let place = if how == "store-response" {
            (14, "backend stick-store rule")
        } else {
            (9, "backend use-server, balance or stick-match rule")
        };
        self.note_map_files(w, at);
        self.checked_cond(p, w, i, place, &RuleKind::Stick, at)
    }
}

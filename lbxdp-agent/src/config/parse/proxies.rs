//! Proxy keywords (`frontend`, `backend`, `listen`, `defaults`): bind, mode,
//! balance, timeouts, options and the rest HAProxy knows.
use super::{ArgRef, Draft, Kind, LogEntry, Modifier, Parser, RefKind, acl::RuleKind, arg, atol, refusal_at};
use crate::config::{
    addr,
    diag::Origin,
    keywords as kw,
    model::{Balance, Bind, HashType, Mode, Unsupported},
    time,
};

impl Parser<'_> {
    /// HAProxy's `warnifnotcap()`: the keyword is ignored, with a warning.
    pub(super) fn lacks(&mut self, p: &Draft, need_fe: bool, need_be: bool, what: &str, at: &Origin) -> bool {
        if (need_fe && p.kind.fe()) || (need_be && p.kind.be()) {
            return false;
        }
        let cap = if need_fe { "frontend" } else { "backend" };
        self.diags.warn(
            at,
            format!(
                "'{what}' ignored because {} '{}' has no {cap} capability",
                p.kind.word(),
                p.name
            ),
        );
        true
    }

    fn not_in_defaults(&mut self, p: &Draft, k: &str, at: &Origin) -> bool {
        if p.kind == Kind::Defaults {
            self.diags.alert(at, format!("'{k}' not allowed in 'defaults' section"));
            return true;
        }
        false
    }

    fn int_arg(&mut self, w: &[String], k: &str, at: &Origin) -> Option<u32> {
        let a1 = arg(w, 1);
        if a1.is_empty() {
            self.diags.alert(at, format!("'{k}' expects an integer argument"));
            return None;
        }
        let (v, clean) = atol(a1);
        if !clean {
            self.diags
                .warn(at, format!("'{k} {a1}': not a number; HAProxy reads it as {v}"));
        }
        Some(v.clamp(0, i64::from(u32::MAX)) as u32)
    }

    pub(super) fn proxy_kw(&mut self, p: &mut Draft, w: &[String], at: &Origin, modifier: Modifier) {
        let k = w[0].as_str();
        let a1 = arg(w, 1).to_string();
        match k {
            "mode" => {
                if self.too_many(w, 1, at) {
                    return;
                }
                match a1.as_str() {
                    "tcp" => {
                        p.mode = Mode::Tcp;
                        p.mode_http_at = None;
                    }
                    "http" => {
                        p.mode = Mode::Http;
                        // A section the agent serves itself isn't balanced: said when resolving.
                        if p.kind.fe() {
                            p.mode_http_at = Some(at.clone());
                        } else {
                            self.diags.warn(
                                at,
                                format!(
                                    "'mode http' in {} '{}': lbxdp balances it as TCP (layer 4)",
                                    p.kind.word(),
                                    p.name
                                ),
                            );
                        }
                    }
                    "health" => self.diags.alert(at, "'mode health' doesn't exist anymore"),
                    other => self.diags.alert(at, format!("unknown proxy mode '{other}'")),
                }
            }
            "bind" => self.bind(p, w, at),
            "server" | "default-server" => self.server(p, w, at),
            "default_backend" => {
                // HAProxy warns but keeps it, and still resolves it later.
                self.lacks(p, true, false, k, at);
                if a1.is_empty() {
                    self.diags.alert(at, "'default_backend' expects a backend name");
                    return;
                }
                if self.too_many(w, 1, at) {
                    return;
                }
                p.default_backend = Some((a1, at.clone()));
            }
            "use_backend" => {
                if self.not_in_defaults(p, k, at) {
                    return;
                }
                self.lacks(p, true, false, k, at);
                if a1.is_empty() {
                    self.diags.alert(at, "'use_backend' expects a backend name");
                    return;
                }
                let Ok(cond) = self.rule_cond(p, &w[2.min(w.len())..], &RuleKind::Switching, at) else {
                    return;
                };
                if let Some(c) = &cond {
                    self.warn_never_match(p, c, (5, "frontend use-backend rule"), "", at);
                    self.refuse_undecided(p, c, format!("use_backend {a1}"), at);
                }
                // A name HAProxy builds per connection from a sample expression.
                if a1.contains("%[") {
                    let directive = format!("use_backend {a1}");
                    self.out
                        .refused
                        .push(refusal_at(at, directive, &a1, Unsupported::DynamicBackend));
                }
                p.use_backends.push((a1, cond, at.clone()));
            }
            "balance" => {
                if self.lacks(p, false, true, k, at) {
                    return;
                }
                self.balance(p, w, at);
            }
            "hash-type" => {
                if self.lacks(p, false, true, k, at) {
                    return;
                }
                p.hash_type = match a1.as_str() {
                    "consistent" => HashType::Consistent,
                    "map-based" => HashType::MapBased,
                    _ => {
                        self.diags
                            .alert(at, "'hash-type' only supports 'consistent' and 'map-based'");
                        return;
                    }
                };
                let mut i = 2;
                if matches!(arg(w, i), "sdbm" | "djb2" | "wt6" | "crc32" | "none") {
                    i += 1;
                } else if !arg(w, i).is_empty() && arg(w, i) != "avalanche" {
                    self.diags.alert(
                        at,
                        "'hash-type' only supports 'sdbm', 'djb2', 'wt6', 'crc32' and 'none' as hash functions",
                    );
                    return;
                }
                if arg(w, i) == "avalanche" {
                    i += 1;
                }
                if !arg(w, i).is_empty() {
                    self.diags
                        .alert(at, format!("'hash-type': unexpected argument '{}'", arg(w, i)));
                }
            }
            "maxconn" => {
                if self.lacks(p, true, false, k, at) {
                    return;
                }
                if let Some(v) = self.int_arg(w, k, at)
                    && !self.too_many(w, 1, at)
                {
                    p.maxconn = Some(v);
                }
            }
            "fullconn" | "retries" => {
                if self.lacks(p, false, true, k, at) {
                    return;
                }
                if self.too_many(w, 1, at) {
                    return;
                }
                if let Some(v) = self.int_arg(w, k, at) {
                    if k == "fullconn" {
                        p.fullconn = Some(v);
                    } else {
                        p.retries = Some(v);
                    }
                }
            }
            "timeout" => self.timeout(p, w, at),
            "log" => {
                if modifier == Modifier::No {
                    p.logs.clear();
                    return;
                }
                if a1 == "global" {
                    if self.too_many(w, 1, at) {
                        return;
                    }
                    p.logs.push(LogEntry::Global);
                } else if let Some(t) = self.log_target(w, at, false) {
                    p.logs.push(LogEntry::Target(t));
                }
            }
            // HAProxy's proxy `log-tag` takes the first word and ignores the rest.
            "log-tag" => {
                if a1.is_empty() {
                    self.diags.alert(at, "'log-tag' expects a tag for use in syslog.");
                } else {
                    p.log_tag = Some(a1.to_string());
                }
            }
            "option" => self.option(p, w, at, modifier),
            "tcp-check" => self.tcp_check(p, w, at),
            "http-check" => self.http_check(p, w, at),
            "disabled" | "enabled" => {
                if !self.too_many(w, 0, at) {
                    p.disabled = k == "disabled";
                }
            }
            "id" | "description" if p.kind == Kind::Defaults => {
                self.diags.alert(at, format!("'{k}' not allowed in 'defaults' section"));
            }
            "description" => {
                if a1.is_empty() {
                    self.diags.alert(at, "'description' expects a string argument");
                }
            }
            "id" => self.proxy_id(p, &a1, at),
            "stats" => self.stats(p, w, at),
            "http-request"
                if p.kind != Kind::Defaults && arg(w, 1) == "use-service" && arg(w, 2) == "prometheus-exporter" =>
            {
                self.prometheus(p, w, at);
            }
            "source" => self.proxy_source(p, w, at),
            "usesrc" => self.diags.alert(at, "'usesrc' only allowed after a 'source' statement"),
            "acl" if p.kind == Kind::Defaults && p.name.is_empty() => {
                self.diags
                    .alert(at, "'acl' not allowed in anonymous 'defaults' section");
            }
            "acl" => self.acl(p, w, at),
            "tcp-request" => self.tcp_request(p, w, at),
            "stick-table" if p.kind == Kind::Defaults => {
                self.diags
                    .alert(at, "'stick-table' is not supported in 'defaults' section.");
            }
            "stick" if p.kind == Kind::Defaults => {
                self.diags.alert(at, "'stick' not allowed in 'defaults' section.");
            }
            "http-request" | "http-response" | "http-after-response"
                if p.kind == Kind::Defaults && !p.name.is_empty() =>
            {
                // Not applied (HTTP), but HAProxy limits who may inherit them.
                p.defines_rules = true;
                self.diags.warn(
                    at,
                    format!("'{k}' is an HTTP directive: parsed past, not applied at layer 4"),
                );
            }
            "stick-table" => {
                self.stick_table(p, w, at);
            }
            // `stick` rules pick servers by table, which lbxdp doesn't do.
            "stick" => {
                if !self.lacks(p, false, true, k, at) {
                    let table = w.iter().position(|x| x == "table").map(|i| arg(w, i + 1).to_string());
                    p.arg_refs.push(ArgRef {
                        kind: RefKind::StickRule,
                        keyword: k.to_string(),
                        target: table.unwrap_or_else(|| p.name.clone()),
                        origin: at.clone(),
                    });
                    let directive = format!("{} {}", p.kind.word(), p.name);
                    self.out
                        .refused
                        .push(refusal_at(at, directive, k, Unsupported::StickTables));
                }
            }
            other => {
                if let Some((_, why)) = kw::PROXY_REMOVED.iter().find(|(n, _)| *n == other) {
                    self.diags.alert(at, *why);
                } else if kw::PROXY_HTTP.contains(&other) {
                    self.diags.warn(
                        at,
                        format!("'{other}' is an HTTP directive: parsed past, not applied at layer 4"),
                    );
                } else if kw::PROXY_OTHER.contains(&other) {
                    self.diags
                        .warn(at, format!("'{other}': parsed past, not applied by lbxdp"));
                } else {
                    self.diags
                        .alert(at, format!("unknown keyword '{other}' in '{}' section", p.kind.word()));
                }
            }
        }
    }

    /// `id <n>`: HAProxy's atol(), so "3x" is 3; ids are unique across proxies.
    fn proxy_id(&mut self, p: &mut Draft, a1: &str, at: &Origin) {
        let (v, _) = atol(a1);
        if a1.is_empty() {
            self.diags.alert(at, "'id' expects an integer argument");
            return;
        }
        if v <= 0 {
            self.diags.alert(at, "custom id has to be > 0");
            return;
        }
        let id = v.min(i64::from(u32::MAX)) as u32;
        // A second `id` line in one proxy: HAProxy finds the proxy itself.
        let clash = match p.id {
            Some(_) => Some((p.kind, p.name.clone(), p.origin.clone())),
            None => self.proxy_ids.get(&id).cloned(),
        };
        if let Some((kind, name, origin)) = clash {
            self.diags.alert(
                at,
                format!(
                    "{} {} reuses same custom id as {} {name} (declared at {origin}).",
                    p.kind.word(),
                    p.name,
                    kind.word()
                ),
            );
            return;
        }
        p.id = Some(id);
        self.proxy_ids.insert(id, (p.kind, p.name.clone(), p.origin.clone()));
    }

    fn bind(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        if self.not_in_defaults(p, "bind", at) {
            return;
        }
        let ignored = self.lacks(p, true, false, "bind", at);
        let a1 = arg(w, 1);
        if a1.is_empty() {
            self.diags.alert(
                at,
                "'bind' expects {<path>|[addr1]:port1[-end1]}{,[addr]:port[-end]}... as arguments",
            );
            return;
        }
        let (listens, notes) = match addr::parse_bind(a1) {
            Ok(x) => x,
            Err(e) => {
                self.diags.alert(at, format!("'bind': {e}"));
                return;
            }
        };
        for n in notes {
            self.diags.warn(at, format!("'bind {a1}': {n}, as HAProxy does"));
        }
        let mut interface = None;
        let mut refused = Vec::new();
        let mut i = 2;
        while i < w.len() {
            let k = w[i].as_str();
            let v = arg(w, i + 1);
            if k == "interface" {
                if v.is_empty() {
                    self.diags.alert(at, "'bind': 'interface' expects an interface name");
                    return;
                }
                interface = Some(v.to_string());
                i += 2;
                continue;
            }
            match kw::BIND_OTHER.iter().find(|(n, _)| *n == k) {
                Some((_, n)) => {
                    let directive = format!("bind {a1}");
                    let refusal = kw::BIND_REFUSED.iter().find(|(r, _)| *r == k).map(|(_, what)| *what);
                    if !self.parse_past(&directive, k, v, *n, kw::BIND_FILES, refusal.is_none(), at) {
                        return;
                    }
                    if let Some(what) = refusal {
                        refused.push(refusal_at(at, directive, k, what));
                    }
                    i += 1 + n;
                }
                None => {
                    self.diags.alert(at, format!("'bind {a1}': unknown keyword '{k}'"));
                    return;
                }
            }
        }
        p.bind_lines += 1;
        if ignored {
            return;
        }
        self.out.refused.extend(refused);
        for l in listens {
            match l {
                addr::Listen::Inet(a) => p.binds.push(Bind {
                    addr: a,
                    interface: interface.clone(),
                    origin: at.clone(),
                }),
                addr::Listen::Other(o) => {
                    self.diags.warn(
                        at,
                        format!("'bind {o}': not a TCP/IP address, lbxdp does not balance it"),
                    );
                }
            }
        }
    }

    fn balance(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        let a1 = arg(w, 1);
        let algo = a1.split('(').next().unwrap_or("");
        p.balance = match algo {
            // A bare `balance` is HAProxy's default algorithm, round robin.
            "" | "roundrobin" => Balance::RoundRobin,
            "static-rr" => Balance::StaticRr,
            "leastconn" => Balance::LeastConn,
            "first" => Balance::First,
            "source" => Balance::Source,
            "random" => {
                let draws = a1
                    .strip_prefix("random(")
                    .and_then(|r| r.strip_suffix(')'))
                    .map(|d| atol(d).0)
                    .unwrap_or(2);
                if draws < 1 {
                    self.diags.alert(at, "balance: 'random' number of draws must be > 0");
                    return;
                }
                Balance::Random(draws.min(i64::from(u32::MAX)) as u32)
            }
            "uri" | "url_param" | "hdr" | "rdp-cookie" | "hash" => {
                if algo == "hdr" && !a1.contains('(') || algo == "url_param" && arg(w, 2).is_empty() {
                    self.diags.alert(at, format!("balance: '{algo}' expects a name"));
                    return;
                }
                self.diags.warn(
                    at,
                    format!("balance {algo} is a layer-7 algorithm: lbxdp balances round robin"),
                );
                Balance::Layer7
            }
            _ => {
                self.diags.alert(
                    at,
                    "balance only supports 'roundrobin', 'static-rr', 'leastconn', 'first', 'source', 'random', \
                     'uri', 'url_param', 'hdr(name)', 'rdp-cookie(name)' and 'hash' options",
                );
                return;
            }
        };
    }

    fn timeout(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        let name = arg(w, 1);
        let (fe, be) = match name {
            "client" | "client-fin" => (true, false),
            "server" | "connect" | "check" | "queue" | "tunnel" | "server-fin" => (false, true),
            "http-keep-alive" | "http-request" | "tarpit" => (true, true),
            _ => {
                self.diags.alert(
                    at,
                    format!(
                        "'timeout' supports 'client', 'server', 'connect', 'check', 'queue', 'http-keep-alive', \
                         'http-request', 'tunnel', 'tarpit', 'client-fin' and 'server-fin' (got '{name}')"
                    ),
                );
                return;
            }
        };
        let v = arg(w, 2);
        if v.is_empty() {
            self.diags.alert(
                at,
                format!("'timeout {name}' expects an integer value (in milliseconds)"),
            );
            return;
        }
        let t = match time::parse_ms(v) {
            Ok(t) => t,
            Err(time::TimeError::BadChar(c)) => {
                self.diags.alert(
                    at,
                    format!("unexpected character '{c}' in 'timeout {name}' (units: us, ms, s, m, h, d; none is ms)"),
                );
                return;
            }
            Err(e) => {
                self.diags.alert(at, format!("'timeout {name} {v}': {e}"));
                return;
            }
        };
        if let Some(c) = t.trailing_junk {
            self.diags
                .warn(at, format!("unexpected character '{c}' after the timer value '{v}'"));
        }
        if let Some(extra) = w.get(3).filter(|x| !x.is_empty()) {
            self.diags.alert(
                at,
                format!("'timeout {name}': unexpected extra argument '{extra}' after value '{v}'"),
            );
            return;
        }
        if (fe && !be && !p.kind.fe()) || (be && !fe && !p.kind.be()) {
            self.diags.warn(
                at,
                format!(
                    "'timeout {name}' will be ignored because {} '{}' has no {} capability",
                    p.kind.word(),
                    p.name,
                    if be { "backend" } else { "frontend" }
                ),
            );
            return;
        }
        let t = Some(t.value);
        let tm = &mut p.timeouts;
        match name {
            "client" => tm.client = t,
            "client-fin" => tm.client_fin = t,
            "server" => tm.server = t,
            "connect" => tm.connect = t,
            "check" => tm.check = t,
            "queue" => tm.queue = t,
            "tunnel" => tm.tunnel = t,
            "server-fin" => tm.server_fin = t,
            _ => self.diags.warn(
                at,
                format!("'timeout {name}' is an HTTP timeout: not applied at layer 4"),
            ),
        }
    }

    fn option(&mut self, p: &mut Draft, w: &[String], at: &Origin, modifier: Modifier) {
        let name = arg(w, 1);
        if name.is_empty() {
            self.diags.alert(at, "'option' expects an option name");
            return;
        }
        let on = modifier == Modifier::Std;
        let (fe, be) = match name {
            "redispatch" | "allbackups" | "log-health-checks" | "httpchk" | "tcp-check" => (false, true),
            "tcplog" | "dontlognull" => (true, false),
            "tcpka" => (true, true),
            _ => (false, false),
        };
        if (fe || be) && self.lacks(p, fe, be, &format!("option {name}"), at) {
            return;
        }
        match name {
            "redispatch" => {
                let mut after = -1;
                if !arg(w, 2).is_empty() {
                    let (v, clean) = atol(arg(w, 2));
                    if !clean || v == 0 {
                        self.diags.alert(
                            at,
                            "'option redispatch' expects a non-zero integer as its only argument",
                        );
                        return;
                    }
                    after = v;
                }
                if !self.too_many_opt(w, 1, at) {
                    p.redispatch = on.then_some(after);
                }
            }
            "tcplog" | "dontlognull" | "tcpka" | "log-health-checks" | "allbackups" => {
                if self.too_many_opt(w, 0, at) {
                    return;
                }
                match name {
                    "tcplog" => p.tcplog = on,
                    "allbackups" => p.allbackups = on,
                    "dontlognull" => p.dontlognull = on,
                    "tcpka" => p.tcpka = on,
                    _ => p.log_health_checks = on,
                }
            }
            "httpchk" => self.option_httpchk(p, w, modifier),
            "tcp-check" => self.option_tcp_check(p, w, at, modifier),
            other if kw::OPTIONS_REMOVED.contains(&other) => {
                self.diags
                    .alert(at, format!("option '{other}' is not supported any more"));
            }
            other => match kw::OPTIONS_OTHER.iter().find(|(n, _)| *n == other) {
                Some((_, true)) => {
                    self.diags.warn(
                        at,
                        format!("'option {other}' is an HTTP option: parsed past, not applied at layer 4"),
                    );
                }
                Some((_, false)) => {
                    self.diags
                        .warn(at, format!("'option {other}': parsed past, not applied by lbxdp"));
                }
                None => self.diags.alert(at, format!("unknown option '{other}'")),
            },
        }
    }

    pub(super) fn too_many_opt(&mut self, w: &[String], max: usize, at: &Origin) -> bool {
        match w.get(max + 2).filter(|x| !x.is_empty()) {
            Some(extra) => {
                self.diags.alert(
                    at,
                    format!("'option {}' cannot handle unexpected argument '{extra}'", w[1]),
                );
                true
            }
            None => false,
        }
    }
}

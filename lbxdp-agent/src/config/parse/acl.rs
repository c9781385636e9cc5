//! `acl` lines, the conditions rules carry, and `tcp-request`, checked as
//! HAProxy 2.6 checks them and worded as it words its alerts. Fetches and
//! converters come from HAProxy's own lists (`fetches`); what lbxdp can't
//! evaluate is kept as `Fetch::Other` and refused where a rule uses it.
use super::{ArgRef, Draft, Kind, Parser, RefKind, arg, refusal_at};
use crate::config::{
    acl::{Acl, AclExpr, Cond, Fetch, IntRange, Patterns, TcpAction, TcpRule, Term, Undecided},
    addr::parse_net,
    diag::Origin,
    fetches::{ACL_KEYWORDS, CONVERTERS, FETCHES},
    keywords::invalid_name_char,
    model::Unsupported,
};

/// HAProxy 2.6's predefined ACLs, for names no `acl` line defines.
const BUILTIN_ACLS: &[(&str, &str, &[&str])] = &[
    ("TRUE", "always_true", &[]),
    ("FALSE", "always_false", &[]),
    ("LOCALHOST", "src", &["127.0.0.1/8", "::1"]),
    ("HTTP", "req.proto_http", &[]),
    ("HTTP_1.0", "req.ver", &["1.0"]),
    ("HTTP_1.1", "req.ver", &["1.1"]),
    ("HTTP_2.0", "req.ver", &["2.0"]),
    ("HTTP_CONTENT", "req.hdr_val(content-length)", &["gt", "0"]),
    ("HTTP_URL_ABS", "url_reg", &["^[^/:]*://"]),
    ("HTTP_URL_SLASH", "url_beg", &["/"]),
    ("HTTP_URL_STAR", "url", &["*"]),
    ("METH_CONNECT", "method", &["CONNECT"]),
    ("METH_DELETE", "method", &["DELETE"]),
    ("METH_GET", "method", &["GET", "HEAD"]),
    ("METH_HEAD", "method", &["HEAD"]),
    ("METH_OPTIONS", "method", &["OPTIONS"]),
    ("METH_POST", "method", &["POST"]),
    ("METH_PUT", "method", &["PUT"]),
    ("METH_TRACE", "method", &["TRACE"]),
    ("RDP_COOKIE", "req.rdp_cookie_cnt", &["gt", "0"]),
    ("REQ_CONTENT", "req.len", &["gt", "0"]),
    ("WAIT_END", "wait_end", &[]),
];

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

const MATCH_METHODS: &[&str] = &[
    "found", "bool", "int", "ip", "bin", "len", "str", "beg", "dir", "dom", "end", "reg", "sub",
];

/// A fetch's argument list as HAProxy prints it ("backend", "[table]",
/// "string[,string]"): the types, and how many are mandatory.
fn arg_types(spec: &str) -> (Vec<&str>, usize) {
    let mandatory = spec.split('[').next().unwrap_or("");
    let types: Vec<&str> = spec
        .split(',')
        .map(|t| t.trim_matches(|c| c == '[' || c == ']'))
        .filter(|t| !t.is_empty())
        .collect();
    let min = mandatory.split(',').filter(|t| !t.is_empty()).count();
    (types, min)
}

/// Types HAProxy fills in itself when the argument is missing (the current
/// proxy, its table).
fn defaulted(ty: &str) -> bool {
    matches!(ty, "backend" | "frontend" | "table" | "server")
}

/// `name(args)` at the start of `text`: the name, the arguments, the rest.
/// Err is HAProxy's message, with `label` naming the fetch or converter.
fn call<'a>(
    text: &'a str,
    label: &dyn Fn(&str) -> String,
    whole: &str,
) -> Result<(&'a str, Vec<&'a str>, &'a str), String> {
    let end = text.find(['(', ',']).unwrap_or(text.len());
    let name = &text[..end];
    let Some(inner) = text[end..].strip_prefix('(') else {
        return Ok((name, Vec::new(), &text[end..]));
    };
    let Some(close) = inner.find(')') else {
        return Err(format!("{} : expected ')' in ACL expression '{whole}'", label(name)));
    };
    let args = if inner[..close].is_empty() {
        Vec::new()
    } else {
        inner[..close].split(',').collect()
    };
    Ok((name, args, &inner[close + 1..]))
}

/// Checks a call's arguments against its spec, as HAProxy's `make_arg_list`.
fn check_args(args: &[&str], spec: &str, label: &str, whole: &str) -> Result<(), String> {
    let (types, min) = arg_types(spec);
    if args.len() > types.len() {
        // HAProxy quotes what follows the last argument it takes.
        let rest = args[types.len()..].join(",");
        let rest = if types.is_empty() { rest } else { format!(",{rest}") };
        return Err(format!(
            "{label} : expected ')' before '{rest})' in ACL expression '{whole}'"
        ));
    }
    if args.len() < min && !types.get(args.len()).is_some_and(|t| defaulted(t)) {
        let ty = types.get(args.len()).copied().unwrap_or("");
        return Err(format!(
            "{label} : missing arguments (got {}/{min}), type '{ty}' expected in ACL expression '{whole}'",
            args.len()
        ));
    }
    for (i, (a, ty)) in args.iter().zip(&types).enumerate() {
        if *ty == "integer" && a.trim().parse::<i64>().is_err() {
            return Err(format!(
                "{label} : failed to parse '{a}' as type 'integer' at position {} in ACL expression '{whole}'",
                i + 1
            ));
        }
    }
    Ok(())
}

/// What lbxdp reads from one fetch expression (`src`, `nbsrv(be)`, `hdr(host),lower`).
struct Parsed {
    fetch: Fetch,
    /// The match method the keyword implies (`path_beg`: beg), else the output type's.
    method: &'static str,
    /// What a `backend`, `frontend` or `table` first argument names (None:
    /// the current proxy), for `resolve`.
    proxy_arg: Option<(RefKind, Option<String>)>,
    /// The keyword as written and where HAProxy can use it (`FETCHES`' bits).
    usable: (String, u32),
}

fn default_method(out: &str) -> &'static str {
    match out {
        "ipv4" | "ipv6" | "addr" => "ip",
        "sint" => "int",
        "bool" => "bool",
        "bin" => "bin",
        _ => "str",
    }
}

fn stick_counter(name: &str, spec: &str) -> bool {
    let sc = name
        .strip_prefix("sc")
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit() || c == '_'));
    let src_table = name.starts_with("src_") && !matches!(name, "src_port" | "src_is_local");
    sc || src_table || spec.contains("table")
}

fn fetch_expr(whole: &str) -> Result<Parsed, String> {
    if whole.is_empty() {
        return Err("missing fetch method in ACL expression ''".into());
    }
    let name_end = whole.find(['(', ',']).unwrap_or(whole.len());
    let word = &whole[..name_end];
    let alias = ACL_KEYWORDS.iter().find(|(k, _, _)| *k == word);
    let fetch_name = alias.map_or(word, |(_, f, _)| *f);
    let Some(&(_, usable, spec, out)) = FETCHES.iter().find(|(n, ..)| *n == fetch_name) else {
        return Err(format!("unknown fetch method '{word}' in ACL expression '{whole}'"));
    };
    let label = |n: &str| {
        if alias.is_some() {
            format!("ACL keyword '{n}'")
        } else {
            format!("fetch method '{n}'")
        }
    };
    let (_, args, mut rest) = call(whole, &label, whole)?;
    check_args(&args, spec, &label(word), whole)?;
    let mut converters = false;
    let mut out = out;
    while let Some(next) = rest.strip_prefix(',') {
        let conv_label = |n: &str| format!("converter '{n}'");
        let (cname, cargs, after) = call(next, &conv_label, whole)?;
        let Some(&(_, cspec, cout)) = CONVERTERS.iter().find(|(n, ..)| *n == cname) else {
            return Err(format!("unknown converter '{cname}' in ACL expression '{whole}'"));
        };
        let (types, min) = arg_types(cspec);
        if cargs.len() < min {
            return Err(format!(
                "invalid arg {} in converter '{cname}' : expected type '{}' at position {}, but got nothing in ACL \
                 expression '{whole}'",
                cargs.len() + 1,
                types.get(cargs.len()).copied().unwrap_or(""),
                cargs.len() + 1
            ));
        }
        converters = true;
        out = cout;
        rest = after;
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} : expected ')' before '{rest}' in ACL expression '{whole}'",
            label(word)
        ));
    }
    let method = alias.map_or(default_method(out), |(_, _, m)| {
        MATCH_METHODS.iter().find(|x| *x == m).copied().unwrap_or("str")
    });
    let proxy_arg = match arg_types(spec).0.first().copied() {
        Some("backend") => Some(RefKind::Backend),
        Some("frontend") => Some(RefKind::Frontend),
        Some("table") => Some(RefKind::Table),
        _ => None,
    }
    .map(|kind| (kind, args.first().map(|a| a.trim().to_string())))
    // An optional table (`sc0_conn_rate([table])`) left out is the tracked
    // counter's: nothing to look up.
    .filter(|(_, given)| given.is_some() || !spec.starts_with('['));
    let fetch = match (fetch_name, converters) {
        ("src", false) => Fetch::Src,
        ("dst", false) => Fetch::Dst,
        ("src_port", false) => Fetch::SrcPort,
        ("dst_port", false) => Fetch::DstPort,
        ("always_true", false) => Fetch::AlwaysTrue,
        ("always_false", false) => Fetch::AlwaysFalse,
        // Filled in with the current proxy when the argument is missing.
        ("nbsrv", false) => Fetch::NbSrv(args.first().map(|a| a.trim().to_string()).unwrap_or_default()),
        (name, _) => Fetch::Other {
            expr: whole.to_string(),
            why: if stick_counter(name, spec) {
                Undecided::StickCounters
            } else {
                Undecided::NotLayer4
            },
        },
    };
    Ok(Parsed {
        fetch,
        method,
        proxy_arg,
        usable: (word.to_string(), usable),
    })
}

/// `eq|ge|gt|le|lt` set how the values after them compare.
fn int_pattern(op: &str, w: &str) -> Result<IntRange, String> {
    // HAProxy takes an optional '-', not a '+'.
    let num = |s: &str| s.parse::<i64>().ok().filter(|_| !s.starts_with('+'));
    if let Some((a, b)) = w.split_once(':') {
        let bad = || format!("'{w}' is not a valid number range");
        let low = if a.is_empty() {
            None
        } else {
            Some(num(a).ok_or_else(bad)?)
        };
        let high = if b.is_empty() {
            None
        } else {
            Some(num(b).ok_or_else(bad)?)
        };
        if let (Some(l), Some(h)) = (low, high)
            && l > h
        {
            return Err(bad());
        }
        return Ok(IntRange { low, high });
    }
    let v = num(w).ok_or_else(|| format!("'{w}' is not a number"))?;
    Ok(match op {
        "ge" => IntRange {
            low: Some(v),
            high: None,
        },
        "gt" => IntRange {
            low: Some(v.saturating_add(1)),
            high: None,
        },
        "le" => IntRange {
            low: None,
            high: Some(v),
        },
        "lt" => IntRange {
            low: None,
            high: Some(v.saturating_sub(1)),
        },
        _ => IntRange {
            low: Some(v),
            high: Some(v),
        },
    })
}

/// Where a rule is, for HAProxy's wording of condition errors.
pub(super) enum RuleKind<'a> {
    /// `'tcp-request connection reject' : error detected in frontend 'f' while parsing 'if' condition : ...`
    Tcp(&'a str),
    /// `error detected while parsing switching rule : ... .`
    Switching,
}

impl Parser<'_> {
    /// The file a `-f` flag names, through the caller's reader.
    fn pattern_file(&self, path: &str) -> Result<Vec<String>, String> {
        let data = (self.read)(path).ok_or_else(|| format!("failed to open pattern file <{path}>"))?;
        Ok(String::from_utf8_lossy(&data)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect())
    }

    /// One ACL expression: FETCH [flags] [operator] VALUE... Err is
    /// HAProxy's message without its final period.
    fn acl_expr(&mut self, p: &mut Draft, words: &[String], at: &Origin) -> Result<(AclExpr, (String, u32)), String> {
        let whole = words.first().map_or("", String::as_str);
        let parsed = fetch_expr(whole)?;
        let mut method = parsed.method;
        let mut files = Vec::new();
        let mut i = 1;
        let mut ended = false;
        while let Some(w) = words.get(i).filter(|w| w.starts_with('-')) {
            match w.as_str() {
                "-i" | "-n" | "-M" => i += 1,
                "-u" => i += 2,
                "-f" => {
                    files.push(arg(words, i + 1).to_string());
                    i += 2;
                }
                "-m" => {
                    let m = arg(words, i + 1);
                    method = MATCH_METHODS
                        .iter()
                        .find(|x| **x == m)
                        .ok_or_else(|| format!("unknown matching method '{m}' when parsing ACL expression"))?;
                    i += 2;
                }
                "--" => {
                    i += 1;
                    ended = true;
                    break;
                }
                other => {
                    return Err(format!(
                        "'{other}' is not a valid ACL option. Please use '--' before any pattern beginning with a '-'"
                    ));
                }
            }
        }
        let mut values: Vec<(String, Option<(usize, String)>)> =
            words[i.min(words.len())..].iter().map(|w| (w.clone(), None)).collect();
        for f in &files {
            let lines = self.pattern_file(f)?;
            values.extend(
                lines
                    .into_iter()
                    .enumerate()
                    .map(|(n, l)| (l, Some((n + 1, f.clone())))),
            );
        }
        let place = |src: &Option<(usize, String)>| match src {
            Some((n, f)) => format!(" at line {n} of file '{f}'"),
            None => String::new(),
        };
        let is_ip = matches!(parsed.fetch, Fetch::Src | Fetch::Dst);
        let is_int = matches!(
            parsed.fetch,
            Fetch::SrcPort | Fetch::DstPort | Fetch::NbSrv(_) | Fetch::AlwaysTrue | Fetch::AlwaysFalse
        );
        let mut patterns = match method {
            "ip" => {
                let mut nets = Vec::new();
                for (v, src) in &values {
                    let net = parse_net(v)
                        .ok_or_else(|| format!("'{v}' is not a valid IPv4 or IPv6 address{}", place(src)))?;
                    nets.push(net);
                }
                if is_ip { Patterns::Nets(nets) } else { Patterns::Other }
            }
            "int" => {
                let mut op = "eq";
                let mut ranges = Vec::new();
                let mut ops = false;
                for (v, src) in &values {
                    if src.is_none() && matches!(v.as_str(), "eq" | "ge" | "gt" | "le" | "lt") {
                        op = if v == "eq" { "eq" } else { v.as_str() };
                        ops = true;
                        continue;
                    }
                    ranges.push(int_pattern(op, v).map_err(|e| format!("{e}{}", place(src)))?);
                }
                ended |= ops;
                if is_int {
                    Patterns::Ints(ranges)
                } else {
                    Patterns::Other
                }
            }
            "bool" if is_int => Patterns::Bool,
            _ => Patterns::Other,
        };
        if values.is_empty() && files.is_empty() && !matches!(method, "bool" | "found") {
            if !ended {
                self.diags.warn(
                    at,
                    format!(
                        "parsing acl keyword '{whole}' : no pattern to match against were provided, so this ACL \
                         will never match (add '--' to get rid of this warning)"
                    ),
                );
            }
            if patterns != Patterns::Other {
                patterns = Patterns::Nothing;
            }
        }
        let mut fetch = parsed.fetch;
        if patterns == Patterns::Other && !matches!(fetch, Fetch::Other { .. }) {
            fetch = Fetch::Other {
                expr: format!("{whole} -m {method}"),
                why: Undecided::NotLayer4,
            };
        }
        if let Fetch::NbSrv(b) = &mut fetch
            && b.is_empty()
        {
            b.clone_from(&p.name);
        }
        if let Some((kind, target)) = parsed.proxy_arg {
            let target = target.filter(|t| !t.is_empty()).unwrap_or_else(|| p.name.clone());
            let keyword = whole.split(['(', ',']).next().unwrap_or(whole).to_string();
            p.arg_refs.push(ArgRef {
                kind,
                keyword,
                target,
                origin: at.clone(),
            });
        }
        Ok((
            AclExpr {
                fetch,
                patterns,
                origin: at.clone(),
            },
            parsed.usable,
        ))
    }

    /// `acl NAME FETCH [flags] [operator] VALUE...`: lines of one name add up.
    pub(super) fn acl(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        let name = arg(w, 1);
        // HAProxy accepts a bare `acl` line and does nothing with it.
        if name.is_empty() {
            return;
        }
        if let Some(c) = invalid_name_char(name) {
            self.diags
                .alert(at, format!("character '{c}' is not permitted in acl name '{name}'."));
            return;
        }
        match self.acl_expr(p, &w[2..], at) {
            Ok((e, used)) => match p.acl_names.get(name) {
                Some(&i) => {
                    p.acls[i].exprs.push(e);
                    p.acl_uses[i].push(used);
                }
                None => {
                    p.acl_names.insert(name.to_string(), p.acls.len());
                    p.acls.push(Acl {
                        name: Some(name.to_string()),
                        exprs: vec![e],
                    });
                    p.acl_uses.push(vec![used]);
                }
            },
            Err(msg) => self
                .diags
                .alert(at, format!("error detected while parsing ACL '{name}' : {msg}.")),
        }
    }

    /// `if|unless` and the terms after it (`words[0]` is `if` or `unless`).
    pub(super) fn cond(&mut self, p: &mut Draft, words: &[String], at: &Origin) -> Result<Cond, String> {
        let unless = arg(words, 0) == "unless";
        let mut suites: Vec<Vec<Term>> = Vec::new();
        let mut current: Option<Vec<Term>> = None;
        let mut negate = false;
        let mut i = 1;
        while i < words.len() {
            let w = words[i].as_str();
            i += 1;
            if w.is_empty() {
                continue;
            }
            if w == "!" {
                negate = !negate;
                continue;
            }
            // `!name` in one word, as HAProxy also takes it.
            let mut w = w;
            while let Some(name) = w.strip_prefix('!') {
                negate = !negate;
                w = name;
            }
            if w == "||" || w == "or" {
                suites.extend(current.take());
                negate = false;
                continue;
            }
            let acl = if w == "{" {
                let Some(len) = words[i..].iter().position(|x| x == "}") else {
                    return Err("missing closing '}' in condition".into());
                };
                let inner = words[i..i + len].to_vec();
                i += len + 1;
                let (e, used) = self.acl_expr(p, &inner, at)?;
                p.acls.push(Acl {
                    name: None,
                    exprs: vec![e],
                });
                p.acl_uses.push(vec![used]);
                p.acls.len() - 1
            } else if let Some(&k) = p.acl_names.get(w) {
                k
            } else if let Some((n, fetch, values)) = BUILTIN_ACLS.iter().find(|(n, _, _)| *n == w) {
                match p.builtin_acls.get(*n) {
                    Some(&k) => k,
                    None => {
                        let words: Vec<String> = std::iter::once(*fetch)
                            .chain(values.iter().copied())
                            .map(String::from)
                            .collect();
                        let (e, used) = self.acl_expr(p, &words, at)?;
                        p.acls.push(Acl {
                            name: Some((*n).to_string()),
                            exprs: vec![e],
                        });
                        p.acl_uses.push(vec![used]);
                        p.builtin_acls.insert((*n).to_string(), p.acls.len() - 1);
                        p.acls.len() - 1
                    }
                }
            } else {
                return Err(format!("no such ACL : '{w}'"));
            };
            current.get_or_insert_with(Vec::new).push(Term { negate, acl });
            negate = false;
        }
        suites.extend(current);
        Ok(Cond { unless, suites })
    }

    /// The condition after a rule's action, if any (`words[0]` is what follows the action).
    pub(super) fn rule_cond(
        &mut self,
        p: &mut Draft,
        words: &[String],
        rule: &RuleKind<'_>,
        at: &Origin,
    ) -> Result<Option<Cond>, ()> {
        let first = arg(words, 0);
        if first.is_empty() {
            return Ok(None);
        }
        if first != "if" && first != "unless" {
            let msg = match rule {
                RuleKind::Tcp(name) => format!(
                    "'{name}' only accepts 'if' or 'unless', in {} '{}' (got '{first}')",
                    p.kind.word(),
                    p.name
                ),
                RuleKind::Switching => {
                    format!("unexpected keyword '{first}' after switching rule, only 'if' and 'unless' are allowed")
                }
            };
            self.diags.alert(at, msg);
            return Err(());
        }
        match self.cond(p, words, at) {
            Ok(c) => Ok(Some(c)),
            Err(msg) => {
                let msg = match rule {
                    RuleKind::Tcp(name) => format!(
                        "'{name}' : error detected in {} '{}' while parsing '{first}' condition : {msg}",
                        p.kind.word(),
                        p.name
                    ),
                    RuleKind::Switching => format!("error detected while parsing switching rule : {msg}."),
                };
                self.diags.alert(at, msg);
                Err(())
            }
        }
    }

    /// HAProxy's warning for the first ACL of `cond` that uses fetches the
    /// rule's place can't give (`bit`: the column of `haproxy -dKsmp`; `place`
    /// its name, `rule` the ruleset named in the message, if any).
    pub(super) fn warn_never_match(
        &mut self,
        p: &Draft,
        cond: &Cond,
        (bit, place): (u32, &str),
        rule: &str,
        at: &Origin,
    ) {
        let inside = if rule.is_empty() {
            String::new()
        } else {
            format!(" in '{rule}'")
        };
        for t in cond.suites.iter().flatten() {
            let (Some(acl), Some(uses)) = (p.acls.get(t.acl), p.acl_uses.get(t.acl)) else {
                continue;
            };
            let Some((kw, _)) = uses.iter().find(|(_, bits)| bits & (1 << bit) == 0) else {
                continue;
            };
            let all = uses.iter().all(|(_, bits)| bits & (1 << bit) == 0);
            let msg = match (&acl.name, all) {
                (None, _) => format!(
                    "anonymous acl will never match{inside} because it uses keyword '{kw}' which is incompatible with \
                     '{place}'"
                ),
                (Some(n), true) => format!(
                    "acl '{n}' will never match{inside} because it only involves keywords that are incompatible with \
                     '{place}'"
                ),
                (Some(n), false) => format!("acl '{n}' involves keywords '{kw}' which is incompatible with '{place}'"),
            };
            self.diags.warn(at, msg);
            return;
        }
    }

    /// Refuses the rule when its condition uses what lbxdp can't evaluate.
    pub(super) fn refuse_undecided(&mut self, p: &Draft, cond: &Cond, directive: String, at: &Origin) {
        if let Some((expr, why)) = cond.undecided(&p.acls) {
            let what = match why {
                Undecided::NotLayer4 => Unsupported::NotLayer4,
                Undecided::StickCounters => Unsupported::StickTables,
            };
            self.out.refused.push(refusal_at(at, directive, expr, what));
        }
    }

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
                p.arg_refs.push(ArgRef {
                    kind: RefKind::Track,
                    keyword: action.to_string(),
                    target: table.clone().unwrap_or_else(|| p.name.clone()),
                    origin: at.clone(),
                });
                (None, if table.is_some() { 6 } else { 4 })
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
            ("connection", Some(action)) => {
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

/// The data a `stick-table ... store` line may keep, rate counters with a period.
const STORE_OPTIONS: &[&str] = &[
    "server_id",
    "gpc",
    "gpc_rate",
    "gpc0",
    "gpc0_rate",
    "gpc1",
    "gpc1_rate",
    "gpt",
    "gpt0",
    "conn_cnt",
    "conn_cur",
    "conn_rate",
    "sess_cnt",
    "sess_rate",
    "http_req_cnt",
    "http_req_rate",
    "http_err_cnt",
    "http_err_rate",
    "http_fail_cnt",
    "http_fail_rate",
    "bytes_in_cnt",
    "bytes_in_rate",
    "bytes_out_cnt",
    "bytes_out_rate",
];

/// `size 100k`: digits and an optional k, m or g.
fn size_ok(v: &str) -> Option<char> {
    let digits = v.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G']);
    match digits.chars().find(|c| !c.is_ascii_digit()) {
        Some(c) => Some(c),
        None if digits.is_empty() => Some(v.chars().next().unwrap_or(' ')),
        None => (digits.len() + 1 < v.len()).then(|| v.chars().last().unwrap_or(' ')),
    }
}

impl Parser<'_> {
    /// `stick-table type T size N [expire E] [store ...] ...`, checked as
    /// HAProxy checks it. True: it is well formed (lbxdp refuses to run it).
    pub(super) fn stick_table(&mut self, p: &mut Draft, w: &[String], at: &Origin) -> bool {
        if let Some(prev) = &p.stick_table {
            let msg = format!(
                "stick-table name '{}' conflicts with table declared in {} '{}' at {prev}.",
                p.name,
                p.kind.word(),
                p.name
            );
            self.diags.alert(at, msg);
            return false;
        }
        let (mut ty, mut size) = (false, false);
        let mut i = 1;
        let fail = |me: &mut Self, msg: String| {
            me.diags.alert(at, format!("stick-table: {msg}"));
            false
        };
        while i < w.len() {
            let (k, v) = (w[i].as_str(), arg(w, i + 1));
            i += 2;
            match k {
                "" => {}
                "type" => {
                    if !matches!(v, "ip" | "ipv6" | "integer" | "string" | "binary") {
                        return fail(self, format!("unknown type '{v}'."));
                    }
                    if arg(w, i) == "len" {
                        i += 2;
                    }
                    ty = true;
                }
                "size" => {
                    if let Some(c) = size_ok(v) {
                        return fail(self, format!("unexpected character '{c}' in argument of 'size'."));
                    }
                    size = true;
                }
                "expire" => match crate::config::time::parse_ms(v) {
                    Ok(t) if t.trailing_junk.is_none() => {}
                    Ok(t) => {
                        let c = t.trailing_junk.unwrap_or(' ');
                        return fail(self, format!("unexpected character '{c}' in argument of 'expire'."));
                    }
                    Err(crate::config::time::TimeError::BadChar(c)) => {
                        return fail(self, format!("unexpected character '{c}' in argument of 'expire'."));
                    }
                    Err(e) => return fail(self, format!("{e} in argument of 'expire'.")),
                },
                "store" => {
                    for item in v.split(',') {
                        let name = item.split('(').next().unwrap_or(item);
                        if !STORE_OPTIONS.contains(&name) {
                            return fail(self, format!("unknown store option '{name}'."));
                        }
                    }
                }
                "peers" | "srvkey" | "write-to" => {}
                "nopurge" => i -= 1,
                other => return fail(self, format!("unknown argument '{other}'.")),
            }
        }
        if !ty {
            return fail(self, "missing type.".into());
        }
        if !size {
            return fail(self, "missing size.".into());
        }
        p.stick_table = Some(at.clone());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_expressions_are_checked_as_haproxy_does() {
        assert!(matches!(fetch_expr("src").map(|p| p.fetch), Ok(Fetch::Src)));
        assert!(matches!(fetch_expr("nbsrv(main)").map(|p| p.fetch), Ok(Fetch::NbSrv(b)) if b == "main"));
        assert_eq!(
            fetch_expr("srcx").err().as_deref(),
            Some("unknown fetch method 'srcx' in ACL expression 'srcx'")
        );
        assert_eq!(
            fetch_expr("src(x)").err().as_deref(),
            Some("fetch method 'src' : expected ')' before 'x)' in ACL expression 'src(x)'")
        );
        assert_eq!(
            fetch_expr("nbsrv(b,c)").err().as_deref(),
            Some("fetch method 'nbsrv' : expected ')' before ',c)' in ACL expression 'nbsrv(b,c)'")
        );
        assert_eq!(
            fetch_expr("hdr(a,1,2)").err().as_deref(),
            Some("ACL keyword 'hdr' : expected ')' before ',2)' in ACL expression 'hdr(a,1,2)'")
        );
        assert_eq!(
            fetch_expr("nbsrv(b").err().as_deref(),
            Some("fetch method 'nbsrv' : expected ')' in ACL expression 'nbsrv(b'")
        );
        assert_eq!(
            fetch_expr("req.payload(0)").err().as_deref(),
            Some(
                "fetch method 'req.payload' : missing arguments (got 1/2), type 'integer' expected in ACL expression \
                 'req.payload(0)'"
            )
        );
        assert_eq!(
            fetch_expr("src,foo").err().as_deref(),
            Some("unknown converter 'foo' in ACL expression 'src,foo'")
        );
        let path = fetch_expr("path_beg").map(|p| (p.fetch, p.method));
        assert!(
            matches!(
                path,
                Ok((
                    Fetch::Other {
                        why: Undecided::NotLayer4,
                        ..
                    },
                    "beg"
                ))
            ),
            "{path:?}"
        );
        let sc = fetch_expr("sc0_conn_rate").map(|p| p.fetch);
        assert!(
            matches!(
                sc,
                Ok(Fetch::Other {
                    why: Undecided::StickCounters,
                    ..
                })
            ),
            "{sc:?}"
        );
        assert!(matches!(
            fetch_expr("src,ipmask(24)").map(|p| p.fetch),
            Ok(Fetch::Other { .. })
        ));
        assert!(matches!(
            fetch_expr("hdr(host)").map(|p| p.fetch),
            Ok(Fetch::Other { .. })
        ));
        assert!(matches!(
            fetch_expr("req.ssl_sni").map(|p| p.fetch),
            Ok(Fetch::Other { .. })
        ));
    }

    #[test]
    fn int_patterns_and_operators() {
        let r = |low, high| IntRange { low, high };
        assert_eq!(int_pattern("eq", "80"), Ok(r(Some(80), Some(80))));
        assert_eq!(int_pattern("lt", "1"), Ok(r(None, Some(0))));
        assert_eq!(int_pattern("gt", "1"), Ok(r(Some(2), None)));
        assert_eq!(int_pattern("eq", ":5"), Ok(r(None, Some(5))));
        assert_eq!(int_pattern("eq", "7:"), Ok(r(Some(7), None)));
        assert_eq!(
            int_pattern("eq", "10:1"),
            Err("'10:1' is not a valid number range".into())
        );
        assert_eq!(int_pattern("eq", "0x10"), Err("'0x10' is not a number".into()));
    }

    use crate::config::{Diag, Source, parse_sources_reading};

    const HEAD: &str = "defaults\n timeout client 1s\n timeout connect 1s\n timeout server 1s\n";

    fn parse(body: &str) -> Result<(crate::config::Config, Vec<Diag>), Vec<Diag>> {
        let text = format!("{HEAD}{body}");
        let read = |p: &str| match p {
            "block.lst" => Some(b"# blocked\n198.18.0.0/24\n  2001:db8::/32  \n\n10.1.2.3\n".to_vec()),
            "bad.lst" => Some(b"198.18.0.0/24\nbogus\n".to_vec()),
            _ => None,
        };
        parse_sources_reading(
            &[Source {
                name: "t.cfg",
                data: text.as_bytes(),
            }],
            &|_| None,
            &read,
        )
    }

    fn alerts(body: &str) -> Vec<String> {
        match parse(body) {
            Ok((_, d)) => panic!("expected alerts, got valid with {d:?}"),
            Err(d) => d.into_iter().filter(Diag::is_alert).map(|d| d.to_string()).collect(),
        }
    }

    const FE: &str = "frontend f\n bind 127.0.0.1:8000\n";
    const BE: &str =
        " default_backend main\nbackend main\n server s 127.0.0.1:80\nbackend spare\n server s 127.0.0.1:81\n";

    #[test]
    fn rules_resolve_into_the_frontend() {
        let body = format!(
            "{FE} acl blocked src -f block.lst\n acl web dst_port 80 8000:8099\n acl down nbsrv(main) lt 1\n              tcp-request connection silent-drop if blocked\n tcp-request connection reject unless web ||              LOCALHOST\n tcp-request connection accept\n use_backend spare if down\n use_backend spare if              {{ src 203.0.113.0/24 }} !web\n{BE}"
        );
        let (c, _) = parse(&body).unwrap_or_else(|d| panic!("{d:?}"));
        let f = &c.frontends[0];
        assert_eq!(f.backend.as_deref(), Some("main"));
        assert_eq!(f.tcp_rules.len(), 3);
        assert_eq!(f.tcp_rules[0].action, TcpAction::SilentDrop);
        assert_eq!(
            f.tcp_rules[1].cond.as_ref().map(|c| (c.unless, c.suites.len())),
            Some((true, 2))
        );
        assert!(f.tcp_rules[2].cond.is_none());
        assert_eq!(f.switching.len(), 2);
        let blocked = &f.acls[0];
        assert_eq!(blocked.name.as_deref(), Some("blocked"));
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            blocked.exprs[0].patterns,
            Patterns::Nets(vec![
                (ip("198.18.0.0"), 24),
                (ip("2001:db8::"), 32),
                (ip("10.1.2.3"), 32)
            ])
        );
        assert_eq!(f.switching[0].cond.backends(&f.acls), ["main"]);
        assert!(c.refused.is_empty(), "{:?}", c.refused);
    }

    #[test]
    fn errors_are_worded_as_haproxy_words_them() {
        let cases = [
            (
                " acl a src -f bad.lst\n",
                "t.cfg:7: error detected while parsing ACL 'a' : 'bogus' is not a valid IPv4 or IPv6 address at line 2 of file 'bad.lst'.",
            ),
            (
                " acl a src -f nope.lst\n",
                "t.cfg:7: error detected while parsing ACL 'a' : failed to open pattern file <nope.lst>.",
            ),
            (
                " acl a srcx 1.2.3.4\n",
                "t.cfg:7: error detected while parsing ACL 'a' : unknown fetch method 'srcx' in ACL expression 'srcx'.",
            ),
            (
                " acl a dst_port 80:x\n",
                "t.cfg:7: error detected while parsing ACL 'a' : '80:x' is not a valid number range.",
            ),
            (
                " acl a src -x 1\n",
                "t.cfg:7: error detected while parsing ACL 'a' : '-x' is not a valid ACL option. Please use '--' before any pattern beginning with a '-'.",
            ),
            (
                " acl a! src 1.2.3.4\n",
                "t.cfg:7: character '!' is not permitted in acl name 'a!'.",
            ),
            (
                " tcp-request connection reject if b\n",
                "t.cfg:7: 'tcp-request connection reject' : error detected in frontend 'f' while parsing 'if' condition : no such ACL : 'b'",
            ),
            (
                " tcp-request connection reject if { src 1.2.3.4\n",
                "t.cfg:7: 'tcp-request connection reject' : error detected in frontend 'f' while parsing 'if' condition : missing closing '}' in condition",
            ),
            (
                " tcp-request connection reject when x\n",
                "t.cfg:7: 'tcp-request connection reject' only accepts 'if' or 'unless', in frontend 'f' (got 'when')",
            ),
            (
                " use_backend main if x\n",
                "t.cfg:7: error detected while parsing switching rule : no such ACL : 'x'.",
            ),
            (
                " acl a nbsrv(zz) lt 1\n",
                "t.cfg:7: unable to find backend 'zz' referenced in arg 1 of ACL keyword 'nbsrv' in proxy 'f'.",
            ),
            (
                " acl a nbsrv lt 1\n",
                "t.cfg:7: proxy 'f', referenced in arg 1 of ACL keyword 'nbsrv' in proxy 'f', has not backend capability.",
            ),
        ];
        for (line, want) in cases {
            let got = alerts(&format!("{FE}{line}{BE}"));
            assert!(
                got.iter().any(|g| g.contains(want)),
                "{line}: wanted {want}\ngot {got:?}"
            );
        }
    }

    #[test]
    fn named_defaults_rules_run_first_on_their_own_acls() {
        let text = "defaults d\n timeout client 1s\n timeout connect 1s\n timeout server 1s\n acl bad src 10.0.0.0/8\n \
                    tcp-request connection reject if bad\nfrontend f\n bind :80\n acl mine src 10.1.0.0/16\n \
                    tcp-request connection accept if mine\n default_backend b\nbackend b from d\n";
        let bad = parse_sources_reading(
            &[Source {
                name: "t.cfg",
                data: text.as_bytes(),
            }],
            &|_| None,
            &|_| None,
        );
        // Frontends and backends can't share a defaults section with rules.
        assert!(bad.is_err());
        let text = text.replace("backend b from d\n", "defaults\nbackend b\n");
        let (c, _) = parse_sources_reading(
            &[Source {
                name: "t.cfg",
                data: text.as_bytes(),
            }],
            &|_| None,
            &|_| None,
        )
        .unwrap_or_else(|d| panic!("{d:?}"));
        let f = &c.frontends[0];
        assert_eq!(f.tcp_rules.len(), 2);
        assert_eq!(f.tcp_rules[0].action, TcpAction::Reject);
        assert_eq!(f.tcp_rules[0].origin.line, 6);
        assert_eq!(f.acls[0].name.as_deref(), Some("bad"));
        assert_eq!(f.tcp_rules[1].action, TcpAction::Accept);
    }

    #[test]
    fn what_lbxdp_cannot_evaluate_is_refused_with_its_place() {
        for (line, what) in [
            (
                " tcp-request connection reject if { path_beg /x }\n",
                Unsupported::NotLayer4,
            ),
            (" use_backend spare if { req.ssl_sni -i x }\n", Unsupported::NotLayer4),
            (
                " use_backend spare if { src,ipmask(24) 10.0.0.0 }\n",
                Unsupported::NotLayer4,
            ),
            (
                " tcp-request connection reject if { sc0_conn_rate gt 3 }\n",
                Unsupported::StickTables,
            ),
            (" stick-table type ip size 1k\n", Unsupported::StickTables),
            (" tcp-request connection set-mark 3\n", Unsupported::Action),
            (" tcp-request content reject if { src 1.2.3.4 }\n", Unsupported::Action),
        ] {
            let (c, _) = parse(&format!("{FE}{line}{BE}")).unwrap_or_else(|d| panic!("{line}: {d:?}"));
            assert_eq!(c.refused.len(), 1, "{line}");
            assert_eq!((c.refused[0].what, c.refused[0].origin.line), (what, 7), "{line}");
        }
        let (_, w) = parse(&format!(
            "{FE} tcp-request connection reject if {{ path_beg /x }}\n{BE}"
        ))
        .unwrap_or_else(|d| panic!("{d:?}"));
        assert!(
            w.iter().any(|d| d.message
                == "anonymous acl will never match in 'tcp-request connection' because it uses keyword 'path_beg' \
                    which is incompatible with 'frontend tcp-request connection rule'"),
            "{w:?}"
        );
        // An ACL no applied rule uses is harmless; HTTP rules aren't applied.
        let (c, _) = parse(&format!("{FE} acl p path_beg /x\n{BE}")).unwrap_or_else(|d| panic!("{d:?}"));
        assert!(c.refused.is_empty());
    }
}

//! `acl` lines and the conditions rules carry (`if`/`unless`, `!`, `||`,
//! implicit AND, `{ ... }`), checked as HAProxy 2.6 checks them and worded as
//! it words its alerts. What lbxdp can't evaluate is kept as `Fetch::Other`
//! and refused where a rule uses it.
use super::{
    ArgRef, Draft, Parser, arg,
    fetch::{MATCH_METHODS, fetch_expr},
    refusal_at,
    regex::regex_error,
};
use crate::config::{
    acl::{Acl, AclExpr, Cond, Fetch, IntRange, Nets, Patterns, Term, Undecided},
    addr::{parse_masked_v4, parse_net},
    diag::Origin,
    keywords::invalid_name_char,
    model::Unsupported,
    patref::{Entry, ExprAt, Net, PatRef, next_entry_id},
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

/// Who holds an expression, for [`ExprAt::proxy`]: the proxy's name, or
/// for a defaults section (whose rules the proxies after it inherit) a
/// name no proxy can have (names have no spaces), copied to each heir.
pub(super) fn expr_owner(p: &Draft) -> String {
    if p.kind == super::Kind::Defaults {
        format!("defaults at {}", p.origin)
    } else {
        p.name.clone()
    }
}

/// A pattern and, for a file's, its line and the file.
type Value = (String, Option<(usize, String)>);

/// An expression, what HAProxy can fetch it in, its pattern references.
type ExprParsed = (AclExpr, (String, u32), Vec<usize>);

/// Where a rule is, for HAProxy's wording of condition errors.
pub(super) enum RuleKind<'a> {
    /// `'tcp-request connection reject' : error detected in frontend 'f' while parsing 'if' condition : ...`
    Tcp(&'a str),
    /// `error detected while parsing switching rule : ... .`
    Switching,
    /// `error detected while parsing an 'http-request deny' condition : ... .`
    Http(&'a str),
    /// `error detected in frontend 'f' while parsing redirect rule : error in condition: ... .`
    Redirect(&'a str, &'a str),
    /// `'stick': error detected while parsing sticking condition : ... .`
    Stick,
}

impl Parser<'_> {
    /// The file a `-f` flag names, through the caller's reader.
    fn pattern_file(&mut self, path: &str) -> Result<Vec<String>, String> {
        let data = (self.read)(path).ok_or_else(|| format!("failed to open pattern file <{path}>"))?;
        if !self.out.pattern_files.iter().any(|f| f == path) {
            self.out.pattern_files.push(path.to_string());
        }
        Ok(String::from_utf8_lossy(&data)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect())
    }

    /// An address or network pattern; a host name in it is resolved to
    /// IPv4 as HAProxy's `str2net()` does (`localhost`, `localhost/8`).
    fn ip_pattern(&self, v: &str) -> Option<(std::net::IpAddr, u8)> {
        if let Some(net) = parse_net(v) {
            return Some(net);
        }
        let (host, len) = v.split_once('/').map_or((v, None), |(h, l)| (h, Some(l)));
        if host.contains(':') || !host.chars().any(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        let ip = (self.resolve)(host)?;
        parse_net(&match len {
            Some(l) => format!("{ip}/{l}"),
            None => ip.to_string(),
        })
    }

    /// One ACL expression: FETCH [flags] [operator] VALUE... Err is
    /// HAProxy's message without its final period.
    /// Also makes HAProxy's pattern references for it (the files' first,
    /// then the inline one) and gives their indexes in `out.pattern_refs`.
    fn acl_expr(&mut self, p: &mut Draft, words: &[String], at: &Origin) -> Result<ExprParsed, String> {
        let whole = words.first().map_or("", String::as_str);
        let parsed = fetch_expr(whole)?;
        let mut method = parsed.method;
        let mut files = Vec::new();
        let mut unique_id = -1;
        let mut i = 1;
        let mut ended = false;
        while let Some(w) = words.get(i).filter(|w| w.starts_with('-')) {
            match w.as_str() {
                "-i" | "-n" | "-M" => i += 1,
                "-u" => {
                    unique_id = arg(words, i + 1).parse().unwrap_or(-1);
                    i += 2;
                }
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
        let mut values: Vec<Value> = words[i.min(words.len())..].iter().map(|w| (w.clone(), None)).collect();
        let inline_count = values.len();
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
            Fetch::SrcPort
                | Fetch::DstPort
                | Fetch::NbSrv(_)
                | Fetch::AlwaysTrue
                | Fetch::AlwaysFalse
                | Fetch::BeConn(_)
                | Fetch::FeConn(_)
                | Fetch::ConnSlots(_)
                | Fetch::Stick { .. }
        );
        let mut parsed_nets: Vec<Option<Net>> = vec![None; values.len()];
        let mut patterns = match method {
            "ip" => {
                let mut nets = Vec::new();
                let mut masks = Vec::new();
                for ((v, src), parsed) in values.iter().zip(&mut parsed_nets) {
                    if let Some(net) = self.ip_pattern(v) {
                        nets.push(net);
                        *parsed = Some(Net::Prefix(net.0, net.1));
                    } else if let Some(masked) = parse_masked_v4(v) {
                        masks.push(masked);
                        *parsed = Some(Net::Mask(masked.0, masked.1));
                    } else {
                        return Err(format!("'{v}' is not a valid IPv4 or IPv6 address{}", place(src)));
                    }
                }
                if is_ip {
                    Patterns::Nets(Nets::with_masks(nets, masks))
                } else {
                    Patterns::Other
                }
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
            "reg" => {
                // Not evaluated at layer 4, but HAProxy compiles the regexes now.
                if let Some(e) = values
                    .iter()
                    .find_map(|(v, src)| regex_error(v).map(|e| format!("{e}{}", place(src))))
                {
                    return Err(e);
                }
                Patterns::Other
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
        let addresses = matches!(patterns, Patterns::Nets(_));
        let read: Vec<(Value, Option<Net>)> = values.iter().cloned().zip(parsed_nets).collect();
        let refs = self.pattern_refs(&read, inline_count, &files, (whole, unique_id), at, addresses);
        let mut fetch = parsed.fetch;
        if patterns == Patterns::Other && !matches!(fetch, Fetch::Other { .. }) {
            fetch = Fetch::Other {
                expr: format!("{whole} -m {method}"),
                why: Undecided::NotLayer4,
            };
        }
        fetch.default_proxy(&p.name);
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
            refs,
        ))
    }

    /// HAProxy's pattern references of one expression: each `-f` file's
    /// (made by its first user, with the file's patterns), then the inline
    /// one (`-u` names an existing one to share, or gives the new one's id).
    fn pattern_refs(
        &mut self,
        values: &[(Value, Option<Net>)],
        inline_count: usize,
        files: &[String],
        (whole, unique_id): (&str, i64),
        at: &Origin,
        addresses: bool,
    ) -> Vec<usize> {
        let entry = |(v, net): &(Value, Option<Net>)| Entry {
            id: next_entry_id(),
            text: v.0.clone(),
            net: *net,
        };
        let refs = &mut self.out.pattern_refs;
        let mut used = Vec::new();
        for f in files {
            let i = match refs.iter().position(|r| r.file.as_deref() == Some(f.as_str())) {
                Some(i) => {
                    refs[i].origins.push(at.clone());
                    // Changed at run time only if every user matches addresses.
                    refs[i].addresses &= addresses;
                    i
                }
                None => {
                    let mut r = PatRef::file(f, at, addresses);
                    r.entries = values
                        .iter()
                        .skip(inline_count)
                        .filter(|(v, _)| v.1.as_ref().is_some_and(|(_, from)| from == f))
                        .map(entry)
                        .collect();
                    refs.push(r);
                    refs.len() - 1
                }
            };
            used.push(i);
        }
        let kw = whole.split(['(', ',']).next().unwrap_or(whole);
        let inline: Vec<Entry> = values.iter().take(inline_count).map(entry).collect();
        match refs.iter().position(|r| unique_id != -1 && r.id == unique_id) {
            Some(i) => refs[i].entries.extend(inline),
            None => {
                let mut r = PatRef::inline(unique_id, kw, at, addresses);
                r.entries = inline;
                refs.push(r);
                used.push(refs.len() - 1);
            }
        }
        used
    }

    /// Notes that the expression `at` matches against the references `refs`.
    fn feed_refs(&mut self, refs: &[usize], at: ExprAt) {
        for &r in refs {
            if let Some(r) = self.out.pattern_refs.get_mut(r) {
                r.feeds.push(at.clone());
            }
        }
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
        self.note_map_files(&w[2..3.min(w.len())], at);
        match self.acl_expr(p, &w[2..], at) {
            Ok((e, used, refs)) => match p.acl_names.get(name) {
                Some(&i) => {
                    self.feed_refs(
                        &refs,
                        ExprAt {
                            proxy: expr_owner(p),
                            acl: i,
                            expr: p.acls[i].exprs.len(),
                        },
                    );
                    p.acls[i].exprs.push(e);
                    p.acl_uses[i].push(used);
                }
                None => {
                    self.feed_refs(
                        &refs,
                        ExprAt {
                            proxy: expr_owner(p),
                            acl: p.acls.len(),
                            expr: 0,
                        },
                    );
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
                let (e, used, refs) = self.acl_expr(p, &inner, at)?;
                self.feed_refs(
                    &refs,
                    ExprAt {
                        proxy: expr_owner(p),
                        acl: p.acls.len(),
                        expr: 0,
                    },
                );
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
                        let (e, used, refs) = self.acl_expr(p, &words, at)?;
                        self.feed_refs(
                            &refs,
                            ExprAt {
                                proxy: expr_owner(p),
                                acl: p.acls.len(),
                                expr: 0,
                            },
                        );
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
                RuleKind::Http(rule) => {
                    format!("'{rule}' expects either 'if' or 'unless' followed by a condition but found '{first}'.")
                }
                RuleKind::Redirect(..) => format!("unexpected keyword '{first}' in redirect rule"),
                RuleKind::Stick => format!("'stick': unknown keyword '{first}'."),
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
                    RuleKind::Http(rule) => format!("error detected while parsing an '{rule}' condition : {msg}."),
                    RuleKind::Stick => format!("'stick': error detected while parsing sticking condition : {msg}."),
                    RuleKind::Redirect(kind, name) => format!(
                        "error detected in {kind} '{name}' while parsing redirect rule : error in condition: {msg}."
                    ),
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

    use crate::config::{Diag, Source, acl::TcpAction, parse_sources_reading};

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
            Patterns::Nets(Nets::new(vec![
                (ip("198.18.0.0"), 24),
                (ip("2001:db8::"), 32),
                (ip("10.1.2.3"), 32)
            ]))
        );
        assert_eq!(f.switching[0].cond.backends(&f.acls), ["main"]);
        assert!(c.refused.is_empty(), "{:?}", c.refused);
        assert_eq!(c.pattern_files, ["block.lst"]);
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
    fn host_names_in_address_patterns_resolve_as_haproxy_resolves_them() {
        let text =
            format!("{HEAD}{FE} acl here src localhost localhost/8\n tcp-request connection reject if here\n{BE}");
        let resolve = |name: &str| (name == "localhost").then(|| std::net::Ipv4Addr::new(127, 0, 0, 1));
        let parse = |resolve: &dyn Fn(&str) -> Option<std::net::Ipv4Addr>| {
            crate::config::parse_sources_resolving(
                &[Source {
                    name: "t.cfg",
                    data: text.as_bytes(),
                }],
                &|_| None,
                &|_| None,
                resolve,
            )
        };
        let (c, _) = parse(&resolve).unwrap_or_else(|d| panic!("{d:?}"));
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.frontends[0].acls[0].exprs[0].patterns,
            Patterns::Nets(Nets::new(vec![(ip("127.0.0.1"), 32), (ip("127.0.0.1"), 8)]))
        );
        // A name that doesn't resolve is what HAProxy says it is.
        let alerts = parse(&|_| None).err().unwrap_or_default();
        assert!(
            alerts.iter().any(|d| d.origin.line == 7
                && d.message
                    == "error detected while parsing ACL 'here' : 'localhost' is not a valid IPv4 or IPv6 address."),
            "{alerts:?}"
        );
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
                " tcp-request connection reject if { sc0_http_req_rate gt 3 }\n",
                Unsupported::StickTables,
            ),
            (" stick-table type string size 1k\n", Unsupported::StickTables),
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

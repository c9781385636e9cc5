//! Sample fetch expressions (`src`, `nbsrv(be)`, `hdr(host),lower`) as
//! HAProxy 2.6 parses them in ACLs: its own lists of fetches, ACL keywords
//! and converters (`fetches`), its argument checks and its wording. What
//! lbxdp can't evaluate becomes `Fetch::Other`, with the reason.
use super::RefKind;
use crate::config::{
    acl::{Fetch, Undecided},
    fetches::{ACL_KEYWORDS, CONVERTERS, FETCHES},
    stick::{Counter, StickRef},
};

pub(super) const MATCH_METHODS: &[&str] = &[
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
pub(super) struct Parsed {
    pub(super) fetch: Fetch,
    /// The match method the keyword implies (`path_beg`: beg), else the output type's.
    pub(super) method: &'static str,
    /// What a `backend`, `frontend` or `table` first argument names (None:
    /// the current proxy), for `resolve`.
    pub(super) proxy_arg: Option<(RefKind, Option<String>)>,
    /// The keyword as written and where HAProxy can use it (`FETCHES`' bits).
    pub(super) usable: (String, u32),
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

/// The stick counters lbxdp keeps: `sc0_conn_rate`, `sc_get_gpc0(N[,t])`,
/// `src_conn_cur([t])`... (an empty `src_` table is the current proxy's,
/// filled in later). None: another fetch.
fn stick_fetch(name: &str, args: &[&str]) -> Option<Fetch> {
    let (prefix, what) = name.split_at(name.find('_').map_or(0, |i| i + 1));
    let counter = match what {
        "conn_cur" => Counter::ConnCur,
        "conn_cnt" => Counter::ConnCnt,
        "conn_rate" => Counter::ConnRate,
        "get_gpc0" => Counter::Gpc0,
        "gpc0_rate" => Counter::Gpc0Rate,
        "inc_gpc0" => Counter::IncGpc0,
        _ => return None,
    };
    let arg = |i: usize| args.get(i).map(|a| a.trim().to_string());
    let from = match prefix {
        "sc0_" | "sc1_" | "sc2_" => StickRef::Tracked {
            slot: prefix.as_bytes()[2] - b'0',
            table: arg(0),
        },
        // HAProxy takes any number and finds nothing past the last slot.
        "sc_" => StickRef::Tracked {
            slot: arg(0).and_then(|n| n.parse::<u8>().ok()).unwrap_or(u8::MAX),
            table: arg(1),
        },
        "src_" => StickRef::Src {
            table: arg(0).unwrap_or_default(),
        },
        _ => return None,
    };
    Some(Fetch::Stick { from, counter })
}

pub(super) fn fetch_expr(whole: &str) -> Result<Parsed, String> {
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
        ("be_conn", false) => Fetch::BeConn(args.first().map(|a| a.trim().to_string()).unwrap_or_default()),
        ("fe_conn", false) => Fetch::FeConn(args.first().map(|a| a.trim().to_string()).unwrap_or_default()),
        ("connslots", false) => Fetch::ConnSlots(args.first().map(|a| a.trim().to_string()).unwrap_or_default()),
        (name, converters) => match stick_fetch(name, &args).filter(|_| !converters) {
            Some(f) => f,
            None => Fetch::Other {
                expr: whole.to_string(),
                why: if stick_counter(name, spec) {
                    Undecided::StickCounters
                } else {
                    Undecided::NotLayer4
                },
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
        let sc = fetch_expr("sc0_http_req_rate").map(|p| p.fetch);
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
        let counter = |e: &str| fetch_expr(e).map(|p| p.fetch).unwrap_or_else(|m| panic!("{e}: {m}"));
        assert_eq!(
            counter("sc0_conn_rate"),
            Fetch::Stick {
                from: StickRef::Tracked { slot: 0, table: None },
                counter: Counter::ConnRate
            }
        );
        assert_eq!(
            counter("sc_get_gpc0(2,other)"),
            Fetch::Stick {
                from: StickRef::Tracked {
                    slot: 2,
                    table: Some("other".into())
                },
                counter: Counter::Gpc0
            }
        );
        assert_eq!(
            counter("src_inc_gpc0(st)"),
            Fetch::Stick {
                from: StickRef::Src { table: "st".into() },
                counter: Counter::IncGpc0
            }
        );
        assert_eq!(counter("be_conn(main)"), Fetch::BeConn("main".into()));
        assert!(matches!(counter("sc1_conn_rate,add(1)"), Fetch::Other { .. }));
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
}

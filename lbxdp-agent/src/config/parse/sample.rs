//! Sample expressions outside ACLs (`set-var(txn.x) src,ipmask(24)`, the
//! `%[req.hdr(host)]` of a log-format string) and log-format strings, checked
//! as HAProxy 2.6's `sample_parse_expr()` and `parse_logformat_string()`
//! check them, with its wording. lbxdp applies none of the rules that carry
//! them; it only refuses what HAProxy refuses.
use crate::config::fetches::{CONVERTERS, FETCHES};

/// HAProxy 2.6's log-format variables (`%ci`, `%ST`...).
const LOG_VARIABLES: &[&str] = &[
    "o", "B", "CC", "CS", "H", "HM", "HP", "HPO", "HQ", "HU", "HV", "ID", "ST", "T", "Ta", "Tc", "Td", "Th", "Ti",
    "Tl", "Tq", "TR", "Tr", "Ts", "Tt", "Tu", "Tw", "U", "ac", "b", "bc", "bi", "bp", "bq", "ci", "cp", "f", "fc",
    "fi", "fp", "ft", "hr", "hrl", "hs", "hsl", "lc", "ms", "pid", "r", "rc", "rt", "s", "sc", "si", "sp", "sq",
    "sslc", "sslv", "t", "tr", "trg", "trl", "ts", "tsc",
];

/// The log-format variables HAProxy 2.6 refuses outside `mode http`.
const HTTP_LOG_VARIABLES: &[&str] = &[
    "CC", "CS", "HM", "HP", "HPO", "HQ", "HU", "HV", "Ta", "Ti", "Tq", "TR", "Tr", "r", "tr", "trg", "trl",
];

/// What a fetch needs, named as HAProxy names its sample sources, from the
/// first `haproxy -dKsmp` column it can be used in (an HTTP response fetch
/// is also usable in `tcp-response` rules, which says less about it).
pub(super) fn needs(usable: u32) -> &'static str {
    const NAMES: [&str; 22] = [
        "client address",
        "client-side connection",
        "request buffer",
        "HTTP request headers",
        "HTTP request body",
        "frontend",
        "backend",
        "HTTP request headers",
        "HTTP request body",
        "server",
        "server address",
        "response buffer",
        "HTTP response headers",
        "HTTP response body",
        "request buffers",
        "response buffer",
        "HTTP response headers",
        "HTTP response body",
        "transaction statistics",
        "transaction statistics",
        "transaction statistics",
        "transaction statistics",
    ];
    let mut first = usable.trailing_zeros() as usize;
    if first == 11 && usable & (1 << 12) != 0 {
        first = 12;
    }
    NAMES.get(first).copied().unwrap_or("internal state")
}

/// An argument of a type HAProxy checks when it parses it.
fn arg_ok(ty: &str, a: &str) -> bool {
    let a = a.trim();
    match ty {
        "integer" => a.parse::<i64>().is_ok(),
        "IPv4 mask" => {
            a.parse::<u8>().is_ok_and(|n| n <= 32)
                || a.parse::<std::net::Ipv4Addr>().is_ok_and(|m| {
                    let bits = u32::from(m);
                    bits.leading_ones() + bits.trailing_zeros() == 32
                })
        }
        "IPv6 mask" => a.parse::<u8>().is_ok_and(|n| n <= 128) || a.parse::<std::net::Ipv6Addr>().is_ok(),
        "IPv4 address" => a.parse::<std::net::Ipv4Addr>().is_ok(),
        "IPv6 address" => a.parse::<std::net::Ipv6Addr>().is_ok(),
        _ => true,
    }
}

/// Types an empty argument is an error for: HAProxy takes an empty string,
/// regex or name (the current proxy, its table) but not an empty number.
fn needs_a_value(ty: &str) -> bool {
    matches!(
        ty,
        "integer" | "IPv4 mask" | "IPv6 mask" | "IPv4 address" | "IPv6 address"
    )
}

/// HAProxy's `make_arg_list()` on the text between the parentheses (None:
/// no parentheses, which HAProxy reads as one empty argument) against an
/// argument list as `haproxy -dKsmp`/`-dKcnv` print it ("integer[,string]").
/// Err is HAProxy's message after the keyword's name.
fn arg_list(args: Option<&str>, spec: &str) -> Result<(), String> {
    let types: Vec<&str> = spec
        .split(',')
        .map(|t| t.trim_matches(|c| c == '[' || c == ']'))
        .filter(|t| !t.is_empty())
        .collect();
    let min = spec
        .split('[')
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|t| !t.is_empty())
        .count();
    let text = args.unwrap_or("");
    if types.is_empty() {
        return match args {
            Some(t) if !t.is_empty() => Err(format!("expected ')' before '{t})'")),
            _ => Ok(()),
        };
    }
    // Quotes and escapes let an argument hold a comma: not counted here.
    if text.contains(['"', '\\', '\'']) {
        return Ok(());
    }
    let given: Vec<&str> = text.split(',').collect();
    if given.len() > types.len() {
        let rest = given[types.len()..].join(",");
        return Err(format!("expected ')' before ',{rest})'"));
    }
    for (pos, (a, ty)) in given.iter().zip(&types).enumerate() {
        if a.trim().is_empty() {
            if needs_a_value(ty) && pos < min {
                return Err(format!("expected type '{ty}' at position {}, but got nothing", pos + 1));
            }
        } else if !arg_ok(ty, a) {
            return Err(format!("failed to parse '{a}' as type '{ty}' at position {}", pos + 1));
        }
    }
    if given.len() < min {
        return Err(format!(
            "missing arguments (got {}/{min}), type '{}' expected",
            given.len(),
            types.get(given.len()).copied().unwrap_or("")
        ));
    }
    Ok(())
}

/// `name(args)` at the start of `text`: the name, what is between the
/// parentheses (None: none), the rest.
fn call(text: &str) -> Result<(&str, Option<&str>, &str), String> {
    let end = text.find(['(', ',']).unwrap_or(text.len());
    let name = &text[..end];
    let Some(inner) = text[end..].strip_prefix('(') else {
        return Ok((name, None, &text[end..]));
    };
    let close = close_paren(inner).ok_or_else(|| format!("missing closing ')' after arguments to '{name}'"))?;
    Ok((name, Some(&inner[..close]), &inner[close + 1..]))
}

/// A converter's arguments (None: no parentheses) against its `spec`, in
/// HAProxy's words ("invalid arg 2 in converter 'regsub' : ...").
pub(super) fn converter_args(name: &str, args: Option<&str>, spec: &str) -> Result<(), String> {
    arg_list(args, spec).map_err(|e| {
        // The argument HAProxy names: where it stopped, or the first missing one.
        let pos = match e.split_once("position ") {
            Some((_, p)) => p.split(',').next().unwrap_or(p).to_string(),
            None => e
                .strip_prefix("missing arguments (got ")
                .and_then(|r| r.split('/').next())
                .and_then(|n| n.parse::<usize>().ok())
                .map_or_else(|| "1".to_string(), |n| (n + 1).to_string()),
        };
        format!("invalid arg {pos} in converter '{name}' : {e}")
    })
}

/// Why a sample expression isn't one, in HAProxy's words; `Ok` carries the
/// columns (`haproxy -dKsmp`) its fetch can be used in.
pub(super) fn sample_expr(text: &str) -> Result<u32, String> {
    let (name, args, mut rest) = call(text)?;
    if name.is_empty() {
        return Err("missing fetch method".into());
    }
    // ACL keywords (`path_beg`) aren't sample fetches.
    let Some(&(_, usable, spec, _)) = FETCHES.iter().find(|(n, ..)| *n == name) else {
        return Err(format!("unknown fetch method '{name}'"));
    };
    arg_list(args, spec).map_err(|e| format!("fetch method '{name}' : {e}"))?;
    if name == "var" {
        let var = args.unwrap_or("").split(',').next().unwrap_or("").trim();
        if var.is_empty() {
            return Err("invalid args in fetch method 'var' : Empty variable name cannot be accepted".into());
        }
        var_scope(var).map_err(|e| format!("invalid args in fetch method 'var' : {e}"))?;
    }
    while let Some(next) = rest.strip_prefix(',') {
        let (cname, cargs, after) = call(next)?;
        let Some(&(_, cspec, _)) = CONVERTERS.iter().find(|(n, ..)| *n == cname) else {
            return Err(format!("unknown converter '{cname}'"));
        };
        converter_args(cname, cargs, cspec)?;
        rest = after;
    }
    if !rest.is_empty() {
        return Err(format!("fetch method '{name}' : expected ')' before '{rest}'"));
    }
    Ok(usable)
}

/// A variable name as HAProxy wants it: a scope, a dot, a name.
pub(super) fn var_scope(name: &str) -> Result<(), String> {
    let scoped = ["proc.", "sess.", "txn.", "req.", "res.", "check."]
        .iter()
        .any(|s| name.strip_prefix(s).is_some_and(|n| !n.is_empty()));
    if scoped {
        return Ok(());
    }
    Err(format!(
        "invalid variable name '{name}'. A variable name must be start by its scope. The scope can be 'proc', \
         'sess', 'txn', 'req', 'res' or 'check'"
    ))
}

/// The files the `map*` converters in `word` name (`map_str(hosts.map,x)`):
/// HAProxy loads them while it parses.
pub(super) fn map_files(word: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = word;
    while let Some(p) = rest.find(",map") {
        let after = &rest[p + 1..];
        let name_end = after.find(['(', ',', ']']).unwrap_or(after.len());
        let name = &after[..name_end];
        let is_map = name == "map" || name.starts_with("map_");
        if is_map {
            // No file (`map`, `map()`) is one HAProxy can't open either.
            let inner = after[name_end..].strip_prefix('(').unwrap_or("");
            let end = inner.find([',', ')']).unwrap_or(inner.len());
            out.push(inner[..end].trim().to_string());
        }
        rest = &after[name_end..];
    }
    out
}

/// One sample expression that is an action's argument (`set-var`,
/// `set-src`, `track-sc0`...), usable in column `col` of `haproxy -dKsmp`.
/// `action` names the rule as HAProxy does when the fetch can't be used there.
pub(super) fn action_expr(text: &str, col: u32, action: &str) -> Result<(), String> {
    let usable = sample_expr(text)?;
    if usable & (1 << col) == 0 {
        return Err(format!(
            "fetch method '{action}' extracts information from '{}', none of which is available here",
            needs(usable)
        ));
    }
    Ok(())
}

/// The unescaped, unquoted `)` that closes an argument list (`inner` starts
/// after the `(`).
fn close_paren(inner: &str) -> Option<usize> {
    let b = inner.as_bytes();
    let (mut i, mut quote) = (0, None);
    while i < b.len() {
        match (b[i], quote) {
            (b'\\', _) => i += 1,
            (q @ (b'"' | b'\''), None) => quote = Some(q),
            (q, Some(open)) if q == open => quote = None,
            (b')', None) => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Where the sample expression at the start of `s` ends, as HAProxy's
/// parser finds it: names, and parenthesised arguments that may hold any
/// character but an unescaped `)` (`regsub([0-9]+,)` has a `]` inside).
fn expr_end(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && !matches!(b[i], b'(' | b',' | b']' | b' ') {
            i += 1;
        }
        if b.get(i) == Some(&b'(') {
            i += 1 + close_paren(&s[i + 1..]).unwrap_or(b.len()) + 1;
        }
        if b.get(i) == Some(&b',') {
            i += 1;
            continue;
        }
        return i.min(b.len());
    }
}

/// A log-format string (`set-header X %[src]`, `%ci:%cp`), its sample
/// expressions usable in column `col` of `haproxy -dKsmp`.
pub(super) fn log_format(text: &str, col: u32, http: bool) -> Result<(), String> {
    let mut rest = text;
    while let Some(p) = rest.find('%') {
        let mut after = &rest[p + 1..];
        if let Some(r) = after.strip_prefix('%') {
            rest = r;
            continue;
        }
        let mut options = None;
        if let Some(r) = after.strip_prefix('{') {
            let Some(close) = r.find('}') else {
                return Err(format!("truncated line after '{r}'"));
            };
            options = Some(&r[..close]);
            after = &r[close + 1..];
        }
        if let Some(r) = after.strip_prefix('[') {
            let close = expr_end(r);
            if r.as_bytes().get(close) != Some(&b']') {
                return Err(format!("missing ']' after '{r}'"));
            }
            let usable =
                sample_expr(&r[..close]).map_err(|e| format!("failed to parse sample expression <{r}> : {e}"))?;
            if usable & (1 << col) == 0 {
                return Err(format!(
                    "sample fetch <{r}> may not be reliably used here because it needs '{}' which is not available \
                     here",
                    needs(usable)
                ));
            }
            rest = &r[close + 1..];
            continue;
        }
        let len = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
        let name = &after[..len];
        if name.is_empty() {
            match after.chars().next() {
                // `%-`, `%+`... are literal for HAProxy.
                Some(c) if c.is_ascii_punctuation() && c != '{' && c != '[' => {
                    rest = &after[c.len_utf8()..];
                    continue;
                }
                Some(c) if c.is_ascii_digit() => {
                    let at = text.len() - after.len();
                    return Err(format!(
                        "unexpected variable name near '{c}' at position {at} line : '{text}'. Maybe you want to \
                         write a single '%', use the syntax '%%'"
                    ));
                }
                Some(_) if options.is_none() => return Err("truncated line after '%'".into()),
                None if options.is_none() => return Err("truncated line after '%'".into()),
                _ => {
                    return Err(format!(
                        "parse argument modifier without variable name near '%{{{}}}'",
                        options.unwrap_or("")
                    ));
                }
            }
        }
        if !http && HTTP_LOG_VARIABLES.contains(&name) {
            return Err(format!("format variable '{name}' is reserved for HTTP mode"));
        }
        if !LOG_VARIABLES.contains(&name) {
            return Err(format!(
                "no such format variable '{name}'. If you wanted to emit the '%' character verbatim, you need to use \
                 '%%'"
            ));
        }
        rest = &after[len..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Column 3 of `haproxy -dKsmp`: a frontend's `http-request` rules.
    const HRQ: u32 = 3;

    #[test]
    fn log_formats_are_checked_as_haproxy_does() {
        for ok in [
            "%[src]",
            "%{+Q}[src]",
            "%ci:%cp",
            "%{+Q}ci",
            "100%%",
            "%[src,ipmask(24)]x%[dst]",
            "%[req.hdr(host),regsub(:[0-9]+$,)]",
            "%[path,regsub(\\),x)]",
            "%[req.hdr(host,1)]",
            "%-",
            "plain",
        ] {
            assert_eq!(log_format(ok, HRQ, true), Ok(()), "{ok}");
        }
        for (bad, want) in [
            (
                "%[srcx]",
                "failed to parse sample expression <srcx]> : unknown fetch method 'srcx'",
            ),
            (
                "%[path_beg]",
                "failed to parse sample expression <path_beg]> : unknown fetch method 'path_beg'",
            ),
            ("%[]", "failed to parse sample expression <]> : missing fetch method"),
            ("%[src", "missing ']' after 'src'"),
            ("100%", "truncated line after '%'"),
            ("% x", "truncated line after '%'"),
            ("%{+Q", "truncated line after '+Q'"),
            ("%{+Q}", "parse argument modifier without variable name near '%{+Q}'"),
            (
                "%zz",
                "no such format variable 'zz'. If you wanted to emit the '%' character verbatim, you need to use '%%'",
            ),
            (
                "%[src,foo]",
                "failed to parse sample expression <src,foo]> : unknown converter 'foo'",
            ),
            (
                "%[src,ipmask]",
                "failed to parse sample expression <src,ipmask]> : invalid arg 1 in converter 'ipmask' : expected \
                 type 'IPv4 mask' at position 1, but got nothing",
            ),
            (
                "%[src,ipmask(x)]",
                "failed to parse sample expression <src,ipmask(x)]> : invalid arg 1 in converter 'ipmask' : failed \
                 to parse 'x' as type 'IPv4 mask' at position 1",
            ),
            (
                "%[path,field(1)]",
                "failed to parse sample expression <path,field(1)]> : invalid arg 2 in converter 'field' : missing \
                 arguments (got 1/2), type 'string' expected",
            ),
            (
                "%[path,lower(1)]",
                "failed to parse sample expression <path,lower(1)]> : invalid arg 1 in converter 'lower' : expected \
                 ')' before '1)'",
            ),
            (
                "%[req.hdr(host,x)]",
                "failed to parse sample expression <req.hdr(host,x)]> : fetch method 'req.hdr' : failed to parse 'x' \
                 as type 'integer' at position 2",
            ),
            (
                "%[res.hdr(host)]",
                "sample fetch <res.hdr(host)]> may not be reliably used here because it needs 'HTTP response \
                 headers' which is not available here",
            ),
        ] {
            assert_eq!(log_format(bad, HRQ, true).err().as_deref(), Some(want), "{bad}");
        }
        assert_eq!(
            log_format("%ci %tr", HRQ, false).err().as_deref(),
            Some("format variable 'tr' is reserved for HTTP mode")
        );
        // A frontend's http-response rules see the response.
        assert_eq!(log_format("%[res.hdr(host)]", 16, true), Ok(()));
    }

    #[test]
    fn argument_lists_are_read_as_haproxy_reads_them() {
        // No parentheses is one empty argument: fine for a string, not a number.
        for ok in [
            "src,json",
            "src,add",
            "src,regsub(a,)",
            "src,bytes(1,)",
            "req.hdr()",
            "req.hdr(,1)",
            "str()",
        ] {
            assert_eq!(sample_expr(ok).map(|_| ()), Ok(()), "{ok}");
        }
        for (bad, want) in [
            (
                "src,field",
                "invalid arg 1 in converter 'field' : expected type 'integer' at position 1, but got nothing",
            ),
            (
                "src,regsub",
                "invalid arg 2 in converter 'regsub' : missing arguments (got 1/2), type 'string' expected",
            ),
            (
                "req.payload(0,)",
                "fetch method 'req.payload' : expected type 'integer' at position 2, but got nothing",
            ),
            (
                "int()",
                "fetch method 'int' : expected type 'integer' at position 1, but got nothing",
            ),
            ("src(1)", "fetch method 'src' : expected ')' before '1)'"),
        ] {
            assert_eq!(sample_expr(bad).err().as_deref(), Some(want), "{bad}");
        }
    }

    #[test]
    fn var_names_need_their_scope() {
        assert_eq!(
            sample_expr("var(x)").err().as_deref(),
            Some(
                "invalid args in fetch method 'var' : invalid variable name 'x'. A variable name must be start by \
                 its scope. The scope can be 'proc', 'sess', 'txn', 'req', 'res' or 'check'"
            )
        );
    }

    #[test]
    fn map_converters_name_their_files() {
        assert_eq!(
            map_files("%[req.hdr(host),lower,map_str(hosts.map,x)]%[src,map_ip(/etc/ip.map)]"),
            ["hosts.map", "/etc/ip.map"]
        );
        assert_eq!(map_files("%[path,map]%[src]"), [""]);
    }

    #[test]
    fn action_expressions_are_checked_as_haproxy_does() {
        assert_eq!(action_expr("src,lower", HRQ, "set-var(txn.x)"), Ok(()));
        assert_eq!(
            action_expr("srcx", HRQ, "set-var(txn.x)").err().as_deref(),
            Some("unknown fetch method 'srcx'")
        );
        assert_eq!(
            action_expr("res.hdr(x)", HRQ, "set-var(txn.x)").err().as_deref(),
            Some(
                "fetch method 'set-var(txn.x)' extracts information from 'HTTP response headers', none of which is \
                 available here"
            )
        );
    }
}

//! Sample expressions outside ACLs (`set-var(txn.x) src,ipmask(24)`, the
//! `%[req.hdr(host)]` of a log-format string) and log-format strings, checked
//! as HAProxy 2.6's `sample_parse_expr()` and `parse_logformat_string()`
//! check them, with its wording. lbxdp applies none of the rules that carry
//! them; it only refuses what HAProxy refuses.
use super::fetch::fetch_expr;
use crate::config::fetches::{CONVERTERS, FETCHES};

/// HAProxy 2.6's log-format variables (`%ci`, `%ST`...).
const LOG_VARIABLES: &[&str] = &[
    "o", "B", "CC", "CS", "H", "HM", "HP", "HPO", "HQ", "HU", "HV", "ID", "ST", "T", "Ta", "Tc", "Td", "Th", "Ti",
    "Tl", "Tq", "TR", "Tr", "Ts", "Tt", "Tu", "Tw", "U", "ac", "b", "bc", "bi", "bp", "bq", "ci", "cp", "f", "fc",
    "fi", "fp", "ft", "hr", "hrl", "hs", "hsl", "lc", "ms", "pid", "r", "rc", "rt", "s", "sc", "si", "sp", "sq",
    "sslc", "sslv", "t", "tr", "trg", "trl", "ts", "tsc",
];

/// What a fetch needs, named as HAProxy names its sample sources, from the
/// first `haproxy -dKsmp` column it can be used in (an HTTP response fetch
/// is also usable in `tcp-response` rules, which says less about it).
fn needs(usable: u32) -> &'static str {
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

/// A converter argument of a type HAProxy checks at parse time.
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
        "IPv6 mask" => a.parse::<u8>().is_ok_and(|n| n <= 128),
        _ => true,
    }
}

/// The converters' argument types, which `fetch_expr` (ACLs) leaves to the
/// match: `ipmask(x)`, `field(1)`, `lower(1)`.
fn check_converters(text: &str) -> Result<(), String> {
    // Past the fetch's own arguments, which `fetch_expr` has checked.
    let after_fetch = match (text.find('('), text.find(',')) {
        (Some(p), c) if c.is_none_or(|c| p < c) => text[p..].find(')').map_or(text.len(), |e| p + e + 1),
        _ => text.find(',').unwrap_or(text.len()),
    };
    let mut rest = &text[after_fetch..];
    while let Some(next) = rest.strip_prefix(',') {
        let end = next.find(['(', ',']).unwrap_or(next.len());
        let name = &next[..end];
        let (args, after): (Vec<&str>, &str) = match next[end..].strip_prefix('(') {
            Some(inner) => {
                let close = inner.find(')').unwrap_or(inner.len());
                let args = if inner[..close].is_empty() {
                    Vec::new()
                } else {
                    inner[..close].split(',').collect()
                };
                (args, inner.get(close + 1..).unwrap_or(""))
            }
            None => (Vec::new(), &next[end..]),
        };
        if let Some(&(_, spec, _)) = CONVERTERS.iter().find(|(n, ..)| *n == name) {
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
            if types.is_empty() && !args.is_empty() {
                let from = &next[end + 1..];
                return Err(format!(
                    "invalid arg 1 in converter '{name}' : expected ')' before '{from}'"
                ));
            }
            if !args.is_empty() && args.len() < min {
                return Err(format!(
                    "invalid arg {} in converter '{name}' : missing arguments (got {}/{min}), type '{}' expected",
                    args.len() + 1,
                    args.len(),
                    types.get(args.len()).copied().unwrap_or("")
                ));
            }
            for (i, (a, ty)) in args.iter().zip(&types).enumerate() {
                if !arg_ok(ty, a) {
                    return Err(format!(
                        "invalid arg {} in converter '{name}' : failed to parse '{a}' as type '{ty}' at position {}",
                        i + 1,
                        i + 1
                    ));
                }
            }
        }
        rest = after;
    }
    Ok(())
}

/// Why a sample expression isn't one, in HAProxy's words; `Ok` carries the
/// columns (`haproxy -dKsmp`) its fetch can be used in.
fn expr(text: &str) -> Result<u32, String> {
    let name = &text[..text.find(['(', ',']).unwrap_or(text.len())];
    if name.is_empty() {
        return Err("missing fetch method".into());
    }
    // ACL keywords (`path_beg`) aren't sample fetches.
    let Some(&(_, usable, ..)) = FETCHES.iter().find(|(n, ..)| *n == name) else {
        return Err(format!("unknown fetch method '{name}'"));
    };
    if let Err(msg) = fetch_expr(text) {
        // HAProxy words a converter's missing arguments differently here.
        if msg.contains("in converter") {
            check_converters(text)?;
        }
        // The ACL parser's words, without the ACL it speaks of.
        let suffix = format!(" in ACL expression '{text}'");
        return Err(msg.strip_suffix(&suffix).unwrap_or(&msg).to_string());
    }
    check_converters(text)?;
    Ok(usable)
}

/// One sample expression that is an action's argument (`set-var`,
/// `set-src`, `track-sc0`...), usable in column `col` of `haproxy -dKsmp`.
/// `action` names the rule as HAProxy does when the fetch can't be used there.
pub(super) fn action_expr(text: &str, col: u32, action: &str) -> Result<(), String> {
    let usable = expr(text)?;
    if usable & (1 << col) == 0 {
        return Err(format!(
            "fetch method '{action}' extracts information from '{}', none of which is available here",
            needs(usable)
        ));
    }
    Ok(())
}

/// A log-format string (`set-header X %[src]`, `%ci:%cp`), its sample
/// expressions usable in column `col` of `haproxy -dKsmp`.
pub(super) fn log_format(text: &str, col: u32) -> Result<(), String> {
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
            let Some(close) = r.find(']') else {
                return Err(format!("missing ']' after '{r}'"));
            };
            let usable = expr(&r[..close]).map_err(|e| format!("failed to parse sample expression <{r}> : {e}"))?;
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
            "%[req.hdr(host,1)]",
            "%-",
            "plain",
        ] {
            assert_eq!(log_format(ok, HRQ), Ok(()), "{ok}");
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
            assert_eq!(log_format(bad, HRQ).err().as_deref(), Some(want), "{bad}");
        }
        // A frontend's http-response rules see the response.
        assert_eq!(log_format("%[res.hdr(host)]", 16), Ok(()));
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

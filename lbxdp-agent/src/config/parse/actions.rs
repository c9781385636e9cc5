//! The arguments of the actions of `tcp-request`, `tcp-response`,
//! `http-request`, `http-response` and `http-after-response` rules, checked
//! as HAProxy 2.6 checks them: how many each action takes, its sample
//! expressions and log-format strings (which ruleset has which action is
//! `rulesets`).
//! lbxdp applies only some `tcp-request connection` actions (see
//! `tcp_request`); the rest is checked so that `-c` refuses what HAProxy refuses.
use super::{
    Kind, arg,
    regex::regex_error,
    rulesets::Ruleset,
    sample::{action_expr, log_format, var_scope},
};

const LOG_LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "silent",
];

const HTTP_RETURN_OPTIONS: &[&str] = &[
    "status",
    "content-type",
    "errorfile",
    "errorfiles",
    "file",
    "lf-file",
    "string",
    "lf-string",
    "hdr",
];

/// The variable an action names (`set-var(txn.x)`), as HAProxy wants it.
fn var_name(action: &str) -> Result<(), String> {
    let inner = action
        .split_once('(')
        .and_then(|(_, r)| r.strip_suffix(')'))
        .unwrap_or("");
    var_scope(inner.split(',').next().unwrap_or(""))
}

/// HAProxy's `set-mark` / `set-tos` value: decimal or 0x hex, all of it.
fn int_or_hex(v: &str) -> Result<(), String> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (body, radix) = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (digits, 10),
    };
    match body.find(|c: char| !c.is_digit(radix)) {
        Some(p) => Err(format!(
            "invalid character starting at '{}' (integer/hex value expected)",
            &body[p..]
        )),
        None => Ok(()),
    }
}

fn ends_here(w: &[String], i: usize) -> bool {
    matches!(arg(w, i), "" | "if" | "unless")
}

/// Checks the arguments of the action at `w[i]`; Ok is the index of the
/// first word after them (`if`, `unless` or what HAProxy finds extra). Err
/// is HAProxy's message (the caller says where: tcp rules print it alone,
/// HTTP rules after "error detected ... while parsing '<rule>' rule :").
pub(super) fn action_args(
    set: Ruleset,
    (kind, http): (Kind, bool),
    name: &str,
    w: &[String],
    i: usize,
) -> Result<usize, String> {
    let action = arg(w, i);
    let base = action.split('(').next().unwrap_or(action);
    let (col, _) = set.place(kind);
    // The proxy's mode so far: HTTP's log-format variables need `mode http`.
    let lf = |text: &str| log_format(text, col, http);
    let rule = format!("{} {action}", set.word());
    let a = i + 1;
    // One required format string, and nothing after it but a condition.
    let exactly = |n: usize, what: &str| -> Result<usize, String> {
        let given = (0..n).all(|k| !arg(w, a + k).is_empty()) && ends_here(w, a + n);
        if given {
            Ok(a + n)
        } else if n == 1 {
            Err(format!("expects exactly 1 argument {what}"))
        } else {
            Err(format!("expects exactly {n} arguments"))
        }
    };
    let expr_at = |k: usize| -> Result<usize, String> {
        let e = arg(w, k);
        if e.is_empty() || e == "if" || e == "unless" {
            return Err("missing fetch method".into());
        }
        action_expr(e, col, action).map(|_| k + 1)
    };
    match base {
        "expect-proxy" | "expect-netscaler-cip" | "capture"
            if matches!(set, Ruleset::TcpConnection | Ruleset::TcpSession) =>
        {
            if base == "capture" && set == Ruleset::TcpConnection {
                return Err(format!(
                    "'capture ' is not allowed in 'tcp-request connection' rules in {} '{name}'",
                    kind.word()
                ));
            }
            if set == Ruleset::TcpSession {
                return Err(format!(
                    "'{base} {}' is not allowed in 'tcp-request session' rules in {} '{name}'",
                    arg(w, a),
                    kind.word()
                ));
            }
            if arg(w, a) != "layer4" {
                return Err(format!(
                    "'{rule}' only supports 'layer4' in {} '{name}' (got '{}')",
                    kind.word(),
                    arg(w, a)
                ));
            }
            Ok(a + 1)
        }
        "allow" | "reject" | "silent-drop" | "disable-l7-retry" | "wait-for-handshake" | "accept" | "close" => Ok(a),
        "do-resolve" => {
            let args = action.split_once('(').map_or(0, |(_, r)| r.split(',').count());
            if args < 2 {
                return Err(format!(
                    "Can't parse '{action}'. Expects 'do-resolve(<varname>,<resolvers>[,<options>]) <expr>'. \
                     Available options are 'ipv4' and 'ipv6'"
                ));
            }
            expr_at(a)
        }
        "set-var" => {
            var_name(action)?;
            expr_at(a)
        }
        "unset-var" => var_name(action).map(|_| a),
        "set-var-fmt" => {
            var_name(action)?;
            lf(arg(w, a))?;
            Ok(a + 1)
        }
        "set-src" | "set-dst" | "set-src-port" | "set-dst-port" | "set-priority-class" | "set-priority-offset" => {
            let e = arg(w, a);
            if e.is_empty() || e == "if" || e == "unless" {
                return Err("missing fetch method".into());
            }
            // HAProxy doesn't check where these fetches can be used.
            action_expr(e, 0, action).or_else(|m| if m.starts_with("fetch method") { Ok(()) } else { Err(m) })?;
            Ok(a + 1)
        }
        "set-mark" | "set-tos" => {
            let v = arg(w, a);
            if v.is_empty() || v == "if" || v == "unless" {
                return Err("expects exactly 1 argument (integer/hex value)".into());
            }
            int_or_hex(v).map(|_| a + 1)
        }
        "set-log-level" => match arg(w, a) {
            v if LOG_LEVELS.contains(&v) => Ok(a + 1),
            _ => Err("expects exactly 1 argument (log level name or 'silent')".into()),
        },
        "set-nice" => match arg(w, a) {
            "" | "if" | "unless" => Err("expects exactly 1 argument (integer value)".into()),
            _ => Ok(a + 1),
        },
        "switch-mode" if !kind.fe() => Err(format!(
            "'tcp-request switch-mode' not allowed because backend '{name}' has no frontend capability"
        )),
        "switch-mode" => match arg(w, a) {
            "http" => {
                let mut k = a + 1;
                if arg(w, k) == "proto" {
                    k += 2;
                }
                Ok(k)
            }
            m => Err(format!("'tcp-request switch-mode' expects a valid mode (got '{m}')")),
        },
        "use-service" => match arg(w, a) {
            "prometheus-exporter" => Ok(a + 1),
            s if s.starts_with("lua.") => Ok(a + 1),
            // HAProxy names the word it read as the service (`content` for tcp rules).
            s if set.http() => Err(format!("'{s}' unknown service name.")),
            _ => Err(format!("'{}' unknown service name.", arg(w, i - 1))),
        },
        "capture" if set == Ruleset::TcpContent && !kind.fe() => {
            Err(format!("'{rule}' : proxy '{name}' has no frontend capability"))
        }
        "capture" if set == Ruleset::HttpRequest && !kind.fe() => {
            Err(format!("proxy '{name}' has no frontend capability"))
        }
        "capture" if set == Ruleset::TcpContent => {
            expr_at(a)?;
            match (arg(w, a + 1), arg(w, a + 2).parse::<u32>()) {
                ("len", Ok(n)) if n > 0 => Ok(a + 3),
                _ => Err(format!("'{rule}' : a positive 'len' argument is mandatory")),
            }
        }
        "capture" if set.http() => {
            let usage = || "expects <expression> [ 'len' <length> | id <idx> ].".to_string();
            if ends_here(w, a) {
                return Err(usage());
            }
            expr_at(a).map_err(|m| if m == "missing fetch method" { usage() } else { m })?;
            match arg(w, a + 1) {
                "len" | "id" if !arg(w, a + 2).is_empty() => Ok(a + 3),
                _ => Err(usage()),
            }
        }
        "track-sc" | "track-sc0" | "track-sc1" | "track-sc2" if set.http() => {
            expr_at(a)?;
            Ok(if arg(w, a + 1) == "table" { a + 3 } else { a + 1 })
        }
        "set-header" | "add-header" | "early-hint" if set.http() => {
            if arg(w, a).is_empty() || arg(w, a + 1).is_empty() {
                return Err("expects exactly 2 arguments".into());
            }
            lf(arg(w, a + 1))?;
            Ok(a + 2)
        }
        "replace-header" | "replace-value" if set.http() => {
            if (0..3).any(|k| arg(w, a + k).is_empty()) {
                return Err("expects exactly 3 arguments".into());
            }
            if let Some(e) = regex_error(arg(w, a + 1)) {
                return Err(e);
            }
            lf(arg(w, a + 2))?;
            Ok(a + 3)
        }
        "replace-path" | "replace-pathq" | "replace-uri" if set.http() => {
            if (0..2).any(|k| arg(w, a + k).is_empty()) {
                return Err("expects exactly 2 arguments".into());
            }
            if let Some(e) = regex_error(arg(w, a)) {
                return Err(format!("failed to parse the regex : {e}"));
            }
            lf(arg(w, a + 1))?;
            Ok(a + 2)
        }
        "set-path" | "set-pathq" | "set-query" | "set-uri" | "set-method" if set.http() => {
            let k = exactly(1, "<format>")?;
            lf(arg(w, a))?;
            Ok(k)
        }
        "del-header" if set.http() => {
            if arg(w, a).is_empty() {
                return Err("expects at least 1 argument".into());
            }
            if arg(w, a + 1) != "-m" {
                return Ok(a + 1);
            }
            match arg(w, a + 2) {
                "str" | "beg" | "end" | "sub" | "reg" => Ok(a + 3),
                "" => Err("-m flag expects exactly 1 argument".into()),
                m => Err(format!("-m with unsupported matching method '{m}'")),
            }
        }
        "set-status" if set.http() => {
            let ok = arg(w, a).parse::<u32>().is_ok_and(|c| (100..=999).contains(&c));
            if !ok {
                return Err("expects an integer status code between 100 and 999".into());
            }
            Ok(if arg(w, a + 1) == "reason" { a + 3 } else { a + 1 })
        }
        "redirect" if set.http() => redirect_args(w, a, &lf),
        "deny" | "tarpit" | "return" if set.http() => return_args(w, a, &lf),
        "auth" if set.http() => Ok(if arg(w, a) == "realm" { a + 2 } else { a }),
        "set-timeout" if set.http() => {
            if !kind.be() {
                return Err(format!("proxy '{name}' has no backend capability"));
            }
            match arg(w, a) {
                "server" | "tunnel" => Ok(a + 2),
                other => Err(format!("'set-timeout' rule supports 'server'/'tunnel' (got '{other}')")),
            }
        }
        "wait-for-body" if set.http() => {
            if arg(w, a) != "time" || arg(w, a + 1).is_empty() {
                return Err("expects time <time> [ at-least <bytes> ]".into());
            }
            Ok(if arg(w, a + 2) == "at-least" { a + 4 } else { a + 2 })
        }
        "sc-inc-gpc" | "sc-inc-gpc0" | "sc-inc-gpc1" => {
            let id = action
                .split_once('(')
                .and_then(|(_, r)| r.strip_suffix(')'))
                .map(|r| r.rsplit(',').next().unwrap_or(r));
            if id.is_some_and(|n| n.trim().parse::<u32>().is_ok_and(|n| n > 2)) {
                return Err("invalid stick table track ID. The max allowed ID is 2".into());
            }
            Ok(a)
        }
        // Actions whose arguments lbxdp doesn't check (maps, resolvers,
        // SPOE, Lua...): everything up to the condition.
        _ => Ok(w[a.min(w.len())..]
            .iter()
            .position(|x| x == "if" || x == "unless")
            .map_or(w.len(), |k| k + a)),
    }
}

/// `deny|tarpit|return [deny_status N] [status N] [content-type T] [string S] ...`.
fn return_args(w: &[String], mut k: usize, lf: &dyn Fn(&str) -> Result<(), String>) -> Result<usize, String> {
    loop {
        let key = arg(w, k);
        let v = arg(w, k + 1);
        if key == "deny_status" || key == "status" {
            if v.is_empty() {
                return Err(format!("'{key}' expects <status_code> as argument"));
            }
            let code = v.parse::<u32>().unwrap_or(0);
            if !(200..=599).contains(&code) {
                return Err(format!("Unexpected status code '{code}'"));
            }
            k += 2;
        } else if key == "hdr" {
            lf(arg(w, k + 2))?;
            k += 3;
        } else if HTTP_RETURN_OPTIONS.contains(&key) {
            if v.is_empty() {
                return Err(format!("'{key}' expects an argument"));
            }
            if key == "lf-string" {
                lf(v)?;
            }
            k += 2;
        } else {
            return Ok(k);
        }
    }
}

/// `redirect location|prefix|scheme <fmt> [code N] [option]...`, as HAProxy
/// parses it up to the condition.
pub(super) fn redirect_args(
    w: &[String],
    mut k: usize,
    lf: &dyn Fn(&str) -> Result<(), String>,
) -> Result<usize, String> {
    let mut typed = false;
    loop {
        let key = arg(w, k);
        match key {
            "" | "if" | "unless" => break,
            "location" | "prefix" | "scheme" => {
                let v = arg(w, k + 1);
                if v.is_empty() {
                    return Err(format!("missing argument for '{key}'"));
                }
                lf(v)?;
                typed = true;
                k += 2;
            }
            "code" => {
                let v = arg(w, k + 1);
                if v.is_empty() {
                    return Err("missing HTTP code".into());
                }
                if !matches!(v.parse::<u32>(), Ok(301 | 302 | 303 | 307 | 308)) {
                    return Err(format!(
                        "'code': unsupported HTTP code '{v}' (must be one of 301, 302, 303, 307 or 308)"
                    ));
                }
                k += 2;
            }
            "set-cookie" | "clear-cookie" => k += 2,
            "drop-query" | "append-slash" | "ignore-empty" => k += 1,
            other => {
                return Err(format!(
                    "expects 'code', 'prefix', 'location', 'scheme', 'set-cookie', 'clear-cookie', 'drop-query', \
                     'ignore-empty' or 'append-slash' (was '{other}')"
                ));
            }
        }
    }
    if !typed {
        return Err("redirection type expected ('prefix', 'location', or 'scheme')".into());
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    fn check(set: Ruleset, line: &str) -> Result<usize, String> {
        action_args(set, (Kind::Frontend, true), "f", &words(line), 0)
    }

    #[test]
    fn action_arguments_are_checked_as_haproxy_does() {
        use Ruleset::*;
        assert_eq!(check(TcpConnection, "set-mark 0x10 if TRUE"), Ok(2));
        assert_eq!(
            check(TcpConnection, "set-mark").err().as_deref(),
            Some("expects exactly 1 argument (integer/hex value)")
        );
        assert_eq!(
            check(TcpConnection, "set-tos 10x").err().as_deref(),
            Some("invalid character starting at 'x' (integer/hex value expected)")
        );
        assert_eq!(
            check(TcpConnection, "set-src").err().as_deref(),
            Some("missing fetch method")
        );
        assert_eq!(check(TcpConnection, "set-src req.hdr(x)"), Ok(2));
        assert_eq!(
            check(TcpConnection, "expect-proxy").err().as_deref(),
            Some("'tcp-request connection expect-proxy' only supports 'layer4' in frontend 'f' (got '')")
        );
        assert_eq!(
            check(TcpConnection, "capture src len 1").err().as_deref(),
            Some("'capture ' is not allowed in 'tcp-request connection' rules in frontend 'f'")
        );
        assert_eq!(
            check(TcpConnection, "set-var(txn.x) req.len").err().as_deref(),
            Some(
                "fetch method 'set-var(txn.x)' extracts information from 'request buffer', none of which is \
                 available here"
            )
        );
        assert_eq!(
            check(TcpContent, "set-var(x) src").err().as_deref(),
            Some(
                "invalid variable name 'x'. A variable name must be start by its scope. The scope can be 'proc', \
                 'sess', 'txn', 'req', 'res' or 'check'"
            )
        );
        assert_eq!(check(HttpRequest, "set-header X %[src] if TRUE"), Ok(3));
        assert_eq!(
            check(HttpRequest, "set-header X").err().as_deref(),
            Some("expects exactly 2 arguments")
        );
        assert_eq!(
            check(HttpRequest, "set-path /a b").err().as_deref(),
            Some("expects exactly 1 argument <format>")
        );
        assert_eq!(check(HttpRequest, "deny deny_status 403 x"), Ok(3));
        assert_eq!(
            check(HttpRequest, "redirect location /x code 999").err().as_deref(),
            Some("'code': unsupported HTTP code '999' (must be one of 301, 302, 303, 307 or 308)")
        );
        assert_eq!(
            check(HttpRequest, "capture src").err().as_deref(),
            Some("expects <expression> [ 'len' <length> | id <idx> ].")
        );
        assert!(!HttpAfterResponse.knows("deny"));
        assert!(HttpRequest.knows("set-var(txn.x)"));
    }
}

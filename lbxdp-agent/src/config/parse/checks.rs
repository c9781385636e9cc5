//! Health checks: `tcp-check`, `http-check` and the `option`s that choose them.
use std::net::IpAddr;

use super::{Draft, Modifier, Parser, arg, atol};
use crate::config::{
    diag::Origin,
    model::{ExpectKind, HealthCheck, StatusExpect, TcpCheckStep},
};

impl Parser<'_> {
    /// `option httpchk [<method>] [<uri>] [<version>]`; `no option httpchk` goes back to connect checks.
    pub(super) fn option_httpchk(&mut self, p: &mut Draft, w: &[String], modifier: Modifier) {
        if modifier != Modifier::Std {
            p.health = HealthCheck::Connect;
            return;
        }
        // option httpchk [<method>] [<uri>] [<version>]; a lone word is the URI.
        let rest: Vec<&str> = w[2..].iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
        let (method, uri, version) = match rest.as_slice() {
            [] => ("OPTIONS", "/", "HTTP/1.0"),
            [uri] => ("OPTIONS", *uri, "HTTP/1.0"),
            [m, uri] => (*m, *uri, "HTTP/1.0"),
            [m, uri, v, ..] => (*m, *uri, *v),
        };
        let expect = match &p.health {
            HealthCheck::Http { expect_status, .. } => expect_status.clone(),
            _ => None,
        };
        p.health = HealthCheck::Http {
            method: method.to_string(),
            uri: uri.to_string(),
            version: version.to_string(),
            expect_status: expect,
        };
        p.checks_inherited = false;
    }

    /// `option tcp-check`: rules from `tcp-check` lines, or a plain connect.
    pub(super) fn option_tcp_check(&mut self, p: &mut Draft, w: &[String], at: &Origin, modifier: Modifier) {
        if self.too_many_opt(w, 0, at) {
            return;
        }
        if modifier != Modifier::Std {
            p.health = HealthCheck::Connect;
            return;
        }
        if !matches!(p.health, HealthCheck::TcpCheck(_)) {
            p.health = HealthCheck::TcpCheck(Vec::new());
        }
    }

    fn tcp_check_rules<'p>(&mut self, p: &'p mut Draft) -> &'p mut Vec<TcpCheckStep> {
        if p.checks_inherited || !matches!(p.health, HealthCheck::TcpCheck(_)) {
            // Rules of a proxy's own replace those from defaults (HAProxy 2.2+).
            if p.checks_inherited || matches!(p.health, HealthCheck::Connect) {
                p.health = HealthCheck::TcpCheck(Vec::new());
            }
            p.checks_inherited = false;
        }
        if !matches!(p.health, HealthCheck::TcpCheck(_)) {
            p.health = HealthCheck::TcpCheck(Vec::new());
        }
        match &mut p.health {
            HealthCheck::TcpCheck(rules) => rules,
            _ => unreachable!("set just above"),
        }
    }

    pub(super) fn tcp_check(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        if self.lacks(p, false, true, "tcp-check", at) {
            return;
        }
        let action = arg(w, 1);
        let step = match action {
            "connect" => {
                let (mut port, mut addr_, mut send_proxy) = (None, None, false);
                let mut i = 2;
                while i < w.len() {
                    let v = arg(w, i + 1);
                    match w[i].as_str() {
                        "port" => {
                            let (n, clean) = atol(v);
                            if v.is_empty() || !clean || !(1..=65535).contains(&n) {
                                self.diags.alert(at, format!("'tcp-check connect': invalid port '{v}'"));
                                return;
                            }
                            port = Some(n as u16);
                            i += 1;
                        }
                        "addr" => match v.parse::<IpAddr>() {
                            Ok(ip) => {
                                addr_ = Some(ip);
                                i += 1;
                            }
                            Err(_) => {
                                self.diags.alert(
                                    at,
                                    format!("'tcp-check connect': 'addr' expects an IP address, got '{v}'"),
                                );
                                return;
                            }
                        },
                        "send-proxy" => send_proxy = true,
                        "default" | "via-socks4" | "ssl" | "linger" => {}
                        "sni" | "alpn" | "proto" | "comment" => i += 1,
                        other => {
                            self.diags.alert(
                                at,
                                format!("'tcp-check connect': unknown keyword '{other}' (expects 'comment', 'port', 'addr', 'send-proxy', 'via-socks4', 'ssl', 'sni', 'alpn', 'proto', 'linger' or 'default')"),
                            );
                            return;
                        }
                    }
                    i += 1;
                }
                TcpCheckStep::Connect {
                    port,
                    addr: addr_,
                    send_proxy,
                }
            }
            "send" | "send-lf" | "send-binary" | "send-binary-lf" => {
                let data = arg(w, 2);
                if data.is_empty() {
                    self.diags.alert(
                        at,
                        format!(
                            "'tcp-check {action}' expects a {} as argument",
                            if action.contains("binary") {
                                "binary string"
                            } else {
                                "string"
                            }
                        ),
                    );
                    return;
                }
                let mut i = 3;
                while i < w.len() {
                    if w[i] == "comment" {
                        i += 2;
                    } else {
                        self.diags
                            .alert(at, format!("'tcp-check {action}': unexpected argument '{}'", w[i]));
                        return;
                    }
                }
                if action.ends_with("-lf") {
                    self.diags.warn(
                        at,
                        format!("'tcp-check {action}': log-format strings are sent unexpanded by lbxdp"),
                    );
                }
                if action.starts_with("send-binary") {
                    match decode_hex(data) {
                        Some(b) => TcpCheckStep::Send(b),
                        None => {
                            self.diags.alert(
                                at,
                                format!("'tcp-check {action}': '{data}' is not a valid hexadecimal string"),
                            );
                            return;
                        }
                    }
                } else {
                    TcpCheckStep::Send(data.as_bytes().to_vec())
                }
            }
            "expect" => {
                let mut i = 2;
                let mut negate = false;
                let mut kind = None;
                let mut pattern = None;
                while i < w.len() && pattern.is_none() {
                    let k = w[i].as_str();
                    match k {
                        "!" => negate = true,
                        "min-recv" | "error-status" | "tout-status" | "ok-status" | "on-success" | "on-error"
                        | "status-code" | "comment" => {
                            if arg(w, i + 1).is_empty() {
                                self.diags
                                    .alert(at, format!("'tcp-check expect': '{k}' expects an argument"));
                                return;
                            }
                            i += 1;
                        }
                        "string" | "rstring" | "binary" | "rbinary" | "string-lf" | "binary-lf" => {
                            let v = arg(w, i + 1);
                            if v.is_empty() {
                                self.diags
                                    .alert(at, format!("'tcp-check expect {k}' expects <pattern> as an argument"));
                                return;
                            }
                            if (k == "binary") && decode_hex(v).is_none() {
                                self.diags.alert(
                                    at,
                                    format!("'tcp-check expect binary': '{v}' is not a valid hexadecimal string"),
                                );
                                return;
                            }
                            kind = Some(match k {
                                "rstring" => ExpectKind::Rstring,
                                "binary" | "binary-lf" => ExpectKind::Binary,
                                "rbinary" => ExpectKind::Rbinary,
                                _ => ExpectKind::String,
                            });
                            pattern = Some(v.to_string());
                            i += 1;
                        }
                        other => {
                            self.diags.alert(
                                at,
                                format!("'tcp-check expect': unknown keyword '{other}' (expects 'string', 'rstring', 'binary', 'rbinary', 'string-lf', 'binary-lf', 'min-recv', 'comment', 'ok-status', 'error-status', 'tout-status', 'on-success', 'on-error', 'status-code' or '!')"),
                            );
                            return;
                        }
                    }
                    i += 1;
                }
                let (Some(kind), Some(pattern)) = (kind, pattern) else {
                    self.diags.alert(
                        at,
                        "'tcp-check expect': expects a match type ('string', 'rstring', 'binary', ...) and a pattern",
                    );
                    return;
                };
                TcpCheckStep::Expect { negate, kind, pattern }
            }
            "comment" | "set-var" | "set-var-fmt" | "unset-var" => {
                if arg(w, 2).is_empty() {
                    self.diags
                        .alert(at, format!("'tcp-check {action}' expects an argument"));
                }
                return;
            }
            other => {
                self.diags.alert(
                    at,
                    format!("'tcp-check' only supports 'comment', 'connect', 'send', 'send-binary', 'expect', 'set-var' and 'unset-var' (got '{other}')"),
                );
                return;
            }
        };
        self.tcp_check_rules(p).push(step);
    }

    pub(super) fn http_check(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        if self.lacks(p, false, true, "http-check", at) {
            return;
        }
        match arg(w, 1) {
            "expect" => {
                let mut i = 2;
                let negate = arg(w, i) == "!";
                if negate {
                    i += 1;
                }
                let what = arg(w, i);
                let pattern = arg(w, i + 1);
                match what {
                    "status" | "rstatus" | "string" | "rstring" | "hdr" | "fhdr" => {}
                    _ => {
                        self.diags.alert(
                            at,
                            format!("'http-check expect': unknown keyword '{what}' (expects 'status', 'rstatus', 'string', 'rstring', 'hdr' or 'fhdr')"),
                        );
                        return;
                    }
                }
                if pattern.is_empty() {
                    self.diags.alert(at, format!("'http-check expect {what}' expects <pattern> as an argument"));
                    return;
                }
                if what == "status" {
                    let expect = StatusExpect {
                        negate,
                        codes: pattern.to_string(),
                    };
                    if let HealthCheck::Http { expect_status, .. } = &mut p.health {
                        *expect_status = Some(expect);
                    } else {
                        p.health = HealthCheck::Http {
                            method: "OPTIONS".into(),
                            uri: "/".into(),
                            version: "HTTP/1.0".into(),
                            expect_status: Some(expect),
                        };
                        self.diags.warn(at, "'http-check expect' without 'option httpchk': HTTP checks are enabled as HAProxy does");
                    }
                } else {
                    self.diags.warn(at, format!("'http-check expect {what}': only 'status' is applied by lbxdp"));
                }
            }
            "send" | "connect" | "comment" | "set-var" | "set-var-fmt" | "unset-var" | "disable-on-404"
            | "send-state" => {
                self.diags.warn(at, format!("'http-check {}': parsed past, not applied by lbxdp", arg(w, 1)));
            }
            other => self.diags.alert(
                at,
                format!("'http-check' only supports 'comment', 'connect', 'disable-on-404', 'expect', 'send', 'send-state', 'set-var' and 'unset-var' (got '{other}')"),
            ),
        }
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

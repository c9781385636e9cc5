//! The `global` section: process settings, `log` targets, `stats` sockets.
use super::{Modifier, Parser, arg, atol, refusal_at};
use crate::config::{
    diag::Origin,
    keywords as kw,
    model::{CliLevel, EnvRef, EnvRefKind, LogHostname, StatsSocket, Unsupported},
    time,
};

impl Parser<'_> {
    pub(super) fn global_kw(&mut self, w: &[String], at: &Origin, modifier: Modifier) {
        let a1 = arg(w, 1).to_string();
        let k = w[0].as_str();
        match k {
            "daemon" => {
                if !self.too_many(w, 0, at) {
                    self.out.global.daemon = true;
                }
            }
            "master-worker" => {
                if !a1.is_empty() && a1 != "no-exit-on-failure" {
                    self.diags
                        .alert(at, "'master-worker' only supports 'no-exit-on-failure' option");
                } else if !self.too_many(w, 1, at) {
                    self.out.global.master_worker = true;
                    self.out.global.master_no_exit_on_failure = a1 == "no-exit-on-failure";
                }
            }
            "hard-stop-after" => {
                if self.too_many(w, 1, at) {
                    return;
                }
                if a1.is_empty() {
                    self.diags.alert(at, "'hard-stop-after' expects <time> as argument.");
                    return;
                }
                match time::parse_ms(&a1) {
                    Ok(t) => self.out.global.hard_stop_after = Some(t.value),
                    Err(e) => self.diags.alert(at, format!("{e} in argument to <hard-stop-after>.")),
                }
            }
            "maxconn" | "nbthread" => {
                if self.too_many(w, 1, at) {
                    return;
                }
                if a1.is_empty() {
                    self.diags.alert(at, format!("'{k}' expects an integer argument"));
                    return;
                }
                let (v, clean) = atol(&a1);
                if k == "nbthread" {
                    if !clean || !(1..=64).contains(&v) {
                        self.diags
                            .alert(at, format!("'nbthread' value must be between 1 and 64 (was '{a1}')"));
                        return;
                    }
                    self.out.global.nbthread = Some(v as u32);
                } else {
                    if !clean {
                        self.diags
                            .warn(at, format!("'maxconn {a1}' is not a number; HAProxy reads it as {v}"));
                    }
                    if self.out.global.maxconn.is_some() {
                        self.diags.warn(at, "'maxconn' already specified; the last value wins");
                    }
                    self.out.global.maxconn = Some(v.clamp(0, i64::from(u32::MAX)) as u32);
                }
            }
            "pidfile" | "chroot" | "node" | "user" | "group" => {
                if self.too_many(w, 1, at) {
                    return;
                }
                if a1.is_empty() {
                    let what = match k {
                        "pidfile" => "a file name",
                        "chroot" => "a directory",
                        "node" => "a non-empty node name",
                        _ => "a name",
                    };
                    self.diags.alert(at, format!("'{k}' expects {what} as an argument"));
                    return;
                }
                let g = &mut self.out.global;
                let (slot, env) = match k {
                    "pidfile" => (&mut g.pidfile, None),
                    "chroot" => (&mut g.chroot, None),
                    "node" => (&mut g.node, None),
                    "user" => (&mut g.user, Some(EnvRefKind::User)),
                    _ => (&mut g.group, Some(EnvRefKind::Group)),
                };
                let dup = slot.is_some();
                *slot = Some(a1.clone());
                if let Some(kind) = env {
                    g.env_refs.push(EnvRef {
                        kind,
                        value: a1,
                        origin: at.clone(),
                    });
                }
                if dup {
                    self.diags
                        .warn(at, format!("'{k}' already specified; the last value wins"));
                }
            }
            "uid" | "gid" => {
                if self.too_many(w, 1, at) {
                    return;
                }
                if a1.is_empty() {
                    self.diags.alert(at, format!("'{k}' expects an integer argument"));
                    return;
                }
                let (v, clean) = atol(&a1);
                if !clean {
                    self.diags.warn(
                        at,
                        format!(
                            "{k}: '{a1}' is not a number; use '{}' for a name",
                            if k == "uid" { "user" } else { "group" }
                        ),
                    );
                }
                let v = Some(v.clamp(0, i64::from(u32::MAX)) as u32);
                if k == "uid" {
                    self.out.global.uid = v;
                } else {
                    self.out.global.gid = v;
                }
            }
            "description" => {
                if a1.is_empty() {
                    self.diags.alert(at, "'description' expects a string argument");
                    return;
                }
                self.out.global.description = Some(w[1..].join(" "));
            }
            "log" => {
                if modifier == Modifier::No {
                    self.out.global.logs.clear();
                    return;
                }
                if a1 == "global" && arg(w, 2).is_empty() {
                    self.diags
                        .alert(at, "log: 'global' is not supported for a global syslog server");
                    return;
                }
                if let Some(t) = self.log_target(w, at, true) {
                    self.out.global.logs.push(t);
                }
            }
            "log-tag" => {
                if self.too_many(w, 1, at) {
                    return;
                }
                if a1.is_empty() {
                    self.diags.alert(at, "'log-tag' expects a tag for use in syslog.");
                    return;
                }
                self.out.global.log_tag = Some(a1);
            }
            "log-send-hostname" => {
                if self.out.global.log_send_hostname.is_some() {
                    // HAProxy's words; it keeps the first and refuses to start.
                    self.diags
                        .alert(at, "'log-send-hostname' already specified. Continuing.");
                    return;
                }
                self.out.global.log_send_hostname = Some(if a1.is_empty() {
                    LogHostname::Machine
                } else {
                    LogHostname::Named(a1)
                });
            }
            "stats" => self.global_stats(w, at),
            "spread-checks" => {
                if self.too_many(w, 1, at) {
                    return;
                }
                if self.out.global.spread_checks.is_some_and(|v| v != 0) {
                    // HAProxy says it as an alert but starts anyway: the first value stays.
                    self.diags
                        .warn(at, "spread-checks already specified; the first value stays");
                    return;
                }
                if a1.is_empty() {
                    self.diags
                        .alert(at, "'spread-checks' expects an integer argument (0..50).");
                    return;
                }
                let (v, _) = atol(&a1);
                if !(0..=50).contains(&v) {
                    self.diags
                        .alert(at, "'spread-checks' needs a positive value in range 0..50.");
                    return;
                }
                self.out.global.spread_checks = Some(v as u32);
            }
            "nbproc" => self.diags.alert(
                at,
                "nbproc is not supported any more since HAProxy 2.5; threads are used automatically",
            ),
            other if kw::GLOBAL_OTHER.contains(&other) => {
                self.experimental |= other == "expose-experimental-directives";
                self.diags
                    .warn(at, format!("global '{other}': parsed past, not applied by lbxdp"));
            }
            other => self
                .diags
                .alert(at, format!("unknown keyword '{other}' in 'global' section")),
        }
    }

    fn global_stats(&mut self, w: &[String], at: &Origin) {
        let sub = arg(w, 1);
        if matches!(sub, "socket" | "timeout" | "maxconn" | "bind-process") && self.out.cli_slot.is_none() {
            // HAProxy makes its CLI frontend here, and it takes a proxy id.
            self.out.cli_slot = Some(self.out.proxies.len());
        }
        match sub {
            "socket" => self.stats_socket(w, at),
            "timeout" => {
                let v = arg(w, 2);
                match time::parse_ms(v) {
                    Ok(t) if !t.value.is_zero() => self.out.global.stats_timeout = Some(t.value),
                    Ok(_) => self
                        .diags
                        .alert(at, "'stats timeout' expects a positive delay in milliseconds"),
                    Err(e) => self.diags.alert(at, format!("'stats timeout': {e} in '{v}'")),
                }
            }
            "maxconn" => {
                let (n, _) = atol(arg(w, 2));
                if n <= 0 {
                    self.diags.alert(at, "'stats maxconn' expects a positive value");
                    return;
                }
                self.out.global.stats_maxconn = Some(n.min(i64::from(u32::MAX)) as u32);
            }
            "bind-process" => {
                self.diags
                    .warn(at, "'stats bind-process': parsed past, not applied by lbxdp");
            }
            other => self.diags.alert(
                at,
                format!("'stats' only supports 'socket', 'maxconn', 'bind-process' and 'timeout' (got '{other}')"),
            ),
        }
    }

    /// `stats socket <addr> [bind options]`: what the agent's socket applies,
    /// what it refuses (options that would make it behave otherwise), and
    /// what it parses past because it changes nothing a client sees.
    fn stats_socket(&mut self, w: &[String], at: &Origin) {
        let addr = arg(w, 2);
        if addr.is_empty() {
            self.diags.alert(at, "'stats socket' expects an address or a path");
            return;
        }
        let directive = format!("stats socket {addr}");
        let mut sock = StatsSocket {
            address: addr.to_string(),
            mode: None,
            user: None,
            group: None,
            uid: None,
            gid: None,
            level: CliLevel::default(),
            maxconn: None,
            origin: at.clone(),
        };
        let mut refused = Vec::new();
        let mut i = 3;
        while i < w.len() {
            let k = w[i].as_str();
            let v = arg(w, i + 1);
            let mut takes = 1;
            match k {
                "" => takes = 0,
                "mode" => match u32::from_str_radix(v, 8) {
                    Ok(m) if !v.is_empty() => sock.mode = Some(m),
                    _ => {
                        self.diags.alert(
                            at,
                            format!("'stats socket': 'mode': missing or invalid mode '{v}' (octal integer expected)"),
                        );
                        return;
                    }
                },
                "level" => {
                    sock.level = match v {
                        "user" => CliLevel::User,
                        "operator" => CliLevel::Operator,
                        "admin" => CliLevel::Admin,
                        _ => {
                            self.diags.alert(
                                at,
                                format!(
                                    "'stats socket': 'level' only supports 'user', 'operator', and 'admin' (got '{v}')"
                                ),
                            );
                            return;
                        }
                    };
                }
                "user" | "group" => {
                    if v.is_empty() {
                        self.diags.alert(at, format!("'stats socket': '{k}' expects a name"));
                        return;
                    }
                    let kind = if k == "user" {
                        sock.user = Some(v.to_string());
                        EnvRefKind::User
                    } else {
                        sock.group = Some(v.to_string());
                        EnvRefKind::Group
                    };
                    self.out.global.env_refs.push(EnvRef {
                        kind,
                        value: v.to_string(),
                        origin: at.clone(),
                    });
                }
                "uid" | "gid" | "maxconn" => {
                    if v.is_empty() {
                        self.diags
                            .alert(at, format!("'stats socket': '{k}' expects an integer argument"));
                        return;
                    }
                    // HAProxy's atol(): "abc" is 0, "5x" is 5.
                    let n = atol(v).0.clamp(0, i64::from(u32::MAX)) as u32;
                    match k {
                        "uid" => sock.uid = Some(n),
                        "gid" => sock.gid = Some(n),
                        _ => sock.maxconn = (n > 0).then_some(n),
                    }
                }
                "expose-fd" if v != "listeners" => {
                    self.diags.alert(
                        at,
                        format!("'stats socket': 'expose-fd' only supports 'listeners' (got '{v}')"),
                    );
                    return;
                }
                "interface" => {
                    if v.is_empty() {
                        self.diags
                            .alert(at, "'stats socket': 'interface' expects an interface name");
                        return;
                    }
                    refused.push(refusal_at(at, directive.clone(), k, Unsupported::StatsSocket));
                }
                _ => match kw::BIND_OTHER.iter().find(|(n, _)| *n == k) {
                    Some((_, n)) => {
                        takes = *n;
                        let what = kw::BIND_REFUSED
                            .iter()
                            .find(|(r, _)| *r == k)
                            .map(|(_, what)| *what)
                            .or_else(|| (!kw::STATS_SOCKET_HARMLESS.contains(&k)).then_some(Unsupported::StatsSocket));
                        if !self.parse_past(&directive, k, v, *n, kw::BIND_FILES, what.is_none(), at) {
                            return;
                        }
                        if let Some(what) = what {
                            refused.push(refusal_at(at, directive.clone(), k, what));
                        }
                    }
                    None => {
                        self.diags.alert(at, format!("'stats socket': unknown keyword '{k}'"));
                        return;
                    }
                },
            }
            i += 1 + takes;
        }
        self.out.refused.extend(refused);
        self.out.global.stats_sockets.push(sock);
    }
}
